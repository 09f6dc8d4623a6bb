/* config.c - read, validate and free the configuration snapshot.
 *
 * The file is read whole (at most LIMIT_CONFIG_BYTES), scanned once as a
 * stream of events to refuse what the schema never needs (anchors, aliases,
 * several documents), then loaded as a libyaml document and walked against
 * the schema. Every error names the file, the line and the key; nothing
 * survives a failed load.
 *
 * This file holds loading, the top level (the sections[] table below) and
 * the snapshot's lifetime. Each section has its own config_<section>.c
 * (listen and metrics, limits, tls, auth, service with routes, tailscale, dns), whose keys
 * are one table of struct cfg_key (config_int.h): name, type, the field
 * (offsetof) and the default. config_keys.c reads any table: unknown keys,
 * each value's type, FILE:LINE messages. What a table cannot say (keys that
 * depend on each other) is code after the table is read.
 *
 * Adding a key to a section: one line in its table, plus the field in
 * config.h. Adding a section "foo:": its fields in struct config, a
 * src/config_foo.c with its key table and cfg_parse_foo() (usually
 * cfg_keys_read, then its cross-key checks), the declaration in
 * config_int.h, and one line in sections[] below, placed after the sections
 * it depends on (they are read in that order, not the file's).
 *
 * Memory: everything a snapshot owns is allocated from its arena (arena.h)
 * through cfg_calloc/cfg_strdup, so config_free is one arena_free after the
 * few resources that are not memory (SSL contexts, the TLS store, the host
 * table, resolver names). */
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "limits.h"
#include "resolve.h"
#include "route.h"
#include "tls.h"

static int parse_domain(struct parser *p, const yaml_node_t *n)
{
    const char *s;
    if (cfg_want_string(p, n, "domain", &s) < 0)
        return -1;
    char *d = cfg_strdup(p, s);
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

static int parse_workers(struct parser *p, const yaml_node_t *n)
{
    uint32_t w;
    if (cfg_want_uint(p, n, "workers", 1, LIMIT_WORKERS_MAX, &w) < 0)
        return -1;
    p->c->workers = w;
    return 0;
}

/* Query parameters whose values never reach the log unless configured
 * otherwise: the names apps commonly use for credentials in URLs. */
static const char *const log_redact_default[] = {
    "token",   "access_token", "refresh_token", "id_token", "auth",   "key",
    "api_key", "apikey",       "password",      "passwd",   "secret", "client_secret",
    "code",    "sig",          "signature",     "session",  NULL,
};

static int check_redact(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                        char *const *prev, size_t nprev)
{
    bool ok = v[0] != '\0' && strlen(v) <= 64;
    for (const char *q = v; ok && *q; q++)
        ok = (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f && !strchr("&=#", *q);
    if (!ok)
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a query parameter name (1 to 64 printable characters "
                        "without '&', '=' or '#')",
                        what, cfg_show(p, v));
    return 0;
}

static const struct cfg_choice log_queries[] = {
    {"redact", LOG_QUERY_REDACT}, {"full", LOG_QUERY_FULL}, {"drop", LOG_QUERY_DROP}, {NULL, 0}};
static const struct cfg_choice log_formats[] = {
    {"text", LOG_FORMAT_TEXT}, {"json", LOG_FORMAT_JSON}, {NULL, 0}};
static const struct cfg_key access_log_keys[] = {
    {"enabled", CFG_BOOL, CFG_AT(struct config, access_log), true},
    {"format", CFG_ENUM, CFG_AT(struct config, log_format), LOG_FORMAT_TEXT,
     .choices = log_formats},
    {"query", CFG_ENUM, CFG_AT(struct config, log_query), LOG_QUERY_REDACT, .choices = log_queries},
    {"redact_params", CFG_STRINGS, CFG_AT(struct config, log_redact),
     .off_n = offsetof(struct config, nlog_redact), .def_list = log_redact_default,
     .item = check_redact},
};

/* "access_log: true|false", or a mapping {enabled, format, query,
 * redact_params}. */
static int parse_access_log(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    struct cfg_seen seen;
    if (!n || n->type == YAML_SCALAR_NODE) {
        if (cfg_keys_defaults(p, access_log_keys, CFG_NKEYS(access_log_keys), c) < 0)
            return -1;
        /* A format where the boolean goes is a likely slip: show the form. */
        for (const struct cfg_choice *f = log_formats; n && f->name; f++)
            if (cfg_is_plain(n) && strcmp(cfg_scalar(n), f->name) == 0)
                return cfg_fail(p, n,
                                "access_log: expected a boolean (true or false); for the %s "
                                "format write access_log: {format: %s}",
                                f->name, f->name);
        return n ? cfg_want_bool(p, n, "access_log", &c->access_log) : 0;
    }
    if (cfg_keys_read(p, n, access_log_keys, CFG_NKEYS(access_log_keys), c, "access_log",
                      "in access_log", &seen) < 0)
        return -1;
    const yaml_node_t *redact = cfg_seen_node(&seen, "redact_params");
    if (redact && c->log_query != LOG_QUERY_REDACT)
        return cfg_fail(p, redact, "access_log.redact_params applies with query: redact");
    return 0;
}

static int parse_listen(struct parser *p, const yaml_node_t *n)
{
    p->listen_line = (int)n->start_mark.line + 1;
    return cfg_parse_listen(p, n);
}

/* Once every section is read: something must accept connections. listen:
 * may be left out when another section opens a listener (the tailnet
 * backend of tailscale.services or funnel, a service's tcp.listen), so a
 * tailnet-only configuration needs no listener it does not use. metrics
 * and dns alone serve nothing: dns names this host for HTTP services. */
static int check_serves(struct parser *p)
{
    if (p->c->nlistens + p->c->ntcp > 0)
        return 0;
    /* at an empty listen: list, else the top level, where listen: belongs */
    return cfg_failat(p, p->listen_line ? (size_t)p->listen_line : p->root_line,
                      "nothing to serve: no listen addresses (add listen: [{addr: host:port}], "
                      "or tailscale: {services: true} to serve through tailscaled)");
}

/* The top-level keys, in the order they are read (not the file's): services
 * need the domain, the listen addresses and the auth providers first, and
 * tls is read once it is known whether any listener needs certificates. */
static const struct section {
    const char *name;
    int (*parse)(struct parser *p, const yaml_node_t *n);
    bool always; /* called with n == NULL when the key is absent: defaults, or an error */
} sections[] = {
    {"domain", parse_domain, false},        {"workers", parse_workers, false},
    {"access_log", parse_access_log, true}, {"limits", cfg_parse_limits, true},
    {"listen", parse_listen, false},        {"metrics", cfg_parse_metrics, false},
    {"auth", cfg_parse_auth, false},        {"services", cfg_parse_services, false},
    {"tls", cfg_parse_tls, false},          {"tailscale", cfg_parse_tailscale, false},
    {"dns", cfg_parse_dns, false},
};
#define NSECTIONS (sizeof sections / sizeof sections[0])

static int parse_root(struct parser *p)
{
    const yaml_node_t *vals[NSECTIONS] = {0};
    const yaml_node_t *root = p->have_doc ? yaml_document_get_root_node(&p->doc) : NULL;
    p->root_line = root ? root->start_mark.line + 1 : 1;
    if (root) {
        if (root->type != YAML_MAPPING_NODE)
            return cfg_fail(p, root, "expected a mapping at the top level");
        if (cfg_want_mapping(p, root, "the top level", false) < 0)
            return -1;
        for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
             pair < root->data.mapping.pairs.top; pair++) {
            const yaml_node_t *k = cfg_node(p, pair->key);
            size_t i = 0;
            while (i < NSECTIONS && !cfg_key_is(k, sections[i].name))
                i++;
            if (i == NSECTIONS)
                return cfg_fail(p, k, "unknown key \"%s\" at the top level",
                                cfg_show(p, cfg_scalar(k)));
            vals[i] = cfg_node(p, pair->value);
        }
    }
    for (size_t i = 0; i < NSECTIONS; i++)
        if ((vals[i] || sections[i].always) && sections[i].parse(p, vals[i]) < 0)
            return -1;
    if (check_serves(p) < 0)
        return -1;
    cfg_warn_allow(p);
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

/* Everything the snapshot owns is in its arena, c itself included; what
 * is not memory (contexts, tables and names other modules own) is let go
 * first. */
static void config_free(struct config *c)
{
    config_each_named(c, drop_name, NULL);
    route_table_free(c->routes);
    route_table_free(c->tailnet_names);
    for (size_t i = 0; i < c->ntls_clients; i++)
        tls_client_ctx_free(c->tls_clients[i].ctx);
    if (c->tls)
        tls_store_unref(c->tls);
    arena_free(c->arena);
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
    struct arena *arena = arena_new();
    struct config *c = arena ? arena_alloc(arena, sizeof *c) : NULL;
    if (!c) {
        arena_free(arena);
        cfg_fail_oom(&p);
        return NULL;
    }
    c->arena = arena;
    p.c = c;
    c->refs = 1;
    static uint64_t serials;
    c->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    c->workers = default_workers();
    c->path = cfg_strdup(&p, name);
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
