/* config_service.c - the "services:" section. */
#include "config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "limits.h"
#include "route.h"

/* ---- services ------------------------------------------------------------------- */

bool cfg_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > LIMIT_SERVICE_NAME || strlen(s) != len || s[0] == '-' ||
        s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* Add a normalised host name owned by svc to the host table. */
static int add_host(struct parser *p, struct config_service *svc, char *host, const yaml_node_t *n,
                    const char *what)
{
    if (!route_host_valid(host)) {
        int rc = cfg_fail(p, n, "%s: \"%s\" is not a valid host name", what, cfg_show(p, host));
        free(host);
        return rc;
    }
    svc->hosts[svc->nhosts++] = host;
    void *prev = NULL;
    int rc = route_table_add(p->c->routes, host, svc, &prev);
    if (rc == -EEXIST) {
        const struct config_service *other = prev;
        if (other == svc)
            return cfg_fail(p, n, "host \"%s\" is listed twice in service \"%s\"",
                            cfg_show(p, host), cfg_show(p, svc->name));
        return cfg_fail(p, n, "host \"%s\" is already served by service \"%s\"", cfg_show(p, host),
                        cfg_show(p, other->name));
    }
    if (rc < 0)
        return cfg_fail_oom(p);
    return 0;
}

static int parse_hosts(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                       const char *what)
{
    if (cfg_want_sequence(p, n, what) < 0)
        return -1;
    size_t count = cfg_seq_len(n);
    if (count == 0)
        return cfg_fail(p, n, "%s: the list is empty (leave hosts out to serve %s.<domain>)", what,
                        cfg_show(p, svc->name));
    svc->hosts = calloc(count, sizeof *svc->hosts);
    if (!svc->hosts)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *h = cfg_node(p, *it);
        const char *s;
        if (cfg_want_string(p, h, what, &s) < 0)
            return -1;
        char *host = strdup(s);
        if (!host)
            return cfg_fail_oom(p);
        size_t len = strlen(host);
        for (size_t i = 0; i < len; i++)
            if (host[i] >= 'A' && host[i] <= 'Z')
                host[i] = (char)(host[i] + 32);
        if (len > 1 && host[len - 1] == '.')
            host[len - 1] = '\0';
        if (add_host(p, svc, host, h, what) < 0)
            return -1;
    }
    return 0;
}

/* "upgrade: [websocket, ...]": the protocols a 101 may switch to. Without
 * the key (n == NULL), WebSocket only. */
static int parse_upgrade(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                         const char *what)
{
    size_t cap = n ? cfg_seq_len(n) : 1;
    if (n && cfg_want_sequence(p, n, what) < 0)
        return -1;
    svc->upgrade = calloc(cap ? cap : 1, sizeof *svc->upgrade);
    if (!svc->upgrade)
        return cfg_fail_oom(p);
    if (!n) {
        if (!(svc->upgrade[0] = strdup("websocket")))
            return cfg_fail_oom(p);
        svc->nupgrade = 1;
        return 0;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        const char *v;
        if (cfg_want_string(p, item, what, &v) < 0)
            return -1;
        size_t len = strlen(v);
        bool token = len > 0 && len <= LIMIT_UPGRADE_NAME;
        for (size_t i = 0; token && i < len; i++)
            token = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
                    (v[i] >= '0' && v[i] <= '9') || strchr("!#$%&'*+-.^_`|~", v[i]);
        if (!token)
            return cfg_fail(p, item,
                            "%s: \"%s\" is not a protocol name (a token such as websocket, without "
                            "a /version)",
                            what, cfg_show(p, v));
        if (strcasecmp(v, "h2c") == 0 || strcasecmp(v, "h2") == 0 || strcasecmp(v, "http") == 0)
            return cfg_fail(p, item,
                            "%s: \"%s\" is never forwarded: after the switch the client's requests "
                            "would reach the upstream without forward auth or header rewriting",
                            what, cfg_show(p, v));
        for (size_t i = 0; i < svc->nupgrade; i++)
            if (strcasecmp(svc->upgrade[i], v) == 0)
                return cfg_fail(p, item, "%s: \"%s\" is listed twice", what, cfg_show(p, v));
        char *lower = strdup(v);
        if (!lower)
            return cfg_fail_oom(p);
        for (char *c = lower; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        svc->upgrade[svc->nupgrade++] = lower;
    }
    return 0;
}

/* "auth: NAME" and "auth_skip: [/prefix, ...]" on a service. */
static int parse_service_auth(struct parser *p, struct config_service *svc, const yaml_node_t *auth,
                              const yaml_node_t *skip)
{
    char what[LIMIT_SERVICE_NAME + 64];
    if (auth) {
        const char *name;
        snprintf(what, sizeof what, "services.%s.auth", svc->name);
        if (cfg_want_string(p, auth, what, &name) < 0)
            return -1;
        for (size_t i = 0; i < p->c->nauths && !svc->auth; i++)
            if (strcmp(p->c->auths[i].name, name) == 0)
                svc->auth = &p->c->auths[i];
        if (!svc->auth)
            return cfg_fail(p, auth, "%s: no auth provider named \"%s\" (define it under auth:)",
                            what, cfg_show(p, name));
    }
    if (!skip)
        return 0;
    snprintf(what, sizeof what, "services.%s.auth_skip", svc->name);
    if (!auth)
        return cfg_fail(p, skip, "%s applies to a service with auth", what);
    if (cfg_want_sequence(p, skip, what) < 0)
        return -1;
    svc->auth_skip = calloc(cfg_seq_len(skip) ? cfg_seq_len(skip) : 1, sizeof *svc->auth_skip);
    if (!svc->auth_skip)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = skip->data.sequence.items.start; it < skip->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        const char *prefix;
        char norm[LIMIT_REQUEST_LINE_DEFAULT];
        if (cfg_want_string(p, item, what, &prefix) < 0)
            return -1;
        int len = route_path_normalize(prefix, strlen(prefix), norm, sizeof norm);
        if (len < 0 || strcmp(norm, prefix) != 0)
            return cfg_fail(p, item,
                            "%s: \"%s\" is not a normalised path prefix (start with '/', no '.' or "
                            "'..' segments, no encoded unreserved characters)",
                            what, cfg_show(p, prefix));
        svc->auth_skip[svc->nauth_skip] = strdup(norm);
        if (!svc->auth_skip[svc->nauth_skip++])
            return cfg_fail_oom(p);
    }
    return 0;
}

static int parse_service(struct parser *p, struct config_service *svc, const yaml_node_t *k,
                         const yaml_node_t *v)
{
    static const char *const names[] = {"hosts",
                                        "upstream",
                                        "routes",
                                        "headers",
                                        "connect_timeout",
                                        "timeout",
                                        "tcp",
                                        "send_proxy_protocol",
                                        "passthrough",
                                        "tls_ca",
                                        "tls_insecure_skip_verify",
                                        "auth",
                                        "auth_skip",
                                        "auth_bypass_tailnet",
                                        "host_header",
                                        "rewrite_redirects",
                                        "idle_timeout",
                                        "upgrade"};
    enum {
        S_HOSTS,
        S_UPSTREAM,
        S_ROUTES,
        S_HEADERS,
        S_CONNECT,
        S_TIMEOUT,
        S_TCP,
        S_SENDPP,
        S_PASSTHROUGH,
        S_TLS_CA,
        S_INSECURE,
        S_AUTH,
        S_AUTH_SKIP,
        S_AUTH_BYPASS,
        S_HOST_HEADER,
        S_REWRITE_REDIRECTS,
        S_IDLE_TIMEOUT,
        S_UPGRADE,
        S_N
    };
    yaml_node_t *vals[S_N] = {0};
    char what[LIMIT_SERVICE_NAME + 64], where[LIMIT_SERVICE_NAME + 32];
    const char *name = cfg_scalar(k);

    svc->line = (int)k->start_mark.line + 1;
    svc->connect_timeout_ms = TIMEOUT_CONNECT_MS_DEFAULT;
    svc->timeout_ms = TIMEOUT_RESPONSE_MS_DEFAULT;
    svc->idle_timeout_ms = TIMEOUT_IDLE_MS_DEFAULT;
    svc->rewrite_redirects = true;
    if (!cfg_name_valid(name, k->data.scalar.length))
        return cfg_fail(p, k,
                        "invalid service name \"%s\" (use 1 to %d lower-case letters, digits and "
                        "'-', not at either end)",
                        cfg_show(p, name), LIMIT_SERVICE_NAME);
    svc->name = strdup(name);
    if (!svc->name)
        return cfg_fail_oom(p);
    p->owner_kind = "service";
    p->owner = svc->name;
    snprintf(what, sizeof what, "services.%s", name);
    snprintf(where, sizeof where, "in service \"%s\"", name);
    if (cfg_want_mapping(p, v, what, false) < 0 ||
        cfg_map_collect(p, v, names, S_N, vals, where) < 0)
        return -1;

    /* How https:// upstreams are verified is needed before they are read. */
    p->svc_tls_ca = NULL;
    p->svc_tls_ca_node = vals[S_TLS_CA];
    p->svc_tls_insecure = false;
    p->svc_has_https = false;
    snprintf(what, sizeof what, "services.%s.tls_ca", name);
    if (vals[S_TLS_CA] && cfg_want_string(p, vals[S_TLS_CA], what, &p->svc_tls_ca) < 0)
        return -1;
    snprintf(what, sizeof what, "services.%s.tls_insecure_skip_verify", name);
    if (vals[S_INSECURE] && cfg_want_bool(p, vals[S_INSECURE], what, &p->svc_tls_insecure) < 0)
        return -1;
    if (p->svc_tls_ca && p->svc_tls_insecure)
        return cfg_fail(
            p, vals[S_INSECURE],
            "services.%s: tls_ca and tls_insecure_skip_verify: true contradict each other", name);

    /* In file order, so that of two errors the first one is reported. */
    for (yaml_node_pair_t *pair = v->data.mapping.pairs.start; pair < v->data.mapping.pairs.top;
         pair++) {
        int i = cfg_key_index(cfg_node(p, pair->key), names, S_N);
        const yaml_node_t *val = vals[i];
        snprintf(what, sizeof what, "services.%s.%s", name, names[i]);
        int rc = 0;
        switch (i) {
        case S_HOSTS:
            rc = parse_hosts(p, svc, val, what);
            break;
        case S_UPSTREAM:
            rc = cfg_parse_upstream(p, val, what, &svc->upstream, &svc->authority);
            break;
        case S_ROUTES:
            rc = cfg_parse_routes(p, svc, val, what);
            break;
        case S_HEADERS:
            rc = cfg_parse_headers(p, svc, val, what);
            break;
        case S_CONNECT:
            rc = cfg_want_duration(p, val, what, &svc->connect_timeout_ms);
            break;
        case S_TIMEOUT:
            rc = cfg_want_duration_or_off(p, val, what, &svc->timeout_ms);
            break;
        case S_IDLE_TIMEOUT:
            rc = cfg_want_duration_or_off(p, val, what, &svc->idle_timeout_ms);
            break;
        case S_TCP:
            rc = cfg_parse_tcp(p, svc, val, what);
            break;
        case S_HOST_HEADER:
            rc = cfg_parse_host_header(p, svc, val, what);
            break;
        case S_REWRITE_REDIRECTS:
            rc = cfg_want_bool(p, val, what, &svc->rewrite_redirects);
            break;
        case S_UPGRADE:
            rc = parse_upgrade(p, svc, val, what);
            break;
        case S_TLS_CA:
        case S_INSECURE:
        case S_AUTH:
        case S_AUTH_SKIP:
            break; /* read above or below */
        case S_AUTH_BYPASS:
            return cfg_fail(p, val,
                            "%s: skipping auth for tailnet users needs tailnet identity (whois), "
                            "which this version of portico does not have",
                            what);
        case S_PASSTHROUGH:
            svc->passthrough = calloc(1, sizeof *svc->passthrough);
            if (!svc->passthrough)
                return cfg_fail_oom(p);
            rc = cfg_read_target(p, val, what, svc->passthrough);
            p->c->npassthrough++;
            break;
        case S_SENDPP: {
            const char *v1;
            if (cfg_want_string(p, val, what, &v1) < 0)
                return -1;
            if (strcmp(v1, "v1") == 0)
                svc->send_proxy_protocol = 1;
            else if (strcmp(v1, "v2") == 0)
                svc->send_proxy_protocol = 2;
            else
                rc = cfg_fail(p, val, "%s: expected v1 or v2, not \"%s\"", what, cfg_show(p, v1));
            break;
        }
        }
        if (rc < 0)
            return -1;
    }
    /* One service, one way in: a TCP forwarder beside an HTTP upstream or a
     * passthrough would be a second, unrelated listener under one name. */
    if (svc->tcp && (vals[S_UPSTREAM] || vals[S_PASSTHROUGH])) {
        const char *other = vals[S_UPSTREAM] ? "upstream" : "passthrough";
        return cfg_fail(p, vals[S_TCP],
                        "service \"%s\" has both %s: and tcp:; a service forwards one way, so move "
                        "tcp: into a service of its own (e.g. \"%.*s-tcp\")",
                        name, other, LIMIT_SERVICE_NAME - 4, name);
    }
    static const int http_only[] = {S_UPSTREAM,     S_ROUTES,      S_HEADERS,          S_TIMEOUT,
                                    S_IDLE_TIMEOUT, S_HOST_HEADER, S_REWRITE_REDIRECTS};
    const yaml_node_t *http_set = NULL;
    for (size_t i = 0; i < sizeof http_only / sizeof http_only[0] && !http_set; i++)
        http_set = vals[http_only[i]];
    if (svc->passthrough && http_set)
        return cfg_fail(p, http_set,
                        "service \"%s\" passes TLS through, so it cannot have HTTP settings "
                        "(upstream, routes, headers, timeout, idle_timeout, host_header, "
                        "rewrite_redirects): portico never sees its requests",
                        name);
    if (parse_service_auth(p, svc, vals[S_AUTH], vals[S_AUTH_SKIP]) < 0)
        return -1;
    if (!vals[S_UPGRADE] && parse_upgrade(p, svc, NULL, what) < 0)
        return -1;
    if (vals[S_UPGRADE] && !svc->upstream)
        return cfg_fail(p, vals[S_UPGRADE],
                        "services.%s.upgrade applies to HTTP services (with an "
                        "upstream)",
                        name);
    if (svc->auth && !svc->upstream)
        return cfg_fail(p, vals[S_AUTH],
                        "services.%s.auth applies to HTTP services (with an upstream)", name);
    if ((vals[S_TLS_CA] || vals[S_INSECURE]) && !p->svc_has_https)
        return cfg_fail(p, vals[S_TLS_CA] ? vals[S_TLS_CA] : vals[S_INSECURE],
                        "services.%s: %s applies to https:// upstreams, and the service has none",
                        name, vals[S_TLS_CA] ? "tls_ca" : "tls_insecure_skip_verify");
    if (!svc->upstream && !svc->tcp && !svc->passthrough)
        return cfg_fail(p, k, "service \"%s\" has no upstream, passthrough or tcp forwarder", name);
    if (!svc->upstream && !svc->passthrough) {
        const yaml_node_t *http_key = vals[S_HOSTS]         ? vals[S_HOSTS]
                                      : vals[S_ROUTES]      ? vals[S_ROUTES]
                                      : vals[S_HEADERS]     ? vals[S_HEADERS]
                                      : vals[S_HOST_HEADER] ? vals[S_HOST_HEADER]
                                                            : vals[S_REWRITE_REDIRECTS];
        if (http_key)
            return cfg_fail(p, http_key,
                            "service \"%s\" has HTTP settings but no upstream to send requests to",
                            name);
        return 0; /* TCP only: no host names */
    }
    if (!vals[S_HOSTS]) {
        if (!p->c->domain)
            return cfg_fail(p, k, "service \"%s\" has no hosts and no top-level domain is set",
                            name);
        svc->hosts = calloc(1, sizeof *svc->hosts);
        size_t len = strlen(name) + 1 + strlen(p->c->domain) + 1;
        char *host = malloc(len);
        if (!svc->hosts || !host) {
            free(host);
            return cfg_fail_oom(p);
        }
        snprintf(host, len, "%s.%s", name, p->c->domain);
        snprintf(what, sizeof what, "service \"%s\"", name);
        if (add_host(p, svc, host, k, what) < 0)
            return -1;
    }
    return 0;
}

int cfg_parse_services(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    if (cfg_want_mapping(p, n, "services", false) < 0)
        return -1;
    size_t count = cfg_map_len(n);
    /* Count the upstream strings first: c->upstreams is allocated once and
     * never moves, since services and routes point into it. */
    size_t nup = 0, nhosts = 0;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *v = cfg_node(p, pair->value);
        if (v->type != YAML_MAPPING_NODE)
            continue;
        nup++;
        nhosts++;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            const yaml_node_t *k = cfg_node(p, q->key), *val = cfg_node(p, q->value);
            if (k->type != YAML_SCALAR_NODE || val->type != YAML_SEQUENCE_NODE)
                continue;
            if (strcmp(cfg_scalar(k), "routes") == 0)
                nup += cfg_seq_len(val);
            else if (strcmp(cfg_scalar(k), "hosts") == 0)
                nhosts += cfg_seq_len(val);
        }
    }
    c->services = calloc(count ? count : 1, sizeof *c->services);
    c->tcp_services = calloc(count ? count : 1, sizeof *c->tcp_services);
    c->upstreams = calloc(nup ? nup : 1, sizeof *c->upstreams);
    p->upstream_cap = nup;
    p->upstream_keys = route_table_new(nup);
    route_table_free(c->routes);
    c->routes = route_table_new(nhosts);
    if (!c->services || !c->tcp_services || !c->upstreams || !p->upstream_keys || !c->routes)
        return cfg_fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        struct config_service *svc = &c->services[c->nservices++];
        if (parse_service(p, svc, cfg_node(p, pair->key), cfg_node(p, pair->value)) < 0)
            return -1;
    }
    return 0;
}
