/* tsimport_emit.c - the portico configuration for the tsnsrv services
 * read by tsimport.c and tsimport_read.c.
 *
 * Every setting is either carried over to a portico key, or named in a
 * comment under its service: "not carried over" when portico does not do
 * what tsnsrv did with it, "not needed" when it belonged to tsnsrv's own
 * tailnet node (tailscaled's job here). Settings left at tsnsrv's default
 * say nothing. The services are published as Tailscale Services; the
 * other ways onto the tailnet are in docs/migrate-from-tsnsrv.md. */
#include "tsimport_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route.h"
#include "strbuf.h"

#define AUTH_PATH_DEFAULT "/api/authz/forward-auth" /* the fork's -authPath */
#define AUTH_TIMEOUT_MS   5000                      /* the fork's -authTimeout, portico's too */
#define WHOIS_TIMEOUT_MS  1000                      /* tsnsrv's -whoisTimeout */
#define MAX_LIST          64                        /* prefixes, headers of one service */

/* One service as tsnsrv would run it. */
struct eff {
    const char *name, *url, *url_written, *unix_addr, *tcp_addr;
    size_t line, url_line;
    bool strip, rph, rph_set, insecure, funnel, funnel_only, suppress_whois, bypass;
    const char *auth_url, *auth_path, *auth_timeout;
    size_t auth_line;
    const char *tag; /* the one tag of this service; NULL: none */
    size_t ntags;    /* -tag settings (tsnsrv lets them repeat) */
    const struct tsi_setting *prefix[MAX_LIST], *header[MAX_LIST], *copy[MAX_LIST];
    size_t nprefix, nheader, ncopy;
};

struct provider {
    char name[64];
    char *url;
    long timeout_ms;
    char *copy; /* "[A, B]" */
};

struct emitter {
    struct tsi_input *in;
    struct strbuf out, notes, summary;
    struct tsimport_result *res;
    struct provider *prov;
    size_t nprov;
    const struct eff *svc;    /* the one being written */
    const struct eff *funnel; /* the one service carried to tailscale.funnel, or NULL */
    const char *service_tag;  /* every service's one tag, carried to service_tags, or NULL */
};

/* ---- text ------------------------------------------------------------------------- */

/* A YAML double-quoted scalar: JSON's escapes, which YAML shares. */
static void put_quoted(struct strbuf *b, const char *s)
{
    strbuf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            strbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            strbuf_printf(b, "\\u%04x", *p);
        else
            strbuf_printf(b, "%c", *p);
    }
    strbuf_printf(b, "\"");
}

/* User text in a comment: one line, bounded. */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < cap; p++)
        buf[o++] = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
    if (strlen(s) >= cap - 4)
        memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

enum note_kind {
    NOTE_DROPPED,  /* portico does not do what tsnsrv did with it */
    NOTE_UNNEEDED, /* it set up tsnsrv's own tailnet node */
    NOTE_KEPT,     /* carried over, in a way worth a word */
};

/* A comment under the current service, and its line on stderr. what names
 * the setting when set is NULL or its value would say nothing. */
__attribute__((format(printf, 5, 6))) static void note(struct emitter *e, enum note_kind kind,
                                                       const struct tsi_setting *set,
                                                       const char *what, const char *fmt, ...)
{
    static const char *const kinds[] = {"not carried over", "not needed", "note"};
    char why[1024], val[160], where[32] = "", flag[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (set && set->line)
        snprintf(where, sizeof where, " (line %zu)", set->line);
    if (!what && set) {
        if (set->written)
            snprintf(flag, sizeof flag, "%s: %s", set->written, shown(set->value, val, sizeof val));
        else
            snprintf(flag, sizeof flag, "-%s %s", set->key, shown(set->value, val, sizeof val));
        what = flag;
    }
    strbuf_printf(&e->notes, "    # %s: %s%s: %s\n", kinds[kind], what, where, why);
    strbuf_printf(&e->summary, "%s: %s: %s%s: %s\n", e->svc->name, kinds[kind], what, where, why);
    if (kind == NOTE_DROPPED)
        e->res->ndropped++;
    else if (kind == NOTE_UNNEEDED)
        e->res->nunneeded++;
}

static bool is_true(const struct tsi_setting *s)
{
    return strcmp(s->value, "true") == 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* ---- one service ---------------------------------------------------------------- */

static int collect(struct emitter *e, const struct tsi_service *s, struct eff *f)
{
    struct tsi_input *in = e->in;
    /* tsnsrv's defaults; the fork's -config reads absent booleans as false
     * (config.go ToTailnetSrv), whatever its comments say */
    f->strip = f->rph = in->from != TSIMPORT_YAML;
    f->line = s->line;
    for (size_t i = 0; i < s->n; i++) {
        const struct tsi_setting *t = &s->set[i];
        const char *k = t->key;
        bool on = is_true(t);
#define ADD(list, n)                                                                               \
    do {                                                                                           \
        if (f->n == MAX_LIST)                                                                      \
            return tsi_fail(in, t->line, "more than %d -%s in one service", MAX_LIST, k);          \
        f->list[f->n++] = t;                                                                       \
    } while (0)
        if (!strcmp(k, "name"))
            f->name = t->value, f->line = t->line ? t->line : f->line;
        else if (!strcmp(k, "toURL"))
            f->url = t->value, f->url_line = t->line, f->url_written = t->written;
        else if (!strcmp(k, "upstreamUnixAddr"))
            f->unix_addr = *t->value ? t->value : NULL;
        else if (!strcmp(k, "upstreamTCPAddr"))
            f->tcp_addr = *t->value ? t->value : NULL;
        else if (!strcmp(k, "stripPrefix"))
            f->strip = on;
        else if (!strcmp(k, "recommendedProxyHeaders"))
            f->rph = on, f->rph_set = true;
        else if (!strcmp(k, "insecureHTTPS"))
            f->insecure = on;
        else if (!strcmp(k, "funnel"))
            f->funnel = on;
        else if (!strcmp(k, "funnelOnly"))
            f->funnel_only = on;
        else if (!strcmp(k, "suppressWhois"))
            f->suppress_whois = on;
        else if (!strcmp(k, "authBypassForTailnet"))
            f->bypass = on;
        else if (!strcmp(k, "authURL"))
            f->auth_url = *t->value ? t->value : NULL, f->auth_line = t->line;
        else if (!strcmp(k, "authPath"))
            f->auth_path = t->value;
        else if (!strcmp(k, "authTimeout"))
            f->auth_timeout = t->value;
        else if (!strcmp(k, "tag")) {
            if (!f->tag || strcmp(f->tag, t->value) != 0)
                f->ntags++;
            f->tag = t->value;
        } else if (!strcmp(k, "prefix"))
            ADD(prefix, nprefix);
        else if (!strcmp(k, "upstreamHeader"))
            ADD(header, nheader);
        else if (!strcmp(k, "authCopyHeader"))
            ADD(copy, ncopy);
#undef ADD
    }
    if (!f->name || !*f->name)
        return tsi_fail(in, s->line, "tsnsrv needs a -name");
    char *lower = arena_strdup(in->arena, f->name);
    if (!lower)
        return tsi_oom(in);
    for (char *q = lower; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q + 32);
    if (!valid_name(lower))
        return tsi_fail(in, f->line,
                        "-name \"%.80s\" cannot be a portico service name (1 to 63 letters, digits "
                        "and '-', not at either end), nor a tailnet name",
                        f->name);
    f->name = lower;
    if (!f->url)
        return tsi_fail(in, f->line, "service \"%s\" has no destination URL", f->name);
    if (f->unix_addr && f->tcp_addr)
        return tsi_fail(in, f->line,
                        "service \"%s\": -upstreamTCPAddr and -upstreamUnixAddr cannot be combined",
                        f->name);
    if (f->funnel_only && !f->funnel)
        return tsi_fail(in, f->line, "service \"%s\": -funnel is required if -funnelOnly is set",
                        f->name);
    return 0;
}

/* The unneeded and the dropped settings that need no more than a line. */
static void note_settings(struct emitter *e, const struct tsi_service *s, const struct eff *f)
{
    static const char node_job[] = "it configured tsnsrv's own tailnet node; portico has none, "
                                   "tailscaled on this host serves the Services";
    for (size_t i = 0; i < s->n; i++) {
        const struct tsi_setting *t = &s->set[i];
        const char *k = t->key, *v = t->value;
        bool on = is_true(t);
        if (!strcmp(k, "authkeyPath") || !strcmp(k, "stateDir") || !strcmp(k, "package") ||
            !strcmp(k, "loginServerUrl") || !strcmp(k, "supplementalGroups"))
            note(e, NOTE_UNNEEDED, t, NULL, "%s", node_job);
        else if ((!strcmp(k, "ephemeral") || !strcmp(k, "tsnetVerbose")) && on)
            note(e, NOTE_UNNEEDED, t, NULL, "%s", node_job);
        else if (!strcmp(k, "tag") && !e->service_tag)
            note(e, NOTE_UNNEEDED, t, NULL,
                 "it tagged tsnsrv's own node; portico tags its Services with one tag for all "
                 "(tailscale.service_tags) and the node with tailscale.host_tags");
        else if (!strcmp(k, "timeout") && tsi_parse_duration(v) != 60000)
            note(e, NOTE_UNNEEDED, t, NULL, "it bounded tsnsrv's own connection to the tailnet");
        else if (!strcmp(k, "suppressTailnetDialer") && on)
            note(e, NOTE_UNNEEDED, t, NULL,
                 "portico always dials upstreams from the host's network");
        else if (!strcmp(k, "listenAddr") && strcmp(v, ":443") != 0)
            note(e, NOTE_DROPPED, t, NULL,
                 "a Tailscale Service is published on port 443 (another port: a listen address "
                 "on the node's tailnet address, docs/split-dns.md)");
        else if (!strcmp(k, "plaintext") && on)
            note(e, NOTE_DROPPED, t, NULL,
                 "tailscaled serves a Service over HTTPS only (plain HTTP on the tailnet: a "
                 "listen address on the node's tailnet address, docs/split-dns.md)");
        else if ((!strcmp(k, "certificateFile") || !strcmp(k, "keyFile") ||
                  !strcmp(k, "acmeHost")) &&
                 *v)
            note(e, NOTE_DROPPED, t, NULL,
                 "a Service gets tailscaled's certificate; your own goes in tls.certs with "
                 "split DNS (docs/split-dns.md)");
        else if (!strcmp(k, "whoisTimeout") && tsi_parse_duration(v) != WHOIS_TIMEOUT_MS)
            note(e, NOTE_DROPPED, t, NULL,
                 "portico's whois call times out after 5s and its answers are cached per worker");
        else if (!strcmp(k, "readHeaderTimeout") && tsi_parse_duration(v) != 0)
            note(e, NOTE_DROPPED, t, NULL,
                 "limits.header_timeout (default 10s) bounds request heads for every service");
        else if (!strcmp(k, "upstreamAllowInsecureCiphers") && on)
            note(e, NOTE_DROPPED, t, NULL,
                 "portico offers OpenSSL's default ciphers to https upstreams; RSA key exchange "
                 "is not re-enabled");
        else if (!strcmp(k, "enableBugReports") && on)
            note(e, NOTE_DROPPED, t, NULL,
                 "tsnsrv's /bugreport endpoint has no portico counterpart");
        else if (!strcmp(k, "prometheusAddr") && *v)
            note(e, NOTE_DROPPED, t, NULL,
                 "every service's metrics are on metrics.listen (portico_* names, per service)");
        else if (!strcmp(k, "authInsecureHTTPS") && on)
            note(e, NOTE_DROPPED, t, NULL,
                 "auth providers are always verified; give the provider tls_ca: CA-FILE");
        else if (!strcmp(k, "urlParts") || !strcmp(k, "extraArgs"))
            ; /* the module built toURL and the flags from them */
        else if (!tsi_flag_kind(k) && strcmp(k, "toURL") != 0)
            note(e, NOTE_DROPPED, t, k,
                 e->in->from == TSIMPORT_NIXJSON ? "not an option of tsnsrv's NixOS module"
                                                 : "tsnsrv ignores this key");
    }
    (void)f;
}

/* The upstream URL and the settings that depend on it: routes for the
 * prefixes, the Host header, TLS verification. */
static int put_upstream(struct emitter *e, const struct eff *f, struct strbuf *b)
{
    struct tsi_input *in = e->in;
    struct tsi_url u;
    /* the URL is the last word of a command line: shown as "URL" there */
    const struct tsi_setting url_set = {"toURL", f->url, f->url_line,
                                        f->url_written ? f->url_written : "URL"};
    if (tsi_url_parse(f->url, &u) < 0)
        return tsi_fail(
            in, f->url_line ? f->url_line : f->line,
            "service \"%s\": destination URL \"%.120s\" is not http://host[:port][/path] "
            "or https://...",
            f->name, f->url);
    char up[1200];
    if (f->unix_addr) {
        if (f->unix_addr[0] != '/')
            return tsi_fail(in, f->line,
                            "service \"%s\": -upstreamUnixAddr \"%.80s\" must be an "
                            "absolute path",
                            f->name, f->unix_addr);
        snprintf(up, sizeof up, "unix:%s", f->unix_addr);
        if (u.https)
            note(e, NOTE_DROPPED, &url_set, NULL,
                 "portico speaks plain HTTP over a unix: upstream, without TLS");
    } else if (f->tcp_addr) {
        snprintf(up, sizeof up, "%s://%s", u.https ? "https" : "http", f->tcp_addr);
        if (u.https)
            note(e, NOTE_DROPPED, &url_set, NULL,
                 "with -upstreamTCPAddr, portico verifies the certificate for that address, "
                 "tsnsrv for the URL's host");
    } else {
        bool v6 = u.host[0] != '[' && strchr(u.host, ':');
        snprintf(up, sizeof up, "%s://%s%s%s:%s", u.https ? "https" : "http", v6 ? "[" : "", u.host,
                 v6 ? "]" : "", u.port);
    }
    if (strlen(up) + 1 == sizeof up) /* longer than any upstream portico takes */
        return tsi_fail(in, f->line, "service \"%s\": the upstream address is too long", f->name);
    if (u.userinfo)
        note(e, NOTE_DROPPED, &url_set, NULL, "credentials in the URL are not sent");
    if (u.query)
        note(e, NOTE_DROPPED, &url_set, NULL, "the URL's query is not added to requests");
    strbuf_printf(b, "    upstream: ");
    put_quoted(b, up);
    strbuf_printf(b, "\n");
    if (u.https && f->insecure && !f->unix_addr)
        strbuf_printf(b, "    tls_insecure_skip_verify: true\n");
    if (!f->rph) {
        /* Go's ReverseProxy SetURL: the upstream gets the URL's host as Host */
        strbuf_printf(b, "    host_header: ");
        put_quoted(b, u.authority);
        strbuf_printf(b, "\n");
        if (!f->rph_set)
            note(e, NOTE_KEPT, NULL, "recommendedProxyHeaders",
                 "absent, which tsnsrv -config reads as false: the upstream got the URL's host "
                 "as Host, so host_header keeps that; remove it to send the caller's Host");
    }

    /* Prefixes: tsnsrv strips a matched prefix, then joins what is left to
     * the URL's path. portico strips in a route and has no upstream path. */
    const char *path = strcmp(u.path, "/") == 0 ? "" : u.path;
    bool routed_all = true, any_tailnet = false;
    char prefixes[1024] = "";
    size_t po = 0;
    struct strbuf routes = {0}; /* owned: freed below */
    char seen[MAX_LIST][512];
    size_t nseen = 0;
    for (size_t i = 0; i < f->nprefix; i++) {
        const char *p = f->prefix[i]->value;
        if (!strncmp(p, "funnel:", 7))
            continue;
        if (!strncmp(p, "tailnet:", 8))
            p += 8;
        if (!strcmp(p, "/") || !*p)
            continue;
        any_tailnet = true;
        po += (size_t)snprintf(prefixes + po, po < sizeof prefixes ? sizeof prefixes - po : 0,
                               "%s%s", po ? ", " : "", p);
        if (po >= sizeof prefixes)
            po = sizeof prefixes - 1;
        size_t plen = strlen(p);
        bool same =
            *path && (!strcmp(path, p) || (strlen(path) + 1 == plen &&
                                           !strncmp(path, p, plen - 1) && p[plen - 1] == '/'));
        if (!f->strip || same) {
            if (*path && !same)
                routed_all = false;
            continue; /* the request's path goes upstream as it is */
        }
        if (*path) {
            routed_all = false;
            continue;
        }
        char norm[512];
        bool ok = p[0] == '/' && strlen(p) < sizeof norm;
        for (const char *q = p; ok && *q; q++)
            ok = (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f && *q != '?' && *q != '#';
        if (!ok || route_path_normalize(p, strlen(p), norm, sizeof norm) < 0 ||
            !strcmp(norm, "/")) {
            routed_all = false;
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < nseen; k++)
            dup |= !strcmp(seen[k], norm);
        if (dup)
            continue;
        memcpy(seen[nseen++], norm, strlen(norm) + 1);
        strbuf_printf(&routes, "      - {prefix: ");
        put_quoted(&routes, norm);
        strbuf_printf(&routes, ", upstream: ");
        put_quoted(&routes, up);
        strbuf_printf(&routes, ", strip_prefix: true}\n");
    }
    if (routes.s)
        strbuf_printf(b, "    routes:\n%s", routes.s);
    bool oom = routes.oom;
    free(routes.s);
    if (oom)
        return tsi_oom(in);
    if (any_tailnet && !f->funnel_only)
        note(e, NOTE_DROPPED, NULL, "-prefix",
             "tsnsrv answered 404 outside %s; portico serves every path of the service (keep "
             "callers out with allow:, or auth: with auth_skip:)",
             prefixes);
    if (*path && !routed_all)
        note(e, NOTE_DROPPED, &url_set, NULL,
             "the URL's path %s was put in front of each request's path; portico sends the "
             "request's path as it is (upstream paths are not supported)",
             path);
    else if (*path && !any_tailnet)
        note(e, NOTE_DROPPED, &url_set, NULL,
             "the URL's path %s was put in front of each request's path; portico sends the "
             "request's path as it is (upstream paths are not supported)",
             path);
    return 0;
}

static void put_headers(struct emitter *e, const struct eff *f, struct strbuf *b)
{
    static const char *const reserved[] = {
        "connection", "keep-alive",     "proxy-connection",   "te",
        "trailer",    "upgrade",        "proxy-authenticate", "proxy-authorization",
        "host",       "content-length", "transfer-encoding",
    };
    bool any = false;
    for (size_t i = 0; i < f->nheader; i++) {
        const struct tsi_setting *t = f->header[i];
        const char *sep = strstr(t->value, ": ");
        size_t nlen = sep ? (size_t)(sep - t->value) : strlen(t->value) - 1;
        const char *val = sep ? sep + 2 : "";
        char name[256];
        if (nlen == 0 || nlen >= sizeof name) {
            note(e, NOTE_DROPPED, t, NULL, "not a header portico can send");
            continue;
        }
        memcpy(name, t->value, nlen);
        name[nlen] = '\0';
        bool ok = true;
        for (size_t k = 0; ok && k < nlen; k++)
            ok = name[k] > 0x20 && name[k] < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", name[k]);
        for (const char *q = val; ok && *q; q++)
            ok = !(((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f);
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            dup |= !strncasecmp(f->header[k]->value, name, nlen) &&
                   !strncmp(f->header[k]->value + nlen, ": ", 2);
        if (!strcasecmp(name, "Host")) {
            note(e, NOTE_UNNEEDED, t, NULL,
                 "Go's HTTP client ignores a Host header set this way: tsnsrv never sent it");
            continue;
        }
        if (!strncasecmp(name, "X-Tailscale-", 12)) {
            note(e, NOTE_UNNEEDED, t, NULL,
                 "tsnsrv removed every X-Tailscale- header it sent anyway");
            continue;
        }
        for (size_t k = 0; ok && k < sizeof reserved / sizeof reserved[0]; k++)
            ok = strcasecmp(name, reserved[k]) != 0;
        if (!ok || dup) {
            note(e, NOTE_DROPPED, t, NULL,
                 dup ? "a second value for the header: portico sets each header once"
                     : "portico does not let the configuration set this header");
            continue;
        }
        if (!any)
            strbuf_printf(b, "    headers:\n");
        any = true;
        strbuf_printf(b, "      ");
        put_quoted(b, name);
        strbuf_printf(b, ": ");
        put_quoted(b, val);
        strbuf_printf(b, "\n");
    }
}

/* The fork's forward auth: one provider per distinct URL, timeout and
 * header list, named after the auth server's host. */
static int put_auth(struct emitter *e, const struct eff *f, struct strbuf *b)
{
    struct tsi_input *in = e->in;
    if (!f->auth_url)
        return 0;
    struct tsi_url u;
    if (tsi_url_parse(f->auth_url, &u) < 0)
        return tsi_fail(in, f->auth_line ? f->auth_line : f->line,
                        "service \"%s\": -authURL \"%.120s\" is not http://host[:port] or "
                        "https://...",
                        f->name, f->auth_url);
    for (char *q = u.authority; *q; q++) /* one provider for Authelia and authelia */
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q + 32);
    const char *apath = f->auth_path && *f->auth_path ? f->auth_path : AUTH_PATH_DEFAULT;
    char url[1600];
    int ulen = snprintf(url, sizeof url, "%s://%s%s%s", u.https ? "https" : "http", u.authority,
                        apath[0] == '/' ? "" : "/", apath);
    if (ulen < 0 || (size_t)ulen >= sizeof url)
        return tsi_fail(in, f->auth_line ? f->auth_line : f->line,
                        "service \"%s\": -authURL with -authPath is too long", f->name);
    if (*u.path && strcmp(u.path, "/") != 0)
        note(e, NOTE_KEPT, NULL, "-authURL path",
             "tsnsrv used only the scheme and host of -authURL, then -authPath, and so does "
             "this url");
    long tmo = f->auth_timeout ? tsi_parse_duration(f->auth_timeout) : AUTH_TIMEOUT_MS;
    if (tmo <= 0)
        tmo = AUTH_TIMEOUT_MS; /* the fork: 0 means its default */
    struct strbuf copy = {0};
    strbuf_printf(&copy, "[");
    for (size_t i = 0; i < f->ncopy; i++) {
        const char *v = f->copy[i]->value;
        size_t n = strstr(v, ": ") ? (size_t)(strstr(v, ": ") - v) : strlen(v) - 1;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), v);
        strbuf_printf(&copy, "%s", i ? ", " : "");
        put_quoted(&copy, name);
    }
    strbuf_printf(&copy, "]");
    if (copy.oom) {
        free(copy.s);
        return tsi_oom(in);
    }
    struct provider *p = NULL;
    for (size_t i = 0; i < e->nprov && !p; i++)
        if (!strcmp(e->prov[i].url, url) && e->prov[i].timeout_ms == tmo &&
            !strcmp(e->prov[i].copy, copy.s))
            p = &e->prov[i];
    if (!p) {
        if (e->nprov % 16 == 0) {
            struct provider *np = arena_calloc(in->arena, e->nprov + 16, sizeof *np);
            if (!np) {
                free(copy.s);
                return tsi_oom(in);
            }
            if (e->nprov)
                memcpy(np, e->prov, e->nprov * sizeof *np);
            e->prov = np;
        }
        p = &e->prov[e->nprov++];
        char base[40];
        size_t o = 0;
        for (const char *q = u.host; *q && *q != '.' && o < 24; q++)
            if ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-')
                base[o++] = *q;
            else if (*q >= 'A' && *q <= 'Z')
                base[o++] = (char)(*q + 32);
        while (o && base[o - 1] == '-')
            o--;
        base[o] = '\0';
        size_t skip = strspn(base, "-");
        if (!base[skip] || strspn(base + skip, "0123456789") == strlen(base + skip))
            snprintf(base, sizeof base, "auth");
        else
            memmove(base, base + skip, strlen(base + skip) + 1);
        snprintf(p->name, sizeof p->name, "%s", base);
        for (unsigned k = 2;; k++) {
            bool taken = false;
            for (size_t i = 0; i + 1 < e->nprov; i++)
                taken |= !strcmp(e->prov[i].name, p->name);
            if (!taken)
                break;
            snprintf(p->name, sizeof p->name, "%s-%u", base, k);
        }
        p->url = arena_strdup(in->arena, url);
        p->copy = arena_strdup(in->arena, copy.s);
        p->timeout_ms = tmo;
        if (!p->url || !p->copy) {
            free(copy.s);
            return tsi_oom(in);
        }
    }
    free(copy.s);
    strbuf_printf(b, "    auth: %s\n", p->name);
    if (f->bypass)
        strbuf_printf(b, "    auth_bypass_tailnet: true\n");
    return 0;
}

/* Funnel reaches every path: no prefix, or only "/" ones, applies to it. */
static bool funnel_all_paths(const struct eff *f)
{
    for (size_t i = 0; i < f->nprefix; i++) {
        const char *p = f->prefix[i]->value;
        if (!strncmp(p, "tailnet:", 8))
            continue;
        if (strcmp(p + (strncmp(p, "funnel:", 7) ? 0 : 7), "/") != 0)
            return false;
    }
    return true;
}

static void put_funnel(struct emitter *e, const struct eff *f)
{
    if (e->funnel == f) {
        note(e, NOTE_KEPT, NULL, "-funnel",
             "published as tailscale.funnel on the node's own name, which must be among this "
             "service's hosts: add it (portico tailscale plan names it)");
        return;
    }
    char paths[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < f->nprefix; i++) {
        const char *p = f->prefix[i]->value;
        if (!strncmp(p, "tailnet:", 8))
            continue;
        if (!strncmp(p, "funnel:", 7))
            p += 7;
        char v[200];
        o += (size_t)snprintf(paths + o, o < sizeof paths ? sizeof paths - o : 0, "%s%s",
                              o ? ", " : "", shown(p, v, sizeof v));
        if (o >= sizeof paths)
            o = sizeof paths - 1;
    }
    note(e, NOTE_DROPPED, NULL, f->funnel_only ? "-funnel -funnelOnly" : "-funnel",
         "a Tailscale Service cannot be funnelled; one service per node can be, on the node's own "
         "name: tailscale: {funnel: {service: %s, paths: [%s]}} with that name in its hosts "
         "(docs/tailscale.md, Funnel; paths other than / need an http:// backend)%s",
         f->name, o ? paths : "/",
         f->funnel_only ? "; and this service is now on the tailnet too (restrict it with allow:)"
                        : "");
}

static int put_service(struct emitter *e, const struct tsi_service *s, const struct eff *f)
{
    struct strbuf body = {0};
    e->svc = f;
    e->notes.len = 0;
    if (e->notes.s)
        e->notes.s[0] = '\0';
    strbuf_printf(&body, "    hosts: [%s]\n", f->name);
    int r = put_upstream(e, f, &body);
    if (r == 0) {
        put_headers(e, f, &body);
        r = put_auth(e, f, &body);
    }
    if (r == 0) {
        if (f->funnel)
            put_funnel(e, f);
        note_settings(e, s, f);
        strbuf_printf(&e->out, "  %s:\n%s%s", f->name, e->notes.s ? e->notes.s : "",
                      body.s ? body.s : "");
        if (body.oom)
            r = tsi_oom(e->in);
    }
    free(body.s);
    return r;
}

int tsi_emit(struct tsi_input *in, struct tsimport_result *res)
{
    struct emitter e = {.in = in, .res = res};
    struct eff *f = arena_calloc(in->arena, in->n, sizeof *f);
    if (!f)
        return tsi_oom(in);
    memset(res, 0, sizeof *res);
    size_t nsuppress = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (collect(&e, &in->svc[i], &f[i]) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(f[k].name, f[i].name))
                return tsi_fail(in, f[i].line, "service \"%s\" appears twice", f[i].name);
        nsuppress += f[i].suppress_whois;
    }
    /* Funnel: one service per node, on the node's own name; carried over
     * when exactly one service had it, for all its paths. A tag: when
     * every service had the same single one (service_tags is one for all). */
    size_t nfunnel = 0;
    for (size_t i = 0; i < in->n; i++)
        if (f[i].funnel && ++nfunnel == 1)
            e.funnel = &f[i];
    if (nfunnel != 1 || e.funnel->funnel_only || !funnel_all_paths(e.funnel))
        e.funnel = NULL;
    e.service_tag = f[0].ntags == 1 ? f[0].tag : NULL;
    for (size_t i = 1; i < in->n && e.service_tag; i++)
        if (f[i].ntags != 1 || strcmp(f[i].tag, e.service_tag) != 0)
            e.service_tag = NULL;
    struct strbuf svcs = {0};
    int r = 0;
    for (size_t i = 0; i < in->n && r == 0; i++) {
        struct strbuf keep = e.out;
        e.out = svcs;
        r = put_service(&e, &in->svc[i], &f[i]);
        svcs = e.out;
        e.out = keep;
        if (r == 0 && f[i].suppress_whois && nsuppress < in->n) {
            /* one setting for all: say so on each service that wanted it off */
            e.svc = &f[i];
            note(&e, NOTE_DROPPED, NULL, "-suppressWhois",
                 "portico sends the identity headers for all services or none "
                 "(tailscale.identity_headers), and only some services had them off");
        }
    }
    if (r == 0) {
        struct strbuf *o = &e.out;
        strbuf_printf(o,
                      "# portico configuration from tsnsrv (%s), written by portico import "
                      "tsnsrv.\n"
                      "# Each service is published as the Tailscale Service svc:NAME (reached as\n"
                      "# NAME.<tailnet>.ts.net) by the tailscaled on this host: see "
                      "docs/tailscale.md\n"
                      "# (tag the node, define the services) and docs/migrate-from-tsnsrv.md.\n"
                      "# \"not carried over\": portico does not do what tsnsrv did with that "
                      "setting;\n"
                      "# \"not needed\": it set up tsnsrv's own tailnet node.\n",
                      in->name);
        if (in->prometheus_addr && *in->prometheus_addr) {
            char v[160];
            strbuf_printf(o,
                          "# not carried over: prometheusAddr %s: the metrics of every service "
                          "are on metrics.listen\n",
                          shown(in->prometheus_addr, v, sizeof v));
            strbuf_printf(&e.summary,
                          "(all): not carried over: prometheusAddr %s: the metrics of every "
                          "service are on metrics.listen\n",
                          v);
            res->ndropped++;
        }
        /* No listen: entry: tailnet callers come through tailscale.backend,
         * the one listener tsnsrv's setup needs. */
        strbuf_printf(o, "tailscale:\n"
                         "  services: true\n");
        if (nsuppress == in->n)
            strbuf_printf(o, "  identity_headers: false    # -suppressWhois\n");
        if (e.service_tag)
            strbuf_printf(o, "  service_tags: [\"%s\"]    # -tag\n", e.service_tag);
        if (e.funnel)
            strbuf_printf(o, "  funnel:\n    service: %s    # -funnel\n", e.funnel->name);
        if (e.nprov)
            strbuf_printf(o, "auth:\n");
        for (size_t i = 0; i < e.nprov; i++) {
            struct provider *p = &e.prov[i];
            strbuf_printf(o, "  %s:\n    url: ", p->name);
            put_quoted(o, p->url);
            strbuf_printf(o, "\n    style: forward-auth\n");
            if (p->timeout_ms != AUTH_TIMEOUT_MS)
                strbuf_printf(o, "    timeout: %ld%s\n",
                              p->timeout_ms % 1000 ? p->timeout_ms : p->timeout_ms / 1000,
                              p->timeout_ms % 1000 ? "ms" : "s");
            strbuf_printf(o, "    copy_headers: %s\n", p->copy);
        }
        strbuf_printf(o, "services:\n%s", svcs.s ? svcs.s : "");
        if (o->oom || svcs.oom || e.summary.oom || e.notes.oom)
            r = tsi_oom(in);
    }
    free(svcs.s);
    free(e.notes.s);
    if (r < 0) {
        free(e.out.s);
        free(e.summary.s);
        memset(res, 0, sizeof *res);
        return -1;
    }
    res->yaml = e.out.s;
    res->summary = e.summary.s ? e.summary.s : calloc(1, 1);
    res->nservices = in->n;
    if (!res->summary) {
        free(res->yaml);
        res->yaml = NULL;
        return tsi_oom(in);
    }
    return 0;
}
