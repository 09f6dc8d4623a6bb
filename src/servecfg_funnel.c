/* servecfg_funnel.c - the node's own name on Tailscale Funnel, merged into
 * the serve configuration beside portico's Services (rules in servecfg.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "servecfg_int.h"
#include "tsjson.h"

/* ---- Funnel on the node's own name ------------------------------------------ */

/* An object member of root, created empty when missing; NULL when out of
 * memory or when the member is not an object (load_current checked only
 * Services: another tool may have written anything). */
static json_t *member(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (json_is_object(v))
        return v;
    if (v && !json_is_null(v))
        return NULL;
    v = json_object();
    return json_object_set_new(root, key, v) == 0 ? v : NULL;
}

static void drop_if_empty(json_t *root, const char *key)
{
    const json_t *v = json_object_get(root, key);
    if (json_is_object(v) && json_object_size(v) == 0)
        json_object_del(root, key);
}

/* Remove what portico published at hp ("HOST:PORT"): Web[hp],
 * AllowFunnel[hp], and TCP[PORT] unless another Web entry uses the port. */
static void funnel_remove(json_t *root, const char *hp)
{
    const char *port = strrchr(hp, ':');
    json_t *web = json_object_get(root, "Web");
    if (json_is_object(web))
        json_object_del(web, hp);
    if (json_is_object(json_object_get(root, "AllowFunnel")))
        json_object_del(json_object_get(root, "AllowFunnel"), hp);
    bool used = false;
    const char *key;
    json_t *v;
    if (port && json_is_object(web))
        json_object_foreach(web, key, v)
        {
            const char *c = strrchr(key, ':');
            used = used || (c && strcmp(c, port) == 0);
        }
    if (port && !used && json_is_object(json_object_get(root, "TCP")))
        json_object_del(json_object_get(root, "TCP"), port + 1);
    drop_if_empty(root, "TCP");
    drop_if_empty(root, "Web");
    drop_if_empty(root, "AllowFunnel");
}

static void describe_funnel(struct strbuf *b, const struct servecfg_funnel *f)
{
    for (size_t i = 0; i < f->n; i++)
        strbuf_printf(b, "%s%s -> %s", i ? ", " : "", f->paths[i], f->targets[i]);
}

/* Publish, change or remove the node's own name on Funnel (see servecfg.h). */
int servecfg_merge_funnel(struct merge *m, struct servecfg_result *out, char *err, size_t errlen)
{
    const struct servecfg_input *in = m->in;
    const struct servecfg_funnel *f = in->funnel;
    char hp[LIMIT_TS_STRING_BYTES + 8] = "", port[8] = "";
    struct strbuf line = {0};
    if (f) {
        snprintf(hp, sizeof hp, "%s:%u", f->host, (unsigned)f->port);
        snprintf(port, sizeof port, "%u", (unsigned)f->port);
    }
    for (size_t i = 0; i < in->n_funnel_owned; i++) {
        const char *old = in->funnel_owned[i];
        if (strcmp(old, hp) == 0)
            continue;
        if (json_object_get(json_object_get(m->cur, "Web"), old) ||
            json_object_get(json_object_get(m->cur, "AllowFunnel"), old)) {
            strbuf_printf(&line, "- funnel %s", old);
            servecfg_plan_add(&m->plan, "funnel", &line);
        }
        funnel_remove(m->new, old);
    }
    if (!f)
        return 0;
    const json_t *cur_web = json_object_get(json_object_get(m->cur, "Web"), hp);
    const json_t *cur_tcp = json_object_get(json_object_get(m->cur, "TCP"), port);
    const json_t *cur_allow = json_object_get(json_object_get(m->cur, "AllowFunnel"), hp);
    if (!servecfg_in_list(in->funnel_owned, in->n_funnel_owned, hp) &&
        (cur_web || cur_tcp || cur_allow))
        return tsjson_errorf(err, errlen,
                             "funnel: %.300s is already served by %s portico did not publish; "
                             "remove it (tailscale funnel --https=%s off, or tailscale serve "
                             "reset) or choose another tailscale.funnel.port",
                             hp,
                             cur_web   ? "a web handler"
                             : cur_tcp ? "a TCP handler on its port"
                                       : "an AllowFunnel entry",
                             port);
    json_t *handlers = json_object(), *web = json_pack("{s:o}", "Handlers", handlers);
    for (size_t i = 0; handlers && i < f->n; i++)
        json_object_set_new(handlers, f->paths[i], json_pack("{s:s}", "Proxy", f->targets[i]));
    json_t *tcp = member(m->new, "TCP"), *webs = member(m->new, "Web"),
           *allow = member(m->new, "AllowFunnel");
    if (!web || !tcp || !webs || !allow || json_object_size(handlers) != f->n ||
        json_object_set_new(tcp, port, json_pack("{s:b}", "HTTPS", 1)) < 0 ||
        json_object_set_new(allow, hp, json_true()) < 0 || json_object_set(webs, hp, web) < 0) {
        json_decref(web);
        return tsjson_errorf(err, errlen,
                             "funnel: out of memory, or TCP, Web or AllowFunnel of the serve "
                             "config is not an object");
    }
    if (!cur_web || !json_equal((json_t *)cur_web, web) || !json_is_true(cur_allow)) {
        strbuf_printf(&line, "%c funnel %s  ", cur_web ? '~' : '+', hp);
        describe_funnel(&line, f);
        servecfg_plan_add(&m->plan, "funnel", &line);
    }
    json_decref(web);
    if (!(out->funnel_owned.v = calloc(1, sizeof *out->funnel_owned.v)) ||
        !(out->funnel_owned.v[0] = strdup(hp)))
        return tsjson_errorf(err, errlen, "funnel: out of memory");
    out->funnel_owned.n = 1;
    return 0;
}

/* A string another tool wrote or portico computed: no spaces or control
 * characters, 1 to max bytes. */
static bool token(const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return n > 0 && n <= max;
}

static bool dns_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    return s[0] && strlen(s) <= 253;
}

int servecfg_check_funnel(const struct servecfg_input *in, char *err, size_t errlen)
{
    const struct servecfg_funnel *f = in->funnel;
    for (size_t i = 0; i < in->n_funnel_owned; i++) {
        const char *c = strrchr(in->funnel_owned[i], ':');
        if (!token(in->funnel_owned[i], LIMIT_TS_STRING_BYTES) || !c || c == in->funnel_owned[i])
            return tsjson_errorf(err, errlen,
                                 "the list of Funnel names portico published has \"%.80s\", "
                                 "which is not HOST:PORT",
                                 in->funnel_owned[i]);
    }
    if (!f)
        return 0;
    if (!f->host || !dns_name(f->host))
        return tsjson_errorf(err, errlen,
                             "funnel: this node's name \"%.80s\" is not a lower-case DNS name (is "
                             "tailscaled logged in? status has no Self.DNSName)",
                             f->host ? f->host : "");
    if (f->port == 0 || f->n == 0 || f->n > LIMIT_TS_FUNNEL_PATHS)
        return tsjson_errorf(err, errlen, "funnel: a port and 1 to %d paths are needed",
                             LIMIT_TS_FUNNEL_PATHS);
    for (size_t i = 0; i < f->n; i++) {
        const char *t = f->targets[i];
        if (f->paths[i][0] != '/' || !token(f->paths[i], LIMIT_TS_STRING_BYTES / 2))
            return tsjson_errorf(err, errlen, "funnel: the path \"%.80s\" is not a path prefix",
                                 f->paths[i]);
        if (!token(t, LIMIT_TS_STRING_BYTES) ||
            (strncmp(t, "unix:/", 6) != 0 && strncmp(t, "http://", 7) != 0 &&
             strncmp(t, "https://", 8) != 0 && strncmp(t, "https+insecure://", 17) != 0))
            return tsjson_errorf(err, errlen,
                                 "funnel: the target \"%.80s\" of %.80s is not unix:/PATH or "
                                 "http://HOST:PORT",
                                 t, f->paths[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->paths[i], f->paths[j]) == 0)
                return tsjson_errorf(err, errlen, "funnel: the path %.80s is given twice",
                                     f->paths[i]);
    }
    return 0;
}
