/* config_tailscale.c - the "tailscale:" section: publishing portico's HTTP
 * services as Tailscale Services on the local tailscaled node.
 *
 * Read after "services:" (config.c), since "services: true" checks that
 * every HTTP service's name can be a Tailscale Service name. */
#include "config_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "limits.h"
#include "hostsfile.h"
#include "route.h"
#include "tls.h"
#include "tsapi.h"
#include "tsjson.h"
#include "tspolicy.h"

#define TS_SOCKET_DEFAULT    "/var/run/tailscale/tailscaled.sock"
#define TS_BACKEND_DEFAULT   "unix:/run/portico/tailnet.sock"
#define TS_STATE_DIR_DEFAULT "/var/lib/portico"
#define BACKEND_HELP         "(use unix:/path, or http://127.0.0.1:PORT with insecure_loopback_backend)"

static const char *const service_tags_default[] = {"tag:portico-svc", NULL};
static const char *const host_tags_default[] = {"tag:portico", NULL};

/* A tag in service_tags or host_tags: "tag:NAME", each once. */
static int read_tag(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                    char *const *prev, size_t nprev)
{
    if (!tspolicy_tag_valid(v))
        return cfg_fail(p, n, "%s: \"%s\" is not a tag (use tag:NAME, letters, digits and '-')",
                        what, cfg_show(p, v));
    for (size_t i = 0; i < nprev; i++)
        if (strcmp(prev[i], v) == 0)
            return cfg_fail(p, n, "%s: \"%s\" is listed twice", what, cfg_show(p, v));
    return 0;
}

/* An absolute path (the socket, the state directory, the hosts file). */
static int read_path(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                     void *target)
{
    const char *s;
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (s[0] != '/')
        return cfg_fail(p, n, "%s: \"%s\" must be an absolute path", what, cfg_show(p, s));
    if (strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return cfg_fail(p, n, "%s: \"%s\" is too long (at most %zu bytes)", what, cfg_show(p, s),
                        sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    if (!(*(char **)field = cfg_strdup(p, s)))
        return cfg_fail_oom(p);
    return 0;
}

static bool addr_loopback(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* "unix:/path", or "http://" and a loopback address with a port: what
 * tailscaled's serve config accepts as a proxy target, limited to what
 * only this machine can reach. */
static int read_backend(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                        void *target)
{
    const char *s;
    char msg[300];
    struct config_addr a;
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    bool is_unix = strncmp(s, "unix:", 5) == 0, is_http = strncmp(s, "http://", 7) == 0;
    if (!is_unix && !is_http)
        return cfg_fail(p, n, "%s: \"%s\" is not a backend " BACKEND_HELP, what, cfg_show(p, s));
    if (cfg_parse_addr(is_unix ? s : s + 7, &a, false, false, msg, sizeof msg) < 0)
        return cfg_fail(p, n, "%s: %s " BACKEND_HELP, what, msg);
    if (is_http && (a.host[0] || !addr_loopback(&a)))
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a loopback address; tailscaled forwards to this "
                        "machine only " BACKEND_HELP,
                        what, cfg_show(p, s));
    if (!(*(char **)field = cfg_strdup(p, s)))
        return cfg_fail_oom(p);
    return 0;
}

/* Add l to the listeners, unless its address is already one of portico's
 * (what: the key, for messages; why: the reason it must be its own). */
static int add_listener(struct parser *p, const yaml_node_t *at, const char *what, const char *why,
                        const char *text, const struct config_listen *l)
{
    struct config *c = p->c;
    for (size_t i = 0; i < c->nlistens; i++)
        if (cfg_addr_clash(&c->listens[i].addr, &l->addr))
            return cfg_fail(p, at, "%s: \"%s\" is also a listen address (line %d); %s", what,
                            cfg_show(p, text), c->listens[i].line, why);
    for (size_t i = 0; i < c->ntcp; i++)
        if (cfg_addr_clash(&c->tcp_services[i]->tcp->listen, &l->addr))
            return cfg_fail(p, at, "%s: \"%s\" is also service %s's tcp.listen", what,
                            cfg_show(p, text), cfg_show(p, c->tcp_services[i]->name));
    if (c->metrics_enabled && cfg_addr_clash(&c->metrics_listen, &l->addr))
        return cfg_fail(p, at, "%s: \"%s\" is also metrics.listen", what, cfg_show(p, text));
    struct config_listen *ls = cfg_calloc(p, c->nlistens + 1, sizeof *ls);
    if (!ls)
        return cfg_fail_oom(p);
    if (c->nlistens) /* none when listen: is left out */
        memcpy(ls, c->listens, c->nlistens * sizeof *ls);
    ls[c->nlistens] = *l;
    c->listens = ls;
    c->nlistens++;
    return 0;
}

/* With services on, tailscaled forwards every service's requests to the
 * backend: it becomes one more listener (after the listen: entries, so it
 * is opened, kept across reloads and handed over on upgrade like them),
 * marked tailnet. https: tailscaled terminated TLS for the caller. */
static int add_backend_listener(struct parser *p, const yaml_node_t *at, long gid)
{
    struct config *c = p->c;
    const char *b = c->tailscale.backend;
    struct config_listen l = {.https = true, .tailnet = true, .line = (int)at->start_mark.line + 1};
    char msg[300];
    if (cfg_parse_addr(strncmp(b, "http://", 7) == 0 ? b + 7 : b, &l.addr, false, false, msg,
                       sizeof msg) < 0)
        return cfg_fail(p, at, "tailscale.backend: %s", msg);
    l.addr.unix_gid = gid;
    if (add_listener(p, at, "tailscale.backend", "tailscaled's listener must be its own", b, &l) <
        0)
        return -1;
    if (!(c->tailnet_names = route_table_new(c->nservices)))
        return cfg_fail_oom(p);
    for (size_t i = 0; i < c->nservices; i++) {
        void *prev;
        if (c->services[i].upstream &&
            route_table_add(c->tailnet_names, c->services[i].name, &c->services[i], &prev) < 0)
            return cfg_fail_oom(p); /* names are unique: only ENOMEM is left */
    }
    return 0;
}

/* ---- tailscale.api ----------------------------------------------------------- */

static int read_tailnet(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                        void *target)
{
    const char *s;
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (!tsapi_tailnet_valid(s))
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a tailnet name (use \"-\" for the OAuth client's own "
                        "tailnet, or its name: letters, digits and . _ @ + -)",
                        what, cfg_show(p, s));
    if (!(*(char **)field = cfg_strdup(p, s)))
        return cfg_fail_oom(p);
    return 0;
}

static int read_client_id(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                          void *target)
{
    const char *s;
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (!tsapi_client_id_valid(s))
        return cfg_fail(p, n, "%s: not an OAuth client ID (printable, no blanks, at most %d bytes)",
                        what, TSAPI_CLIENT_ID_MAX);
    if (!(*(char **)field = cfg_strdup(p, s)))
        return cfg_fail_oom(p);
    return 0;
}

/* The secret file is read now, so that `portico check` finds a missing or
 * unreadable one; the secret itself is not kept (nor ever shown). */
static int read_secret_file(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                            void *target)
{
    char secret[TSAPI_SECRET_MAX + 1], why[600];
    struct stat sb;
    if (read_path(p, n, what, field, target) < 0)
        return -1;
    const char *path = *(char **)field;
    int rc = tsapi_read_secret(path, secret, sizeof secret, why, sizeof why);
    explicit_bzero(secret, sizeof secret);
    if (rc < 0)
        return cfg_fail(p, n, "%s: %s", what, why);
    if (stat(path, &sb) == 0 && (sb.st_mode & S_IROTH))
        cfg_warn(p, n,
                 "%s: %s is readable by every user; make it readable by portico only "
                 "(chmod 600 or 640)",
                 what, path);
    return 0;
}

static int read_url(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                    void *target)
{
    struct config_tailscale_api *api = target;
    const char *s;
    char host[256], why[300];
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (tsapi_parse_url(s, host, sizeof host, &api->port, why, sizeof why) < 0)
        return cfg_fail(p, n, "%s: \"%s\" %s", what, cfg_show(p, s), why);
    size_t len = strlen(s);
    if (!(api->url = cfg_strndup(p, s, s[len - 1] == '/' ? len - 1 : len)) ||
        !(api->host = cfg_strdup(p, host)))
        return cfg_fail_oom(p);
    return 0;
}

/* Loaded once now, so that a CA file OpenSSL cannot read is reported at
 * its line by `portico check`. */
static int read_ca_file(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                        void *target)
{
    char why[600];
    if (read_path(p, n, what, field, target) < 0)
        return -1;
    struct ssl_ctx_st *ctx = tls_client_ctx_new(*(char **)field, false, why, sizeof why);
    if (!ctx)
        return cfg_fail(p, n, "%s: %s", what, why);
    tls_client_ctx_free(ctx);
    return 0;
}

#define API(f) CFG_AT(struct config_tailscale_api, f)
static const struct cfg_key api_keys[] = {
    {"tailnet", CFG_FUNC, API(tailnet), .fn = read_tailnet},
    {"oauth_client_id", CFG_FUNC, API(client_id), .fn = read_client_id},
    {"oauth_client_secret_file", CFG_FUNC, API(secret_file), .fn = read_secret_file},
    {"url", CFG_FUNC, API(url), .fn = read_url},
    {"ca_file", CFG_FUNC, API(ca_file), .fn = read_ca_file},
};

static int read_api(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                    void *target)
{
    struct config_tailscale_api *api = field;
    struct cfg_seen seen;
    if (cfg_keys_read(p, n, api_keys, CFG_NKEYS(api_keys), api, "tailscale.api", "in tailscale.api",
                      &seen) < 0)
        return -1;
    api->enabled = true;
    api->line = (int)n->start_mark.line + 1;
    if (!api->client_id || !api->secret_file)
        return cfg_fail(p, n,
                        "tailscale.api: oauth_client_id and oauth_client_secret_file are both "
                        "needed (an OAuth client with the services scope; see "
                        "docs/tailscale.md)");
    if ((!api->tailnet && !(api->tailnet = cfg_strdup(p, "-"))) ||
        (!api->url && (!(api->url = cfg_strdup(p, TSAPI_DEFAULT_URL)) ||
                       !(api->host = cfg_strdup(p, "api.tailscale.com")))))
        return cfg_fail_oom(p);
    if (!cfg_seen_node(&seen, "url"))
        api->port = 443;
    return 0;
}

/* ---- funnel: -------------------------------------------------------------- */

static const char *const funnel_paths_default[] = {"/", NULL};

/* A path prefix of funnel.paths: normalised as requests are compared,
 * each once. */
static int read_funnel_path(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                            char *const *prev, size_t nprev)
{
    char norm[LIMIT_REQUEST_LINE_DEFAULT];
    int len = route_path_normalize(v, strlen(v), norm, sizeof norm);
    if (len < 0 || strcmp(norm, v) != 0 || strlen(v) > LIMIT_TS_STRING_BYTES / 2)
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a normalised path prefix (start with '/', no '.' or "
                        "'..' segments, no encoded unreserved characters, at most %d bytes)",
                        what, cfg_show(p, v), LIMIT_TS_STRING_BYTES / 2);
    for (size_t i = 0; i < nprev; i++)
        if (strcmp(prev[i], v) == 0)
            return cfg_fail(p, n, "%s: \"%s\" is listed twice", what, cfg_show(p, v));
    return 0;
}

static int read_funnel_service(struct parser *p, const yaml_node_t *n, const char *what,
                               void *field, void *target)
{
    const char *name;
    if (cfg_want_string(p, n, what, &name) < 0)
        return -1;
    for (size_t i = 0; i < p->c->nservices; i++) {
        const struct config_service *svc = &p->c->services[i];
        if (strcmp(svc->name, name) != 0)
            continue;
        if (!svc->upstream)
            return cfg_fail(p, n,
                            "%s: service \"%s\" has no upstream; Funnel publishes HTTP services "
                            "only",
                            what, cfg_show(p, name));
        *(const struct config_service **)field = svc;
        return 0;
    }
    return cfg_fail(p, n, "%s: no service named \"%s\"", what, cfg_show(p, name));
}

#define FAT(f) CFG_AT(struct config_funnel, f)
static const struct cfg_key funnel_keys[] = {
    {"service", CFG_FUNC, FAT(service), .fn = read_funnel_service},
    {"port", CFG_UINT, FAT(port), 443, .min = 1, .max = 65535},
    {"paths", CFG_STRINGS, FAT(paths), .off_n = offsetof(struct config_funnel, npaths),
     .def_list = funnel_paths_default, .item = read_funnel_path, .max = LIMIT_TS_FUNNEL_PATHS},
};

/* "funnel: {service, port, paths}". tailscaled removes a handler's path
 * prefix before it proxies (serveWebHandler, ipn/ipnlocal/serve.go), and
 * portico puts it back by proxying to backend + prefix, which a unix:
 * backend cannot carry: a prefix other than "/" needs an http:// one. */
static int read_funnel(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                       void *target)
{
    struct config_funnel *f = field;
    struct cfg_seen seen;
    if (cfg_keys_read(p, n, funnel_keys, CFG_NKEYS(funnel_keys), f, "tailscale.funnel",
                      "in tailscale.funnel", &seen) < 0)
        return -1;
    f->enabled = true;
    f->line = (int)n->start_mark.line + 1;
    if (!f->service)
        return cfg_fail(p, n, "tailscale.funnel: no service (name the HTTP service to publish)");
    if (f->port != 443 && f->port != 8443 && f->port != 10000)
        return cfg_fail(p, cfg_seen_node(&seen, "port"),
                        "tailscale.funnel.port: %u is not a Funnel port (443, 8443 or 10000)",
                        (unsigned)f->port);
    return 0;
}

/* ---- tailscale.hairpin --------------------------------------------------------- */

#define HAIRPIN_LISTEN_DEFAULT "127.0.0.1:443"
#define HAIRPIN_HOSTS_DEFAULT  "/etc/hosts"

/* One hairpin address: a loopback IP and a port, since `allow: [local]`
 * trusts whoever connects to it and the hosts file can only name an IP. */
static int read_hairpin_addr(struct parser *p, const yaml_node_t *n, const char *what,
                             const char *s, struct config_addr *a)
{
    char msg[300];
    if (cfg_parse_addr(s, a, true, false, msg, sizeof msg) < 0)
        return cfg_fail(p, n, "%s: %s", what, msg);
    if (a->host[0] || !addr_loopback(a))
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a loopback address (use 127.0.0.1:443 or [::1]:443): "
                        "callers here count as local, and allow: [local] admits them",
                        what, cfg_show(p, s));
    a->line = (int)n->start_mark.line + 1;
    return 0;
}

static int read_hairpin_listen(struct parser *p, const yaml_node_t *n, const char *what,
                               void *field, void *target)
{
    struct config_hairpin *h = target;
    size_t count = n->type == YAML_SEQUENCE_NODE
                       ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                       : 1;
    if (n->type == YAML_SEQUENCE_NODE && count == 0)
        return cfg_fail(p, n, "%s: the list is empty", what);
    if (!(h->listen = cfg_calloc(p, count, sizeof *h->listen)))
        return cfg_fail_oom(p);
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item =
            n->type == YAML_SEQUENCE_NODE ? cfg_node(p, n->data.sequence.items.start[i]) : n;
        const char *v;
        if (cfg_want_string(p, item, what, &v) < 0 ||
            read_hairpin_addr(p, item, what, v, &h->listen[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (cfg_addr_clash(&h->listen[j], &h->listen[i]))
                return cfg_fail(p, item, "%s: \"%s\" is listed twice", what, cfg_show(p, v));
    }
    h->nlisten = count;
    return 0;
}

static int read_hairpin_hosts(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                              void *target)
{
    ((struct config_hairpin *)target)->hosts_line = (int)n->start_mark.line + 1;
    return read_path(p, n, what, field, target);
}

#define HP(f) CFG_AT(struct config_hairpin, f)
static const struct cfg_key hairpin_keys[] = {
    {"enabled", CFG_BOOL, HP(enabled), true},
    {"listen", CFG_FUNC, HP(listen), .fn = read_hairpin_listen},
    {"hosts_file", CFG_FUNC, HP(hosts_file), .fn = read_hairpin_hosts},
};

/* "hairpin: true|false", or a mapping {enabled, listen, hosts_file}. */
static int read_hairpin(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                        void *target)
{
    struct config_hairpin *h = field;
    h->line = (int)n->start_mark.line + 1;
    if (n->type != YAML_MAPPING_NODE)
        return cfg_want_bool(p, n, what, &h->enabled);
    struct cfg_seen seen;
    return cfg_keys_read(p, n, hairpin_keys, CFG_NKEYS(hairpin_keys), h, "tailscale.hairpin",
                         "in tailscale.hairpin", &seen);
}

/* The hairpin listeners: TLS with the published names' certificates, by
 * SNI, and a Host the certificate does not cover refused (421), so a
 * local caller reaches only the names portico publishes. The hosts file
 * is checked now so that `portico check` reports one it cannot write. */
static int add_hairpin(struct parser *p, const yaml_node_t *at)
{
    struct config_hairpin *h = &p->c->tailscale.hairpin;
    if (!p->c->tailscale.services)
        return cfg_fail(p, at,
                        "tailscale.hairpin serves the names published as Tailscale Services; "
                        "it needs tailscale.services: true");
    if (!h->hosts_file && !(h->hosts_file = cfg_strdup(p, HAIRPIN_HOSTS_DEFAULT)))
        return cfg_fail_oom(p);
    if (!h->listen) {
        if (!(h->listen = cfg_calloc(p, 1, sizeof *h->listen)))
            return cfg_fail_oom(p);
        if (read_hairpin_addr(p, at, "tailscale.hairpin.listen", HAIRPIN_LISTEN_DEFAULT,
                              &h->listen[0]) < 0)
            return -1;
        h->nlisten = 1;
    }
    /* The names' certificates are tailscaled's (tscert.c), beside any
     * tls.certs. */
    p->c->tls_tailscale = true;
    char why[700];
    if (hostsfile_check_writable(h->hosts_file, why, sizeof why) < 0)
        return cfg_failat(p, (size_t)(h->hosts_line ? h->hosts_line : h->line),
                          "tailscale.hairpin.hosts_file: %s", why);
    for (size_t i = 0; i < h->nlisten; i++) {
        struct config_listen l = {.addr = h->listen[i],
                                  .tls = true,
                                  .https = true,
                                  .strict_sni_host = true,
                                  .local = true,
                                  .line = h->listen[i].line};
        if (add_listener(p, at, "tailscale.hairpin.listen", "the hairpin listener must be its own",
                         l.addr.text, &l) < 0)
            return -1;
    }
    return 0;
}

static const struct cfg_choice publish_choices[] = {
    {"auto", TS_PUBLISH_AUTO}, {"false", TS_PUBLISH_FALSE}, {NULL, 0}};

#define AT(f) CFG_AT(struct config_tailscale, f)
static const struct cfg_key ts_keys[] = {
    {"socket", CFG_FUNC, AT(socket), .fn = read_path},
    {"services", CFG_BOOL, AT(services), false},
    {"publish", CFG_ENUM, AT(publish), TS_PUBLISH_AUTO, .choices = publish_choices},
    {"backend", CFG_FUNC, AT(backend), .fn = read_backend},
    {"insecure_loopback_backend", CFG_BOOL, AT(insecure_loopback_backend), false},
    {"backend_group", CFG_STRING, AT(backend_group)},
    {"service_tags", CFG_STRINGS, AT(service_tags),
     .off_n = offsetof(struct config_tailscale, nservice_tags), .def_list = service_tags_default,
     .item = read_tag},
    {"host_tags", CFG_STRINGS, AT(host_tags),
     .off_n = offsetof(struct config_tailscale, nhost_tags), .def_list = host_tags_default,
     .item = read_tag},
    {"state_dir", CFG_FUNC, AT(state_dir), .fn = read_path},
    {"api", CFG_FUNC, AT(api), .fn = read_api},
    {"funnel", CFG_FUNC, AT(funnel), .fn = read_funnel},
    {"identity_headers", CFG_BOOL, AT(identity_headers), true},
    {"hairpin", CFG_FUNC, AT(hairpin), .fn = read_hairpin},
};

/* One tag for now: the printed policy names one service tag and one node
 * tag (a list, so that the key need not change when more are supported). */
static int one_tag(struct parser *p, const struct cfg_seen *seen, const char *key, size_t n)
{
    const yaml_node_t *node = cfg_seen_node(seen, key);
    if (n == 1)
        return 0;
    return cfg_fail(p, node, "tailscale.%s: %s; portico supports exactly one tag here for now", key,
                    n ? "more than one tag" : "the list is empty");
}

int cfg_tailscale_defaults(struct parser *p)
{
    struct config_tailscale *ts = &p->c->tailscale;
    if ((!ts->socket && !(ts->socket = cfg_strdup(p, TS_SOCKET_DEFAULT))) ||
        (!ts->backend && !(ts->backend = cfg_strdup(p, TS_BACKEND_DEFAULT))) ||
        (!ts->state_dir && !(ts->state_dir = cfg_strdup(p, TS_STATE_DIR_DEFAULT))))
        return cfg_fail_oom(p);
    return 0;
}

int cfg_parse_tailscale(struct parser *p, const yaml_node_t *n)
{
    struct config_tailscale *ts = &p->c->tailscale;
    struct cfg_seen seen;
    if (cfg_keys_read(p, n, ts_keys, CFG_NKEYS(ts_keys), ts, "tailscale", "in tailscale", &seen) <
        0)
        return -1;
    ts->enabled = true;
    ts->whois_wait_ms = TIMEOUT_WHOIS_WAIT_MS;
    ts->line = (int)n->start_mark.line + 1;
    if (cfg_tailscale_defaults(p) < 0)
        return -1;
    if (one_tag(p, &seen, "service_tags", ts->nservice_tags) < 0 ||
        one_tag(p, &seen, "host_tags", ts->nhost_tags) < 0)
        return -1;
    if (strcmp(ts->service_tags[0], ts->host_tags[0]) == 0)
        return cfg_fail(p,
                        cfg_seen_node(&seen, "service_tags") ? cfg_seen_node(&seen, "service_tags")
                                                             : cfg_seen_node(&seen, "host_tags"),
                        "tailscale: service_tags and host_tags are both %s; auto-approval needs "
                        "the services to carry a tag of their own",
                        ts->service_tags[0]);
    const yaml_node_t *backend = cfg_seen_node(&seen, "backend");
    if (strncmp(ts->backend, "http://", 7) == 0) {
        if (!ts->insecure_loopback_backend)
            return cfg_fail(p, backend,
                            "tailscale.backend: \"%s\" is a TCP port any local user can connect "
                            "to and send forged identity headers; use unix:/path, or set "
                            "insecure_loopback_backend: true if you accept that",
                            cfg_show(p, ts->backend));
        cfg_warn(p, backend,
                 "tailscale.backend: %s can be reached by every local user, who could forge "
                 "tailnet identity; a unix: socket cannot",
                 ts->backend);
    }
    const yaml_node_t *group = cfg_seen_node(&seen, "backend_group");
    if (group && strncmp(ts->backend, "unix:", 5) != 0)
        return cfg_fail(p, group,
                        "tailscale.backend_group: only a unix: backend has a group (the backend "
                        "is %s)",
                        cfg_show(p, ts->backend));
    long gid = -1;
    if (group && cfg_read_group(p, group, "tailscale.backend_group", ts->backend_group, &gid) < 0)
        return -1;
    for (size_t i = 0; ts->funnel.enabled && i < ts->funnel.npaths; i++)
        if (strcmp(ts->funnel.paths[i], "/") != 0 && strncmp(ts->backend, "unix:", 5) == 0)
            return cfg_fail(p, cfg_seen_node(&seen, "funnel"),
                            "tailscale.funnel.paths: \"%s\" needs an http:// backend: tailscaled "
                            "removes a path prefix before proxying, and cannot put it back "
                            "towards %s; publish \"/\" or use backend: http://127.0.0.1:PORT",
                            cfg_show(p, ts->funnel.paths[i]), ts->backend);
    /* Funnel requests come through the backend as well. */
    if (!ts->services && !ts->funnel.enabled) {
        if (ts->hairpin.enabled)
            return add_hairpin(p, cfg_seen_node(&seen, "hairpin"));
        return 0;
    }
    if (add_backend_listener(p, backend ? backend : n, gid) < 0)
        return -1;
    const yaml_node_t *hairpin = cfg_seen_node(&seen, "hairpin");
    if (ts->hairpin.enabled && add_hairpin(p, hairpin) < 0)
        return -1;
    for (size_t i = 0; ts->services && i < p->c->nservices; i++) {
        const struct config_service *svc = &p->c->services[i];
        if (svc->upstream && !tsjson_service_label_valid(svc->name))
            return cfg_failat(p, (size_t)svc->line,
                              "service \"%s\" cannot be published as a Tailscale Service "
                              "(svc:%s): the name must be a DNS label",
                              cfg_show(p, svc->name), cfg_show(p, svc->name));
    }
    return 0;
}
