/* tsjson.c - tailscaled's LocalAPI answers (status, whois, prefs) read and
 * checked with jansson; see tsjson.h for the source each shape was read
 * from. */
#include "tsjson.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

int tsjson_errorf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* names quoted from the input must not split or colour a log line */
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    return -1;
}

json_t *tsjson_load(const char *what, const char *buf, size_t len, char *err, size_t errlen)
{
    if (len > LIMIT_TS_JSON_BYTES) {
        tsjson_errorf(err, errlen, "%s: answer of %zu bytes is larger than the %u bytes accepted",
                      what, len, LIMIT_TS_JSON_BYTES);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        tsjson_errorf(err, errlen, "%s: not valid JSON: %s (line %d, column %d)", what, je.text,
                      je.line, je.column);
    return root;
}

/* A string tailscaled may send that portico keeps: bounded, and free of
 * control characters (it may reach a log line or a header). jansson has
 * already refused invalid UTF-8 and NUL. */
static bool text_ok(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return n <= LIMIT_TS_STRING_BYTES;
}

/* A DNS name as tailscaled writes them: labels of letters, digits, '-' and
 * '_' (1 to 63 bytes), at most 253 bytes, no empty label; a leading "*."
 * (a wildcard certificate name) when wildcard is set. */
static bool dns_name_ok(const char *s, bool wildcard)
{
    if (wildcard && s[0] == '*' && s[1] == '.')
        s += 2;
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

bool tsjson_dns_name_valid(const char *s)
{
    return dns_name_ok(s, false);
}

static bool ip_ok(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

bool tsjson_service_label_valid(const char *label)
{
    size_t n = strlen(label);
    if (n == 0 || n > LIMIT_SERVICE_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = label[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i < n - 1))
            return false;
    }
    return true;
}

bool tsjson_service_name_valid(const char *name)
{
    return strncmp(name, "svc:", 4) == 0 && tsjson_service_label_valid(name + 4);
}

static bool tag_ok(const char *s)
{
    return strncmp(s, "tag:", 4) == 0 && s[4] && text_ok(s);
}

enum check { CHECK_TEXT, CHECK_DNS, CHECK_DNS_WILDCARD, CHECK_IP, CHECK_TAG, CHECK_SERVICE };

static bool check_ok(enum check c, const char *s)
{
    switch (c) {
    case CHECK_TEXT:
        return text_ok(s);
    case CHECK_DNS:
        return dns_name_ok(s, false);
    case CHECK_DNS_WILDCARD:
        return dns_name_ok(s, true);
    case CHECK_IP:
        return ip_ok(s);
    case CHECK_TAG:
        return tag_ok(s);
    case CHECK_SERVICE:
        return tsjson_service_name_valid(s);
    }
    return false;
}

static const char *check_what(enum check c)
{
    switch (c) {
    case CHECK_TEXT:
        return "text without control characters";
    case CHECK_DNS:
    case CHECK_DNS_WILDCARD:
        return "a DNS name";
    case CHECK_IP:
        return "an IP address";
    case CHECK_TAG:
        return "a tag (tag:NAME)";
    case CHECK_SERVICE:
        return "a service name (svc: and a lower-case DNS label)";
    }
    return "?";
}

static char *dup_or_oom(const char *s, const char *what, char *err, size_t errlen)
{
    char *d = strdup(s);
    if (!d)
        tsjson_errorf(err, errlen, "%s: out of memory", what);
    return d;
}

/* *out = copy of obj[key] when it is a string passing c. Absent or null:
 * "" unless required. The trailing dot of a DNS name is removed first
 * when strip_dot is set. */
static int get_string(const json_t *obj, const char *what, const char *key, bool required,
                      enum check c, bool strip_dot, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return tsjson_errorf(err, errlen, "%s: %s is missing", what, key);
        *out = dup_or_oom("", what, err, errlen);
        return *out ? 0 : -1;
    }
    if (!json_is_string(v))
        return tsjson_errorf(err, errlen, "%s: %s is not a string", what, key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > LIMIT_TS_STRING_BYTES)
        return tsjson_errorf(err, errlen, "%s: %s is longer than %d bytes", what, key,
                             LIMIT_TS_STRING_BYTES);
    char *d = dup_or_oom(s, what, err, errlen);
    if (!d)
        return -1;
    if (strip_dot && n > 0 && d[n - 1] == '.')
        d[n - 1] = '\0';
    if (d[0] && !check_ok(c, d)) {
        free(d);
        return tsjson_errorf(err, errlen, "%s: %s is not %s", what, key, check_what(c));
    }
    *out = d;
    return 0;
}

static int list_push(struct tsjson_strlist *l, const char *s, size_t max, const char *what,
                     char *err, size_t errlen)
{
    if (l->n >= max)
        return tsjson_errorf(err, errlen, "%s has more than %zu entries", what, max);
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return tsjson_errorf(err, errlen, "%s: out of memory", what);
    l->v = v;
    if (!(l->v[l->n] = dup_or_oom(s, what, err, errlen)))
        return -1;
    l->n++;
    return 0;
}

/* obj[key]: an array of strings passing c (absent or null: empty). */
static int get_list(const json_t *obj, const char *what, const char *key, enum check c, size_t max,
                    struct tsjson_strlist *out, char *err, size_t errlen)
{
    const json_t *arr = json_object_get(obj, key);
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return tsjson_errorf(err, errlen, "%s: %s is not a list", what, key);
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || !check_ok(c, json_string_value(v)))
            return tsjson_errorf(err, errlen, "%s: %s[%zu] is not %s", what, key, i, check_what(c));
        char name[128];
        snprintf(name, sizeof name, "%s: %s", what, key);
        if (list_push(out, json_string_value(v), max, name, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* The keys of obj[key] (an object of capability name -> values), in order. */
static int get_keys(const json_t *obj, const char *what, const char *key,
                    struct tsjson_strlist *out, char *err, size_t errlen)
{
    const json_t *map = json_object_get(obj, key);
    if (!map || json_is_null(map))
        return 0;
    if (!json_is_object(map))
        return tsjson_errorf(err, errlen, "%s: %s is not an object", what, key);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)map, k, v)
    {
        if (!k[0] || !text_ok(k))
            return tsjson_errorf(err, errlen,
                                 "%s: %s has a key that is empty, too long or not text", what, key);
        char name[128];
        snprintf(name, sizeof name, "%s: %s", what, key);
        if (list_push(out, k, LIMIT_TS_CAPS, name, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* An integer field in [min, INT64_MAX]; floats and strings are refused, as
 * Go refuses them for an int64. */
static int get_int(const json_t *obj, const char *what, const char *key, int64_t min, int64_t *out,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return tsjson_errorf(err, errlen, "%s: %s is missing", what, key);
    if (!json_is_integer(v))
        return tsjson_errorf(err, errlen, "%s: %s is not an integer", what, key);
    json_int_t i = json_integer_value(v);
    if (i < min)
        return tsjson_errorf(err, errlen, "%s: %s is %lld, below %lld", what, key, (long long)i,
                             (long long)min);
    *out = (int64_t)i;
    return 0;
}

static const json_t *get_object(const json_t *obj, const char *what, const char *key, bool required,
                                int *rc, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    *rc = 0;
    if (!v || json_is_null(v)) {
        if (required)
            *rc = tsjson_errorf(err, errlen, "%s: %s is missing", what, key);
        return NULL;
    }
    if (!json_is_object(v)) {
        *rc = tsjson_errorf(err, errlen, "%s: %s is not an object", what, key);
        return NULL;
    }
    return v;
}

bool tsjson_version_at_least(int have_major, int have_minor, int major, int minor)
{
    return have_major > major || (have_major == major && have_minor >= minor);
}

/* "x.y.z-..." -> x, y; 0, 0 when the string does not start that way. */
static void parse_version(const char *s, int *major, int *minor)
{
    int v[2] = {0, 0};
    const char *p = s;
    for (int i = 0; i < 2; i++) {
        if (*p < '0' || *p > '9')
            goto unknown;
        long n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (n > 100000)
                goto unknown;
        }
        v[i] = (int)n;
        if (i == 0 && *p++ != '.')
            goto unknown;
    }
    *major = v[0];
    *minor = v[1];
    return;
unknown:
    *major = 0;
    *minor = 0;
}

static int host_cmp(const void *a, const void *b)
{
    const struct tsjson_service_ips *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* Self.CapMap["service-host"]: a list of ServiceIPMappings objects merged in
 * order, a later one replacing a name an earlier one gave. */
static int parse_service_host(const json_t *vals, struct tsjson_status *st, char *err,
                              size_t errlen)
{
    const char *what = "status: Self.CapMap[\"service-host\"]";
    if (json_is_null(vals))
        return 0;
    if (!json_is_array(vals))
        return tsjson_errorf(err, errlen, "%s is not a list", what);
    size_t i;
    const json_t *m;
    json_array_foreach(vals, i, m)
    {
        if (!json_is_object(m))
            return tsjson_errorf(err, errlen, "%s[%zu] is not an object of service names", what, i);
        const char *name;
        const json_t *addrs;
        json_object_foreach((json_t *)m, name, addrs)
        {
            if (!tsjson_service_name_valid(name))
                return tsjson_errorf(err, errlen, "%s[%zu]: \"%.80s\" is not a service name", what,
                                     i, name);
            struct tsjson_service_ips *h = NULL;
            for (size_t k = 0; k < st->n_hosts; k++)
                if (strcmp(st->hosts[k].name, name) == 0)
                    h = &st->hosts[k];
            if (h) {
                tsjson_strlist_free(&h->addrs);
            } else {
                if (st->n_hosts >= LIMIT_TS_SERVICES)
                    return tsjson_errorf(err, errlen, "%s lists more than %d services", what,
                                         LIMIT_TS_SERVICES);
                struct tsjson_service_ips *nh =
                    realloc(st->hosts, (st->n_hosts + 1) * sizeof *st->hosts);
                if (!nh)
                    return tsjson_errorf(err, errlen, "%s: out of memory", what);
                st->hosts = nh;
                h = &st->hosts[st->n_hosts];
                memset(h, 0, sizeof *h);
                if (!(h->name = dup_or_oom(name, what, err, errlen)))
                    return -1;
                st->n_hosts++;
            }
            if (json_is_null(addrs))
                continue;
            if (!json_is_array(addrs))
                return tsjson_errorf(err, errlen, "%s: %s is not a list of addresses", what, name);
            size_t j;
            const json_t *a;
            json_array_foreach(addrs, j, a)
            {
                if (!json_is_string(a) || !ip_ok(json_string_value(a)))
                    return tsjson_errorf(err, errlen, "%s: %s[%zu] is not an IP address", what,
                                         name, j);
                if (list_push(&h->addrs, json_string_value(a), LIMIT_TS_ADDRS, what, err, errlen) <
                    0)
                    return -1;
            }
        }
    }
    if (st->n_hosts > 1)
        qsort(st->hosts, st->n_hosts, sizeof *st->hosts, host_cmp);
    return 0;
}

static int status_fill(const json_t *root, struct tsjson_status *st, char *err, size_t errlen)
{
    const char *w = "status";
    int rc;
    if (!json_is_object(root))
        return tsjson_errorf(err, errlen, "status: the answer is not a JSON object");
    if (get_string(root, w, "Version", true, CHECK_TEXT, false, &st->version, err, errlen) < 0 ||
        get_string(root, w, "BackendState", false, CHECK_TEXT, false, &st->backend_state, err,
                   errlen) < 0)
        return -1;
    parse_version(st->version, &st->major, &st->minor);

    const json_t *tn = get_object(root, w, "CurrentTailnet", false, &rc, err, errlen);
    if (rc < 0)
        return -1;
    if (tn) {
        if (get_string(tn, "status: CurrentTailnet", "MagicDNSSuffix", false, CHECK_DNS, true,
                       &st->magic_dns_suffix, err, errlen) < 0 ||
            get_string(tn, "status: CurrentTailnet", "Name", false, CHECK_TEXT, false,
                       &st->tailnet_name, err, errlen) < 0)
            return -1;
    }
    if (!st->magic_dns_suffix || !st->magic_dns_suffix[0]) {
        free(st->magic_dns_suffix);
        st->magic_dns_suffix = NULL;
        if (get_string(root, w, "MagicDNSSuffix", false, CHECK_DNS, true, &st->magic_dns_suffix,
                       err, errlen) < 0)
            return -1;
    }
    if (!st->tailnet_name && !(st->tailnet_name = dup_or_oom("", w, err, errlen)))
        return -1;
    if (get_list(root, w, "TailscaleIPs", CHECK_IP, LIMIT_TS_ADDRS, &st->ips, err, errlen) < 0 ||
        get_list(root, w, "CertDomains", CHECK_DNS_WILDCARD, LIMIT_TS_CERT_DOMAINS,
                 &st->cert_domains, err, errlen) < 0)
        return -1;

    const json_t *self = get_object(root, w, "Self", false, &rc, err, errlen);
    if (rc < 0)
        return -1;
    if (!self)
        return (st->dns_name = dup_or_oom("", w, err, errlen)) ? 0 : -1;
    w = "status: Self";
    if (get_string(self, w, "DNSName", false, CHECK_DNS, true, &st->dns_name, err, errlen) < 0 ||
        get_list(self, w, "Tags", CHECK_TAG, LIMIT_TS_TAGS, &st->tags, err, errlen) < 0)
        return -1;
    if (st->ips.n == 0 &&
        get_list(self, w, "TailscaleIPs", CHECK_IP, LIMIT_TS_ADDRS, &st->ips, err, errlen) < 0)
        return -1;
    const json_t *capmap = get_object(self, w, "CapMap", false, &rc, err, errlen);
    if (rc < 0)
        return -1;
    /* nodecap.Funnel (tailcfg/nodecap/nodecap.go): the node may host
     * Funnel ingress; its value is not looked at. */
    st->funnel = capmap && json_object_get(capmap, "funnel");
    const json_t *sh = capmap ? json_object_get(capmap, "service-host") : NULL;
    if (sh) {
        st->service_host = true;
        return parse_service_host(sh, st, err, errlen);
    }
    return 0;
}

int tsjson_parse_status(const char *buf, size_t len, struct tsjson_status *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *root = tsjson_load("status", buf, len, err, errlen);
    if (!root)
        return -1;
    int rc = status_fill(root, out, err, errlen);
    json_decref(root);
    return rc;
}

void tsjson_strlist_free(struct tsjson_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int tsjson_strlist_copy(struct tsjson_strlist *dst, const struct tsjson_strlist *src)
{
    *dst = (struct tsjson_strlist){0};
    if (src->n == 0)
        return 0;
    if (!(dst->v = calloc(src->n, sizeof *dst->v)))
        return -1;
    for (; dst->n < src->n; dst->n++)
        if (!(dst->v[dst->n] = strdup(src->v[dst->n]))) {
            tsjson_strlist_free(dst);
            return -1;
        }
    return 0;
}

void tsjson_status_free(struct tsjson_status *st)
{
    free(st->version);
    free(st->backend_state);
    free(st->dns_name);
    free(st->magic_dns_suffix);
    free(st->tailnet_name);
    tsjson_strlist_free(&st->ips);
    tsjson_strlist_free(&st->tags);
    for (size_t i = 0; i < st->n_hosts; i++) {
        free(st->hosts[i].name);
        tsjson_strlist_free(&st->hosts[i].addrs);
    }
    free(st->hosts);
    tsjson_strlist_free(&st->cert_domains);
    memset(st, 0, sizeof *st);
}

static int whois_fill(const json_t *root, struct tsjson_whois *wh, char *err, size_t errlen)
{
    int rc;
    if (!json_is_object(root))
        return tsjson_errorf(err, errlen, "whois: the answer is not a JSON object");
    const json_t *node = get_object(root, "whois", "Node", true, &rc, err, errlen);
    if (!node)
        return -1;
    const json_t *up = get_object(root, "whois", "UserProfile", true, &rc, err, errlen);
    if (!up)
        return -1;
    const char *w = "whois: Node";
    if (get_int(node, w, "ID", 1, &wh->node_id, err, errlen) < 0 ||
        get_string(node, w, "StableID", true, CHECK_TEXT, false, &wh->node_stable_id, err, errlen) <
            0 ||
        get_string(node, w, "Name", true, CHECK_DNS, true, &wh->node_name, err, errlen) < 0 ||
        get_string(node, w, "ComputedName", false, CHECK_TEXT, false, &wh->node_computed_name, err,
                   errlen) < 0 ||
        get_list(node, w, "Tags", CHECK_TAG, LIMIT_TS_TAGS, &wh->tags, err, errlen) < 0 ||
        get_keys(node, w, "CapMap", &wh->node_caps, err, errlen) < 0)
        return -1;
    w = "whois: UserProfile";
    if (get_int(up, w, "ID", 0, &wh->user_id, err, errlen) < 0 ||
        get_string(up, w, "LoginName", true, CHECK_TEXT, false, &wh->login_name, err, errlen) < 0 ||
        get_string(up, w, "DisplayName", false, CHECK_TEXT, false, &wh->display_name, err, errlen) <
            0 ||
        get_string(up, w, "ProfilePicURL", false, CHECK_TEXT, false, &wh->profile_pic_url, err,
                   errlen) < 0)
        return -1;
    return get_keys(root, "whois", "CapMap", &wh->caps, err, errlen);
}

int tsjson_parse_whois(const char *buf, size_t len, struct tsjson_whois *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *root = tsjson_load("whois", buf, len, err, errlen);
    if (!root)
        return -1;
    int rc = whois_fill(root, out, err, errlen);
    json_decref(root);
    return rc;
}

void tsjson_whois_free(struct tsjson_whois *w)
{
    free(w->node_stable_id);
    free(w->node_name);
    free(w->node_computed_name);
    tsjson_strlist_free(&w->tags);
    tsjson_strlist_free(&w->node_caps);
    free(w->login_name);
    free(w->display_name);
    free(w->profile_pic_url);
    tsjson_strlist_free(&w->caps);
    memset(w, 0, sizeof *w);
}

int tsjson_parse_advertised(const char *buf, size_t len, struct tsjson_strlist *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *root = tsjson_load("prefs", buf, len, err, errlen);
    if (!root)
        return -1;
    int rc = json_is_object(root)
                 ? get_list(root, "prefs", "AdvertiseServices", CHECK_SERVICE, LIMIT_TS_SERVICES,
                            out, err, errlen)
                 : tsjson_errorf(err, errlen, "prefs: the answer is not a JSON object");
    json_decref(root);
    return rc;
}

char *tsjson_advertise_body(const char *const *names, size_t n)
{
    json_t *arr = json_array();
    json_t *root = json_object();
    char *s = NULL;
    if (!arr || !root)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arr, json_string(names[i])) < 0)
            goto out;
    if (json_object_set_new(root, "AdvertiseServicesSet", json_true()) < 0 ||
        json_object_set(root, "AdvertiseServices", arr) < 0)
        goto out;
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(arr);
    json_decref(root);
    return s;
}
