/* servecfg.c - portico's Tailscale Services merged into tailscaled's serve
 * configuration, with the AdvertiseServices list and a readable plan; the
 * rules are in servecfg.h. */
#include "servecfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "servecfg_int.h"
#include "strbuf.h"

static const char *const kind_names[] = {"https", "tcp", "passthrough"};

/* ---- checking what the caller asks for ----------------------------------- */

static bool plain_text(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return n > 0 && n <= LIMIT_TS_STRING_BYTES;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "HOST:PORT" with a port of 1 to 65535 and a non-empty host. */
static bool host_port_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return false;
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535)
            return false;
    }
    return port >= 1;
}

static int check_service(const struct servecfg_service *s, char *err, size_t errlen)
{
    if (!s->name || !tsjson_service_label_valid(s->name))
        return tsjson_errorf(
            err, errlen,
            "service \"%.80s\": a Tailscale service name must be a lower-case DNS label "
            "(letters, digits and '-', 1 to 63, not starting or ending with '-')",
            s->name ? s->name : "");
    if ((unsigned)s->kind > SERVECFG_PASSTHROUGH)
        return tsjson_errorf(err, errlen, "service %s: unknown kind", s->name);
    if (s->port == 0)
        return tsjson_errorf(err, errlen, "service %s: port 0 cannot be published", s->name);
    const char *b = s->backend ? s->backend : "";
    if (!plain_text(b))
        return tsjson_errorf(err, errlen,
                             "service %s: the backend \"%.80s\" is empty, too long or has "
                             "spaces or control characters",
                             s->name, b);
    bool unix_path = starts(b, "unix:/") && b[6];
    if (s->kind == SERVECFG_HTTP) {
        if (!unix_path && !starts(b, "http://") && !starts(b, "https://") &&
            !starts(b, "https+insecure://"))
            return tsjson_errorf(
                err, errlen,
                "service %s: an HTTP backend is unix:/PATH or http://HOST:PORT, not "
                "\"%.80s\"",
                s->name, b);
        if (s->proxy_protocol)
            return tsjson_errorf(err, errlen,
                                 "service %s: tailscaled sends a PROXY header only to TCP backends",
                                 s->name);
        return 0;
    }
    if (!unix_path && !host_port_ok(b))
        return tsjson_errorf(err, errlen,
                             "service %s: a TCP backend is HOST:PORT or unix:/PATH, not \"%.80s\"",
                             s->name, b);
    if (s->proxy_protocol && unix_path)
        return tsjson_errorf(
            err, errlen,
            "service %s: tailscaled does not send a PROXY header to a unix: backend; use "
            "a HOST:PORT backend",
            s->name);
    return 0;
}

/* ---- the entry portico writes for a service ------------------------------- */

static bool proxy_protocol_on(const struct servecfg_service *s, const struct servecfg_input *in)
{
    return s->kind != SERVECFG_HTTP && s->proxy_protocol &&
           tsjson_version_at_least(in->ts_major, in->ts_minor, TSJSON_PROXY_PROTOCOL_MAJOR,
                                   TSJSON_PROXY_PROTOCOL_MINOR);
}

static json_t *build_entry(const struct servecfg_service *s, const struct servecfg_input *in)
{
    char port[8], hostport[LIMIT_SERVICE_NAME + 256 + 8];
    snprintf(port, sizeof port, "%u", (unsigned)s->port);
    json_t *h = NULL;
    if (s->kind == SERVECFG_HTTP) {
        snprintf(hostport, sizeof hostport, "%s.%s:%s", s->name, in->suffix, port);
        h = json_pack("{s:{s:{s:b}},s:{s:{s:{s:{s:s}}}}}", "TCP", port, "HTTPS", 1, "Web", hostport,
                      "Handlers", "/", "Proxy", s->backend);
    } else if (proxy_protocol_on(s, in)) {
        h = json_pack("{s:{s:{s:s,s:i}}}", "TCP", port, "TCPForward", s->backend, "ProxyProtocol",
                      2);
    } else {
        h = json_pack("{s:{s:{s:s}}}", "TCP", port, "TCPForward", s->backend);
    }
    return h;
}

/* ---- reading existing entries ------------------------------------------------ */

static bool truthy(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

static const char *str_field(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The serve type of a port handler as tailscaled ranks it
 * (serveTypeFromPortHandler): 0 http, 1 https, 2 TLS-terminated TCP, 3 TCP,
 * -1 none. */
static int serve_type(const json_t *h)
{
    if (truthy(h, "HTTP"))
        return 0;
    if (truthy(h, "HTTPS"))
        return 1;
    if (str_field(h, "TerminateTLS")[0])
        return 2;
    if (str_field(h, "TCPForward")[0])
        return 3;
    return -1;
}

static const char *const serve_type_names[] = {"http", "https", "tls-terminated-tcp", "tcp"};

/* The proxy target of the "/" handler of web entry "*:PORT", or NULL. */
static const char *web_target(const json_t *entry, const char *port)
{
    const json_t *web = json_object_get(entry, "Web");
    if (!json_is_object(web))
        return NULL;
    const char *key;
    json_t *v;
    size_t plen = strlen(port);
    json_object_foreach((json_t *)web, key, v)
    {
        size_t klen = strlen(key);
        if (klen > plen && key[klen - plen - 1] == ':' && strcmp(key + klen - plen, port) == 0) {
            const json_t *root = json_object_get(json_object_get(v, "Handlers"), "/");
            const char *p = str_field(root, "Proxy");
            if (p[0])
                return p;
        }
    }
    return NULL;
}

/* Append up to max bytes of a string another tool wrote, control characters
 * shown as '?': a plan line stays one line and carries no terminal escape. */
static void sb_text(struct strbuf *b, const char *s, size_t max)
{
    char tmp[512];
    size_t n = 0;
    for (; n < max && n < sizeof tmp - 1 && s[n]; n++)
        tmp[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    tmp[n] = '\0';
    strbuf_printf(b, "%s", tmp);
}

static int port_cmp(const void *a, const void *b)
{
    long x = strtol(*(const char *const *)a, NULL, 10),
         y = strtol(*(const char *const *)b, NULL, 10);
    return x < y ? -1 : x > y;
}

/* One line's worth of what an entry does, e.g. "https 443 -> unix:/x". */
static void describe(struct strbuf *b, const json_t *entry)
{
    if (!json_is_object(entry)) {
        strbuf_printf(b, "(empty)");
        return;
    }
    if (truthy(entry, "Tun")) {
        strbuf_printf(b, "tun");
        return;
    }
    const json_t *tcp = json_object_get(entry, "TCP");
    size_t n = json_is_object(tcp) ? json_object_size(tcp) : 0;
    if (n == 0) {
        strbuf_printf(b, "(no ports)");
        return;
    }
    const char *ports[8];
    size_t np = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)tcp, key, v)
    {
        if (np < sizeof ports / sizeof ports[0])
            ports[np++] = key;
    }
    qsort(ports, np, sizeof ports[0], port_cmp);
    for (size_t i = 0; i < np; i++) {
        const json_t *h = json_object_get(tcp, ports[i]);
        int t = serve_type(h);
        strbuf_printf(b, "%s%s ", i ? ", " : "", t < 0 ? "?" : serve_type_names[t]);
        sb_text(b, ports[i], 16);
        const char *target = t >= 2 ? str_field(h, "TCPForward") : web_target(entry, ports[i]);
        if (target) {
            strbuf_printf(b, " -> ");
            sb_text(b, target, 300);
        }
        const json_t *pp = json_object_get(h, "ProxyProtocol");
        if (json_is_integer(pp) && json_integer_value(pp) != 0)
            strbuf_printf(b, " (PROXY v%lld)", (long long)json_integer_value(pp));
    }
    if (n > np)
        strbuf_printf(b, ", and %zu more ports", n - np);
}

/* True if changing existing into new is an update tailscaled refuses: a
 * port whose serve type changes, or TUN mixed with ports. */
static bool type_conflict(const json_t *existing, const json_t *new, const char **port, int *from,
                          int *to)
{
    if (!json_is_object(existing))
        return false;
    *port = NULL;
    if (truthy(existing, "Tun"))
        return true;
    const json_t *oldtcp = json_object_get(existing, "TCP");
    const char *key;
    json_t *h;
    json_object_foreach(json_object_get(new, "TCP"), key, h)
    {
        const json_t *old = json_is_object(oldtcp) ? json_object_get(oldtcp, key) : NULL;
        if (old && serve_type(old) != serve_type(h)) {
            *port = key;
            *from = serve_type(old);
            *to = serve_type(h);
            return true;
        }
    }
    return false;
}

/* True if any handler of a foreign entry goes to one of portico's HTTP
 * backends: probably portico's own, published before the state was lost. */
static bool routes_to_portico(const json_t *entry, const struct servecfg_input *in)
{
    const json_t *web = json_object_get(entry, "Web");
    const char *key, *mount;
    json_t *w, *h;
    if (!json_is_object(web))
        return false;
    json_object_foreach((json_t *)web, key, w)
    {
        const json_t *handlers = json_object_get(w, "Handlers");
        if (!json_is_object(handlers))
            continue;
        json_object_foreach((json_t *)handlers, mount, h)
        {
            const char *p = str_field(h, "Proxy");
            for (size_t i = 0; p[0] && i < in->n_services; i++)
                if (in->services[i].kind == SERVECFG_HTTP &&
                    strcmp(p, in->services[i].backend) == 0)
                    return true;
        }
    }
    return false;
}

/* ---- the plan ---------------------------------------------------------------- */

void servecfg_plan_add(struct plan *p, const char *name, struct strbuf *line)
{
    if (line->oom || !line->s)
        p->oom = true;
    struct plan_line *v = p->oom ? NULL : realloc(p->v, (p->n + 1) * sizeof *v);
    char *n = v ? strdup(name) : NULL;
    if (!n) {
        p->oom = true;
        free(line->s);
    } else {
        p->v = v;
        p->v[p->n] = (struct plan_line){n, p->n, line->s};
        p->n++;
    }
    *line = (struct strbuf){0};
}

static int line_cmp(const void *a, const void *b)
{
    const struct plan_line *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].name);
        free(p->v[i].text);
    }
    free(p->v);
}

/* ---- merging ------------------------------------------------------------------- */

bool servecfg_in_list(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static const struct servecfg_service *configured(const struct servecfg_input *in, const char *svc)
{
    if (strncmp(svc, "svc:", 4) != 0) /* a foreign key such as "g": never one of portico's */
        return NULL;
    for (size_t i = 0; i < in->n_services; i++)
        if (strcmp(in->services[i].name, svc + 4) == 0)
            return &in->services[i];
    return NULL;
}

static int svc_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void describe_new(struct strbuf *b, const struct servecfg_service *s,
                         const struct servecfg_input *in)
{
    strbuf_printf(b, "%s %u -> %s", kind_names[s->kind], (unsigned)s->port, s->backend);
    if (proxy_protocol_on(s, in))
        strbuf_printf(b, " (PROXY v2)");
    else if (s->proxy_protocol)
        strbuf_printf(b,
                      " (no PROXY header: tailscaled %d.%d is older than %d.%d, so callers are "
                      "unknown)",
                      in->ts_major, in->ts_minor, TSJSON_PROXY_PROTOCOL_MAJOR,
                      TSJSON_PROXY_PROTOCOL_MINOR);
}

/* Load the current configuration: empty or null is an empty object. */
static json_t *load_current(const char *buf, size_t len, char *err, size_t errlen)
{
    if (len > LIMIT_TS_JSON_BYTES) {
        tsjson_errorf(err, errlen, "serve config: %zu bytes is more than the %u accepted", len,
                      LIMIT_TS_JSON_BYTES);
        return NULL;
    }
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t'))
        i++;
    json_error_t je;
    json_t *root = i == len ? json_object()
                            : json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        tsjson_errorf(err, errlen, "serve config: not valid JSON: %s (line %d, column %d)",
                      i == len ? "out of memory" : je.text, i == len ? 0 : je.line,
                      i == len ? 0 : je.column);
        return NULL;
    }
    if (json_is_null(root)) {
        json_decref(root);
        return json_object();
    }
    if (!json_is_object(root)) {
        json_decref(root);
        tsjson_errorf(err, errlen, "serve config: not a JSON object");
        return NULL;
    }
    const json_t *svcs = json_object_get(root, "Services");
    if (svcs && !json_is_null(svcs)) {
        const char *k;
        json_t *v;
        if (!json_is_object(svcs)) {
            json_decref(root);
            tsjson_errorf(err, errlen, "serve config: Services is not an object");
            return NULL;
        }
        if (json_object_size(svcs) > LIMIT_TS_SERVICES) {
            json_decref(root);
            tsjson_errorf(err, errlen, "serve config: more than %d services", LIMIT_TS_SERVICES);
            return NULL;
        }
        json_object_foreach((json_t *)svcs, k, v)
        {
            if (!json_is_object(v) && !json_is_null(v)) {
                tsjson_errorf(err, errlen, "serve config: Services[\"%.80s\"] is not an object", k);
                json_decref(root); /* after the message: k is root's */
                return NULL;
            }
        }
    }
    return root;
}

/* Apply one configured service. */
static int merge_one(struct merge *m, const struct servecfg_service *s, char *err, size_t errlen)
{
    char svc[4 + LIMIT_SERVICE_NAME + 1];
    snprintf(svc, sizeof svc, "svc:%s", s->name);
    json_t *entry = build_entry(s, m->in);
    if (!entry)
        return tsjson_errorf(err, errlen, "service %s: out of memory", s->name);
    const json_t *old = m->cur_svcs ? json_object_get(m->cur_svcs, svc) : NULL;
    bool ours = servecfg_in_list(m->in->owned, m->in->n_owned, svc);
    struct strbuf line = {0};
    if (!old || json_is_null(old)) {
        strbuf_printf(&line, "+ %s  ", svc);
        describe_new(&line, s, m->in);
        servecfg_plan_add(&m->plan, svc, &line);
    } else if (!json_equal((json_t *)old, entry)) {
        strbuf_printf(&line, "%c %s  ", ours ? '~' : '!', svc);
        describe_new(&line, s, m->in);
        strbuf_printf(&line, ours ? " (was: " : " (replaces an entry portico did not publish: ");
        describe(&line, old);
        strbuf_printf(&line, ")");
        servecfg_plan_add(&m->plan, svc, &line);
        const char *port;
        int from = -1, to = -1;
        if (type_conflict(old, entry, &port, &from, &to)) {
            if (!m->interim && !(m->interim = json_deep_copy(m->cur))) {
                json_decref(entry);
                return tsjson_errorf(err, errlen, "serve config: out of memory");
            }
            json_object_del(json_object_get(m->interim, "Services"), svc);
            if (port)
                strbuf_printf(&line,
                              "! %s  port %s changes from %s to %s: tailscaled needs the old "
                              "entry removed first (two writes)",
                              svc, port, from < 0 ? "?" : serve_type_names[from],
                              serve_type_names[to]);
            else
                strbuf_printf(&line,
                              "! %s  TUN mode cannot become ports: tailscaled needs the old "
                              "entry removed first (two writes)",
                              svc);
            servecfg_plan_add(&m->plan, svc, &line);
        }
    }
    if (json_object_set_new(m->new_svcs, svc, entry) < 0)
        return tsjson_errorf(err, errlen, "serve config: out of memory");
    if (old && !json_is_null(old) && json_equal((json_t *)old, entry) &&
        !servecfg_in_list(m->in->advertised, m->in->n_advertised, svc)) {
        strbuf_printf(&line, "+ %s  advertise", svc);
        servecfg_plan_add(&m->plan, svc, &line);
    }
    return 0;
}

static int merge_all(struct merge *m, struct servecfg_result *out, char *err, size_t errlen)
{
    const struct servecfg_input *in = m->in;
    json_t *svcs = json_object_get(m->cur, "Services");
    m->cur_svcs = json_is_object(svcs) ? svcs : NULL;
    if (!(m->new = json_deep_copy(m->cur)))
        return tsjson_errorf(err, errlen, "serve config: out of memory");
    m->new_svcs = json_object_get(m->new, "Services");
    if (!json_is_object(m->new_svcs)) {
        if (json_object_set_new(m->new, "Services", json_object()) < 0)
            return tsjson_errorf(err, errlen, "serve config: out of memory");
        m->new_svcs = json_object_get(m->new, "Services");
    }
    for (size_t i = 0; i < in->n_services; i++)
        if (merge_one(m, &in->services[i], err, errlen) < 0)
            return -1;

    /* Names portico published before and no longer configures. */
    struct strbuf line = {0};
    for (size_t i = 0; i < in->n_owned; i++) {
        const char *svc = in->owned[i];
        if (configured(in, svc))
            continue;
        const json_t *old = m->cur_svcs ? json_object_get(m->cur_svcs, svc) : NULL;
        if (old) {
            strbuf_printf(&line, "- %s  ", svc);
            describe(&line, old);
            servecfg_plan_add(&m->plan, svc, &line);
            json_object_del(m->new_svcs, svc);
        } else if (servecfg_in_list(in->advertised, in->n_advertised, svc)) {
            strbuf_printf(&line, "- %s  unadvertise", svc);
            servecfg_plan_add(&m->plan, svc, &line);
        }
    }

    /* Foreign entries that look like portico's own. */
    if (m->cur_svcs) {
        const char *svc;
        json_t *v;
        json_object_foreach(m->cur_svcs, svc, v)
        {
            if (!configured(in, svc) && !servecfg_in_list(in->owned, in->n_owned, svc) &&
                routes_to_portico(v, in)) {
                strbuf_printf(&line, "? ");
                sb_text(&line, svc, 300);
                strbuf_printf(&line, "  routes to portico's backend but portico has no record of "
                                     "publishing it: left alone");
                servecfg_plan_add(&m->plan, svc, &line);
            }
        }
    }
    if (servecfg_merge_funnel(m, out, err, errlen) < 0)
        return -1;
    if (json_object_size(m->new_svcs) == 0)
        json_object_del(m->new, "Services");
    if (m->interim && json_object_size(json_object_get(m->interim, "Services")) == 0)
        json_object_del(m->interim, "Services");

    out->changed = !json_equal(m->cur, m->new);
    out->json = json_dumps(m->new, JSON_COMPACT | JSON_SORT_KEYS);
    if (m->interim)
        out->interim = json_dumps(m->interim, JSON_COMPACT | JSON_SORT_KEYS);
    if (!out->json || (m->interim && !out->interim) || m->plan.oom)
        return tsjson_errorf(err, errlen, "serve config: out of memory");
    return 0;
}

/* AdvertiseServices: current minus owned-and-removed (duplicates dropped),
 * then configured names not yet there, in name order. */
static int merge_advertise(const struct servecfg_input *in, struct servecfg_result *out, char *err,
                           size_t errlen)
{
    struct tsjson_strlist *a = &out->advertise;
    size_t cap = in->n_advertised + in->n_services;
    if (cap && !(a->v = calloc(cap, sizeof *a->v)))
        return tsjson_errorf(err, errlen, "advertise: out of memory");
    for (size_t i = 0; i < in->n_advertised; i++) {
        const char *svc = in->advertised[i];
        if ((servecfg_in_list(in->owned, in->n_owned, svc) && !configured(in, svc)) ||
            servecfg_in_list((const char *const *)a->v, a->n, svc))
            continue;
        if (!(a->v[a->n++] = strdup(svc)))
            return tsjson_errorf(err, errlen, "advertise: out of memory");
    }
    for (size_t i = 0; i < in->n_services; i++) {
        if (!(out->owned.v[i] = malloc(4 + strlen(in->services[i].name) + 1)))
            return tsjson_errorf(err, errlen, "advertise: out of memory");
        sprintf(out->owned.v[i], "svc:%s", in->services[i].name);
        out->owned.n++;
    }
    if (out->owned.n > 1)
        qsort(out->owned.v, out->owned.n, sizeof *out->owned.v, svc_cmp);
    for (size_t i = 0; i < out->owned.n; i++) {
        if (servecfg_in_list((const char *const *)a->v, a->n, out->owned.v[i]))
            continue;
        if (!(a->v[a->n++] = strdup(out->owned.v[i])))
            return tsjson_errorf(err, errlen, "advertise: out of memory");
    }
    out->advertise_changed = a->n != in->n_advertised;
    for (size_t i = 0; !out->advertise_changed && i < a->n; i++)
        out->advertise_changed = strcmp(a->v[i], in->advertised[i]) != 0;
    return 0;
}

static int check_input(const struct servecfg_input *in, char *err, size_t errlen)
{
    if (in->n_services > LIMIT_TS_SERVICES)
        return tsjson_errorf(err, errlen, "more than %d services to publish", LIMIT_TS_SERVICES);
    if (in->n_services && (!in->suffix || !in->suffix[0]))
        return tsjson_errorf(err, errlen,
                             "the tailnet's MagicDNS suffix is unknown (is tailscaled "
                             "logged in? status has no CurrentTailnet.MagicDNSSuffix)");
    for (const char *p = in->suffix ? in->suffix : ""; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return tsjson_errorf(err, errlen,
                                 "the MagicDNS suffix \"%.80s\" is not a lower-case DNS name",
                                 in->suffix);
    if (in->suffix && strlen(in->suffix) > 253 - LIMIT_SERVICE_NAME - 1)
        return tsjson_errorf(err, errlen,
                             "the MagicDNS suffix \"%.80s...\" is too long for service names",
                             in->suffix);
    for (size_t i = 0; i < in->n_services; i++) {
        if (check_service(&in->services[i], err, errlen) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->services[i].name, in->services[j].name) == 0)
                return tsjson_errorf(err, errlen, "service %s is published twice",
                                     in->services[i].name);
    }
    for (size_t i = 0; i < in->n_owned; i++)
        if (!tsjson_service_name_valid(in->owned[i]))
            return tsjson_errorf(err, errlen,
                                 "the list of published services names \"%.80s\", which is "
                                 "not a service name",
                                 in->owned[i]);
    return servecfg_check_funnel(in, err, errlen);
}

int servecfg_merge(const char *current, size_t len, const struct servecfg_input *in,
                   struct servecfg_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (check_input(in, err, errlen) < 0)
        return -1;
    struct merge m = {.in = in};
    if (!(m.cur = load_current(current, len, err, errlen)))
        return -1;
    int rc = -1;
    if (in->n_services && !(out->owned.v = calloc(in->n_services, sizeof *out->owned.v))) {
        tsjson_errorf(err, errlen, "out of memory");
        goto done;
    }
    if (merge_all(&m, out, err, errlen) < 0 || merge_advertise(in, out, err, errlen) < 0)
        goto done;
    if (m.plan.n > 1)
        qsort(m.plan.v, m.plan.n, sizeof *m.plan.v, line_cmp);
    struct strbuf plan = {0};
    strbuf_printf(&plan, "%s", "");
    for (size_t i = 0; i < m.plan.n; i++)
        strbuf_printf(&plan, "%s\n", m.plan.v[i].text);
    if (plan.oom) {
        free(plan.s);
        tsjson_errorf(err, errlen, "plan: out of memory");
        goto done;
    }
    out->plan = plan.s;
    rc = 0;
done:
    plan_free(&m.plan);
    json_decref(m.cur);
    json_decref(m.new);
    json_decref(m.interim);
    return rc;
}

void servecfg_result_free(struct servecfg_result *r)
{
    free(r->json);
    free(r->interim);
    free(r->plan);
    tsjson_strlist_free(&r->advertise);
    tsjson_strlist_free(&r->owned);
    tsjson_strlist_free(&r->funnel_owned);
    memset(r, 0, sizeof *r);
}
