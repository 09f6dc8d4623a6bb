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
    *out = strdup(norm);
    if (!*out)
        return cfg_fail_oom(p);
    return 0;
}

int cfg_parse_routes(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                     const char *what)
{
    static const char *const names[] = {"prefix", "upstream", "strip_prefix"};
    char where[128];
    snprintf(where, sizeof where, "in a route of service \"%s\"", svc->name);
    if (cfg_want_sequence(p, n, what) < 0)
        return -1;
    svc->routes = calloc(cfg_seq_len(n) ? cfg_seq_len(n) : 1, sizeof *svc->routes);
    if (!svc->routes)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        yaml_node_t *vals[3] = {0};
        if (cfg_want_mapping(p, item, what, false) < 0 ||
            cfg_map_collect(p, item, names, 3, vals, where) < 0)
            return -1;
        if (!vals[0])
            return cfg_fail(p, item, "%s: route has no prefix", what);
        if (!vals[1])
            return cfg_fail(p, item, "%s: route has no upstream", what);
        struct config_route *r = &svc->routes[svc->nroutes];
        if (parse_prefix(p, vals[0], what, &r->prefix) < 0)
            return -1;
        r->prefix_len = strlen(r->prefix);
        r->line = (int)item->start_mark.line + 1;
        svc->nroutes++;
        for (size_t i = 0; i + 1 < svc->nroutes; i++)
            if (strcmp(svc->routes[i].prefix, r->prefix) == 0)
                return cfg_fail(p, vals[0], "%s: prefix \"%s\" is listed twice", what,
                                cfg_show(p, r->prefix));
        if (cfg_parse_upstream(p, vals[1], what, &r->upstream, &r->authority) < 0)
            return -1;
        if (vals[2] && cfg_want_bool(p, vals[2], what, &r->strip_prefix) < 0)
            return -1;
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
int cfg_parse_host_header(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                          const char *what)
{
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
    svc->host_header = strdup(v);
    return svc->host_header ? 0 : cfg_fail_oom(p);
}

int cfg_parse_headers(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                      const char *what)
{
    if (cfg_want_mapping(p, n, what, true) < 0)
        return -1;
    svc->headers = calloc(cfg_map_len(n) ? cfg_map_len(n) : 1, sizeof *svc->headers);
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
        h->name = strdup(name);
        h->value = strdup(value);
        svc->nheaders++;
        if (!h->name || !h->value)
            return cfg_fail_oom(p);
    }
    return 0;
}

/* "tcp: {listen: ADDR, upstream: ADDR}". The listen address must not be
 * used by any other listener of the configuration. */
int cfg_parse_tcp(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                  const char *what)
{
    static const char *const names[] = {"listen", "upstream"};
    struct config *c = p->c;
    yaml_node_t *vals[2] = {0};
    char sub[LIMIT_SERVICE_NAME + 160], where[LIMIT_SERVICE_NAME + 160];
    snprintf(where, sizeof where, "in %s", what);
    if (cfg_want_mapping(p, n, what, false) < 0 || cfg_map_collect(p, n, names, 2, vals, where) < 0)
        return -1;
    if (!vals[0])
        return cfg_fail(p, n, "%s: no listen address", what);
    if (!vals[1])
        return cfg_fail(p, n, "%s: no upstream address", what);
    svc->tcp = calloc(1, sizeof *svc->tcp);
    if (!svc->tcp)
        return cfg_fail_oom(p);
    struct config_tcp *t = svc->tcp;
    t->line = (int)n->start_mark.line + 1;
    snprintf(sub, sizeof sub, "%s.listen", what);
    if (cfg_read_addr(p, vals[0], sub, &t->listen, true) < 0)
        return -1;
    snprintf(sub, sizeof sub, "%s.upstream", what);
    if (cfg_read_target(p, vals[1], sub, &t->upstream) < 0)
        return -1;
    for (size_t i = 0; i < c->nlistens; i++)
        if (cfg_addr_clash(&c->listens[i].addr, &t->listen))
            return cfg_fail(p, vals[0], "%s.listen: \"%s\" is also a listen address (line %d)",
                            what, cfg_show(p, t->listen.text), c->listens[i].line);
    if (c->metrics_enabled && cfg_addr_clash(&c->metrics_listen, &t->listen))
        return cfg_fail(p, vals[0], "%s.listen: \"%s\" is also the metrics address", what,
                        cfg_show(p, t->listen.text));
    for (size_t i = 0; i < c->ntcp; i++)
        if (cfg_addr_clash(&c->tcp_services[i]->tcp->listen, &t->listen))
            return cfg_fail(p, vals[0], "%s.listen: \"%s\" is already used by service \"%s\"", what,
                            cfg_show(p, t->listen.text), c->tcp_services[i]->name);
    c->tcp_services[c->ntcp++] = svc;
    return 0;
}
