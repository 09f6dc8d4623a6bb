/* certwatch.h - noticing that a certificate or key file was renewed.
 *
 * The directories holding the configured certificate and key files are
 * watched with inotify (a renewal usually replaces a file by renaming,
 * which only the directory sees). A burst of changes is coalesced: the
 * callback runs once the directory has been quiet for CERTWATCH_SETTLE_MS,
 * or CERTWATCH_SETTLE_MAX_MS after the first change at the latest, and
 * only if a configured file really changed: an event naming it, or a file
 * that now stats differently (another inode, size, mtime or ctime) from
 * when it was last loaded, which also catches a symlinked directory being
 * swapped. Events for other files, and the IN_IGNORED that removing a
 * watch produces, cause nothing. Runs on the main thread's loop. */
#ifndef PORTICO_CERTWATCH_H
#define PORTICO_CERTWATCH_H

#include "loop.h"

#define CERTWATCH_SETTLE_MS     500  /* quiet time after the last change */
#define CERTWATCH_SETTLE_MAX_MS 5000 /* ... but no longer than this after the first */

struct config;
struct certwatch;

/* Called with the first changed file's path (valid during the call). */
typedef void (*certwatch_fn)(void *arg, const char *path);

/* A watcher on loop l; NULL when inotify is unavailable (a warning is
 * logged: renewals then need a SIGHUP). */
struct certwatch *certwatch_new(struct loop *l, certwatch_fn fn, void *arg);

/* Watch the certificate and key files of c (none when c has no TLS
 * store), and remember how they look now as the loaded state. Call after
 * every load attempt with the configuration in force. */
void certwatch_set(struct certwatch *cw, const struct config *c);

void certwatch_free(struct certwatch *cw);

#endif
