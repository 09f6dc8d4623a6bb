/* config_routes.c - the parts of a service beside its upstream: routes, extra
 * request headers, the Host sent upstream and a TCP forwarder. */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "limits.h"
#include "route.h"

/* A route prefix as requests will be compared with it: normalised like a
 * request path, so "/api//" cannot silently never match. */
static int parse_prefix(struct parser *p, const yaml_node_t *n, const char *what, char **out)
{
    const char *s;
    char norm[1024];
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (s[0] != '/')
        return cfg_fail(p, n, "%s: prefix \"%s\" must start with '/'", what, cfg_show(p, s));
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '?' || *q == '#')
            return cfg_fail(p, n, "%s: prefix \"%s\" may not contain spaces, '?', '#' or non-ASCII",
                            what, cfg_show(p, s));
    if (route_path_normalize(s, strlen(s), norm, sizeof norm) < 0)
        return cfg_fail(p, n, "%s: invalid prefix \"%s\"", what, cfg_show(p, s));
    if (strcmp(norm, "/") == 0)
        return cfg_fail(p, n,
                        "%s: prefix \"/\" is the whole service; set the service's upstream instead",
                        what);
    *out = cfg_strdup(p, norm);
    if (!*out)
        return cfg_fail_oom(p);
    return 0;
}

static int read_prefix(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                       void *target)
{
    struct config_route *r = target;
    if (parse_prefix(p, n, what, &r->prefix) < 0)
        return -1;
    r->prefix_len = strlen(r->prefix);
    return 0;
}

static int read_route_upstream(struct parser *p, const yaml_node_t *n, const char *what,
                               void *field, void *target)
{
    struct config_route *r = target;
    return cfg_parse_upstream(p, n, what, &r->upstream, &r->authority);
}

/* Messages name the list ("services.NAME.routes"), as they always have. */
static const struct cfg_key route_keys[] = {
    {"prefix", CFG_FUNC, .bare = true, .fn = read_prefix},
    {"upstream", CFG_FUNC, .bare = true, .fn = read_route_upstream},
    {"strip_prefix", CFG_BOOL, CFG_AT(struct config_route, strip_prefix), .bare = true},
};

int cfg_read_routes(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                    void *target)
{
    struct config_service *svc = target;
    char where[128];
    snprintf(where, sizeof where, "in a route of service \"%s\"", svc->name);
    if (cfg_want_sequence(p, n, what) < 0)
        return -1;
    svc->routes = cfg_calloc(p, cfg_seq_len(n), sizeof *svc->routes);
    if (!svc->routes)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        struct cfg_seen seen;
        if (cfg_keys_collect(p, item, route_keys, CFG_NKEYS(route_keys), what, where, &seen) < 0)
            return -1;
        const yaml_node_t *prefix = cfg_seen_node(&seen, "prefix");
        if (!prefix)
            return cfg_fail(p, item, "%s: route has no prefix", what);
        if (!cfg_seen_node(&seen, "upstream"))
            return cfg_fail(p, item, "%s: route has no upstream", what);
        struct config_route *r = &svc->routes[svc->nroutes++];
        r->line = (int)item->start_mark.line + 1;
        if (cfg_keys_apply(p, &seen, r, what) < 0)
            return -1;
        for (size_t i = 0; i + 1 < svc->nroutes; i++)
            if (strcmp(svc->routes[i].prefix, r->prefix) == 0)
                return cfg_fail(p, prefix, "%s: prefix \"%s\" is listed twice", what,
                                cfg_show(p, r->prefix));
    }
    /* Longest prefix first, equal lengths in file order (insertion sort is stable). */
    for (size_t i = 1; i < svc->nroutes; i++) {
        struct config_route r = svc->routes[i];
        size_t j = i;
        for (; j > 0 && svc->routes[j - 1].prefix_len < r.prefix_len; j--)
            svc->routes[j] = svc->routes[j - 1];
        svc->routes[j] = r;
    }
    return 0;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Headers portico owns: hop-by-hop ones, and those that frame or route the
 * message. Setting them from the configuration would break the exchange. */
static const char *const reserved_headers[] = {
    "connection", "keep-alive",     "proxy-connection",   "te",
    "trailer",    "upgrade",        "proxy-authenticate", "proxy-authorization",
    "host",       "content-length", "transfer-encoding",
};

/* "host_header: upstream" (the upstream's host[:port] as written) or a
 * host[:port] to send in place of the client's Host. */
int cfg_read_host_header(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                         void *target)
{
    struct config_service *svc = target;
    const char *v;
    char norm[LIMIT_HOST_LEN + 8];
    if (cfg_want_string(p, n, what, &v) < 0)
        return -1;
    if (strcmp(v, "upstream") == 0) {
        svc->host_header_upstream = true;
        return 0;
    }
    size_t len = strlen(v);
    bool ok = len > 0 && len <= LIMIT_HOST_LEN && !strpbrk(v, "/@\\?#,\"<>") &&
              route_host_normalize(v, len, norm, sizeof norm) > 0;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)v[i] > 0x20 && (unsigned char)v[i] < 0x7f;
    if (!ok)
        return cfg_fail(p, n,
                        "%s: \"%s\" is neither \"upstream\" nor a host name with an optional port "
                        "(e.g. localhost:8888)",
                        what, cfg_show(p, v));
    svc->host_header = cfg_strdup(p, v);
    return svc->host_header ? 0 : cfg_fail_oom(p);
}

int cfg_read_headers(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                     void *target)
{
    struct config_service *svc = target;
    if (cfg_want_mapping(p, n, what, true) < 0)
        return -1;
    svc->headers = cfg_calloc(p, cfg_map_len(n) ? cfg_map_len(n) : 1, sizeof *svc->headers);
    if (!svc->headers)
        return cfg_fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *k = cfg_node(p, pair->key), *v = cfg_node(p, pair->value);
        const char *name = cfg_scalar(k), *value;
        size_t nlen = k->data.scalar.length;
        bool ok = nlen > 0 && strlen(name) == nlen;
        for (size_t i = 0; ok && i < nlen; i++)
            ok = is_tchar((unsigned char)name[i]);
        if (!ok)
            return cfg_fail(p, k, "%s: \"%s\" is not a valid header name", what, cfg_show(p, name));
        for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++)
            if (strcasecmp(name, reserved_headers[i]) == 0)
                return cfg_fail(p, k, "%s: header \"%s\" cannot be set (portico manages it)", what,
                                cfg_show(p, name));
        if (cfg_want_string(p, v, what, &value) < 0)
            return -1;
        for (const char *q = value; *q; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return cfg_fail(p, v, "%s: value of \"%s\" contains a control character", what,
                                cfg_show(p, name));
        struct config_header *h = &svc->headers[svc->nheaders];
        h->name = cfg_strdup(p, name);
        h->value = cfg_strdup(p, value);
        svc->nheaders++;
        if (!h->name || !h->value)
            return cfg_fail_oom(p);
    }
    return 0;
}

static const struct cfg_key tcp_keys[] = {
    {"listen", CFG_FUNC, CFG_AT(struct config_tcp, listen), .fn = cfg_fn_listen_addr},
    {"upstream", CFG_FUNC, CFG_AT(struct config_tcp, upstream), .fn = cfg_fn_target},
    {"proxy_protocol", CFG_BOOL, CFG_AT(struct config_tcp, proxy_protocol)},
};

/* "tcp: {listen: ADDR, upstream: ADDR, proxy_protocol: BOOL}". The listen address must not be
 * used by any other listener of the configuration. */
int cfg_read_tcp(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                 void *target)
{
    struct config_service *svc = target;
    struct config *c = p->c;
    char where[LIMIT_SERVICE_NAME + 160];
    struct cfg_seen seen;
    snprintf(where, sizeof where, "in %s", what);
    if (cfg_keys_collect(p, n, tcp_keys, CFG_NKEYS(tcp_keys), what, where, &seen) < 0)
        return -1;
    const yaml_node_t *listen = cfg_seen_node(&seen, "listen");
    if (!listen)
        return cfg_fail(p, n, "%s: no listen address", what);
    if (!cfg_seen_node(&seen, "upstream"))
        return cfg_fail(p, n, "%s: no upstream address", what);
    struct config_tcp *t = svc->tcp = cfg_calloc(p, 1, sizeof *svc->tcp);
    if (!t)
        return cfg_fail_oom(p);
    t->line = (int)n->start_mark.line + 1;
    if (cfg_keys_apply(p, &seen, t, what) < 0)
        return -1;
    for (size_t i = 0; i < c->nlistens; i++)
        if (cfg_addr_clash(&c->listens[i].addr, &t->listen))
            return cfg_fail(p, listen, "%s.listen: \"%s\" is also a listen address (line %d)", what,
                            cfg_show(p, t->listen.text), c->listens[i].line);
    if (c->metrics_enabled && cfg_addr_clash(&c->metrics_listen, &t->listen))
        return cfg_fail(p, listen, "%s.listen: \"%s\" is also the metrics address", what,
                        cfg_show(p, t->listen.text));
    for (size_t i = 0; i < c->ntcp; i++)
        if (cfg_addr_clash(&c->tcp_services[i]->tcp->listen, &t->listen))
            return cfg_fail(p, listen, "%s.listen: \"%s\" is already used by service \"%s\"", what,
                            cfg_show(p, t->listen.text), c->tcp_services[i]->name);
    c->tcp_services[c->ntcp++] = svc;
    return 0;
}
