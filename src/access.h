/* access.h - a service's `allow` list: who on the tailnet may use it.
 *
 * Not wired into configuration or the request path yet (a later change adds
 * services.NAME.allow and answers 403 outside it); the entries, their
 * checks and the matcher are here so that change only has to call them.
 *
 * Entries, as a user writes them:
 *   alice@example.com   one login. The domain is compared without regard to
 *                       case (DNS names are case-insensitive); the part
 *                       before '@' exactly, because Tailscale itself does
 *                       (tailssh compares LoginName with ==) and keeps
 *                       logins that differ only in case as different users
 *                       (tailscale/tailscale#3662).
 *   *@example.com       every login in that domain.
 *   tag:monitoring      a tagged node carrying that tag (compared exactly,
 *                       named as Tailscale's tailcfg.CheckTag allows).
 *   local               a caller on portico's local listener (hairpin).
 *
 * Matching (access_list_allows): a Funnel caller and a caller without an
 * identity match nothing but `local` when they came in locally; a tagged
 * node matches only tag: entries (its profile is "tagged-devices", never a
 * person); a user matches only login and *@domain entries, and only when
 * the login has exactly one '@' (so "a@evil.example@example.com" is in no
 * domain). */
#ifndef PORTICO_ACCESS_H
#define PORTICO_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "identity.h"

enum access_kind {
    ACCESS_LOGIN,  /* value: "local@domain", domain lower-cased */
    ACCESS_DOMAIN, /* value: "domain", lower-cased */
    ACCESS_TAG,    /* value: "tag:NAME" */
    ACCESS_LOCAL,  /* value: "local" */
};

struct access_rule {
    enum access_kind kind;
    char *value; /* owned */
};

struct access_list {
    struct access_rule *entries; /* owned */
    size_t n;
};

/* Check one entry as written. 0, or -1 with a sentence in err naming the
 * entry (configuration adds FILE:LINE in front). */
int access_entry_check(const char *entry, char *err, size_t errlen);

/* Check an entry and append it. 0, or -1 with err set (a bad entry, more
 * than LIMIT_ACCESS_ENTRIES, or out of memory). */
int access_list_add(struct access_list *l, const char *entry, char *err, size_t errlen);

void access_list_free(struct access_list *l);

/* True if the caller matches an entry of the list (an empty list matches
 * nobody: "no allow list" is the caller's decision, not this one). */
bool access_list_allows(const struct access_list *l, const struct identity *id);

/* Is sa a Tailscale address (100.64.0.0/10, fd7a:115c:a1e0::/48, either
 * also IPv4-mapped)? Only such a caller can have a tailnet identity: a
 * TCP or passthrough connection from anywhere else is refused by an allow
 * list without asking whois. */
struct sockaddr_storage;
bool access_tailnet_address(const struct sockaddr_storage *sa);

/* A worker's sockets for asking the kernel which addresses are this
 * host's: one unbound datagram socket per family (-1: none yet). A bind
 * to an address that is not the host's fails and leaves the socket as it
 * was, so the usual answer (a tailnet peer) costs one bind, not
 * socket+bind+close; a bind that succeeds uses its socket up. */
struct access_probe {
    int fd[2]; /* IPv4, IPv6 */
};
void access_probe_init(struct access_probe *p);
void access_probe_close(struct access_probe *p);

/* Is sa one of this host's own addresses (an IPv4-mapped one as IPv4)?
 * Asked of the kernel at this moment, so an address added a moment ago
 * counts: a bind to it succeeds only then. Any other failure (no
 * descriptor left, an odd family) answers true, which makes a caller
 * anonymous rather than someone else. */
bool access_address_is_own(struct access_probe *p, const struct sockaddr_storage *sa);

/* May the client at peer have a tailnet identity, so that whois is asked
 * for it? Only at a tailnet address (access_tailnet_address). When the
 * address is the socket's own peer (from_proxy_header false), also not
 * one of this host's addresses: a process here can connect from the
 * node's own tailnet address, and whois would name the node (its owner,
 * for an untagged node), which no local user is. A PROXY header's source
 * is taken as it is: only listeners configured to expect one read it, so
 * whoever sends it is trusted to say who its client was. */
bool access_peer_tailnet(struct access_probe *p, const struct sockaddr_storage *peer,
                         bool from_proxy_header);

#endif
