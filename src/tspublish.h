/* tspublish.h - `portico run` publishing its services as Tailscale Services
 * by itself, on start and after every reload, from the main thread's loop.
 *
 * It runs the same steps as `portico tailscale apply` (tsapply.c) over the
 * non-blocking LocalAPI client (localapi.c), so it never blocks the loop and
 * never holds up start: portico serves its other listeners whatever
 * tailscaled does. A run that fails (tailscaled missing, stopped,
 * restarting, slow or answering errors) is logged once, counted, and tried
 * again with back-off until it succeeds. A reload during a run publishes
 * the newest configuration once that run ends. When tailscaled refuses the
 * write for want of privileges (401/403: an unprivileged daemon cannot
 * publish a unix: backend), one line says to run `portico tailscale apply`
 * with privileges from the unit instead, and nothing is retried until the
 * next reload. */
#ifndef PORTICO_TSPUBLISH_H
#define PORTICO_TSPUBLISH_H

struct config;
struct loop;
struct tspublish;

/* A publisher in loop l (the main thread's). NULL when out of memory. */
struct tspublish *tspublish_new(struct loop *l);
/* Stop: a call in flight is dropped unanswered. */
void tspublish_free(struct tspublish *p);

/* Publish c (takes a reference): when its tailscale section says so
 * (services: true, or services portico published before, with publish:
 * auto), else stop publishing. */
void tspublish_set(struct tspublish *p, struct config *c);

#endif
