/* tsapi.c - the control API's requests and answers for service
 * definitions; see tsapi.h for the source each shape was read from. */
#include "tsapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <jansson.h>

#include "limits.h"
#include "tsjson.h"

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int tsapi_read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    char buf[TSAPI_SECRET_MAX + 2];
    FILE *f = fopen(path, "re");
    if (!f)
        return tsjson_errorf(err, errlen, "cannot read the OAuth client secret from %s: %s", path,
                             strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = n == sizeof buf - 1 && fgetc(f) != EOF, failed = ferror(f) != 0;
    fclose(f);
    buf[n] = '\0';
    size_t end = strcspn(buf, "\n");
    int rc = 0;
    /* only the first line counts: a file written by `echo` ends in one */
    if (failed)
        rc = tsjson_errorf(err, errlen, "cannot read the OAuth client secret from %s", path);
    else if (more && end == n)
        rc = tsjson_errorf(err, errlen, "%s: the OAuth client secret is longer than %d bytes", path,
                           TSAPI_SECRET_MAX);
    if (rc == 0) {
        size_t start = 0;
        while (start < end && blank(buf[start]))
            start++;
        while (end > start && blank(buf[end - 1]))
            end--;
        size_t len = end - start;
        for (size_t i = start; rc == 0 && i < end; i++)
            if ((unsigned char)buf[i] <= 0x20 || buf[i] == 0x7f)
                rc = tsjson_errorf(err, errlen,
                                   "%s: the OAuth client secret holds a blank or a control "
                                   "character; the file must hold the secret alone",
                                   path);
        if (rc == 0 && len == 0)
            rc = tsjson_errorf(err, errlen, "%s is empty: put the OAuth client secret in it", path);
        else if (rc == 0 && (len > TSAPI_SECRET_MAX || len >= cap))
            rc = tsjson_errorf(err, errlen, "%s: the OAuth client secret is longer than %d bytes",
                               path, TSAPI_SECRET_MAX);
        else if (rc == 0) {
            memcpy(out, buf + start, len);
            out[len] = '\0';
        }
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

bool tsapi_tailnet_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TSAPI_TAILNET_MAX)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._@+-", *p)))
            return false;
    return strcmp(t, ".") != 0 && strcmp(t, "..") != 0;
}

bool tsapi_client_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > TSAPI_CLIENT_ID_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return true;
}

int tsapi_parse_url(const char *url, char *host, size_t hostcap, unsigned *port, char *err,
                    size_t errlen)
{
    if (strncmp(url, "https://", 8) != 0)
        return tsjson_errorf(err, errlen,
                             "must start with https:// (the API is only spoken over "
                             "verified TLS)");
    const char *h = url + 8, *end;
    size_t hlen;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end)
            return tsjson_errorf(err, errlen, "an IPv6 address needs its closing ']'");
        h++;
        hlen = (size_t)(end - h);
        end++;
    } else {
        hlen = strcspn(h, ":/?#@");
        end = h + hlen;
    }
    if (hlen == 0 || hlen >= hostcap)
        return tsjson_errorf(err, errlen, "has no host, or too long a one");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    unsigned char a[16];
    bool v6 = url[8] == '[';
    if (v6 ? inet_pton(AF_INET6, host, a) != 1 : !tsjson_dns_name_valid(host))
        return tsjson_errorf(err, errlen, "has \"%s\", which is not a host name or an IP address",
                             host);
    *port = 443;
    if (*end == ':') {
        char *stop;
        errno = 0;
        unsigned long p = strtoul(end + 1, &stop, 10);
        if (stop == end + 1 || errno || p == 0 || p > 65535 || end[1] == '+' || end[1] == '-')
            return tsjson_errorf(err, errlen, "has a port that is not 1 to 65535");
        *port = (unsigned)p;
        end = stop;
    }
    if (strcmp(end, "") != 0 && strcmp(end, "/") != 0)
        return tsjson_errorf(err, errlen,
                             "must be only https://HOST[:PORT] (portico adds /api/v2/...)");
    return 0;
}

/* Bytes that may go in a request line or a header value as sent. */
static bool head_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

long tsapi_build_head(const struct tsapi_request *r, char *out, size_t cap, char *err,
                      size_t errlen)
{
    if (!head_safe(r->method) || !head_safe(r->path) || strchr(r->path, ' ') || r->path[0] != '/' ||
        !head_safe(r->host) || (r->bearer && !head_safe(r->bearer)) ||
        (r->content_type && !head_safe(r->content_type))) {
        tsjson_errorf(err, errlen, "%s: a byte that cannot go in an HTTP request", r->method);
        return -1;
    }
    int n = snprintf(out, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portico/" PORTICO_VERSION
                     "\r\nAccept: application/json\r\n%s%s%s",
                     r->method, r->path, r->host, r->bearer ? "Authorization: Bearer " : "",
                     r->bearer ? r->bearer : "", r->bearer ? "\r\n" : "");
    if (n >= 0 && (size_t)n < cap && r->content_type)
        n += snprintf(out + n, cap - (size_t)n, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      r->content_type, r->body_len);
    if (n >= 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "\r\n");
    if (n < 0 || (size_t)n >= cap) {
        tsjson_errorf(err, errlen, "%s %s: the request head is longer than %zu bytes", r->method,
                      r->path, cap);
        return -1;
    }
    return n;
}

int tsapi_service_path(const char *tailnet, const char *label, char *out, size_t cap)
{
    int n = snprintf(out, cap, "/api/v2/tailnet/%s/vip-services/svc:%s", tailnet, label);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* application/x-www-form-urlencoded: RFC 3986 unreserved bytes as they
 * are, every other byte %XX. */
static void form_escape(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *out++ = (char)*p;
        } else {
            *out++ = '%';
            *out++ = hex[*p >> 4];
            *out++ = hex[*p & 15];
        }
    }
    *out = '\0';
}

char *tsapi_token_form(const char *client_id, const char *secret)
{
    static const char grant[] = "grant_type=client_credentials&client_id=";
    static const char sec[] = "&client_secret=";
    size_t n = sizeof grant + sizeof sec + 3 * (strlen(client_id) + strlen(secret));
    char *out = malloc(n);
    if (!out)
        return NULL;
    memcpy(out, grant, sizeof grant);
    form_escape(out + strlen(out), client_id);
    strcat(out, sec);
    form_escape(out + strlen(out), secret);
    return out;
}

/* One JSON object: what the token endpoint and a definition answer. */
static json_t *load(const char *what, const char *buf, size_t len, char *err, size_t errlen)
{
    json_t *root = tsjson_load(what, buf, len, err, errlen);
    if (root && !json_is_object(root)) {
        tsjson_errorf(err, errlen, "%s: not a JSON object", what);
        json_decref(root);
        root = NULL;
    }
    return root;
}

int tsapi_parse_token(const char *buf, size_t len, char *tok, size_t cap, long *expires_in,
                      char *err, size_t errlen)
{
    json_t *root = load("the token answer", buf, len, err, errlen);
    if (!root)
        return -1;
    int rc = 0;
    const json_t *at = json_object_get(root, "access_token");
    const json_t *type = json_object_get(root, "token_type");
    const json_t *exp = json_object_get(root, "expires_in");
    const char *t = json_is_string(at) ? json_string_value(at) : NULL;
    size_t tlen = t ? json_string_length(at) : 0;
    if (!t || tlen == 0)
        rc = tsjson_errorf(err, errlen, "the token answer has no access_token string");
    else if (tlen > TSAPI_TOKEN_MAX || tlen >= cap)
        rc = tsjson_errorf(err, errlen, "the token answer's access_token is longer than %d bytes",
                           TSAPI_TOKEN_MAX);
    for (size_t i = 0; rc == 0 && i < tlen; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            rc = tsjson_errorf(err, errlen,
                               "the token answer's access_token holds a byte that cannot go in "
                               "an Authorization header");
    /* RFC 6749 section 7.1: the type is case-insensitive; only Bearer is
     * a type portico can use */
    if (rc == 0 && type &&
        !(json_is_string(type) && strcasecmp(json_string_value(type), "bearer") == 0))
        rc = tsjson_errorf(err, errlen, "the token answer's token_type is not \"Bearer\"");
    long e = TSAPI_TOKEN_EXPIRES_DEFAULT;
    if (rc == 0 && exp && !json_is_null(exp)) {
        json_int_t v = json_is_integer(exp) ? json_integer_value(exp) : 0;
        if (v <= 0 || v > 366 * 86400)
            rc = tsjson_errorf(err, errlen,
                               "the token answer's expires_in is not a number of seconds from 1 "
                               "to a year");
        e = (long)v;
    }
    if (rc == 0) {
        memcpy(tok, t, tlen);
        tok[tlen] = '\0';
        *expires_in = e;
    }
    json_decref(root);
    return rc;
}

static void show(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    while (n && blank(s[n - 1]))
        n--;
    for (size_t i = 0; i < n && k + 1 < cap && k < TSAPI_ERROR_SHOWN; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cap)
        out[k] = '\0';
}

void tsapi_error_text(const char *body, size_t len, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    json_t *root = len <= LIMIT_TS_JSON_BYTES ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *m = json_is_object(root) ? json_object_get(root, "message") : NULL;
    const json_t *e = json_is_object(root) ? json_object_get(root, "error") : NULL;
    const json_t *d = json_is_object(root) ? json_object_get(root, "error_description") : NULL;
    if (json_is_string(m) && json_string_length(m)) {
        show(out, cap, json_string_value(m), json_string_length(m));
    } else if (json_is_string(e)) {
        char both[2 * TSAPI_ERROR_SHOWN + 4];
        int n = snprintf(both, sizeof both, "%.*s%s%.*s", TSAPI_ERROR_SHOWN, json_string_value(e),
                         json_is_string(d) ? ": " : "", TSAPI_ERROR_SHOWN,
                         json_is_string(d) ? json_string_value(d) : "");
        show(out, cap, both, n < 0 ? 0 : (size_t)n < sizeof both ? (size_t)n : sizeof both - 1);
    } else if (!root) {
        show(out, cap, body, len);
    }
    json_decref(root);
}

static json_t *string_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

char *tsapi_new_body(const struct tsapi_want *w)
{
    char name[4 + LIMIT_SERVICE_NAME + 1];
    snprintf(name, sizeof name, "svc:%s", w->label);
    json_t *j =
        json_pack("{s:s,s:s,s:o,s:o}", "name", name, "comment", TSAPI_COMMENT, "ports",
                  string_array(w->ports, w->nports), "tags", string_array(w->tags, w->ntags));
    char *out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return out;
}

/* A JSON array of strings (absent or null: empty): its strings in *v (up
 * to max), or -1. */
static int read_strings(const json_t *a, const char **v, size_t max, size_t *n)
{
    *n = 0;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > max)
        return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || json_string_length(s) > LIMIT_TS_STRING_BYTES ||
            strlen(json_string_value(s)) != json_string_length(s))
            return -1;
        v[(*n)++] = json_string_value(s);
    }
    return 0;
}

static bool in_set(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* The same strings, whatever the order and repeats. */
static bool same_set(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    for (size_t i = 0; i < na; i++)
        if (!in_set(b, nb, a[i]))
            return false;
    for (size_t i = 0; i < nb; i++)
        if (!in_set(a, na, b[i]))
            return false;
    return true;
}

/* Append s to out (cap bytes) at *k, cutting at the end. */
static void append(char *out, size_t cap, size_t *k, const char *s)
{
    while (*s && *k + 1 < cap)
        out[(*k)++] = *s++;
    if (cap)
        out[*k < cap ? *k : cap - 1] = '\0';
}

/* "[a b]" */
static void append_list(char *out, size_t cap, size_t *k, const char *const *v, size_t n)
{
    append(out, cap, k, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            append(out, cap, k, " ");
        append(out, cap, k, v[i]);
    }
    append(out, cap, k, "]");
}

int tsapi_compare(const char *body, size_t len, const struct tsapi_want *w, char **put, char *what,
                  size_t whatcap, char *err, size_t errlen)
{
    char name[4 + LIMIT_SERVICE_NAME + 1];
    snprintf(name, sizeof name, "svc:%s", w->label);
    *put = NULL;
    if (whatcap)
        what[0] = '\0';
    json_t *root = load(name, body, len, err, errlen);
    if (!root)
        return -1;
    const char *ports[LIMIT_TS_TAGS], *tags[LIMIT_TS_TAGS], *addrs[LIMIT_TS_ADDRS];
    size_t np = 0, nt = 0, na = 0;
    const json_t *jn = json_object_get(root, "name");
    int rc = 0;
    if (jn && !(json_is_string(jn) && strcmp(json_string_value(jn), name) == 0))
        rc = tsjson_errorf(err, errlen, "%s: the definition control sent is named %s", name,
                           json_is_string(jn) ? json_string_value(jn) : "(not a string)");
    else if (read_strings(json_object_get(root, "ports"), ports, LIMIT_TS_TAGS, &np) < 0)
        rc = tsjson_errorf(err, errlen, "%s: \"ports\" is not a list of at most %d strings", name,
                           LIMIT_TS_TAGS);
    else if (read_strings(json_object_get(root, "tags"), tags, LIMIT_TS_TAGS, &nt) < 0)
        rc = tsjson_errorf(err, errlen, "%s: \"tags\" is not a list of at most %d strings", name,
                           LIMIT_TS_TAGS);
    else if (read_strings(json_object_get(root, "addrs"), addrs, LIMIT_TS_ADDRS, &na) < 0)
        rc = tsjson_errorf(err, errlen, "%s: \"addrs\" is not a list of at most %d strings", name,
                           LIMIT_TS_ADDRS);
    for (size_t i = 0; rc == 0 && i < na; i++) {
        unsigned char a[16];
        if (inet_pton(AF_INET, addrs[i], a) != 1 && inet_pton(AF_INET6, addrs[i], a) != 1)
            rc = tsjson_errorf(err, errlen, "%s: \"addrs\" holds \"%.80s\", not an IP address",
                               name, addrs[i]);
    }
    if (rc < 0) {
        json_decref(root);
        return -1;
    }
    bool ports_same = same_set(ports, np, w->ports, w->nports);
    bool tags_same = same_set(tags, nt, w->tags, w->ntags);
    if (ports_same && tags_same) {
        json_decref(root);
        return 0;
    }
    size_t k = 0;
    if (!ports_same) {
        append(what, whatcap, &k, "ports ");
        append_list(what, whatcap, &k, ports, np);
        append(what, whatcap, &k, " -> ");
        append_list(what, whatcap, &k, w->ports, w->nports);
    }
    if (!tags_same) {
        append(what, whatcap, &k, ports_same ? "tags " : ", tags ");
        append_list(what, whatcap, &k, tags, nt);
        append(what, whatcap, &k, " -> ");
        append_list(what, whatcap, &k, w->tags, w->ntags);
    }
    for (char *p = what; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    /* everything else goes back as it came: a PUT replaces the whole
     * definition, and dropping the auto-allocated addrs is refused */
    if (json_object_set_new(root, "name", json_string(name)) < 0 ||
        json_object_set_new(root, "ports", string_array(w->ports, w->nports)) < 0 ||
        json_object_set_new(root, "tags", string_array(w->tags, w->ntags)) < 0 ||
        !(*put = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        rc = tsjson_errorf(err, errlen, "%s: out of memory", name);
    json_decref(root);
    return rc < 0 ? -1 : 1;
}
