/* tsdefine.h - `portico run` defining its services in the tailnet through
 * the Tailscale control API (tailscale.api), on start and after every
 * reload, so that adding an app needs no admin-console click and no
 * `portico tailscale apply`.
 *
 * The control API client (tsapi_client.c) blocks, so the definitions are
 * made on one long-lived thread of their own, never on an event loop. The
 * main thread hands it the newest configuration (only the newest matters:
 * one not started yet is replaced); the thread reports each run back to
 * the main loop (loop_post).
 *
 * Definitions come before the serve config: with tailscale.api, the
 * publisher (tspublish.c) is started only once the first definition run
 * for a configuration has ended, whatever its result, so a node never
 * advertises a name control was not asked to know, yet an API that is
 * down never holds publishing up for more than one run (at most one
 * request timeout). A run that fails is retried on the thread with
 * back-off (1 s doubling to 5 min), logged once per outage; when a retry
 * then creates or updates a definition, the publisher runs again. 401 or
 * 403 (a wrong secret, a missing scope): one line, and no retry until the
 * next reload. The OAuth token is kept across runs and renewed a minute
 * before it expires. Stopping interrupts a request in flight at once. */
#ifndef PORTICO_TSDEFINE_H
#define PORTICO_TSDEFINE_H

#include <stddef.h>

struct config;
struct loop;
struct tsdefine;
struct tspublish;

/* A definer on loop l (the main thread's) in front of publisher p. NULL
 * with a sentence in err (out of memory, no thread). */
struct tsdefine *tsdefine_new(struct loop *l, struct tspublish *p, char *err, size_t errlen);
/* Stop the thread (a request in flight is given up at once) and free. */
void tsdefine_free(struct tsdefine *d);

/* Define c's services, then publish c (tspublish_set); without
 * tailscale.api (or with nothing to publish) publish c at once. */
void tsdefine_set(struct tsdefine *d, struct config *c);

#endif
