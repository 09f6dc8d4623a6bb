/* config_auth.c - the "auth:" section: forward-auth providers. */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

/* A header name as written in copy_headers: an HTTP token. */
static bool header_name_valid(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static int check_copy_header(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                             char *const *prev, size_t nprev)
{
    if (!header_name_valid(v))
        return cfg_fail(p, n, "%s: \"%s\" is not a header name", what, cfg_show(p, v));
    return 0;
}

static const struct cfg_choice styles[] = {
    {"forward-auth", AUTH_FORWARD}, {"auth-request", AUTH_REQUEST}, {NULL, 0}};
static const char *const default_copy[] = {"Remote-User", "Remote-Groups", "Remote-Name",
                                           "Remote-Email", NULL};

#define AT(f) CFG_AT(struct config_auth, f)
static const struct cfg_key auth_keys[] = {
    {"url", CFG_LATER, .off = 0}, /* read_url, with tls_ca */
    {"tls_ca", CFG_LATER, .off = 0},
    {"style", CFG_ENUM, AT(style), AUTH_FORWARD, .choices = styles},
    {"timeout", CFG_DURATION, AT(timeout_ms), TIMEOUT_AUTH_MS_DEFAULT},
    {"cache", CFG_DURATION, AT(cache_ms), 0},
    {"portal", CFG_STRING, AT(portal)},
    {"copy_headers", CFG_STRINGS, AT(copy_headers), .off_n = offsetof(struct config_auth, ncopy),
     .max = LIMIT_AUTH_COPY_HEADERS, .def_list = default_copy, .item = check_copy_header},
};

/* The provider's URL, and tls_ca for an https:// one: its endpoint. */
static int read_url(struct parser *p, struct config_auth *a, const yaml_node_t *url_node,
                    const yaml_node_t *ca_node)
{
    char what[LIMIT_SERVICE_NAME + 64];
    const char *url;
    static __thread struct upstream_url u;
    p->svc_tls_ca = NULL;
    p->svc_tls_ca_node = ca_node;
    p->svc_tls_insecure = false;
    if (ca_node) {
        snprintf(what, sizeof what, "auth.%s.tls_ca", a->name);
        if (cfg_want_string(p, ca_node, what, &p->svc_tls_ca) < 0)
            return -1;
    }
    snprintf(what, sizeof what, "auth.%s.url", a->name);
    if (cfg_want_string(p, url_node, what, &url) < 0 ||
        cfg_read_upstream_url(p, url_node, url, what, true, &u) < 0)
        return -1;
    for (const char *q = u.path; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '#')
            return cfg_fail(p, url_node, "%s: invalid character in the path of \"%s\"", what,
                            cfg_show(p, url));
    const char *authority = strstr(url, "://") + 3;
    a->url = cfg_strdup(p, url);
    a->path = cfg_strdup(p, u.path[0] == '?' ? "/" : u.path);
    a->host = cfg_strndup(p, authority, strcspn(authority, "/?"));
    a->up.key = cfg_strdup(p, u.key);
    if (!a->url || !a->path || !a->host || !a->up.key)
        return cfg_fail_oom(p);
    if (u.path[0] == '?') /* "http://h:1?x" : the path is "/" and the query follows */
        return cfg_fail(p, url_node, "%s: write the path before the query in \"%s\"", what,
                        cfg_show(p, url));
    if (ca_node && u.kind != UPSTREAM_HTTPS)
        return cfg_fail(p, ca_node, "auth.%s.tls_ca applies to an https:// url", a->name);
    a->up.kind = u.kind;
    a->up.addr = u.addr;
    if (u.kind == UPSTREAM_HTTPS) {
        a->up.tls_name = cfg_strdup(p, u.tls_name);
        if (!a->up.tls_name)
            return cfg_fail_oom(p);
        if (!(a->up.tls_ctx = cfg_client_ctx(p)))
            return -1;
    }
    return 0;
}

/* What the keys say together, once each is read. */
static int check_provider(struct parser *p, struct config_auth *a, const struct cfg_seen *seen)
{
    char what[LIMIT_SERVICE_NAME + 64];
    const yaml_node_t *timeout = cfg_seen_node(seen, "timeout");
    const yaml_node_t *cache = cfg_seen_node(seen, "cache");
    const yaml_node_t *portal = cfg_seen_node(seen, "portal");
    snprintf(what, sizeof what, "auth.%s.timeout", a->name);
    if (a->timeout_ms < TIMEOUT_AUTH_MS_WARN)
        cfg_warn(p, timeout,
                 "%s is under %ds: Authelia answers a failed Basic login only after at least 2s, "
                 "so those logins would get 504 instead of 401",
                 what, TIMEOUT_AUTH_MS_WARN / 1000);
    snprintf(what, sizeof what, "auth.%s.cache", a->name);
    if (a->cache_ms > LIMIT_AUTH_CACHE_MS_MAX)
        return cfg_fail(p, cache, "%s: at most 5m (a logout must not take longer to apply)", what);
    if (!portal)
        return 0;
    snprintf(what, sizeof what, "auth.%s.portal", a->name);
    if (a->style != AUTH_REQUEST)
        return cfg_fail(p, portal, "%s applies to style: auth-request only", what);
    if (strncmp(a->portal, "https://", 8) != 0 && strncmp(a->portal, "http://", 7) != 0)
        return cfg_fail(p, portal, "%s: expected an http:// or https:// URL, not \"%s\"", what,
                        cfg_show(p, a->portal));
    for (const char *q = a->portal; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return cfg_fail(p, portal, "%s: invalid character in \"%s\"", what,
                            cfg_show(p, a->portal));
    return 0;
}

static int parse_auth_provider(struct parser *p, struct config_auth *a, const yaml_node_t *k,
                               const yaml_node_t *v)
{
    char what[LIMIT_SERVICE_NAME + 64], where[LIMIT_SERVICE_NAME + 48];
    const char *name = cfg_scalar(k);
    a->line = (int)k->start_mark.line + 1;
    if (!(a->name = cfg_entry_name(p, k, "auth provider")))
        return -1;
    snprintf(where, sizeof where, "in auth provider \"%s\"", name);
    snprintf(what, sizeof what, "auth.%s", name);
    struct cfg_seen seen;
    if (cfg_keys_collect(p, v, auth_keys, CFG_NKEYS(auth_keys), what, where, &seen) < 0)
        return -1;
    const yaml_node_t *url = cfg_seen_node(&seen, "url");
    if (!url)
        return cfg_fail(p, k, "auth provider \"%s\" has no url", name);
    if (read_url(p, a, url, cfg_seen_node(&seen, "tls_ca")) < 0 ||
        cfg_keys_apply(p, &seen, a, what) < 0)
        return -1;
    return check_provider(p, a, &seen);
}

/* "auth: {NAME: {url, style, timeout, copy_headers, portal, cache}}" */
int cfg_parse_auth(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    if (cfg_want_mapping(p, n, "auth", false) < 0)
        return -1;
    c->auths = cfg_calloc(p, cfg_map_len(n) ? cfg_map_len(n) : 1, sizeof *c->auths);
    if (!c->auths)
        return cfg_fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        struct config_auth *a = &c->auths[c->nauths];
        a->idx = c->nauths++;
        if (parse_auth_provider(p, a, cfg_node(p, pair->key), cfg_node(p, pair->value)) < 0)
            return -1;
    }
    return 0;
}
