/* resolve.h - upstream host names, resolved in the background.
 *
 * A name written in an upstream address (an upstream or auth URL,
 * tcp.upstream, passthrough) is not resolved while the configuration is
 * read: a name that does not resolve yet (DNS not up at boot) must not stop
 * portico from serving everything else. Resolver threads run getaddrinfo
 * for every name the running configuration uses, again every
 * limits.resolve_interval, and sooner with a growing back-off while a name
 * fails. A name that fails after it resolved keeps its last address.
 *
 * Workers never wait and never lock: each name holds its current address
 * as an immutable object behind an atomic pointer. A replaced address is
 * freed only after every worker's loop has run a posted no-op, by when no
 * worker can still be reading it (workers use the pointer only within one
 * event callback). */
#ifndef PORTICO_RESOLVE_H
#define PORTICO_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct config_addr;
struct loop;
struct resolve_name;

/* An address a name resolved to. Never changes once published. */
struct resolve_addr {
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t gen; /* unique per published address: a change means "reconnect" */
};

/* Start the resolver threads (main thread, once). Returns 0 or -1 with err set. */
int resolve_start(char *err, size_t errlen);

/* The loops of the running workers, for the grace period before a replaced
 * address is freed. Set before the workers run. */
void resolve_set_loops(struct loop *const *loops, size_t n);

/* Put c to use (main thread): give each of its host names an entry, shared
 * with earlier snapshots so a reload keeps what they resolved; look up the
 * new names, waiting up to wait_ms for their first answers; log a warning
 * for each name without an address. Names that c no longer uses are no
 * longer refreshed. Returns 0, or -1 when out of memory. */
int resolve_bind(struct config *c, uint32_t wait_ms);

/* One blocking lookup of host and port (getaddrinfo, TCP): returns NULL
 * with the first IPv4 or IPv6 address in *out, or why there is none, as a
 * phrase ("Name or service not known"). For `portico check`, and the
 * resolver threads. */
const char *resolve_lookup(const char *host, uint16_t port, struct sockaddr_storage *out,
                           socklen_t *outlen);

/* Stop the resolver threads (before the workers stop). */
void resolve_stop(void);
/* Free what the resolver still holds (after the workers stopped). */
void resolve_free(void);

void resolve_name_unref(struct resolve_name *n);

/* Where to connect for a: *sa and *len are its own address (gen 0), or
 * the current address of its name. Returns 0, or -EDESTADDRREQ while the
 * name has no address; the pointers stay valid until the caller returns
 * to its event loop. */
int resolve_target(const struct config_addr *a, const struct sockaddr **sa, socklen_t *len,
                   uint64_t *gen);

/* Why a's name has no address (the resolver's last error), for messages. */
const char *resolve_error(const struct config_addr *a);

/* Delay before the next lookup of a name after `failures` consecutive
 * failures (0 after a success): the interval after a success, else
 * TIMEOUT_RESOLVE_RETRY_MS doubled per failure, never above the interval. */
uint32_t resolve_next_delay_ms(unsigned failures, uint32_t interval_ms);

struct resolve_stats {
    uint64_t ok, failed; /* lookups, by result */
    uint64_t changes;    /* addresses replaced by a different one */
    uint64_t unresolved; /* names in use without an address */
};
void resolve_get_stats(struct resolve_stats *s);

#endif
