/* config_service.c - the "services:" section. */
#include "config_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "limits.h"
#include "route.h"

/* ---- services ------------------------------------------------------------------- */

static bool name_valid(const char *s, size_t len)
{
    if (len == 0 || len > LIMIT_SERVICE_NAME || strlen(s) != len || s[0] == '-' ||
        s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

char *cfg_entry_name(struct parser *p, const yaml_node_t *k, const char *kind)
{
    const char *name = cfg_scalar(k);
    if (!name_valid(name, k->data.scalar.length)) {
        cfg_fail(p, k,
                 "invalid %s name \"%s\" (use 1 to %d lower-case letters, digits and '-', not "
                 "at either end)",
                 kind, cfg_show(p, name), LIMIT_SERVICE_NAME);
        return NULL;
    }
    char *copy = cfg_strdup(p, name);
    if (!copy) {
        cfg_fail_oom(p);
        return NULL;
    }
    p->owner_kind = kind;
    p->owner = copy;
    return copy;
}

/* Add a normalised host name owned by svc to the host table. */
static int add_host(struct parser *p, struct config_service *svc, char *host, const yaml_node_t *n,
                    const char *what)
{
    if (!route_host_valid(host))
        return cfg_fail(p, n, "%s: \"%s\" is not a valid host name", what, cfg_show(p, host));
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
    svc->hosts = cfg_calloc(p, count, sizeof *svc->hosts);
    if (!svc->hosts)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *h = cfg_node(p, *it);
        const char *s;
        if (cfg_want_string(p, h, what, &s) < 0)
            return -1;
        char *host = cfg_strdup(p, s);
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

/* "upgrade: [websocket, ...]": the protocols a 101 may switch to (lower-cased). */
static int check_upgrade(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                         char *const *prev, size_t nprev)
{
    size_t len = strlen(v);
    bool token = len > 0 && len <= LIMIT_UPGRADE_NAME;
    for (size_t i = 0; token && i < len; i++)
        token = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
                (v[i] >= '0' && v[i] <= '9') || strchr("!#$%&'*+-.^_`|~", v[i]);
    if (!token)
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a protocol name (a token such as websocket, without "
                        "a /version)",
                        what, cfg_show(p, v));
    if (strcasecmp(v, "h2c") == 0 || strcasecmp(v, "h2") == 0 || strcasecmp(v, "http") == 0)
        return cfg_fail(p, n,
                        "%s: \"%s\" is never forwarded: after the switch the client's requests "
                        "would reach the upstream without forward auth or header rewriting",
                        what, cfg_show(p, v));
    for (size_t i = 0; i < nprev; i++)
        if (strcasecmp(prev[i], v) == 0)
            return cfg_fail(p, n, "%s: \"%s\" is listed twice", what, cfg_show(p, v));
    for (char *c = v; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    return 0;
}

/* "auth_skip: [/prefix, ...]": prefixes written as requests are compared. */
static int check_auth_skip(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                           char *const *prev, size_t nprev)
{
    char norm[LIMIT_REQUEST_LINE_DEFAULT];
    int len = route_path_normalize(v, strlen(v), norm, sizeof norm);
    if (len < 0 || strcmp(norm, v) != 0)
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a normalised path prefix (start with '/', no '.' or "
                        "'..' segments, no encoded unreserved characters)",
                        what, cfg_show(p, v));
    return 0;
}

/* "auth: NAME" on a service: a provider from the auth: section. */
static int read_service_auth(struct parser *p, struct config_service *svc, const yaml_node_t *n)
{
    char what[LIMIT_SERVICE_NAME + 64];
    const char *name;
    snprintf(what, sizeof what, "services.%s.auth", svc->name);
    if (cfg_want_string(p, n, what, &name) < 0)
        return -1;
    for (size_t i = 0; i < p->c->nauths && !svc->auth; i++)
        if (strcmp(p->c->auths[i].name, name) == 0)
            svc->auth = &p->c->auths[i];
    if (!svc->auth)
        return cfg_fail(p, n, "%s: no auth provider named \"%s\" (define it under auth:)", what,
                        cfg_show(p, name));
    return 0;
}

static int read_hosts(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                      void *target)
{
    return parse_hosts(p, target, n, what);
}

static int read_upstream(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                         void *target)
{
    struct config_service *svc = target;
    return cfg_parse_upstream(p, n, what, &svc->upstream, &svc->authority);
}

static int read_passthrough(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                            void *target)
{
    struct config_service *svc = target;
    if (!(svc->passthrough = cfg_calloc(p, 1, sizeof *svc->passthrough)))
        return cfg_fail_oom(p);
    p->c->npassthrough++;
    return cfg_read_target(p, n, what, svc->passthrough);
}

/* "allow: [alice@example.com, \"*@example.com\", tag:monitoring]": checked
 * and normalised by access.c, then copied into the snapshot's arena. */
static int read_allow(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                      void *target)
{
    struct config_service *svc = target;
    if (cfg_want_sequence(p, n, what) < 0)
        return -1;
    if (cfg_seq_len(n) == 0)
        return cfg_fail(p, n,
                        "%s: the list is empty, which would refuse everyone; remove allow to let "
                        "every caller through",
                        what);
    struct access_list l = {NULL, 0};
    char err[256];
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        const char *s = NULL;
        if (cfg_want_string(p, item, what, &s) < 0 || access_list_add(&l, s, err, sizeof err) < 0) {
            access_list_free(&l);
            return s ? cfg_fail(p, item, "%s: %s", what, err) : -1;
        }
    }
    svc->allow.entries = cfg_calloc(p, l.n, sizeof *svc->allow.entries);
    for (size_t i = 0; svc->allow.entries && i < l.n; i++) {
        svc->allow.entries[i].kind = l.entries[i].kind;
        if (!(svc->allow.entries[i].value = cfg_strdup(p, l.entries[i].value)))
            svc->allow.entries = NULL;
    }
    svc->allow.n = svc->allow.entries ? l.n : 0;
    access_list_free(&l);
    if (!svc->allow.entries)
        return cfg_fail_oom(p);
    svc->allow_line = (int)n->start_mark.line + 1;
    return 0;
}

static const struct cfg_choice proxy_versions[] = {{"v1", 1}, {"v2", 2}, {NULL, 0}};
static const char *const default_upgrade[] = {"websocket", NULL};

#define AT(f) CFG_AT(struct config_service, f)
#define N(f)  .off_n = offsetof(struct config_service, f)
static const struct cfg_key service_keys[] = {
    {"hosts", CFG_FUNC, .fn = read_hosts},
    {"upstream", CFG_FUNC, .fn = read_upstream},
    {"routes", CFG_FUNC, .fn = cfg_read_routes},
    {"headers", CFG_FUNC, .fn = cfg_read_headers},
    {"connect_timeout", CFG_DURATION, AT(connect_timeout_ms), TIMEOUT_CONNECT_MS_DEFAULT},
    {"timeout", CFG_DURATION_OFF, AT(timeout_ms), TIMEOUT_RESPONSE_MS_DEFAULT},
    {"idle_timeout", CFG_DURATION_OFF, AT(idle_timeout_ms), TIMEOUT_IDLE_MS_DEFAULT},
    {"tcp", CFG_FUNC, .fn = cfg_read_tcp},
    {"send_proxy_protocol", CFG_ENUM, AT(send_proxy_protocol), 0, .choices = proxy_versions},
    {"passthrough", CFG_FUNC, .fn = read_passthrough},
    {"tls_ca", CFG_LATER, .off = 0}, /* read first: https:// upstreams are verified with it */
    {"tls_insecure_skip_verify", CFG_LATER, .off = 0}, /* the same */
    {"auth", CFG_LATER, .off = 0},                     /* read_service_auth */
    {"auth_skip", CFG_STRINGS, AT(auth_skip), N(nauth_skip), .item = check_auth_skip},
    {"auth_bypass_tailnet", CFG_BOOL, AT(auth_bypass_tailnet), false},
    {"allow", CFG_FUNC, .fn = read_allow},
    {"host_header", CFG_FUNC, .fn = cfg_read_host_header},
    {"rewrite_redirects", CFG_BOOL, AT(rewrite_redirects), true},
    {"upgrade", CFG_STRINGS, AT(upgrade), N(nupgrade), .def_list = default_upgrade,
     .item = check_upgrade},
};

/* How the service's https:// upstreams are verified: needed before they are read. */
static int read_service_tls(struct parser *p, const struct config_service *svc,
                            const struct cfg_seen *seen)
{
    char what[LIMIT_SERVICE_NAME + 64];
    const yaml_node_t *ca = cfg_seen_node(seen, "tls_ca");
    const yaml_node_t *insecure = cfg_seen_node(seen, "tls_insecure_skip_verify");
    p->svc_tls_ca = NULL;
    p->svc_tls_ca_node = ca;
    p->svc_tls_insecure = false;
    p->svc_has_https = false;
    snprintf(what, sizeof what, "services.%s.tls_ca", svc->name);
    if (ca && cfg_want_string(p, ca, what, &p->svc_tls_ca) < 0)
        return -1;
    snprintf(what, sizeof what, "services.%s.tls_insecure_skip_verify", svc->name);
    if (insecure && cfg_want_bool(p, insecure, what, &p->svc_tls_insecure) < 0)
        return -1;
    if (p->svc_tls_ca && p->svc_tls_insecure)
        return cfg_fail(
            p, insecure,
            "services.%s: tls_ca and tls_insecure_skip_verify: true contradict each other",
            svc->name);
    return 0;
}

/* The keys that only make sense for HTTP, in the order messages name them. */
static const char *const http_only[] = {
    "upstream", "routes", "headers", "timeout", "idle_timeout", "host_header", "rewrite_redirects"};

/* What the keys of a service say together, once each is read. */
static int check_service(struct parser *p, struct config_service *svc, const yaml_node_t *k,
                         const struct cfg_seen *seen)
{
    const char *name = svc->name;
    const yaml_node_t *tcp = cfg_seen_node(seen, "tcp"), *auth = cfg_seen_node(seen, "auth");
    const yaml_node_t *upstream = cfg_seen_node(seen, "upstream");
    const yaml_node_t *passthrough = cfg_seen_node(seen, "passthrough");
    const yaml_node_t *skip = cfg_seen_node(seen, "auth_skip");
    const yaml_node_t *upgrade = cfg_seen_node(seen, "upgrade");
    const yaml_node_t *ca = cfg_seen_node(seen, "tls_ca");
    const yaml_node_t *insecure = cfg_seen_node(seen, "tls_insecure_skip_verify");
    /* One service, one way in: a TCP forwarder beside an HTTP upstream or a
     * passthrough would be a second, unrelated listener under one name. */
    if (svc->tcp && (upstream || passthrough))
        return cfg_fail(p, tcp,
                        "service \"%s\" has both %s: and tcp:; a service forwards one way, so move "
                        "tcp: into a service of its own (e.g. \"%.*s-tcp\")",
                        name, upstream ? "upstream" : "passthrough", LIMIT_SERVICE_NAME - 4, name);
    const yaml_node_t *http_set = NULL;
    for (size_t i = 0; i < sizeof http_only / sizeof http_only[0] && !http_set; i++)
        http_set = cfg_seen_node(seen, http_only[i]);
    if (svc->passthrough && http_set)
        return cfg_fail(p, http_set,
                        "service \"%s\" passes TLS through, so it cannot have HTTP settings "
                        "(upstream, routes, headers, timeout, idle_timeout, host_header, "
                        "rewrite_redirects): portico never sees its requests",
                        name);
    if (auth && read_service_auth(p, svc, auth) < 0)
        return -1;
    if (skip && !auth)
        return cfg_fail(p, skip, "services.%s.auth_skip applies to a service with auth", name);
    const yaml_node_t *bypass = cfg_seen_node(seen, "auth_bypass_tailnet");
    if (bypass && !auth)
        return cfg_fail(p, bypass, "services.%s.auth_bypass_tailnet applies to a service with auth",
                        name);
    if (upgrade && !svc->upstream)
        return cfg_fail(p, upgrade,
                        "services.%s.upgrade applies to HTTP services (with an upstream)", name);
    if (svc->auth && !svc->upstream)
        return cfg_fail(p, auth, "services.%s.auth applies to HTTP services (with an upstream)",
                        name);
    if ((ca || insecure) && !p->svc_has_https)
        return cfg_fail(p, ca ? ca : insecure,
                        "services.%s: %s applies to https:// upstreams, and the service has none",
                        name, ca ? "tls_ca" : "tls_insecure_skip_verify");
    if (!svc->upstream && !svc->tcp && !svc->passthrough)
        return cfg_fail(p, k, "service \"%s\" has no upstream, passthrough or tcp forwarder", name);
    return 0;
}

static int parse_service(struct parser *p, struct config_service *svc, const yaml_node_t *k,
                         const yaml_node_t *v)
{
    char what[LIMIT_SERVICE_NAME + 64], where[LIMIT_SERVICE_NAME + 32];
    const char *name = cfg_scalar(k);
    svc->line = (int)k->start_mark.line + 1;
    if (!(svc->name = cfg_entry_name(p, k, "service")))
        return -1;
    snprintf(what, sizeof what, "services.%s", name);
    snprintf(where, sizeof where, "in service \"%s\"", name);
    struct cfg_seen seen;
    if (cfg_keys_collect(p, v, service_keys, CFG_NKEYS(service_keys), what, where, &seen) < 0 ||
        read_service_tls(p, svc, &seen) < 0 || cfg_keys_apply(p, &seen, svc, what) < 0 ||
        check_service(p, svc, k, &seen) < 0)
        return -1;
    const yaml_node_t *hosts = cfg_seen_node(&seen, "hosts");
    if (!svc->upstream && !svc->passthrough) {
        static const char *const http_keys[] = {"hosts", "routes", "headers", "host_header",
                                                "rewrite_redirects"};
        for (size_t i = 0; i < sizeof http_keys / sizeof http_keys[0]; i++)
            if (cfg_seen_node(&seen, http_keys[i]))
                return cfg_fail(
                    p, cfg_seen_node(&seen, http_keys[i]),
                    "service \"%s\" has HTTP settings but no upstream to send requests to", name);
        return 0; /* TCP only: no host names */
    }
    if (!hosts) {
        if (!p->c->domain)
            return cfg_fail(p, k, "service \"%s\" has no hosts and no top-level domain is set",
                            name);
        svc->hosts = cfg_calloc(p, 1, sizeof *svc->hosts);
        size_t len = strlen(name) + 1 + strlen(p->c->domain) + 1;
        char *host = arena_alloc(p->c->arena, len);
        if (!svc->hosts || !host)
            return cfg_fail_oom(p);
        snprintf(host, len, "%s.%s", name, p->c->domain);
        snprintf(what, sizeof what, "service \"%s\"", name);
        if (add_host(p, svc, host, k, what) < 0)
            return -1;
    }
    return 0;
}

/* A TCP or passthrough service learns its caller only from the PROXY
 * header tailscaled sends (tcp.proxy_protocol, or a TLS listener's
 * proxy_protocol): without one every caller is tailscaled itself, on this
 * machine, and has no tailnet identity. */
static bool stream_has_caller(const struct config *c, const struct config_service *svc)
{
    if (svc->tcp)
        return svc->tcp->proxy_protocol;
    for (size_t i = 0; i < c->nlistens; i++)
        if (c->listens[i].tls && c->listens[i].proxy_protocol)
            return true;
    return false;
}

/* Can a request on l come from a tailnet caller portico can name? The
 * backend listener's can; with a tailscale section (whois), so can an
 * ordinary listener's: through a PROXY header, or straight from a tailnet
 * address, which never reaches a loopback or Unix-socket listener (a
 * process on this host is never a tailnet caller). */
static bool listen_carries_identity(const struct config *c, const struct config_listen *l)
{
    if (l->tailnet)
        return true;
    if (!c->tailscale.enabled || l->local)
        return false;
    if (l->proxy_protocol)
        return true;
    const struct sockaddr_storage *sa = &l->addr.sa;
    if (sa->ss_family == AF_INET)
        return ((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr)[0] != 127;
    if (sa->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return !IN6_IS_ADDR_LOOPBACK(a) && !(IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

void cfg_warn_allow(struct parser *p)
{
    const struct config *c = p->c;
    bool tailnet = false;
    for (size_t i = 0; i < c->nlistens; i++)
        tailnet = tailnet || listen_carries_identity(c, &c->listens[i]);
    for (size_t i = 0; i < c->nservices; i++) {
        const struct config_service *svc = &c->services[i];
        if (!svc->allow.n)
            continue;
        if (svc->tcp && !svc->tcp->proxy_protocol)
            cfg_warn_at(p, (size_t)svc->allow_line,
                        "services.%s.allow: tcp.proxy_protocol is off, so every caller is "
                        "tailscaled on this machine, which has no tailnet identity: every "
                        "connection is closed; set tcp.proxy_protocol: true",
                        svc->name);
        else if (svc->passthrough && !stream_has_caller(c, svc))
            cfg_warn_at(p, (size_t)svc->allow_line,
                        "services.%s.allow: no TLS listener has proxy_protocol, so every caller "
                        "is tailscaled on this machine, which has no tailnet identity: every "
                        "connection is closed; add a TLS listener with proxy_protocol: true",
                        svc->name);
        else if (!svc->tcp && !svc->passthrough && !tailnet)
            cfg_warn_at(p, (size_t)svc->allow_line,
                        "services.%s.allow: no listener carries tailnet identity (it needs a "
                        "tailscale section: the backend listener of tailscale.services: true, or "
                        "a listener that tailnet callers reach, on an address that is not "
                        "loopback or with proxy_protocol), so every request to this service is "
                        "refused with 403",
                        svc->name);
    }
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
    c->services = cfg_calloc(p, count ? count : 1, sizeof *c->services);
    c->tcp_services = cfg_calloc(p, count ? count : 1, sizeof *c->tcp_services);
    c->upstreams = cfg_calloc(p, nup ? nup : 1, sizeof *c->upstreams);
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
