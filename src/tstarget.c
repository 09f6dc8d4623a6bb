/* tstarget.c - portico's services as Tailscale Services, each with the
 * local address tailscaled forwards to (rules in tstarget.h). */
#include "tstarget.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "limits.h"
#include "route.h"
#include "strbuf.h"
#include "tsjson.h"

#define TARGET_BYTES 192 /* "[IPv6]:PORT", or a reason naming an address (128) */

/* Where tailscaled reaches listen address a on this machine: "IP:PORT" in
 * buf. false (and why in buf) when it cannot. A Unix socket is refused:
 * a Service's tailnet port is the port portico listens on, and tailscaled
 * sends no PROXY header to a Unix socket. */
static bool loopback_target(const struct config_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->sa.ss_family == AF_UNIX) {
        snprintf(buf, cap, "%s is a Unix socket", a->text);
        return false;
    }
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        uint32_t addr = ntohl(in->sin_addr.s_addr);
        if (addr != INADDR_ANY && (addr >> 24) != 127) {
            snprintf(buf, cap, "%s is not a loopback or wildcard address", a->text);
            return false;
        }
        if (in->sin_port == 0) {
            snprintf(buf, cap, "%s has port 0, chosen at start", a->text);
            return false;
        }
        struct in_addr target = {addr == INADDR_ANY ? htonl(INADDR_LOOPBACK) : in->sin_addr.s_addr};
        inet_ntop(AF_INET, &target, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
        return true;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
        if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) && !IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
            snprintf(buf, cap, "%s is not a loopback or wildcard address", a->text);
            return false;
        }
        if (in6->sin6_port == 0) {
            snprintf(buf, cap, "%s has port 0, chosen at start", a->text);
            return false;
        }
        snprintf(buf, cap, "[::1]:%u", (unsigned)ntohs(in6->sin6_port));
        return true;
    }
    snprintf(buf, cap, "%s is not an address tailscaled can connect to", a->text);
    return false;
}

static bool proxy_capable(const struct tstarget_node *node)
{
    return node->version_known &&
           tsjson_version_at_least(node->major, node->minor, TSJSON_PROXY_PROTOCOL_MAJOR,
                                   TSJSON_PROXY_PROTOCOL_MINOR);
}

/* Whether tailscaled can feed a listener that expects (or not) a PROXY
 * header at target: a refusal in err, or a warning. */
static int check_proxy(const struct config_service *svc, const char *what, const char *addr,
                       bool expects, const struct tstarget_node *node, struct strbuf *warn,
                       char *err, size_t errlen)
{
    if (expects && node->version_known && !proxy_capable(node))
        return tsjson_errorf(err, errlen,
                             "service %s: %s %s expects a PROXY header, which tailscaled %d.%d "
                             "does not send for Services (%d.%d does); every connection would be "
                             "closed: upgrade tailscaled, or drop proxy_protocol there (portico "
                             "then cannot tell who connects)",
                             svc->name, what, addr, node->major, node->minor,
                             TSJSON_PROXY_PROTOCOL_MAJOR, TSJSON_PROXY_PROTOCOL_MINOR);
    if (!expects && node->version_known)
        strbuf_printf(warn,
                      "service %s: %s %s does not expect a PROXY header, so the callers of svc:%s "
                      "are unknown to portico (tailscaled connects from this machine)%s\n",
                      svc->name, what, addr, svc->name,
                      proxy_capable(node)
                          ? "; set proxy_protocol: true there and tailscaled sends one"
                          : "; tailscaled 1.94 and later can send one");
    return 0;
}

/* The TLS listener tailscaled forwards a passthrough service to: the first
 * reached on loopback whose proxy_protocol matches what tailscaled sends
 * there, else the first reached on loopback. NULL (why in why) when none
 * is. */
static const struct config_listen *pick_tls_listener(const struct config *c,
                                                     const struct tstarget_node *node, char *target,
                                                     size_t cap, char *why, size_t whycap)
{
    char buf[TARGET_BYTES];
    why[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c->nlistens; i++) {
            const struct config_listen *l = &c->listens[i];
            if (!l->tls)
                continue;
            if (!loopback_target(&l->addr, buf, sizeof buf)) {
                if (!why[0])
                    snprintf(why, whycap, " (the TLS listener %s)", buf);
                continue;
            }
            if (pass == 1 || l->proxy_protocol == proxy_capable(node)) {
                snprintf(target, cap, "%s", buf);
                return l;
            }
        }
    }
    return NULL;
}

static int add_passthrough(const struct config *c, const struct config_service *svc,
                           const struct tstarget_node *node, struct servecfg_service *out,
                           char *target, struct strbuf *warn, char *err, size_t errlen)
{
    char why[TARGET_BYTES + 32];
    const struct config_listen *l =
        pick_tls_listener(c, node, target, TARGET_BYTES, why, sizeof why);
    if (!l)
        return tsjson_errorf(err, errlen,
                             "service %s passes TLS through, and tailscaled would have to reach "
                             "one of portico's TLS listeners on this machine, but none listens "
                             "on a loopback or wildcard address with a fixed port%s: add one "
                             "(e.g. addr: 127.0.0.1:8443, tls: true, proxy_protocol: true)",
                             svc->name, why);
    if (node->suffix) {
        char name[LIMIT_SERVICE_NAME + 260];
        int len = snprintf(name, sizeof name, "%s.%s", svc->name, node->suffix);
        if (len < 0 || (size_t)len >= sizeof name ||
            route_table_lookup(c->routes, name, (size_t)len) != svc)
            return tsjson_errorf(err, errlen,
                                 "service %s: tailnet clients ask for %s, which is not among its "
                                 "hosts, so portico's TLS listener would not pass it through: "
                                 "add %s to services.%s.hosts",
                                 svc->name, name, name, svc->name);
    }
    if (check_proxy(svc, "the TLS listener", l->addr.text, l->proxy_protocol, node, warn, err,
                    errlen) < 0)
        return -1;
    *out =
        (struct servecfg_service){svc->name, SERVECFG_PASSTHROUGH, 443, target, l->proxy_protocol};
    return 0;
}

static int add_tcp(const struct config_service *svc, const struct tstarget_node *node,
                   struct servecfg_service *out, char *target, struct strbuf *warn, char *err,
                   size_t errlen)
{
    const struct config_addr *a = &svc->tcp->listen;
    if (!loopback_target(a, target, TARGET_BYTES))
        return tsjson_errorf(err, errlen,
                             "service %s: tailscaled forwards its tailnet port to tcp.listen on "
                             "this machine, and %s; listen on 127.0.0.1, 0.0.0.0 or [::] with a "
                             "fixed port",
                             svc->name, target);
    uint16_t port = a->sa.ss_family == AF_INET
                        ? ntohs(((const struct sockaddr_in *)&a->sa)->sin_port)
                        : ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    if (check_proxy(svc, "tcp.listen", a->text, svc->tcp->proxy_protocol, node, warn, err, errlen) <
        0)
        return -1;
    *out =
        (struct servecfg_service){svc->name, SERVECFG_TCP, port, target, svc->tcp->proxy_protocol};
    return 0;
}

/* tailscale.funnel for this node: out->funnel, or an error. */
static int add_funnel(const struct config *c, const struct tstarget_node *node,
                      struct tstarget *out, struct strbuf *warn, char *err, size_t errlen)
{
    const struct config_tailscale *ts = &c->tailscale;
    const struct config_funnel *f = &ts->funnel;
    const char *name = f->service->name, *host = node->dns_name;
    /* The backend listener routes X-Forwarded-Host by the host table, then
     * by its first label as a service name (route_resolve). */
    const char *dot = strchr(host, '.');
    const struct config_service *hit = route_table_lookup(c->routes, host, strlen(host));
    if (!hit && dot && c->tailnet_names)
        hit = route_table_lookup(c->tailnet_names, host, (size_t)(dot - host));
    if (hit != f->service)
        return tsjson_errorf(err, errlen,
                             "tailscale.funnel: tailscaled forwards Funnel requests with "
                             "X-Forwarded-Host: %.200s, which portico routes %s%s, not to service "
                             "%s: add %.200s to services.%s.hosts",
                             host, hit ? "to service " : "nowhere", hit ? hit->name : "", name,
                             host, name);
    size_t each = strlen(ts->backend) + LIMIT_TS_STRING_BYTES / 2 + 1;
    out->funnel_paths = calloc(f->npaths, sizeof *out->funnel_paths);
    out->funnel_targets = calloc(f->npaths, sizeof *out->funnel_targets);
    out->funnel_text = calloc(f->npaths, each);
    if (!out->funnel_paths || !out->funnel_targets || !out->funnel_text)
        return tsjson_errorf(err, errlen, "out of memory");
    for (size_t i = 0; i < f->npaths; i++) {
        const char *path = f->paths[i];
        size_t len = strlen(path);
        char *t = out->funnel_text + i * each;
        /* "/p/" is proxied to BACKEND/p: tailscaled strips "/p" and the
         * proxy's own path puts it back (SetURL joins them). */
        snprintf(t, each, "%s%.*s", ts->backend,
                 strcmp(path, "/") == 0 ? 0 : (int)(len - (path[len - 1] == '/')), path);
        out->funnel_paths[i] = path;
        out->funnel_targets[i] = t;
    }
    out->funnel_data =
        (struct servecfg_funnel){host, f->port, out->funnel_paths, out->funnel_targets, f->npaths};
    out->funnel = &out->funnel_data;
    /* tailscaled's LocalAPI takes AllowFunnel without it (only the CLI
     * checks, CheckFunnelAccess in ipn/serve.go), and then nothing from
     * the internet reaches the node. */
    if (!node->funnel_attr)
        strbuf_printf(warn,
                      "tailscale.funnel: this node lacks the \"funnel\" node attribute, so "
                      "tailscaled publishes %s:%u but the internet cannot reach it; add "
                      "{\"target\": [\"%s\"], \"attr\": [\"funnel\"]} to nodeAttrs in the "
                      "tailnet policy\n",
                      host, (unsigned)f->port, ts->host_tags[0]);
    return 0;
}

int tstarget_collect(const struct config *c, const struct tstarget_node *node, struct tstarget *out,
                     char *err, size_t errlen)
{
    const struct config_tailscale *ts = &c->tailscale;
    struct strbuf warn = {0};
    memset(out, 0, sizeof *out);
    size_t n = c->nservices ? c->nservices : 1;
    out->svcs = calloc(n, sizeof *out->svcs);
    out->text = calloc(n, TARGET_BYTES);
    strbuf_printf(&warn, "%s", "");
    if (!out->svcs || !out->text || warn.oom) {
        free(warn.s);
        return tsjson_errorf(err, errlen, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; ts->services && rc == 0 && i < c->nservices; i++) {
        const struct config_service *svc = &c->services[i];
        struct servecfg_service *s = &out->svcs[out->n];
        char *target = out->text + i * TARGET_BYTES;
        if (svc->upstream)
            *s = (struct servecfg_service){svc->name, SERVECFG_HTTP, 443, ts->backend, false};
        else if (svc->passthrough)
            rc = add_passthrough(c, svc, node, s, target, &warn, err, errlen);
        else if (svc->tcp)
            rc = add_tcp(svc, node, s, target, &warn, err, errlen);
        else
            continue;
        if (rc == 0)
            out->n++;
    }
    if (rc == 0 && ts->funnel.enabled && node->dns_name)
        rc = add_funnel(c, node, out, &warn, err, errlen);
    if (warn.oom) {
        free(warn.s);
        return tsjson_errorf(err, errlen, "out of memory");
    }
    out->warnings = warn.s;
    return rc;
}

void tstarget_free(struct tstarget *t)
{
    free(t->svcs);
    free(t->text);
    free(t->warnings);
    free(t->funnel_paths);
    free(t->funnel_targets);
    free(t->funnel_text);
    memset(t, 0, sizeof *t);
}
