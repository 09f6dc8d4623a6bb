/* dnsserver.h - the sockets of the DNS responder (dns.h), on the main
 * thread's loop.
 *
 * The main loop, not the workers: split DNS for a tailnet is a few queries
 * a second, each answered in microseconds without blocking, and the zone
 * then changes on the thread that reloads, with nothing shared. Each
 * address gets a UDP socket and a TCP listener on the same port (both
 * with SO_REUSEPORT, so a binary upgrade binds them again while the old
 * process still drains). TCP carries one query per 2-byte-length-framed
 * message, pipelined, at most LIMIT_DNS_TCP_CONNS connections, each
 * closed after TIMEOUT_DNS_TCP_IDLE_MS without a query.
 *
 * Without dns.listen the addresses are the node's tailnet addresses from
 * tailscaled's status (port 53), read once the loop runs and on every
 * reload, again with back-off while tailscaled is away or the addresses
 * cannot be bound yet. */
#ifndef PORTICO_DNSSERVER_H
#define PORTICO_DNSSERVER_H

#include <stddef.h>

struct config;
struct loop;
struct dnsserver;

/* NULL when out of memory. Its counters are in every /metrics scrape. */
struct dnsserver *dnsserver_new(struct loop *l);

/* Answer as c says (off when c has no dns section): the zone from c's
 * services, the sockets for dns.listen opened (kept when the address is
 * unchanged) or closed. Returns 0, or -1 with a sentence in err when an
 * address of dns.listen cannot be bound; the responder is then unchanged.
 * Holds a reference to c until the next call. */
int dnsserver_apply(struct dnsserver *d, struct config *c, char *err, size_t errlen);

/* One "listening" log line (listener=dns) per address answered on. */
void dnsserver_log_listeners(const struct dnsserver *d);

/* At exit: close every socket and connection (NULL is fine). */
void dnsserver_free(struct dnsserver *d);

#endif
