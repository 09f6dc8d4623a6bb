/* config_upstream.c - upstream URLs and the endpoints services share. */
#include "config_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "tls.h"

/* ---- upstreams ----------------------------------------------------------------- */

/* The client context for the current service's https:// upstreams:
 * one per distinct (tls_ca, tls_insecure_skip_verify), loaded once. */
struct ssl_ctx_st *cfg_client_ctx(struct parser *p)
{
    struct config *c = p->c;
    const char *ca = p->svc_tls_insecure ? NULL : p->svc_tls_ca;
    for (size_t i = 0; i < c->ntls_clients; i++) {
        struct config_tls_client *tc = &c->tls_clients[i];
        if (tc->insecure == p->svc_tls_insecure &&
            (tc->ca == ca || (tc->ca && ca && strcmp(tc->ca, ca) == 0)))
            return tc->ctx;
    }
    if (c->ntls_clients == p->tls_clients_cap) {
        /* Doubling: the arrays left behind stay in the arena, a few entries in all. */
        size_t cap = p->tls_clients_cap ? p->tls_clients_cap * 2 : 4;
        struct config_tls_client *grown = cfg_calloc(p, cap, sizeof *grown);
        if (!grown) {
            cfg_fail_oom(p);
            return NULL;
        }
        if (c->ntls_clients)
            memcpy(grown, c->tls_clients, c->ntls_clients * sizeof *grown);
        c->tls_clients = grown;
        p->tls_clients_cap = cap;
    }
    struct config_tls_client *tc = &c->tls_clients[c->ntls_clients];
    char msg[600];
    tc->ctx = tls_client_ctx_new(ca, p->svc_tls_insecure, msg, sizeof msg);
    if (!tc->ctx) {
        cfg_fail(p, ca ? p->svc_tls_ca_node : NULL, "%s%s", ca ? "tls_ca: " : "", msg);
        return NULL;
    }
    tc->ca = ca ? cfg_strdup(p, ca) : NULL;
    tc->insecure = p->svc_tls_insecure;
    c->ntls_clients++;
    if (ca && !tc->ca) {
        cfg_fail_oom(p);
        return NULL;
    }
    return tc->ctx;
}

/* Read the upstream URL s (the value of node n). Paths are refused unless
 * with_path (an auth provider's URL has one; a service upstream does not). */
int cfg_read_upstream_url(struct parser *p, const yaml_node_t *n, const char *s, const char *what,
                          bool with_path, struct upstream_url *o)
{
    char msg[512];
    char *key = o->key, *tls_name = o->tls_name;
    struct config_addr addr;
    enum upstream_kind kind;
    tls_name[0] = '\0';
    o->authority[0] = '\0';
    o->path = "/";
    if (strncmp(s, "unix:", 5) == 0 && !with_path) {
        kind = UPSTREAM_UNIX;
        if (config_parse_addr(s, &addr, msg, sizeof msg) < 0)
            return cfg_fail(p, n, "%s: %s", what, msg);
        snprintf(key, sizeof o->key, "%s", s);
    } else if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        kind = s[4] == 's' ? UPSTREAM_HTTPS : UPSTREAM_HTTP;
        const char *scheme = kind == UPSTREAM_HTTPS ? "https" : "http";
        const char *auth = s + strlen(scheme) + 3;
        size_t alen = strcspn(auth, with_path ? "/?" : "/");
        if (with_path && auth[alen])
            o->path = auth + alen;
        else if (auth[alen] == '/' && auth[alen + 1] != '\0')
            return cfg_fail(p, n,
                            "%s: \"%s\" has a path; upstream paths are not supported; use routes "
                            "with strip_prefix",
                            what, cfg_show(p, s));
        char hostport[sizeof addr.text];
        const char *close = auth[0] == '[' ? memchr(auth, ']', alen) : NULL;
        const char *portsep = close ? close + 1 : memchr(auth, ':', alen);
        bool has_port = portsep && portsep < auth + alen && *portsep == ':';
        if (alen == 0 || alen + 4 >= sizeof hostport || strcspn(auth, "@?#") < alen ||
            (auth[0] == '[' && !close))
            return cfg_fail(p, n, "%s: invalid upstream \"%s\" " UPSTREAM_HELP, what,
                            cfg_show(p, s));
        snprintf(hostport, sizeof hostport, "%.*s%s", (int)alen, auth,
                 has_port                 ? ""
                 : kind == UPSTREAM_HTTPS ? ":443"
                                          : ":80");
        /* The name for SNI and certificate checks: the host as written. */
        size_t hlen = auth[0] == '[' ? (size_t)(close - auth - 1)
                      : has_port     ? (size_t)(portsep - auth)
                                     : alen;
        snprintf(tls_name, sizeof o->tls_name, "%.*s", (int)hlen, auth[0] == '[' ? auth + 1 : auth);
        snprintf(o->authority, sizeof o->authority, "%.*s", (int)alen, auth);
        if (strlen(s) >= sizeof addr.text)
            return cfg_fail(p, n, "%s: upstream \"%s\" is too long", what, cfg_show(p, s));
        if (config_parse_target(hostport, &addr, msg, sizeof msg) < 0)
            return cfg_fail(p, n, "%s: %s", what, msg);
        snprintf(addr.text, sizeof addr.text, "%.*s", (int)(auth + alen - s), s);
        char numhost[NI_MAXHOST], numport[NI_MAXSERV];
        if (addr.host[0]) { /* a name: the pool follows it, whatever it resolves to */
            snprintf(numhost, sizeof numhost, "%s", addr.host);
            snprintf(numport, sizeof numport, "%u", addr.port);
        } else if (getnameinfo((const struct sockaddr *)&addr.sa, addr.salen, numhost,
                               sizeof numhost, numport, sizeof numport,
                               NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            return cfg_fail(p, n, "%s: invalid upstream \"%s\" " UPSTREAM_HELP, what,
                            cfg_show(p, s));
        int kl = addr.sa.ss_family == AF_INET6
                     ? snprintf(key, sizeof o->key, "%s://[%s]:%s", scheme, numhost, numport)
                     : snprintf(key, sizeof o->key, "%s://%s:%s", scheme, numhost, numport);
        /* Services that verify differently must not share connections. */
        if (kind == UPSTREAM_HTTPS &&
            snprintf(key + kl, sizeof o->key - (size_t)kl, " name=%s%s%s", tls_name,
                     p->svc_tls_insecure ? " insecure"
                     : p->svc_tls_ca     ? " ca="
                                         : "",
                     !p->svc_tls_insecure && p->svc_tls_ca ? p->svc_tls_ca : "") >=
                (int)(sizeof o->key - (size_t)kl))
            return cfg_fail(p, n, "%s: upstream \"%s\" is too long", what, cfg_show(p, s));
    } else if (with_path) {
        return cfg_fail(p, n,
                        "%s: unsupported URL \"%s\" (use http://host:port/path or https://...)",
                        what, cfg_show(p, s));
    } else {
        return cfg_fail(p, n, "%s: unsupported upstream \"%s\" " UPSTREAM_HELP, what,
                        cfg_show(p, s));
    }
    o->kind = kind;
    o->addr = addr;
    cfg_set_owner(p, n, &o->addr);
    return 0;
}

/* Read an upstream URL into *out (shared with other services naming the
 * same endpoint) and, when authority is given, its host[:port] as written
 * (NULL for unix: upstreams), owned by the caller. */
int cfg_parse_upstream(struct parser *p, const yaml_node_t *n, const char *what,
                       const struct config_upstream **out, char **authority)
{
    struct config *c = p->c;
    const char *s;
    static __thread struct upstream_url url;
    if (cfg_want_string(p, n, what, &s) < 0 ||
        cfg_read_upstream_url(p, n, s, what, false, &url) < 0)
        return -1;
    const char *key = url.key, *tls_name = url.tls_name;
    enum upstream_kind kind = url.kind;
    if (authority && url.authority[0] && !(*authority = cfg_strdup(p, url.authority)))
        return cfg_fail_oom(p);
    if (c->nupstreams >= p->upstream_cap)
        return cfg_fail(p, n, "%s: too many upstreams", what); /* the count pass missed one */
    struct config_upstream *u = &c->upstreams[c->nupstreams];
    u->key = cfg_strdup(p, key);
    if (!u->key)
        return cfg_fail_oom(p);
    void *prev = NULL;
    int rc = route_table_add(p->upstream_keys, u->key, u, &prev);
    if (rc == -EEXIST) { /* the copy of the key stays in the arena, unused */
        u->key = NULL;
        *out = prev;
        return 0;
    }
    if (rc < 0) {
        u->key = NULL;
        return cfg_fail_oom(p);
    }
    u->kind = kind;
    u->addr = url.addr;
    u->idx = c->nupstreams++;
    if (kind == UPSTREAM_HTTPS) {
        p->svc_has_https = true;
        u->tls_name = cfg_strdup(p, tls_name);
        if (!u->tls_name)
            return cfg_fail_oom(p);
        if (!(u->tls_ctx = cfg_client_ctx(p)))
            return -1;
    }
    *out = u;
    return 0;
}
