/* tsstatus.h - tailscaled's status, read on the main thread's loop for a
 * module that needs a field of it (hairpin.c: the MagicDNS suffix;
 * dnsserver.c: the node's tailnet addresses; tscert.c: CertDomains).
 *
 * Each module has its handle; the handles asking at one socket share one
 * LocalAPI client, and one call: a handle that asks while a call is in
 * flight gets that call's answer, so modules asking together (at start, at
 * a reload) cost tailscaled one read. The answer is parsed once by
 * tsjson.c. A status that cannot be read is asked again with back-off
 * (TIMEOUT_TS_PUBLISH_RETRY_MS, doubling up to
 * TIMEOUT_TS_PUBLISH_RETRY_MAX_MS); after a status that was read, the
 * module says when to ask again. */
#ifndef PORTICO_TSSTATUS_H
#define PORTICO_TSSTATUS_H

#include <stdint.h>

struct loop;
struct tsjson_status;
struct tsstatus;

/* st: the status just read (shared with the other handles: read it, copy
 * what is kept); or NULL, and error says why it could not be (it is asked
 * again with back-off; the return value is then ignored). After a status,
 * return the milliseconds until it is asked again (0: not until the next
 * tsstatus_ask). It may run from inside tsstatus_ask when no call could be
 * made. It may ask or stop its own handle, never free one. */
typedef uint32_t (*tsstatus_fn)(void *arg, const struct tsjson_status *st, const char *error);

/* NULL when out of memory. */
struct tsstatus *tsstatus_new(struct loop *l, tsstatus_fn fn, void *arg);
/* Ask tailscaled at socket now (a call in flight is awaited instead); the
 * back-off starts again. The path is copied. */
void tsstatus_ask(struct tsstatus *s, const char *socket);
/* As tsstatus_ask, for a module that keeps its own schedule: no back-off
 * after a failed read and no asking again after a status (the return value
 * of fn is ignored); the module asks again when it wants to. */
void tsstatus_ask_once(struct tsstatus *s, const char *socket);
/* No more calls back until the next tsstatus_ask. */
void tsstatus_stop(struct tsstatus *s);
void tsstatus_free(struct tsstatus *s);

#endif
