/* config.c - read, validate and free the configuration snapshot.
 *
 * The file is read whole (at most LIMIT_CONFIG_BYTES), scanned once as a
 * stream of events to refuse what the schema never needs (anchors, aliases,
 * several documents), then loaded as a libyaml document and walked against
 * the schema. Every error names the file, the line and the key; nothing
 * survives a failed load.
 *
 * This file holds loading, the top level and the snapshot's lifetime; each
 * section of the file has its own config_<section>.c (listen, limits, tls,
 * auth, service, routes), and config_keys.c the messages and value readers
 * they share (declared in config_int.h).
 *
 * Adding a top-level section "foo:": put its fields in struct config
 * (config.h), write cfg_parse_foo() in a new src/config_foo.c, declare it in
 * config_int.h, add "foo" to the names in parse_root() below and call it
 * there at the point in the fixed order where what it needs is parsed. */
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"
#include "resolve.h"
#include "route.h"
#include "tls.h"

static int parse_domain(struct parser *p, const yaml_node_t *n)
{
    const char *s;
    if (cfg_want_string(p, n, "domain", &s) < 0)
        return -1;
    char *d = strdup(s);
    if (!d)
        return cfg_fail_oom(p);
    p->c->domain = d;
    size_t len = strlen(d);
    for (size_t i = 0; i < len; i++)
        if (d[i] >= 'A' && d[i] <= 'Z')
            d[i] = (char)(d[i] + 32);
    if (len > 1 && d[len - 1] == '.')
        d[len - 1] = '\0';
    if (d[0] == '*' || !route_host_valid(d))
        return cfg_fail(p, n, "domain: \"%s\" is not a valid DNS name", cfg_show(p, s));
    return 0;
}

static unsigned default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > LIMIT_WORKERS_MAX ? LIMIT_WORKERS_MAX : (unsigned)n;
}

/* Query parameters whose values never reach the log unless configured
 * otherwise: the names apps commonly use for credentials in URLs. */
static const char *const log_redact_default[] = {
    "token",   "access_token", "refresh_token", "id_token", "auth",   "key",
    "api_key", "apikey",       "password",      "passwd",   "secret", "client_secret",
    "code",    "sig",          "signature",     "session",
};

static int add_redact(struct parser *p, const char *name)
{
    char **r = realloc(p->c->log_redact, (p->c->nlog_redact + 1) * sizeof *r);
    if (!r)
        return cfg_fail_oom(p);
    p->c->log_redact = r;
    if (!(r[p->c->nlog_redact] = strdup(name)))
        return cfg_fail_oom(p);
    p->c->nlog_redact++;
    return 0;
}

/* "access_log: true|false", or a mapping {enabled, query, redact_params}. */
static int parse_access_log(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"enabled", "query", "redact_params"};
    struct config *c = p->c;
    yaml_node_t *vals[3] = {0};
    if (n && n->type == YAML_SCALAR_NODE) {
        if (cfg_want_bool(p, n, "access_log", &c->access_log) < 0)
            return -1;
    } else if (n && (cfg_want_mapping(p, n, "access_log", false) < 0 ||
                     cfg_map_collect(p, n, names, 3, vals, "in access_log") < 0))
        return -1;
    if (vals[0] && cfg_want_bool(p, vals[0], "access_log.enabled", &c->access_log) < 0)
        return -1;
    if (vals[1]) {
        const char *q;
        if (cfg_want_string(p, vals[1], "access_log.query", &q) < 0)
            return -1;
        if (strcmp(q, "redact") == 0)
            c->log_query = LOG_QUERY_REDACT;
        else if (strcmp(q, "full") == 0)
            c->log_query = LOG_QUERY_FULL;
        else if (strcmp(q, "drop") == 0)
            c->log_query = LOG_QUERY_DROP;
        else
            return cfg_fail(p, vals[1],
                            "access_log.query: expected redact, full or drop, not \"%s\"",
                            cfg_show(p, q));
    }
    if (!vals[2]) {
        for (size_t i = 0; i < sizeof log_redact_default / sizeof log_redact_default[0]; i++)
            if (add_redact(p, log_redact_default[i]) < 0)
                return -1;
        return 0;
    }
    if (cfg_want_sequence(p, vals[2], "access_log.redact_params") < 0)
        return -1;
    if (c->log_query != LOG_QUERY_REDACT)
        return cfg_fail(p, vals[2], "access_log.redact_params applies with query: redact");
    for (yaml_node_item_t *it = vals[2]->data.sequence.items.start;
         it < vals[2]->data.sequence.items.top; it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        const char *name;
        if (cfg_want_string(p, item, "access_log.redact_params", &name) < 0)
            return -1;
        bool ok = name[0] != '\0' && strlen(name) <= 64;
        for (const char *q = name; ok && *q; q++)
            ok = (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f && !strchr("&=#", *q);
        if (!ok)
            return cfg_fail(
                p, item,
                "access_log.redact_params: \"%s\" is not a query parameter name (1 to 64 "
                "printable characters without '&', '=' or '#')",
                cfg_show(p, name));
        if (add_redact(p, name) < 0)
            return -1;
    }
    return 0;
}

static int parse_root(struct parser *p)
{
    static const char *const names[] = {"domain",  "workers",  "access_log", "listen", "limits",
                                        "metrics", "services", "tls",        "auth"};
    enum {
        K_DOMAIN,
        K_WORKERS,
        K_ACCESS_LOG,
        K_LISTEN,
        K_LIMITS,
        K_METRICS,
        K_SERVICES,
        K_TLS,
        K_AUTH,
        K_N
    };
    yaml_node_t *vals[K_N] = {0};
    struct config *c = p->c;
    const yaml_node_t *root = p->have_doc ? yaml_document_get_root_node(&p->doc) : NULL;

    if (root) {
        if (root->type != YAML_MAPPING_NODE)
            return cfg_fail(p, root, "expected a mapping at the top level");
        if (cfg_want_mapping(p, root, "the top level", false) < 0 ||
            cfg_map_collect(p, root, names, K_N, vals, "at the top level") < 0)
            return -1;
    }
    /* Fixed order: services need the domain and the listen addresses first. */
    if (vals[K_DOMAIN] && parse_domain(p, vals[K_DOMAIN]) < 0)
        return -1;
    if (vals[K_WORKERS]) {
        uint32_t w;
        if (cfg_want_uint(p, vals[K_WORKERS], "workers", 1, LIMIT_WORKERS_MAX, &w) < 0)
            return -1;
        c->workers = w;
    }
    if (parse_access_log(p, vals[K_ACCESS_LOG]) < 0)
        return -1;
    if (vals[K_LIMITS] && cfg_parse_limits(p, vals[K_LIMITS]) < 0)
        return -1;
    if (!vals[K_LISTEN]) /* the line of the top level, where listen: belongs */
        return cfg_failat(p, root ? root->start_mark.line + 1 : 1,
                          "no listen addresses (add listen: [{addr: host:port}])");
    if (cfg_parse_listen(p, vals[K_LISTEN]) < 0)
        return -1;
    if (vals[K_METRICS] && cfg_parse_metrics(p, vals[K_METRICS]) < 0)
        return -1;
    if (vals[K_AUTH] && cfg_parse_auth(p, vals[K_AUTH]) < 0)
        return -1;
    if (vals[K_SERVICES] && cfg_parse_services(p, vals[K_SERVICES]) < 0)
        return -1;
    if (vals[K_TLS] && cfg_parse_tls(p, vals[K_TLS]) < 0)
        return -1;
    return cfg_load_tls(p);
}

/* ---- loading --------------------------------------------------------------------- */

/* Refuse anchors, aliases and further documents before building the tree:
 * the document API would silently expand aliases (and with them, size). */
static int prescan(struct parser *p)
{
    yaml_parser_t yp;
    yaml_event_t ev;
    int docs = 0, rc = 0;
    if (!yaml_parser_initialize(&yp))
        return cfg_fail_oom(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)p->text, p->len);
    for (;;) {
        if (!yaml_parser_parse(&yp, &ev)) {
            rc = cfg_fail_yaml(p, &yp);
            break;
        }
        size_t line = ev.start_mark.line + 1;
        const yaml_char_t *anchor = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = cfg_failat(p, line, "only one document is allowed in a configuration file");
            break;
        case YAML_ALIAS_EVENT:
            rc = cfg_failat(p, line, "aliases (*%s) are not supported; write the value out",
                            cfg_show(p, (const char *)ev.data.alias.anchor));
            break;
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = ev.data.sequence_start.anchor;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = ev.data.mapping_start.anchor;
            break;
        default:
            break;
        }
        if (anchor && rc == 0)
            rc = cfg_failat(p, line, "anchors (&%s) are not supported; write the value out",
                            cfg_show(p, (const char *)anchor));
        yaml_event_type_t type = ev.type;
        yaml_event_delete(&ev);
        if (rc < 0 || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&yp);
    return rc;
}

static int load_document(struct parser *p)
{
    yaml_parser_t yp;
    int rc = 0;
    if (!yaml_parser_initialize(&yp))
        return cfg_fail_oom(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)p->text, p->len);
    if (yaml_parser_load(&yp, &p->doc))
        p->have_doc = true;
    else
        rc = cfg_fail_yaml(p, &yp);
    yaml_parser_delete(&yp);
    return rc;
}

void config_each_named(struct config *c, void (*fn)(struct config_addr *a, void *arg), void *arg)
{
    for (size_t i = 0; i < c->nupstreams; i++)
        if (c->upstreams[i].addr.host[0])
            fn(&c->upstreams[i].addr, arg);
    for (size_t i = 0; i < c->nauths; i++)
        if (c->auths[i].up.addr.host[0])
            fn(&c->auths[i].up.addr, arg);
    for (size_t i = 0; i < c->nservices; i++) {
        struct config_service *s = &c->services[i];
        if (s->tcp && s->tcp->upstream.host[0])
            fn(&s->tcp->upstream, arg);
        if (s->passthrough && s->passthrough->host[0])
            fn(s->passthrough, arg);
    }
}

static void drop_name(struct config_addr *a, void *arg)
{
    if (a->name)
        resolve_name_unref(a->name);
    a->name = NULL;
}

static void config_free(struct config *c)
{
    free(c->warnings);
    config_each_named(c, drop_name, NULL);
    route_table_free(c->routes);
    for (size_t i = 0; i < c->nservices; i++) {
        struct config_service *s = &c->services[i];
        free(s->name);
        for (size_t j = 0; j < s->nhosts; j++)
            free(s->hosts[j]);
        free(s->hosts);
        for (size_t j = 0; j < s->nroutes; j++) {
            free(s->routes[j].prefix);
            free(s->routes[j].authority);
        }
        free(s->routes);
        for (size_t j = 0; j < s->nheaders; j++) {
            free(s->headers[j].name);
            free(s->headers[j].value);
        }
        free(s->headers);
        free(s->tcp);
        free(s->passthrough);
        free(s->authority);
        free(s->host_header);
        for (size_t j = 0; j < s->nauth_skip; j++)
            free(s->auth_skip[j]);
        free(s->auth_skip);
        for (size_t j = 0; j < s->nupgrade; j++)
            free(s->upgrade[j]);
        free(s->upgrade);
    }
    free(c->services);
    free(c->tcp_services);
    for (size_t i = 0; i < c->nupstreams; i++) {
        free(c->upstreams[i].key);
        free(c->upstreams[i].tls_name);
    }
    for (size_t i = 0; i < c->ntls_clients; i++) {
        tls_client_ctx_free(c->tls_clients[i].ctx);
        free(c->tls_clients[i].ca);
    }
    free(c->tls_clients);
    for (size_t i = 0; i < c->nauths; i++) {
        struct config_auth *a = &c->auths[i];
        free(a->name);
        free(a->url);
        free(a->path);
        free(a->host);
        free(a->up.key);
        free(a->up.tls_name);
        for (size_t j = 0; j < a->ncopy; j++)
            free(a->copy_headers[j]);
        free(a->copy_headers);
        free(a->portal);
    }
    free(c->auths);
    free(c->upstreams);
    free(c->listens);
    for (size_t i = 0; i < c->ntls_certs; i++) {
        free(c->tls_certs[i].cert);
        free(c->tls_certs[i].key);
    }
    free(c->tls_certs);
    free(c->tls_default);
    if (c->tls)
        tls_store_unref(c->tls);
    for (size_t i = 0; i < c->nlog_redact; i++)
        free(c->log_redact[i]);
    free(c->log_redact);
    free(c->domain);
    free(c->path);
    free(c);
}

struct config *config_parse(const char *name, const char *text, size_t len, char *err,
                            size_t errlen)
{
    struct parser p = {.name = name, .err = err, .errlen = errlen, .text = text, .len = len};
    if (err && errlen)
        err[0] = '\0';
    if (len > LIMIT_CONFIG_BYTES) {
        cfg_failat(&p, 0, "the file is larger than %u MiB", LIMIT_CONFIG_BYTES >> 20);
        return NULL;
    }
    struct config *c = calloc(1, sizeof *c);
    if (!c) {
        cfg_fail_oom(&p);
        return NULL;
    }
    p.c = c;
    c->refs = 1;
    static uint64_t serials;
    c->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    c->workers = default_workers();
    c->access_log = true;
    c->limits = (struct config_limits){
        .max_connections = LIMIT_MAX_CONNECTIONS_DEFAULT,
        .max_connections_per_client = LIMIT_CONNECTIONS_PER_CLIENT_DEFAULT,
        .max_header_bytes = LIMIT_HEADER_BYTES_DEFAULT,
        .max_request_line = LIMIT_REQUEST_LINE_DEFAULT,
        .header_timeout_ms = TIMEOUT_HEADER_MS_DEFAULT,
        .keepalive_timeout_ms = TIMEOUT_KEEPALIVE_MS_DEFAULT,
        .body_timeout_ms = TIMEOUT_BODY_MS_DEFAULT,
        .body_min_rate = LIMIT_BODY_MIN_RATE_DEFAULT,
        .body_rate_grace_ms = TIMEOUT_BODY_RATE_GRACE_MS_DEFAULT,
        .send_timeout_ms = TIMEOUT_SEND_MS_DEFAULT,
        .tunnel_timeout_ms = TIMEOUT_TUNNEL_MS_DEFAULT,
        .shutdown_timeout_ms = TIMEOUT_SHUTDOWN_MS_DEFAULT,
        .upstream_keepalive = LIMIT_POOL_IDLE_DEFAULT,
        .upstream_keepalive_timeout_ms = TIMEOUT_POOL_IDLE_MS_DEFAULT,
        .resolve_interval_ms = TIMEOUT_RESOLVE_MS_DEFAULT,
    };
    c->path = strdup(name);
    c->routes = route_table_new(0); /* replaced by parse_services; lookups need a table */
    int rc = !c->path || !c->routes ? cfg_fail_oom(&p) : 0;
    if (rc == 0)
        rc = prescan(&p);
    if (rc == 0)
        rc = load_document(&p);
    if (rc == 0)
        rc = parse_root(&p);
    if (p.have_doc)
        yaml_document_delete(&p.doc);
    route_table_free(p.upstream_keys);
    if (rc < 0) {
        config_free(c);
        return NULL;
    }
    return c;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory, not a file", path);
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > LIMIT_CONFIG_BYTES) {
        snprintf(err, errlen, "%s: the file is larger than %u MiB", path, LIMIT_CONFIG_BYTES >> 20);
        close(fd);
        return NULL;
    }
    /* Size from fstat when it is a regular file, but read to EOF with a hard
     * bound anyway: the file may grow, or be a pipe. */
    size_t cap = S_ISREG(st.st_mode) && (uint64_t)st.st_size <= LIMIT_CONFIG_BYTES
                     ? (size_t)st.st_size + 1
                     : 65536;
    size_t n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > LIMIT_CONFIG_BYTES)
                break;
            size_t ncap =
                cap * 2 > (size_t)LIMIT_CONFIG_BYTES + 1 ? (size_t)LIMIT_CONFIG_BYTES + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (n > LIMIT_CONFIG_BYTES) {
        snprintf(err, errlen, "%s: the file is larger than %u MiB", path, LIMIT_CONFIG_BYTES >> 20);
        free(buf);
        return NULL;
    }
    struct config *c = config_parse(path, buf, n, err, errlen);
    free(buf);
    return c;
}

struct config *config_ref(struct config *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_unref(struct config *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(c);
}
