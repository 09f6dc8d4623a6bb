/* tstarget.h - which of portico's services are published on the tailnet,
 * and where tailscaled must send each one's connections.
 *
 *   http (an upstream):  svc:NAME, HTTPS 443, proxied to tailscale.backend;
 *   tcp:                 svc:NAME, TCP on tcp.listen's port, forwarded to
 *                        that listener, reached on loopback;
 *   passthrough:         svc:NAME, TCP 443, forwarded to one of portico's
 *                        TLS listeners reached on loopback, which passes
 *                        the name on by SNI like any other.
 *
 * A listener is reached on loopback when it listens on a loopback address
 * (127.0.0.0/8, ::1) or a wildcard address (0.0.0.0 is reached at
 * 127.0.0.1, :: at ::1); another address, a Unix socket (tailscaled sends
 * it no PROXY header, and a TCP forwarder's tailnet port is the port it
 * listens on) or port 0 (chosen at start) cannot be published.
 *
 * PROXY protocol: tailscaled sends a PROXY v2 header to a Service's TCP
 * backend from 1.94 on (1.92 stores the setting and ignores it). The
 * header is what tells portico who the caller is, since the connection
 * itself comes from 127.0.0.1. A listener with proxy_protocol: true
 * closes every connection that does not start with one, so ProxyProtocol
 * is written exactly when the listener expects it, and:
 *   - the listener expects it and tailscaled is older than 1.94: refused,
 *     every connection would be closed;
 *   - the listener does not expect it: published without, and a warning
 *     says the callers of that service are unknown to portico.
 * Among several TLS listeners, one whose proxy_protocol matches what
 * tailscaled can send is preferred, then the first in file order.
 *
 * Funnel (tailscale.funnel): the node's own name on the port configured,
 * one handler per path, each proxied to tailscale.backend with the path
 * put back (tailscaled strips it, see config_tailscale.c). tailscaled
 * forwards those requests with X-Forwarded-Host: the node's name, so the
 * service must have that name among its hosts: refused otherwise.
 *
 * Pure: no I/O. */
#ifndef PORTICO_TSTARGET_H
#define PORTICO_TSTARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "servecfg.h"

struct config;

struct tstarget_node {
    /* MagicDNSSuffix, or NULL when not known (policy): the check that a
     * passthrough service's hosts include NAME.<suffix> is then left out. */
    const char *suffix;
    /* tailscaled's version; known false: PROXY checks are left out. */
    bool version_known;
    int major, minor;
    /* Self.DNSName without its trailing dot, or NULL when not known: then
     * nothing is published on Funnel. */
    const char *dns_name;
    bool funnel_attr; /* Self.CapMap has "funnel"; a warning when Funnel is wanted without */
};

struct tstarget {
    struct servecfg_service *svcs; /* what portico publishes, in file order */
    size_t n;
    char *text; /* "IP:PORT" of tcp and passthrough services, owned (svcs point into it) */
    /* One line per warning, each ending in '\n'; "" when none. */
    char *warnings;
    /* tailscale.funnel on this node (node->dns_name known), else NULL;
     * points into this struct. */
    const struct servecfg_funnel *funnel;
    struct servecfg_funnel funnel_data;
    const char **funnel_paths, **funnel_targets;
    char *funnel_text;
};

/* The services c publishes on node (none when tailscale.services is
 * false, so that apply removes what it published before). Returns 0 with
 * *out filled (free it with tstarget_free, also after an error), or -1 with
 * a message in err naming the service and what to change. */
int tstarget_collect(const struct config *c, const struct tstarget_node *node, struct tstarget *out,
                     char *err, size_t errlen);
void tstarget_free(struct tstarget *t);

#endif
