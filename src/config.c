/* config.c - read, validate and free the configuration snapshot.
 *
 * The file is read whole (at most LIMIT_CONFIG_BYTES), scanned once as a
 * stream of events to refuse what the schema never needs (anchors, aliases,
 * several documents), then loaded as a libyaml document and walked against
 * the schema. Every error names the file, the line and the key; nothing
 * survives a failed load. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "limits.h"
#include "resolve.h"
#include "route.h"
#include "tls.h"

#define ADDR_HELP     "(use host:port, [v6]:port or unix:/path)"
#define UPSTREAM_HELP "(use http://host:port, https://host:port or unix:/path)"
#define DURATION_HELP "(use 250ms, 5s, 2m or 1h)"
#define SHOW_MAX      80 /* bytes of user text quoted in a message */

struct parser {
    const char *name;
    char *err;
    size_t errlen;
    const char *text;
    size_t len;
    yaml_document_t doc;
    bool have_doc;
    struct config *c;
    struct route_table *upstream_keys; /* key -> struct config_upstream *; keys owned by c */
    size_t upstream_cap;               /* c->upstreams never moves: pointers into it are kept */
    char shown[4][SHOW_MAX + 8];
    unsigned nshown;
    int tls_line, tls_default_line; /* where "tls:" and its default_cert are */
    /* The service being parsed: its https:// upstreams are verified with these. */
    const char *svc_tls_ca;
    const yaml_node_t *svc_tls_ca_node;
    bool svc_tls_insecure;
    bool svc_has_https;
    /* The service or auth provider being parsed (see config_addr.owner). */
    const char *owner_kind, *owner;
};

/* ---- messages --------------------------------------------------------------- */

/* Copy user text for a message: printable, bounded, one line, no quotes. */
static const char *show_into(char *buf, size_t cap, const char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (o >= SHOW_MAX) {
            while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
                o--; /* do not cut a UTF-8 sequence */
            if (o > 0 && (unsigned char)buf[o - 1] >= 0xc0)
                o--;
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = (char)(ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\' ? '?' : ch);
    }
    buf[o] = '\0';
    return buf;
}

static const char *show(struct parser *p, const char *s)
{
    char *buf = p->shown[p->nshown++ % 4];
    return show_into(buf, sizeof p->shown[0], s);
}

static int vfailat(struct parser *p, size_t line, const char *fmt, va_list ap)
{
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (!p->err || p->errlen == 0)
        return -1;
    if (line)
        snprintf(p->err, p->errlen, "%s:%zu: %s", p->name, line, msg);
    else
        snprintf(p->err, p->errlen, "%s: %s", p->name, msg);
    return -1;
}

__attribute__((format(printf, 3, 4))) static int failat(struct parser *p, size_t line,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfailat(p, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* A setting that loads but is likely a mistake: noted for `check` and the
 * log, as "FILE:LINE: warning: message". */
__attribute__((format(printf, 3, 4))) static void warn(struct parser *p, const yaml_node_t *n,
                                                       const char *fmt, ...)
{
    char msg[768], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int len = snprintf(line, sizeof line, "%s:%zu: warning: %s\n", p->name,
                       n ? n->start_mark.line + 1 : 0, msg);
    if (len < 0)
        return;
    size_t have = p->c->warnings ? strlen(p->c->warnings) : 0;
    char *w = realloc(p->c->warnings, have + (size_t)len + 1);
    if (!w)
        return; /* a warning lost to a failed allocation leaves the config valid */
    memcpy(w + have, line, (size_t)len + 1);
    p->c->warnings = w;
}

/* Fail at the line of node n (or with no line when n is NULL). */
__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, const yaml_node_t *n,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfailat(p, n ? n->start_mark.line + 1 : 0, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_oom(struct parser *p)
{
    return failat(p, 0, "out of memory");
}

static int fail_yaml(struct parser *p, const yaml_parser_t *yp)
{
    if (yp->error == YAML_MEMORY_ERROR)
        return fail_oom(p);
    const char *problem = yp->problem ? yp->problem : "cannot parse the file";
    if (yp->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t line = 1;
        for (size_t i = 0; i < yp->problem_offset && i < p->len; i++)
            line += p->text[i] == '\n';
        return failat(p, line, "%s (the file must be UTF-8 text)", problem);
    }
    if (yp->context)
        return failat(p, yp->problem_mark.line + 1, "%s (%s on line %zu)", problem, yp->context,
                      yp->context_mark.line + 1);
    return failat(p, yp->problem_mark.line + 1, "%s", problem);
}

/* ---- durations and addresses ------------------------------------------------- */

int config_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t n = 0;
    bool overflow = false;
    size_t i = 0;
    if (!s)
        return -EINVAL;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            n = n * 10 + d;
    }
    if (i == 0)
        return -EINVAL;
    uint64_t unit;
    if (strcmp(s + i, "ms") == 0)
        unit = 1;
    else if (strcmp(s + i, "s") == 0)
        unit = 1000;
    else if (strcmp(s + i, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(s + i, "h") == 0)
        unit = 3600 * 1000;
    else
        return -EINVAL;
    if (overflow || n > UINT64_MAX / unit)
        return -ERANGE;
    *ms = n * unit;
    return 0;
}

/* 1 to 65535, or 0 too when any_port (a listen address: the kernel picks a
 * free port, reported in the "listening" log line). */
static int parse_port(const char *s, uint16_t *port, bool any_port)
{
    unsigned v = 0;
    size_t i = 0;
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 5)
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (i == 0 || (v == 0 && !any_port) || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static bool host_chars_valid(const char *h)
{
    for (; *h; h++) {
        char ch = *h;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static bool looks_numeric(const char *h)
{
    for (; *h; h++)
        if (!((*h >= '0' && *h <= '9') || *h == '.'))
            return false;
    return true;
}

/* Keep only the fields that identify an endpoint, so equal endpoints compare
 * equal byte for byte. */
static void addr_set4(struct config_addr *out, struct in_addr ip, uint16_t port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
    memset(&out->sa, 0, sizeof out->sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr = ip;
    out->salen = sizeof *in;
}

static void addr_set6(struct config_addr *out, const struct sockaddr_in6 *src, uint16_t port)
{
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
    memset(&out->sa, 0, sizeof out->sa);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = src->sin6_addr;
    in6->sin6_scope_id = src->sin6_scope_id;
    out->salen = sizeof *in6;
}

static void addr_set(struct config_addr *out, const struct addrinfo *ai, uint16_t port)
{
    if (ai->ai_family == AF_INET)
        addr_set4(out, ((const struct sockaddr_in *)ai->ai_addr)->sin_addr, port);
    else
        addr_set6(out, (const struct sockaddr_in6 *)ai->ai_addr, port);
}

/* A host name as DNS allows it: labels of 1 to 63 letters, digits, '-' and
 * '_' (service names in container networks use it), not starting or ending
 * with '-', separated by single dots; one trailing dot is allowed. */
static bool host_name_valid(const char *h)
{
    size_t len = strlen(h), label = 0;
    if (len == 0 || len > LIMIT_HOST_LEN + 1 || (len == LIMIT_HOST_LEN + 1 && h[len - 1] != '.'))
        return false;
    for (size_t i = 0; i <= len; i++) {
        char ch = h[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0)
                return ch == '\0' && i == len && len > 1 && h[len - 1] == '.';
            if (label > 63 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (label == 0 && ch == '-')
            return false;
        label++;
    }
    return true;
}

/* any_port: a listen address, where port 0 asks the kernel for a free one.
 * resolve: look a host name up now (a listen address) rather than keep it
 * for the resolver (an upstream). */
static int parse_addr(const char *s, struct config_addr *out, bool any_port, bool resolve,
                      char *err, size_t errlen);

int config_parse_addr(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    return parse_addr(s, out, false, true, err, errlen);
}

int config_parse_target(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    return parse_addr(s, out, false, false, err, errlen);
}

static int parse_addr(const char *s, struct config_addr *out, bool any_port, bool resolve,
                      char *err, size_t errlen)
{
    char shown[SHOW_MAX + 8];
    char host[sizeof out->text];
    const char *portstr;
    uint16_t port;

    memset(out, 0, sizeof *out);
    if (strlen(s) >= sizeof out->text) {
        snprintf(err, errlen, "address \"%s\" is too long", show_into(shown, sizeof shown, s));
        return -EINVAL;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        const char *path = s + 5;
        struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
        if (path[0] != '/') {
            snprintf(err, errlen, "unix socket path in \"%s\" must be absolute",
                     show_into(shown, sizeof shown, s));
            return -EINVAL;
        }
        size_t plen = strlen(path);
        if (plen >= sizeof un->sun_path) {
            snprintf(err, errlen, "unix socket path in \"%s\" is too long (at most %zu bytes)",
                     show_into(shown, sizeof shown, s), sizeof un->sun_path - 1);
            return -EINVAL;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, plen + 1);
        out->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
        strcpy(out->text, s);
        out->unix_mode = 0660; /* never world-writable unless asked */
        out->unix_gid = -1;
        return 0;
    }

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || close == s + 1)
            goto invalid;
        size_t hlen = (size_t)(close - s - 1);
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        portstr = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s)
            goto invalid;
        size_t hlen = (size_t)(colon - s);
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        if (!host_chars_valid(host)) /* also refuses an unbracketed IPv6 literal */
            goto invalid;
        portstr = colon + 1;
    }
    if (parse_port(portstr, &port, any_port) < 0) {
        snprintf(err, errlen, "invalid port in \"%s\" (use %s to 65535)",
                 show_into(shown, sizeof shown, s), any_port ? "0 (any free port)" : "1");
        return -EINVAL;
    }

    if (s[0] == '[') {
        struct addrinfo hints = {.ai_family = AF_INET6,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
            snprintf(err, errlen, "invalid IPv6 address in \"%s\" " ADDR_HELP,
                     show_into(shown, sizeof shown, s));
            return -EINVAL;
        }
        addr_set(out, res, port);
        freeaddrinfo(res);
    } else if (looks_numeric(host)) {
        /* inet_pton, not getaddrinfo: "127.1" and "1" are typos, not addresses. */
        struct in_addr ip;
        if (inet_pton(AF_INET, host, &ip) != 1) {
            snprintf(err, errlen, "invalid IPv4 address in \"%s\" " ADDR_HELP,
                     show_into(shown, sizeof shown, s));
            return -EINVAL;
        }
        addr_set4(out, ip, port);
    } else if (!resolve) {
        if (!host_name_valid(host)) {
            snprintf(err, errlen,
                     "invalid host name \"%s\" (labels of letters, digits, '-' and '_' "
                     "separated by dots)",
                     show_into(shown, sizeof shown, host));
            return -EINVAL;
        }
        for (char *q = host; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        memcpy(out->host, host, strlen(host) + 1);
        out->port = port;
        out->sa.ss_family = AF_UNSPEC;
        out->salen = 0;
    } else {
        struct addrinfo hints = {
            .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(host, portstr, &hints, &res);
        if (rc != 0 || !res) {
            snprintf(err, errlen, "cannot resolve \"%s\": %s", show_into(shown, sizeof shown, host),
                     rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
            return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
        }
        addr_set(out, res, port);
        freeaddrinfo(res);
    }
    strcpy(out->text, s);
    return 0;

invalid:
    snprintf(err, errlen, "invalid address \"%s\" " ADDR_HELP, show_into(shown, sizeof shown, s));
    return -EINVAL;
}

int config_parse_listen_addr(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    return parse_addr(s, out, true, true, err, errlen);
}

bool config_addr_any_port(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_port == 0;
    if (a->sa.ss_family == AF_INET6)
        return ((const struct sockaddr_in6 *)&a->sa)->sin6_port == 0;
    return false;
}

/* Two listen addresses that cannot both be bound. Port 0 never clashes:
 * each such listener gets a port of its own. */
static bool addr_clash(const struct config_addr *a, const struct config_addr *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0 &&
           !config_addr_any_port(a);
}

/* ---- nodes and scalars -------------------------------------------------------- */

static yaml_node_t *node(struct parser *p, int i)
{
    return yaml_document_get_node(&p->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *v = scalar(n);
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static int want_string(struct parser *p, const yaml_node_t *n, const char *what, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(p, n, "%s: expected a string", what);
    if (strlen(scalar(n)) != n->data.scalar.length)
        return fail(p, n, "%s: contains a NUL byte", what);
    *out = scalar(n);
    return 0;
}

static int want_bool(struct parser *p, const yaml_node_t *n, const char *what, bool *out)
{
    if (is_plain(n) && strcmp(scalar(n), "true") == 0)
        *out = true;
    else if (is_plain(n) && strcmp(scalar(n), "false") == 0)
        *out = false;
    else
        return fail(p, n, "%s: expected a boolean (true or false)", what);
    return 0;
}

static int want_uint(struct parser *p, const yaml_node_t *n, const char *what, uint32_t min,
                     uint32_t max, uint32_t *out)
{
    if (!is_plain(n))
        return fail(p, n, "%s: expected a number", what);
    const char *v = scalar(n);
    bool neg = v[0] == '-';
    size_t i = neg;
    uint64_t x = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++)
        if (x <= UINT32_MAX)
            x = x * 10 + (uint64_t)(v[i] - '0');
    if (i == (size_t)neg || v[i] != '\0')
        return fail(p, n, "%s: expected a whole number, not \"%s\"", what, show(p, v));
    if (neg && x != 0)
        x = UINT64_MAX;
    if (x < min || x > max) {
        if (max == UINT32_MAX)
            return fail(p, n, "%s: must be at least %u", what, min);
        return fail(p, n, "%s: must be between %u and %u", what, min, max);
    }
    *out = (uint32_t)x;
    return 0;
}

static int want_duration(struct parser *p, const yaml_node_t *n, const char *what, uint32_t *out)
{
    const char *v;
    uint64_t ms;
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(p, n, "%s: expected a duration " DURATION_HELP, what);
    if (want_string(p, n, what, &v) < 0)
        return -1;
    size_t digits = strspn(v, "0123456789");
    if (digits > 0 && v[digits] == '\0')
        return fail(p, n, "%s: duration \"%s\" has no unit (write %ss, or %sms for milliseconds)",
                    what, show(p, v), show(p, v), show(p, v));
    int rc = config_parse_duration(v, &ms);
    if (rc == -EINVAL)
        return fail(p, n, "%s: invalid duration \"%s\" " DURATION_HELP, what, show(p, v));
    if (rc < 0 || ms > UINT32_MAX)
        return fail(p, n, "%s: duration \"%s\" is too long (at most %uh)", what, show(p, v),
                    UINT32_MAX / 3600000u);
    if (ms == 0)
        return fail(p, n, "%s: duration must be greater than 0", what);
    *out = (uint32_t)ms;
    return 0;
}

/* A duration, or "off" for none (0). */
static int want_duration_or_off(struct parser *p, const yaml_node_t *n, const char *what,
                                uint32_t *out)
{
    uint64_t ms;
    if (n->type == YAML_SCALAR_NODE && strcmp(scalar(n), "off") == 0) {
        *out = 0;
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE && config_parse_duration(scalar(n), &ms) == -EINVAL &&
        strspn(scalar(n), "0123456789") != strlen(scalar(n)))
        return fail(p, n,
                    "%s: invalid duration \"%s\" (use 250ms, 5s, 2m or 1h, or off for no "
                    "limit)",
                    what, show(p, scalar(n)));
    return want_duration(p, n, what, out);
}

static int want_sequence(struct parser *p, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(p, n, "%s: expected a sequence", what);
    return 0;
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static size_t map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

struct key_ref {
    const yaml_node_t *node;
    size_t idx;
};

static int key_names_cmp(const struct key_ref *x, const struct key_ref *y, bool nocase)
{
    if (nocase)
        return strcasecmp(scalar(x->node), scalar(y->node));
    size_t lx = x->node->data.scalar.length, ly = y->node->data.scalar.length;
    int r = memcmp(x->node->data.scalar.value, y->node->data.scalar.value, lx < ly ? lx : ly);
    if (r == 0 && lx != ly)
        r = lx < ly ? -1 : 1;
    return r;
}

/* Sort by name, then by position, so the later of two equal keys follows. */
static int key_cmp(const struct key_ref *x, const struct key_ref *y, bool nocase)
{
    int r = key_names_cmp(x, y, nocase);
    if (r == 0)
        r = x->idx < y->idx ? -1 : 1;
    return r;
}

static int key_cmp_exact(const void *a, const void *b)
{
    return key_cmp(a, b, false);
}

static int key_cmp_nocase(const void *a, const void *b)
{
    return key_cmp(a, b, true);
}

/* A mapping whose keys are strings, none repeated. libyaml keeps repeated
 * keys, and the schema never means "the last one wins". HTTP header names
 * compare without case. */
static int want_mapping(struct parser *p, const yaml_node_t *n, const char *what, bool nocase)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(p, n, "%s: expected a mapping", what);
    size_t len = map_len(n);
    if (len < 2) {
        if (len == 1 && node(p, n->data.mapping.pairs.start->key)->type != YAML_SCALAR_NODE)
            return fail(p, node(p, n->data.mapping.pairs.start->key),
                        "%s: expected a string as key", what);
        return 0;
    }
    struct key_ref *keys = calloc(len, sizeof *keys);
    if (!keys)
        return fail_oom(p);
    for (size_t i = 0; i < len; i++) {
        keys[i].node = node(p, n->data.mapping.pairs.start[i].key);
        keys[i].idx = i;
        if (keys[i].node->type != YAML_SCALAR_NODE) {
            int rc = fail(p, keys[i].node, "%s: expected a string as key", what);
            free(keys);
            return rc;
        }
    }
    qsort(keys, len, sizeof *keys, nocase ? key_cmp_nocase : key_cmp_exact);
    const struct key_ref *dup = NULL;
    for (size_t i = 1; i < len; i++)
        if (key_names_cmp(&keys[i - 1], &keys[i], nocase) == 0 && (!dup || keys[i].idx < dup->idx))
            dup = &keys[i]; /* the later of the two, earliest in the file */
    int rc = 0;
    if (dup)
        rc = fail(p, dup->node, "duplicate key \"%s\" in %s", show(p, scalar(dup->node)), what);
    free(keys);
    return rc;
}

/* Find key among names; returns its index or -1. */
static int key_index(const yaml_node_t *k, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(scalar(k), names[i]) == 0 && strlen(names[i]) == k->data.scalar.length)
            return (int)i;
    return -1;
}

/* Sort a mapping's values into slots by key name; an unknown key is an error. */
static int map_collect(struct parser *p, const yaml_node_t *map, const char *const *names, size_t n,
                       yaml_node_t **vals, const char *where)
{
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = node(p, pair->key);
        int i = key_index(k, names, n);
        if (i < 0)
            return fail(p, k, "unknown key \"%s\" %s", show(p, scalar(k)), where);
        vals[i] = node(p, pair->value);
    }
    return 0;
}

/* ---- upstreams ----------------------------------------------------------------- */

/* The client context for the current service's https:// upstreams:
 * one per distinct (tls_ca, tls_insecure_skip_verify), loaded once. */
static struct ssl_ctx_st *client_ctx(struct parser *p)
{
    struct config *c = p->c;
    const char *ca = p->svc_tls_insecure ? NULL : p->svc_tls_ca;
    for (size_t i = 0; i < c->ntls_clients; i++) {
        struct config_tls_client *tc = &c->tls_clients[i];
        if (tc->insecure == p->svc_tls_insecure &&
            (tc->ca == ca || (tc->ca && ca && strcmp(tc->ca, ca) == 0)))
            return tc->ctx;
    }
    struct config_tls_client *grown =
        realloc(c->tls_clients, (c->ntls_clients + 1) * sizeof *c->tls_clients);
    if (!grown) {
        fail_oom(p);
        return NULL;
    }
    c->tls_clients = grown;
    struct config_tls_client *tc = &c->tls_clients[c->ntls_clients];
    char msg[600];
    tc->ctx = tls_client_ctx_new(ca, p->svc_tls_insecure, msg, sizeof msg);
    if (!tc->ctx) {
        fail(p, ca ? p->svc_tls_ca_node : NULL, "%s%s", ca ? "tls_ca: " : "", msg);
        return NULL;
    }
    tc->ca = ca ? strdup(ca) : NULL;
    tc->insecure = p->svc_tls_insecure;
    c->ntls_clients++;
    if (ca && !tc->ca) {
        fail_oom(p);
        return NULL;
    }
    return tc->ctx;
}

/* Record who wrote a target address and where, for messages about its name. */
static void set_owner(struct parser *p, const yaml_node_t *n, struct config_addr *a)
{
    a->owner_kind = p->owner_kind;
    a->owner = p->owner;
    a->line = n ? (int)n->start_mark.line + 1 : 0;
}

/* An upstream URL, read. */
struct upstream_url {
    enum upstream_kind kind;
    struct config_addr addr;
    char key[NI_MAXHOST + NI_MAXSERV + 4200]; /* see config_upstream.key */
    char tls_name[sizeof((struct config_addr *)0)->text];
    const char *path; /* with_path: the path and query as written (points into s), or "/" */
    char
        authority[sizeof((struct config_addr *)0)->text]; /* host[:port] as written; "" for unix: */
};

/* Read the upstream URL s (the value of node n). Paths are refused unless
 * with_path (an auth provider's URL has one; a service upstream does not). */
static int read_upstream_url(struct parser *p, const yaml_node_t *n, const char *s,
                             const char *what, bool with_path, struct upstream_url *o)
{
    char msg[512];
    char *key = o->key, *tls_name = o->tls_name;
    struct config_addr addr;
    enum upstream_kind kind;
    tls_name[0] = '\0';
    o->authority[0] = '\0';
    o->path = "/";
    if (strncmp(s, "unix:", 5) == 0 && !with_path) {
        kind = UPSTREAM_UNIX;
        if (config_parse_addr(s, &addr, msg, sizeof msg) < 0)
            return fail(p, n, "%s: %s", what, msg);
        snprintf(key, sizeof o->key, "%s", s);
    } else if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) {
        kind = s[4] == 's' ? UPSTREAM_HTTPS : UPSTREAM_HTTP;
        const char *scheme = kind == UPSTREAM_HTTPS ? "https" : "http";
        const char *auth = s + strlen(scheme) + 3;
        size_t alen = strcspn(auth, with_path ? "/?" : "/");
        if (with_path && auth[alen])
            o->path = auth + alen;
        else if (auth[alen] == '/' && auth[alen + 1] != '\0')
            return fail(p, n,
                        "%s: \"%s\" has a path; upstream paths are not supported; use routes "
                        "with strip_prefix",
                        what, show(p, s));
        char hostport[sizeof addr.text];
        const char *close = auth[0] == '[' ? memchr(auth, ']', alen) : NULL;
        const char *portsep = close ? close + 1 : memchr(auth, ':', alen);
        bool has_port = portsep && portsep < auth + alen && *portsep == ':';
        if (alen == 0 || alen + 4 >= sizeof hostport || strcspn(auth, "@?#") < alen ||
            (auth[0] == '[' && !close))
            return fail(p, n, "%s: invalid upstream \"%s\" " UPSTREAM_HELP, what, show(p, s));
        snprintf(hostport, sizeof hostport, "%.*s%s", (int)alen, auth,
                 has_port                 ? ""
                 : kind == UPSTREAM_HTTPS ? ":443"
                                          : ":80");
        /* The name for SNI and certificate checks: the host as written. */
        size_t hlen = auth[0] == '[' ? (size_t)(close - auth - 1)
                      : has_port     ? (size_t)(portsep - auth)
                                     : alen;
        snprintf(tls_name, sizeof o->tls_name, "%.*s", (int)hlen, auth[0] == '[' ? auth + 1 : auth);
        snprintf(o->authority, sizeof o->authority, "%.*s", (int)alen, auth);
        if (strlen(s) >= sizeof addr.text)
            return fail(p, n, "%s: upstream \"%s\" is too long", what, show(p, s));
        if (config_parse_target(hostport, &addr, msg, sizeof msg) < 0)
            return fail(p, n, "%s: %s", what, msg);
        snprintf(addr.text, sizeof addr.text, "%.*s", (int)(auth + alen - s), s);
        char numhost[NI_MAXHOST], numport[NI_MAXSERV];
        if (addr.host[0]) { /* a name: the pool follows it, whatever it resolves to */
            snprintf(numhost, sizeof numhost, "%s", addr.host);
            snprintf(numport, sizeof numport, "%u", addr.port);
        } else if (getnameinfo((const struct sockaddr *)&addr.sa, addr.salen, numhost,
                               sizeof numhost, numport, sizeof numport,
                               NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            return fail(p, n, "%s: invalid upstream \"%s\" " UPSTREAM_HELP, what, show(p, s));
        int kl = addr.sa.ss_family == AF_INET6
                     ? snprintf(key, sizeof o->key, "%s://[%s]:%s", scheme, numhost, numport)
                     : snprintf(key, sizeof o->key, "%s://%s:%s", scheme, numhost, numport);
        /* Services that verify differently must not share connections. */
        if (kind == UPSTREAM_HTTPS &&
            snprintf(key + kl, sizeof o->key - (size_t)kl, " name=%s%s%s", tls_name,
                     p->svc_tls_insecure ? " insecure"
                     : p->svc_tls_ca     ? " ca="
                                         : "",
                     !p->svc_tls_insecure && p->svc_tls_ca ? p->svc_tls_ca : "") >=
                (int)(sizeof o->key - (size_t)kl))
            return fail(p, n, "%s: upstream \"%s\" is too long", what, show(p, s));
    } else if (with_path) {
        return fail(p, n, "%s: unsupported URL \"%s\" (use http://host:port/path or https://...)",
                    what, show(p, s));
    } else {
        return fail(p, n, "%s: unsupported upstream \"%s\" " UPSTREAM_HELP, what, show(p, s));
    }
    o->kind = kind;
    o->addr = addr;
    set_owner(p, n, &o->addr);
    return 0;
}

/* Read an upstream URL into *out (shared with other services naming the
 * same endpoint) and, when authority is given, its host[:port] as written
 * (NULL for unix: upstreams), owned by the caller. */
static int parse_upstream(struct parser *p, const yaml_node_t *n, const char *what,
                          const struct config_upstream **out, char **authority)
{
    struct config *c = p->c;
    const char *s;
    static __thread struct upstream_url url;
    if (want_string(p, n, what, &s) < 0 || read_upstream_url(p, n, s, what, false, &url) < 0)
        return -1;
    const char *key = url.key, *tls_name = url.tls_name;
    enum upstream_kind kind = url.kind;
    if (authority && url.authority[0] && !(*authority = strdup(url.authority)))
        return fail_oom(p);
    if (c->nupstreams >= p->upstream_cap)
        return fail(p, n, "%s: too many upstreams", what); /* the count pass missed one */
    struct config_upstream *u = &c->upstreams[c->nupstreams];
    u->key = strdup(key);
    if (!u->key)
        return fail_oom(p);
    void *prev = NULL;
    int rc = route_table_add(p->upstream_keys, u->key, u, &prev);
    if (rc == -EEXIST) {
        free(u->key);
        u->key = NULL;
        *out = prev;
        return 0;
    }
    if (rc < 0) {
        free(u->key);
        u->key = NULL;
        return fail_oom(p);
    }
    u->kind = kind;
    u->addr = url.addr;
    u->idx = c->nupstreams++;
    if (kind == UPSTREAM_HTTPS) {
        p->svc_has_https = true;
        u->tls_name = strdup(tls_name);
        if (!u->tls_name)
            return fail_oom(p);
        if (!(u->tls_ctx = client_ctx(p)))
            return -1;
    }
    *out = u;
    return 0;
}

/* ---- services ------------------------------------------------------------------- */

static bool service_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > LIMIT_SERVICE_NAME || strlen(s) != len || s[0] == '-' ||
        s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* Add a normalised host name owned by svc to the host table. */
static int add_host(struct parser *p, struct config_service *svc, char *host, const yaml_node_t *n,
                    const char *what)
{
    if (!route_host_valid(host)) {
        int rc = fail(p, n, "%s: \"%s\" is not a valid host name", what, show(p, host));
        free(host);
        return rc;
    }
    svc->hosts[svc->nhosts++] = host;
    void *prev = NULL;
    int rc = route_table_add(p->c->routes, host, svc, &prev);
    if (rc == -EEXIST) {
        const struct config_service *other = prev;
        if (other == svc)
            return fail(p, n, "host \"%s\" is listed twice in service \"%s\"", show(p, host),
                        show(p, svc->name));
        return fail(p, n, "host \"%s\" is already served by service \"%s\"", show(p, host),
                    show(p, other->name));
    }
    if (rc < 0)
        return fail_oom(p);
    return 0;
}

static int parse_hosts(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                       const char *what)
{
    if (want_sequence(p, n, what) < 0)
        return -1;
    size_t count = seq_len(n);
    if (count == 0)
        return fail(p, n, "%s: the list is empty (leave hosts out to serve %s.<domain>)", what,
                    show(p, svc->name));
    svc->hosts = calloc(count, sizeof *svc->hosts);
    if (!svc->hosts)
        return fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *h = node(p, *it);
        const char *s;
        if (want_string(p, h, what, &s) < 0)
            return -1;
        char *host = strdup(s);
        if (!host)
            return fail_oom(p);
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

/* A route prefix as requests will be compared with it: normalised like a
 * request path, so "/api//" cannot silently never match. */
static int parse_prefix(struct parser *p, const yaml_node_t *n, const char *what, char **out)
{
    const char *s;
    char norm[1024];
    if (want_string(p, n, what, &s) < 0)
        return -1;
    if (s[0] != '/')
        return fail(p, n, "%s: prefix \"%s\" must start with '/'", what, show(p, s));
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '?' || *q == '#')
            return fail(p, n, "%s: prefix \"%s\" may not contain spaces, '?', '#' or non-ASCII",
                        what, show(p, s));
    if (route_path_normalize(s, strlen(s), norm, sizeof norm) < 0)
        return fail(p, n, "%s: invalid prefix \"%s\"", what, show(p, s));
    if (strcmp(norm, "/") == 0)
        return fail(p, n,
                    "%s: prefix \"/\" is the whole service; set the service's upstream instead",
                    what);
    *out = strdup(norm);
    if (!*out)
        return fail_oom(p);
    return 0;
}

static int parse_routes(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                        const char *what)
{
    static const char *const names[] = {"prefix", "upstream", "strip_prefix"};
    char where[128];
    snprintf(where, sizeof where, "in a route of service \"%s\"", svc->name);
    if (want_sequence(p, n, what) < 0)
        return -1;
    svc->routes = calloc(seq_len(n) ? seq_len(n) : 1, sizeof *svc->routes);
    if (!svc->routes)
        return fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = node(p, *it);
        yaml_node_t *vals[3] = {0};
        if (want_mapping(p, item, what, false) < 0 ||
            map_collect(p, item, names, 3, vals, where) < 0)
            return -1;
        if (!vals[0])
            return fail(p, item, "%s: route has no prefix", what);
        if (!vals[1])
            return fail(p, item, "%s: route has no upstream", what);
        struct config_route *r = &svc->routes[svc->nroutes];
        if (parse_prefix(p, vals[0], what, &r->prefix) < 0)
            return -1;
        r->prefix_len = strlen(r->prefix);
        r->line = (int)item->start_mark.line + 1;
        svc->nroutes++;
        for (size_t i = 0; i + 1 < svc->nroutes; i++)
            if (strcmp(svc->routes[i].prefix, r->prefix) == 0)
                return fail(p, vals[0], "%s: prefix \"%s\" is listed twice", what,
                            show(p, r->prefix));
        if (parse_upstream(p, vals[1], what, &r->upstream, &r->authority) < 0)
            return -1;
        if (vals[2] && want_bool(p, vals[2], what, &r->strip_prefix) < 0)
            return -1;
    }
    /* Longest prefix first, equal lengths in file order (insertion sort is stable). */
    for (size_t i = 1; i < svc->nroutes; i++) {
        struct config_route r = svc->routes[i];
        size_t j = i;
        for (; j > 0 && svc->routes[j - 1].prefix_len < r.prefix_len; j--)
            svc->routes[j] = svc->routes[j - 1];
        svc->routes[j] = r;
    }
    return 0;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Headers portico owns: hop-by-hop ones, and those that frame or route the
 * message. Setting them from the configuration would break the exchange. */
static const char *const reserved_headers[] = {
    "connection", "keep-alive",     "proxy-connection",   "te",
    "trailer",    "upgrade",        "proxy-authenticate", "proxy-authorization",
    "host",       "content-length", "transfer-encoding",
};

/* "host_header: upstream" (the upstream's host[:port] as written) or a
 * host[:port] to send in place of the client's Host. */
static int parse_host_header(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                             const char *what)
{
    const char *v;
    char norm[LIMIT_HOST_LEN + 8];
    if (want_string(p, n, what, &v) < 0)
        return -1;
    if (strcmp(v, "upstream") == 0) {
        svc->host_header_upstream = true;
        return 0;
    }
    size_t len = strlen(v);
    bool ok = len > 0 && len <= LIMIT_HOST_LEN && !strpbrk(v, "/@\\?#,\"<>") &&
              route_host_normalize(v, len, norm, sizeof norm) > 0;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)v[i] > 0x20 && (unsigned char)v[i] < 0x7f;
    if (!ok)
        return fail(p, n,
                    "%s: \"%s\" is neither \"upstream\" nor a host name with an optional port "
                    "(e.g. localhost:8888)",
                    what, show(p, v));
    svc->host_header = strdup(v);
    return svc->host_header ? 0 : fail_oom(p);
}

static int parse_headers(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                         const char *what)
{
    if (want_mapping(p, n, what, true) < 0)
        return -1;
    svc->headers = calloc(map_len(n) ? map_len(n) : 1, sizeof *svc->headers);
    if (!svc->headers)
        return fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *k = node(p, pair->key), *v = node(p, pair->value);
        const char *name = scalar(k), *value;
        size_t nlen = k->data.scalar.length;
        bool ok = nlen > 0 && strlen(name) == nlen;
        for (size_t i = 0; ok && i < nlen; i++)
            ok = is_tchar((unsigned char)name[i]);
        if (!ok)
            return fail(p, k, "%s: \"%s\" is not a valid header name", what, show(p, name));
        for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++)
            if (strcasecmp(name, reserved_headers[i]) == 0)
                return fail(p, k, "%s: header \"%s\" cannot be set (portico manages it)", what,
                            show(p, name));
        if (want_string(p, v, what, &value) < 0)
            return -1;
        for (const char *q = value; *q; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return fail(p, v, "%s: value of \"%s\" contains a control character", what,
                            show(p, name));
        struct config_header *h = &svc->headers[svc->nheaders];
        h->name = strdup(name);
        h->value = strdup(value);
        svc->nheaders++;
        if (!h->name || !h->value)
            return fail_oom(p);
    }
    return 0;
}

static int parse_addr_node(struct parser *p, const yaml_node_t *n, const char *what,
                           struct config_addr *out, bool any_port);
static int parse_target_node(struct parser *p, const yaml_node_t *n, const char *what,
                             struct config_addr *out);

/* "tcp: {listen: ADDR, upstream: ADDR}". The listen address must not be
 * used by any other listener of the configuration. */
static int parse_tcp(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                     const char *what)
{
    static const char *const names[] = {"listen", "upstream"};
    struct config *c = p->c;
    yaml_node_t *vals[2] = {0};
    char sub[LIMIT_SERVICE_NAME + 160], where[LIMIT_SERVICE_NAME + 160];
    snprintf(where, sizeof where, "in %s", what);
    if (want_mapping(p, n, what, false) < 0 || map_collect(p, n, names, 2, vals, where) < 0)
        return -1;
    if (!vals[0])
        return fail(p, n, "%s: no listen address", what);
    if (!vals[1])
        return fail(p, n, "%s: no upstream address", what);
    svc->tcp = calloc(1, sizeof *svc->tcp);
    if (!svc->tcp)
        return fail_oom(p);
    struct config_tcp *t = svc->tcp;
    t->line = (int)n->start_mark.line + 1;
    snprintf(sub, sizeof sub, "%s.listen", what);
    if (parse_addr_node(p, vals[0], sub, &t->listen, true) < 0)
        return -1;
    snprintf(sub, sizeof sub, "%s.upstream", what);
    if (parse_target_node(p, vals[1], sub, &t->upstream) < 0)
        return -1;
    for (size_t i = 0; i < c->nlistens; i++)
        if (addr_clash(&c->listens[i].addr, &t->listen))
            return fail(p, vals[0], "%s.listen: \"%s\" is also a listen address (line %d)", what,
                        show(p, t->listen.text), c->listens[i].line);
    if (c->metrics_enabled && addr_clash(&c->metrics_listen, &t->listen))
        return fail(p, vals[0], "%s.listen: \"%s\" is also the metrics address", what,
                    show(p, t->listen.text));
    for (size_t i = 0; i < c->ntcp; i++)
        if (addr_clash(&c->tcp_services[i]->tcp->listen, &t->listen))
            return fail(p, vals[0], "%s.listen: \"%s\" is already used by service \"%s\"", what,
                        show(p, t->listen.text), c->tcp_services[i]->name);
    c->tcp_services[c->ntcp++] = svc;
    return 0;
}

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

static int parse_auth_provider(struct parser *p, struct config_auth *a, const yaml_node_t *k,
                               const yaml_node_t *v)
{
    static const char *const names[] = {"url",    "style", "timeout", "copy_headers",
                                        "portal", "cache", "tls_ca"};
    enum { A_URL, A_STYLE, A_TIMEOUT, A_COPY, A_PORTAL, A_CACHE, A_TLS_CA, A_N };
    static const char *const default_copy[] = {"Remote-User", "Remote-Groups", "Remote-Name",
                                               "Remote-Email"};
    yaml_node_t *vals[A_N] = {0};
    char what[LIMIT_SERVICE_NAME + 64], where[LIMIT_SERVICE_NAME + 48];
    const char *name = scalar(k);
    a->line = (int)k->start_mark.line + 1;
    a->timeout_ms = TIMEOUT_AUTH_MS_DEFAULT;
    if (!service_name_valid(name, k->data.scalar.length))
        return fail(p, k,
                    "invalid auth provider name \"%s\" (use 1 to %d lower-case letters, digits "
                    "and '-', not at either end)",
                    show(p, name), LIMIT_SERVICE_NAME);
    a->name = strdup(name);
    if (!a->name)
        return fail_oom(p);
    p->owner_kind = "auth provider";
    p->owner = a->name;
    snprintf(where, sizeof where, "in auth provider \"%s\"", name);
    snprintf(what, sizeof what, "auth.%s", name);
    if (want_mapping(p, v, what, false) < 0 || map_collect(p, v, names, A_N, vals, where) < 0)
        return -1;
    if (!vals[A_URL])
        return fail(p, k, "auth provider \"%s\" has no url", name);

    const char *url;
    static __thread struct upstream_url u;
    snprintf(what, sizeof what, "auth.%s.url", name);
    p->svc_tls_ca = NULL;
    p->svc_tls_ca_node = vals[A_TLS_CA];
    p->svc_tls_insecure = false;
    if (vals[A_TLS_CA]) {
        char cawhat[LIMIT_SERVICE_NAME + 64];
        snprintf(cawhat, sizeof cawhat, "auth.%s.tls_ca", name);
        if (want_string(p, vals[A_TLS_CA], cawhat, &p->svc_tls_ca) < 0)
            return -1;
    }
    if (want_string(p, vals[A_URL], what, &url) < 0 ||
        read_upstream_url(p, vals[A_URL], url, what, true, &u) < 0)
        return -1;
    for (const char *q = u.path; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '#')
            return fail(p, vals[A_URL], "%s: invalid character in the path of \"%s\"", what,
                        show(p, url));
    const char *authority = strstr(url, "://") + 3;
    a->url = strdup(url);
    a->path = strdup(u.path[0] == '?' ? "/" : u.path);
    a->host = strndup(authority, strcspn(authority, "/?"));
    a->up.key = strdup(u.key);
    if (!a->url || !a->path || !a->host || !a->up.key)
        return fail_oom(p);
    if (u.path[0] == '?') /* "http://h:1?x" : the path is "/" and the query follows */
        return fail(p, vals[A_URL], "%s: write the path before the query in \"%s\"", what,
                    show(p, url));
    if (vals[A_TLS_CA] && u.kind != UPSTREAM_HTTPS)
        return fail(p, vals[A_TLS_CA], "auth.%s.tls_ca applies to an https:// url", name);
    a->up.kind = u.kind;
    a->up.addr = u.addr;
    if (u.kind == UPSTREAM_HTTPS) {
        a->up.tls_name = strdup(u.tls_name);
        if (!a->up.tls_name)
            return fail_oom(p);
        if (!(a->up.tls_ctx = client_ctx(p)))
            return -1;
    }

    if (vals[A_STYLE]) {
        const char *st;
        snprintf(what, sizeof what, "auth.%s.style", name);
        if (want_string(p, vals[A_STYLE], what, &st) < 0)
            return -1;
        if (strcmp(st, "forward-auth") == 0)
            a->style = AUTH_FORWARD;
        else if (strcmp(st, "auth-request") == 0)
            a->style = AUTH_REQUEST;
        else
            return fail(p, vals[A_STYLE], "%s: expected forward-auth or auth-request, not \"%s\"",
                        what, show(p, st));
    }
    snprintf(what, sizeof what, "auth.%s.timeout", name);
    if (vals[A_TIMEOUT] && want_duration(p, vals[A_TIMEOUT], what, &a->timeout_ms) < 0)
        return -1;
    if (a->timeout_ms == 0)
        return fail(p, vals[A_TIMEOUT], "%s must be more than 0", what);
    if (a->timeout_ms < TIMEOUT_AUTH_MS_WARN)
        warn(p, vals[A_TIMEOUT],
             "%s is under %ds: Authelia answers a failed Basic login only after at least 2s, "
             "so those logins would get 504 instead of 401",
             what, TIMEOUT_AUTH_MS_WARN / 1000);
    snprintf(what, sizeof what, "auth.%s.cache", name);
    if (vals[A_CACHE] && want_duration(p, vals[A_CACHE], what, &a->cache_ms) < 0)
        return -1;
    if (a->cache_ms > LIMIT_AUTH_CACHE_MS_MAX)
        return fail(p, vals[A_CACHE], "%s: at most 5m (a logout must not take longer to apply)",
                    what);
    if (vals[A_PORTAL]) {
        const char *portal;
        snprintf(what, sizeof what, "auth.%s.portal", name);
        if (want_string(p, vals[A_PORTAL], what, &portal) < 0)
            return -1;
        if (a->style != AUTH_REQUEST)
            return fail(p, vals[A_PORTAL], "%s applies to style: auth-request only", what);
        if (strncmp(portal, "https://", 8) != 0 && strncmp(portal, "http://", 7) != 0)
            return fail(p, vals[A_PORTAL], "%s: expected an http:// or https:// URL, not \"%s\"",
                        what, show(p, portal));
        for (const char *q = portal; *q; q++)
            if ((unsigned char)*q <= ' ' || *q == 0x7f)
                return fail(p, vals[A_PORTAL], "%s: invalid character in \"%s\"", what,
                            show(p, portal));
        a->portal = strdup(portal);
        if (!a->portal)
            return fail_oom(p);
    }
    snprintf(what, sizeof what, "auth.%s.copy_headers", name);
    size_t ncopy = vals[A_COPY] ? 0 : 4;
    if (vals[A_COPY]) {
        if (want_sequence(p, vals[A_COPY], what) < 0)
            return -1;
        ncopy = seq_len(vals[A_COPY]);
        if (ncopy > LIMIT_AUTH_COPY_HEADERS)
            return fail(p, vals[A_COPY], "%s: at most %d names", what, LIMIT_AUTH_COPY_HEADERS);
    }
    a->copy_headers = calloc(ncopy ? ncopy : 1, sizeof *a->copy_headers);
    if (!a->copy_headers)
        return fail_oom(p);
    for (size_t i = 0; i < ncopy; i++) {
        const char *h = default_copy[i % 4];
        if (vals[A_COPY]) {
            const yaml_node_t *item = node(p, vals[A_COPY]->data.sequence.items.start[i]);
            if (want_string(p, item, what, &h) < 0)
                return -1;
            if (!header_name_valid(h))
                return fail(p, item, "%s: \"%s\" is not a header name", what, show(p, h));
        }
        a->copy_headers[a->ncopy] = strdup(h);
        if (!a->copy_headers[a->ncopy++])
            return fail_oom(p);
    }
    return 0;
}

/* "auth: {NAME: {url, style, timeout, copy_headers, portal, cache}}" */
static int parse_auth(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    if (want_mapping(p, n, "auth", false) < 0)
        return -1;
    c->auths = calloc(map_len(n) ? map_len(n) : 1, sizeof *c->auths);
    if (!c->auths)
        return fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        struct config_auth *a = &c->auths[c->nauths];
        a->idx = c->nauths++;
        if (parse_auth_provider(p, a, node(p, pair->key), node(p, pair->value)) < 0)
            return -1;
    }
    return 0;
}

/* "upgrade: [websocket, ...]": the protocols a 101 may switch to. Without
 * the key (n == NULL), WebSocket only. */
static int parse_upgrade(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                         const char *what)
{
    size_t cap = n ? seq_len(n) : 1;
    if (n && want_sequence(p, n, what) < 0)
        return -1;
    svc->upgrade = calloc(cap ? cap : 1, sizeof *svc->upgrade);
    if (!svc->upgrade)
        return fail_oom(p);
    if (!n) {
        if (!(svc->upgrade[0] = strdup("websocket")))
            return fail_oom(p);
        svc->nupgrade = 1;
        return 0;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = node(p, *it);
        const char *v;
        if (want_string(p, item, what, &v) < 0)
            return -1;
        size_t len = strlen(v);
        bool token = len > 0 && len <= LIMIT_UPGRADE_NAME;
        for (size_t i = 0; token && i < len; i++)
            token = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
                    (v[i] >= '0' && v[i] <= '9') || strchr("!#$%&'*+-.^_`|~", v[i]);
        if (!token)
            return fail(p, item,
                        "%s: \"%s\" is not a protocol name (a token such as websocket, without "
                        "a /version)",
                        what, show(p, v));
        if (strcasecmp(v, "h2c") == 0 || strcasecmp(v, "h2") == 0 || strcasecmp(v, "http") == 0)
            return fail(p, item,
                        "%s: \"%s\" is never forwarded: after the switch the client's requests "
                        "would reach the upstream without forward auth or header rewriting",
                        what, show(p, v));
        for (size_t i = 0; i < svc->nupgrade; i++)
            if (strcasecmp(svc->upgrade[i], v) == 0)
                return fail(p, item, "%s: \"%s\" is listed twice", what, show(p, v));
        char *lower = strdup(v);
        if (!lower)
            return fail_oom(p);
        for (char *c = lower; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        svc->upgrade[svc->nupgrade++] = lower;
    }
    return 0;
}

/* "auth: NAME" and "auth_skip: [/prefix, ...]" on a service. */
static int parse_service_auth(struct parser *p, struct config_service *svc, const yaml_node_t *auth,
                              const yaml_node_t *skip)
{
    char what[LIMIT_SERVICE_NAME + 64];
    if (auth) {
        const char *name;
        snprintf(what, sizeof what, "services.%s.auth", svc->name);
        if (want_string(p, auth, what, &name) < 0)
            return -1;
        for (size_t i = 0; i < p->c->nauths && !svc->auth; i++)
            if (strcmp(p->c->auths[i].name, name) == 0)
                svc->auth = &p->c->auths[i];
        if (!svc->auth)
            return fail(p, auth, "%s: no auth provider named \"%s\" (define it under auth:)", what,
                        show(p, name));
    }
    if (!skip)
        return 0;
    snprintf(what, sizeof what, "services.%s.auth_skip", svc->name);
    if (!auth)
        return fail(p, skip, "%s applies to a service with auth", what);
    if (want_sequence(p, skip, what) < 0)
        return -1;
    svc->auth_skip = calloc(seq_len(skip) ? seq_len(skip) : 1, sizeof *svc->auth_skip);
    if (!svc->auth_skip)
        return fail_oom(p);
    for (yaml_node_item_t *it = skip->data.sequence.items.start; it < skip->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = node(p, *it);
        const char *prefix;
        char norm[LIMIT_REQUEST_LINE_DEFAULT];
        if (want_string(p, item, what, &prefix) < 0)
            return -1;
        int len = route_path_normalize(prefix, strlen(prefix), norm, sizeof norm);
        if (len < 0 || strcmp(norm, prefix) != 0)
            return fail(p, item,
                        "%s: \"%s\" is not a normalised path prefix (start with '/', no '.' or "
                        "'..' segments, no encoded unreserved characters)",
                        what, show(p, prefix));
        svc->auth_skip[svc->nauth_skip] = strdup(norm);
        if (!svc->auth_skip[svc->nauth_skip++])
            return fail_oom(p);
    }
    return 0;
}

static int parse_service(struct parser *p, struct config_service *svc, const yaml_node_t *k,
                         const yaml_node_t *v)
{
    static const char *const names[] = {"hosts",
                                        "upstream",
                                        "routes",
                                        "headers",
                                        "connect_timeout",
                                        "timeout",
                                        "tcp",
                                        "send_proxy_protocol",
                                        "passthrough",
                                        "tls_ca",
                                        "tls_insecure_skip_verify",
                                        "auth",
                                        "auth_skip",
                                        "auth_bypass_tailnet",
                                        "host_header",
                                        "rewrite_redirects",
                                        "idle_timeout",
                                        "upgrade"};
    enum {
        S_HOSTS,
        S_UPSTREAM,
        S_ROUTES,
        S_HEADERS,
        S_CONNECT,
        S_TIMEOUT,
        S_TCP,
        S_SENDPP,
        S_PASSTHROUGH,
        S_TLS_CA,
        S_INSECURE,
        S_AUTH,
        S_AUTH_SKIP,
        S_AUTH_BYPASS,
        S_HOST_HEADER,
        S_REWRITE_REDIRECTS,
        S_IDLE_TIMEOUT,
        S_UPGRADE,
        S_N
    };
    yaml_node_t *vals[S_N] = {0};
    char what[LIMIT_SERVICE_NAME + 64], where[LIMIT_SERVICE_NAME + 32];
    const char *name = scalar(k);

    svc->line = (int)k->start_mark.line + 1;
    svc->connect_timeout_ms = TIMEOUT_CONNECT_MS_DEFAULT;
    svc->timeout_ms = TIMEOUT_RESPONSE_MS_DEFAULT;
    svc->idle_timeout_ms = TIMEOUT_IDLE_MS_DEFAULT;
    svc->rewrite_redirects = true;
    if (!service_name_valid(name, k->data.scalar.length))
        return fail(p, k,
                    "invalid service name \"%s\" (use 1 to %d lower-case letters, digits and "
                    "'-', not at either end)",
                    show(p, name), LIMIT_SERVICE_NAME);
    svc->name = strdup(name);
    if (!svc->name)
        return fail_oom(p);
    p->owner_kind = "service";
    p->owner = svc->name;
    snprintf(what, sizeof what, "services.%s", name);
    snprintf(where, sizeof where, "in service \"%s\"", name);
    if (want_mapping(p, v, what, false) < 0 || map_collect(p, v, names, S_N, vals, where) < 0)
        return -1;

    /* How https:// upstreams are verified is needed before they are read. */
    p->svc_tls_ca = NULL;
    p->svc_tls_ca_node = vals[S_TLS_CA];
    p->svc_tls_insecure = false;
    p->svc_has_https = false;
    snprintf(what, sizeof what, "services.%s.tls_ca", name);
    if (vals[S_TLS_CA] && want_string(p, vals[S_TLS_CA], what, &p->svc_tls_ca) < 0)
        return -1;
    snprintf(what, sizeof what, "services.%s.tls_insecure_skip_verify", name);
    if (vals[S_INSECURE] && want_bool(p, vals[S_INSECURE], what, &p->svc_tls_insecure) < 0)
        return -1;
    if (p->svc_tls_ca && p->svc_tls_insecure)
        return fail(p, vals[S_INSECURE],
                    "services.%s: tls_ca and tls_insecure_skip_verify: true contradict each other",
                    name);

    /* In file order, so that of two errors the first one is reported. */
    for (yaml_node_pair_t *pair = v->data.mapping.pairs.start; pair < v->data.mapping.pairs.top;
         pair++) {
        int i = key_index(node(p, pair->key), names, S_N);
        const yaml_node_t *val = vals[i];
        snprintf(what, sizeof what, "services.%s.%s", name, names[i]);
        int rc = 0;
        switch (i) {
        case S_HOSTS:
            rc = parse_hosts(p, svc, val, what);
            break;
        case S_UPSTREAM:
            rc = parse_upstream(p, val, what, &svc->upstream, &svc->authority);
            break;
        case S_ROUTES:
            rc = parse_routes(p, svc, val, what);
            break;
        case S_HEADERS:
            rc = parse_headers(p, svc, val, what);
            break;
        case S_CONNECT:
            rc = want_duration(p, val, what, &svc->connect_timeout_ms);
            break;
        case S_TIMEOUT:
            rc = want_duration_or_off(p, val, what, &svc->timeout_ms);
            break;
        case S_IDLE_TIMEOUT:
            rc = want_duration_or_off(p, val, what, &svc->idle_timeout_ms);
            break;
        case S_TCP:
            rc = parse_tcp(p, svc, val, what);
            break;
        case S_HOST_HEADER:
            rc = parse_host_header(p, svc, val, what);
            break;
        case S_REWRITE_REDIRECTS:
            rc = want_bool(p, val, what, &svc->rewrite_redirects);
            break;
        case S_UPGRADE:
            rc = parse_upgrade(p, svc, val, what);
            break;
        case S_TLS_CA:
        case S_INSECURE:
        case S_AUTH:
        case S_AUTH_SKIP:
            break; /* read above or below */
        case S_AUTH_BYPASS:
            return fail(p, val,
                        "%s: skipping auth for tailnet users needs tailnet identity (whois), "
                        "which this version of portico does not have",
                        what);
        case S_PASSTHROUGH:
            svc->passthrough = calloc(1, sizeof *svc->passthrough);
            if (!svc->passthrough)
                return fail_oom(p);
            rc = parse_target_node(p, val, what, svc->passthrough);
            p->c->npassthrough++;
            break;
        case S_SENDPP: {
            const char *v1;
            if (want_string(p, val, what, &v1) < 0)
                return -1;
            if (strcmp(v1, "v1") == 0)
                svc->send_proxy_protocol = 1;
            else if (strcmp(v1, "v2") == 0)
                svc->send_proxy_protocol = 2;
            else
                rc = fail(p, val, "%s: expected v1 or v2, not \"%s\"", what, show(p, v1));
            break;
        }
        }
        if (rc < 0)
            return -1;
    }
    /* One service, one way in: a TCP forwarder beside an HTTP upstream or a
     * passthrough would be a second, unrelated listener under one name. */
    if (svc->tcp && (vals[S_UPSTREAM] || vals[S_PASSTHROUGH])) {
        const char *other = vals[S_UPSTREAM] ? "upstream" : "passthrough";
        return fail(p, vals[S_TCP],
                    "service \"%s\" has both %s: and tcp:; a service forwards one way, so move "
                    "tcp: into a service of its own (e.g. \"%.*s-tcp\")",
                    name, other, LIMIT_SERVICE_NAME - 4, name);
    }
    static const int http_only[] = {S_UPSTREAM,     S_ROUTES,      S_HEADERS,          S_TIMEOUT,
                                    S_IDLE_TIMEOUT, S_HOST_HEADER, S_REWRITE_REDIRECTS};
    const yaml_node_t *http_set = NULL;
    for (size_t i = 0; i < sizeof http_only / sizeof http_only[0] && !http_set; i++)
        http_set = vals[http_only[i]];
    if (svc->passthrough && http_set)
        return fail(p, http_set,
                    "service \"%s\" passes TLS through, so it cannot have HTTP settings "
                    "(upstream, routes, headers, timeout, idle_timeout, host_header, "
                    "rewrite_redirects): portico never sees its requests",
                    name);
    if (parse_service_auth(p, svc, vals[S_AUTH], vals[S_AUTH_SKIP]) < 0)
        return -1;
    if (!vals[S_UPGRADE] && parse_upgrade(p, svc, NULL, what) < 0)
        return -1;
    if (vals[S_UPGRADE] && !svc->upstream)
        return fail(p, vals[S_UPGRADE],
                    "services.%s.upgrade applies to HTTP services (with an "
                    "upstream)",
                    name);
    if (svc->auth && !svc->upstream)
        return fail(p, vals[S_AUTH], "services.%s.auth applies to HTTP services (with an upstream)",
                    name);
    if ((vals[S_TLS_CA] || vals[S_INSECURE]) && !p->svc_has_https)
        return fail(p, vals[S_TLS_CA] ? vals[S_TLS_CA] : vals[S_INSECURE],
                    "services.%s: %s applies to https:// upstreams, and the service has none", name,
                    vals[S_TLS_CA] ? "tls_ca" : "tls_insecure_skip_verify");
    if (!svc->upstream && !svc->tcp && !svc->passthrough)
        return fail(p, k, "service \"%s\" has no upstream, passthrough or tcp forwarder", name);
    if (!svc->upstream && !svc->passthrough) {
        const yaml_node_t *http_key = vals[S_HOSTS]         ? vals[S_HOSTS]
                                      : vals[S_ROUTES]      ? vals[S_ROUTES]
                                      : vals[S_HEADERS]     ? vals[S_HEADERS]
                                      : vals[S_HOST_HEADER] ? vals[S_HOST_HEADER]
                                                            : vals[S_REWRITE_REDIRECTS];
        if (http_key)
            return fail(p, http_key,
                        "service \"%s\" has HTTP settings but no upstream to send requests to",
                        name);
        return 0; /* TCP only: no host names */
    }
    if (!vals[S_HOSTS]) {
        if (!p->c->domain)
            return fail(p, k, "service \"%s\" has no hosts and no top-level domain is set", name);
        svc->hosts = calloc(1, sizeof *svc->hosts);
        size_t len = strlen(name) + 1 + strlen(p->c->domain) + 1;
        char *host = malloc(len);
        if (!svc->hosts || !host) {
            free(host);
            return fail_oom(p);
        }
        snprintf(host, len, "%s.%s", name, p->c->domain);
        snprintf(what, sizeof what, "service \"%s\"", name);
        if (add_host(p, svc, host, k, what) < 0)
            return -1;
    }
    return 0;
}

static int parse_services(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    if (want_mapping(p, n, "services", false) < 0)
        return -1;
    size_t count = map_len(n);
    /* Count the upstream strings first: c->upstreams is allocated once and
     * never moves, since services and routes point into it. */
    size_t nup = 0, nhosts = 0;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *v = node(p, pair->value);
        if (v->type != YAML_MAPPING_NODE)
            continue;
        nup++;
        nhosts++;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            const yaml_node_t *k = node(p, q->key), *val = node(p, q->value);
            if (k->type != YAML_SCALAR_NODE || val->type != YAML_SEQUENCE_NODE)
                continue;
            if (strcmp(scalar(k), "routes") == 0)
                nup += seq_len(val);
            else if (strcmp(scalar(k), "hosts") == 0)
                nhosts += seq_len(val);
        }
    }
    c->services = calloc(count ? count : 1, sizeof *c->services);
    c->tcp_services = calloc(count ? count : 1, sizeof *c->tcp_services);
    c->upstreams = calloc(nup ? nup : 1, sizeof *c->upstreams);
    p->upstream_cap = nup;
    p->upstream_keys = route_table_new(nup);
    route_table_free(c->routes);
    c->routes = route_table_new(nhosts);
    if (!c->services || !c->tcp_services || !c->upstreams || !p->upstream_keys || !c->routes)
        return fail_oom(p);
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        struct config_service *svc = &c->services[c->nservices++];
        if (parse_service(p, svc, node(p, pair->key), node(p, pair->value)) < 0)
            return -1;
    }
    return 0;
}

/* ---- top level ----------------------------------------------------------------- */

static int parse_addr_node(struct parser *p, const yaml_node_t *n, const char *what,
                           struct config_addr *out, bool any_port)
{
    const char *s;
    char msg[512];
    if (want_string(p, n, what, &s) < 0)
        return -1;
    if (parse_addr(s, out, any_port, true, msg, sizeof msg) < 0)
        return fail(p, n, "%s: %s", what, msg);
    return 0;
}

/* "mode" and "group" of a Unix listen entry: who may connect. */
static int parse_unix_access(struct parser *p, const yaml_node_t *mode, const yaml_node_t *group,
                             struct config_addr *a)
{
    bool is_unix = a->sa.ss_family == AF_UNIX;
    if (mode) {
        const char *v;
        if (want_string(p, mode, "listen.mode", &v) < 0)
            return -1;
        if (!is_unix)
            return fail(p, mode, "listen.mode: only a unix:/path listener has a file mode");
        unsigned m = 0;
        size_t i = 0;
        for (; v[i] >= '0' && v[i] <= '7' && i < 4; i++)
            m = m * 8 + (unsigned)(v[i] - '0');
        if (i < 3 || v[i] != '\0' || m > 0777)
            return fail(p, mode,
                        "listen.mode: expected octal permission bits such as \"0660\", "
                        "not \"%s\"",
                        show(p, v));
        if ((m & 0600) != 0600)
            return fail(p, mode,
                        "listen.mode: \"%s\" leaves portico's own user without read "
                        "and write (the owner needs 6)",
                        show(p, v));
        a->unix_mode = m;
    }
    if (group) {
        const char *v;
        if (want_string(p, group, "listen.group", &v) < 0)
            return -1;
        if (!is_unix)
            return fail(p, group, "listen.group: only a unix:/path listener has a group");
        char buf[LIMIT_GETGR_BUF];
        struct group gr, *res = NULL;
        int e = getgrnam_r(v, &gr, buf, sizeof buf, &res);
        if (e != 0 || !res)
            return fail(p, group, "listen.group: no group named \"%s\"%s%s", show(p, v),
                        e ? ": " : "", e ? strerror(e) : "");
        a->unix_gid = (long)res->gr_gid;
    }
    return 0;
}

/* An address portico connects to: a host name in it is resolved at run time. */
static int parse_target_node(struct parser *p, const yaml_node_t *n, const char *what,
                             struct config_addr *out)
{
    const char *s;
    char msg[512];
    if (want_string(p, n, what, &s) < 0)
        return -1;
    if (config_parse_target(s, out, msg, sizeof msg) < 0)
        return fail(p, n, "%s: %s", what, msg);
    set_owner(p, n, out);
    return 0;
}

static int parse_listen(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"addr",   "proxy_protocol", "tls",
                                        "scheme", "redirect_https", "https_port",
                                        "mode",   "group",          "strict_sni_host"};
    struct config *c = p->c;
    if (want_sequence(p, n, "listen") < 0)
        return -1;
    if (seq_len(n) == 0)
        return fail(p, n, "no listen addresses (listen is empty)");
    c->listens = calloc(seq_len(n), sizeof *c->listens);
    if (!c->listens)
        return fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = node(p, *it);
        yaml_node_t *vals[9] = {0};
        if (want_mapping(p, item, "listen", false) < 0 ||
            map_collect(p, item, names, 9, vals, "in a listen entry") < 0)
            return -1;
        if (!vals[0])
            return fail(p, item, "listen: entry has no addr");
        struct config_listen *l = &c->listens[c->nlistens];
        if (parse_addr_node(p, vals[0], "listen", &l->addr, true) < 0)
            return -1;
        l->line = (int)vals[0]->start_mark.line + 1;
        if (vals[1] && want_bool(p, vals[1], "listen.proxy_protocol", &l->proxy_protocol) < 0)
            return -1;
        if (vals[2] && want_bool(p, vals[2], "listen.tls", &l->tls) < 0)
            return -1;
        if (l->tls && l->addr.sa.ss_family == AF_UNIX)
            return fail(p, vals[2], "listen.tls: TLS on a Unix socket is not supported");
        l->https = l->tls;
        if (vals[3]) {
            const char *sch;
            if (want_string(p, vals[3], "listen.scheme", &sch) < 0)
                return -1;
            if (strcmp(sch, "https") == 0)
                l->https = true;
            else if (strcmp(sch, "http") != 0)
                return fail(p, vals[3], "listen.scheme: expected http or https, not \"%s\"",
                            show(p, sch));
            else if (l->tls)
                return fail(p, vals[3], "listen.scheme: a listener with tls: true is https");
        }
        if (vals[4] && want_bool(p, vals[4], "listen.redirect_https", &l->redirect_https) < 0)
            return -1;
        if (l->redirect_https && l->https)
            return fail(p, vals[4],
                        "listen.redirect_https: this listener already serves https; the redirect "
                        "belongs on a plain-HTTP listener");
        if (vals[5]) {
            uint32_t port;
            if (want_uint(p, vals[5], "listen.https_port", 1, 65535, &port) < 0)
                return -1;
            if (!l->redirect_https)
                return fail(p, vals[5], "listen.https_port applies with redirect_https: true");
            l->https_port = (uint16_t)port;
        }
        if (parse_unix_access(p, vals[6], vals[7], &l->addr) < 0)
            return -1;
        l->strict_sni_host = l->tls;
        if (vals[8]) {
            if (want_bool(p, vals[8], "listen.strict_sni_host", &l->strict_sni_host) < 0)
                return -1;
            if (!l->tls)
                return fail(p, vals[8],
                            "listen.strict_sni_host applies to a listener with tls: true");
        }
        for (size_t i = 0; i < c->nlistens; i++)
            if (addr_clash(&c->listens[i].addr, &l->addr))
                return fail(p, vals[0], "listen: address \"%s\" is the same as \"%s\" on line %d",
                            show(p, l->addr.text), show(p, c->listens[i].addr.text),
                            c->listens[i].line);
        c->nlistens++;
    }
    return 0;
}

struct limit_key {
    const char *name;
    size_t off;
    bool duration;
    uint32_t min, max;
};

#define LIMIT_FIELD(f) offsetof(struct config_limits, f)
static const struct limit_key limit_keys[] = {
    {"max_connections", LIMIT_FIELD(max_connections), false, 1, UINT32_MAX},
    {"max_header_bytes", LIMIT_FIELD(max_header_bytes), false, 1024, LIMIT_HEADER_BYTES_MAX},
    {"max_request_line", LIMIT_FIELD(max_request_line), false, 256, LIMIT_HEADER_BYTES_MAX},
    {"header_timeout", LIMIT_FIELD(header_timeout_ms), true, 0, 0},
    {"keepalive_timeout", LIMIT_FIELD(keepalive_timeout_ms), true, 0, 0},
    {"body_timeout", LIMIT_FIELD(body_timeout_ms), true, 0, 0},
    {"body_min_rate", LIMIT_FIELD(body_min_rate), false, 0, LIMIT_BODY_MIN_RATE_MAX},
    {"body_rate_grace", LIMIT_FIELD(body_rate_grace_ms), true, 0, 0},
    {"send_timeout", LIMIT_FIELD(send_timeout_ms), true, 0, 0},
    {"tunnel_timeout", LIMIT_FIELD(tunnel_timeout_ms), true, 0, 0},
    {"shutdown_timeout", LIMIT_FIELD(shutdown_timeout_ms), true, 0, 0},
    {"upstream_keepalive", LIMIT_FIELD(upstream_keepalive), false, 0, LIMIT_POOL_IDLE_MAX},
    {"upstream_keepalive_timeout", LIMIT_FIELD(upstream_keepalive_timeout_ms), true, 0, 0},
    {"max_connections_per_client", LIMIT_FIELD(max_connections_per_client), false, 0,
     LIMIT_CONNECTIONS_PER_CLIENT_MAX},
    {"resolve_interval", LIMIT_FIELD(resolve_interval_ms), true, 0, 0},
};
#define NLIMITS (sizeof limit_keys / sizeof limit_keys[0])

static int parse_limits(struct parser *p, const yaml_node_t *n)
{
    const char *names[NLIMITS];
    yaml_node_t *vals[NLIMITS] = {0};
    struct config_limits *lim = &p->c->limits;
    for (size_t i = 0; i < NLIMITS; i++)
        names[i] = limit_keys[i].name;
    if (want_mapping(p, n, "limits", false) < 0 ||
        map_collect(p, n, names, NLIMITS, vals, "in limits") < 0)
        return -1;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        int i = key_index(node(p, pair->key), names, NLIMITS);
        const struct limit_key *lk = &limit_keys[i];
        uint32_t *field = (uint32_t *)((char *)lim + lk->off);
        char what[64];
        snprintf(what, sizeof what, "limits.%s", lk->name);
        int rc = lk->duration ? want_duration(p, vals[i], what, field)
                              : want_uint(p, vals[i], what, lk->min, lk->max, field);
        if (rc < 0)
            return -1;
        if (field == &lim->resolve_interval_ms && *field < LIMIT_RESOLVE_INTERVAL_MIN_MS)
            return fail(p, vals[i], "limits.resolve_interval: at least %us",
                        LIMIT_RESOLVE_INTERVAL_MIN_MS / 1000);
    }
    const yaml_node_t *line_node = vals[2]; /* max_request_line, if written */
    if (!line_node && lim->max_request_line > lim->max_header_bytes)
        lim->max_request_line = lim->max_header_bytes; /* the default yields to a smaller head */
    if (line_node && lim->max_request_line > lim->max_header_bytes)
        return fail(p, line_node,
                    "limits.max_request_line: %u is more than limits.max_header_bytes (%u)",
                    lim->max_request_line, lim->max_header_bytes);
    return 0;
}

static int parse_metrics(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"listen"};
    struct config *c = p->c;
    yaml_node_t *vals[1] = {0};
    if (want_mapping(p, n, "metrics", false) < 0 ||
        map_collect(p, n, names, 1, vals, "in metrics") < 0)
        return -1;
    if (!vals[0])
        return fail(p, n, "metrics: no listen address");
    if (parse_addr_node(p, vals[0], "metrics.listen", &c->metrics_listen, true) < 0)
        return -1;
    for (size_t i = 0; i < c->nlistens; i++)
        if (addr_clash(&c->listens[i].addr, &c->metrics_listen))
            return fail(p, vals[0],
                        "metrics.listen: \"%s\" is also a listen address (line %d); use "
                        "another port",
                        show(p, c->metrics_listen.text), c->listens[i].line);
    c->metrics_enabled = true;
    return 0;
}

/* "tls: {certs: [{cert, key}], default_cert: NAME}". The files are read
 * once every key is known (load_tls), so that check reports broken
 * certificates too. */
static int parse_tls(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"certs", "default_cert"};
    static const char *const cert_names[] = {"cert", "key"};
    struct config *c = p->c;
    yaml_node_t *vals[2] = {0};
    if (want_mapping(p, n, "tls", false) < 0 || map_collect(p, n, names, 2, vals, "in tls") < 0)
        return -1;
    if (!vals[0])
        return fail(p, n, "tls: no certs");
    if (want_sequence(p, vals[0], "tls.certs") < 0)
        return -1;
    if (seq_len(vals[0]) == 0)
        return fail(p, vals[0], "tls.certs is empty");
    c->tls_certs = calloc(seq_len(vals[0]), sizeof *c->tls_certs);
    if (!c->tls_certs)
        return fail_oom(p);
    for (yaml_node_item_t *it = vals[0]->data.sequence.items.start;
         it < vals[0]->data.sequence.items.top; it++) {
        const yaml_node_t *item = node(p, *it);
        yaml_node_t *cv[2] = {0};
        if (want_mapping(p, item, "tls.certs", false) < 0 ||
            map_collect(p, item, cert_names, 2, cv, "in a tls.certs entry") < 0)
            return -1;
        if (!cv[0] || !cv[1])
            return fail(p, item, "tls.certs: an entry needs both cert and key");
        struct config_tls_cert *tc = &c->tls_certs[c->ntls_certs++];
        const char *cert, *key;
        if (want_string(p, cv[0], "tls.certs.cert", &cert) < 0 ||
            want_string(p, cv[1], "tls.certs.key", &key) < 0)
            return -1;
        tc->line = (int)item->start_mark.line + 1;
        tc->cert = strdup(cert);
        tc->key = strdup(key);
        if (!tc->cert || !tc->key)
            return fail_oom(p);
    }
    if (vals[1]) {
        const char *d;
        if (want_string(p, vals[1], "tls.default_cert", &d) < 0)
            return -1;
        c->tls_default = strdup(d);
        if (!c->tls_default)
            return fail_oom(p);
        p->tls_default_line = (int)vals[1]->start_mark.line + 1;
    }
    p->tls_line = (int)n->start_mark.line + 1;
    return 0;
}

/* Read the certificates when a listener terminates TLS. */
static int load_tls(struct parser *p)
{
    struct config *c = p->c;
    bool wanted = false;
    for (size_t i = 0; i < c->nlistens; i++)
        wanted = wanted || c->listens[i].tls;
    if (!wanted) {
        for (size_t i = 0; i < c->nservices; i++)
            if (c->services[i].passthrough)
                return failat(p, (size_t)c->services[i].line,
                              "service \"%s\" passes TLS through, but no listener has tls: true",
                              c->services[i].name);
        return 0;
    }
    if (!c->ntls_certs && c->npassthrough)
        return 0; /* passthrough only: unknown names are refused */
    if (!c->ntls_certs) {
        size_t i = 0;
        while (!c->listens[i].tls)
            i++; /* the first TLS listener: one exists (wanted) */
        return failat(p, (size_t)c->listens[i].line,
                      "listen %s has tls: true but no tls.certs are configured (add tls: {certs: "
                      "[{cert: FILE, key: FILE}]}, or a service with passthrough:)",
                      c->listens[i].addr.text);
    }
    struct tls_cert_spec *specs = calloc(c->ntls_certs, sizeof *specs);
    if (!specs)
        return fail_oom(p);
    for (size_t i = 0; i < c->ntls_certs; i++) {
        specs[i].cert_path = c->tls_certs[i].cert;
        specs[i].key_path = c->tls_certs[i].key;
    }
    char msg[700];
    size_t bad;
    c->tls = tls_store_new(specs, c->ntls_certs, c->tls_default, &bad, msg, sizeof msg);
    free(specs);
    if (c->tls)
        return 0;
    int line = bad < c->ntls_certs ? c->tls_certs[bad].line
               : c->tls_default    ? p->tls_default_line
                                   : p->tls_line;
    return failat(p, (size_t)line, "%s", msg);
}

static int parse_domain(struct parser *p, const yaml_node_t *n)
{
    const char *s;
    if (want_string(p, n, "domain", &s) < 0)
        return -1;
    char *d = strdup(s);
    if (!d)
        return fail_oom(p);
    p->c->domain = d;
    size_t len = strlen(d);
    for (size_t i = 0; i < len; i++)
        if (d[i] >= 'A' && d[i] <= 'Z')
            d[i] = (char)(d[i] + 32);
    if (len > 1 && d[len - 1] == '.')
        d[len - 1] = '\0';
    if (d[0] == '*' || !route_host_valid(d))
        return fail(p, n, "domain: \"%s\" is not a valid DNS name", show(p, s));
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
        return fail_oom(p);
    p->c->log_redact = r;
    if (!(r[p->c->nlog_redact] = strdup(name)))
        return fail_oom(p);
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
        if (want_bool(p, n, "access_log", &c->access_log) < 0)
            return -1;
    } else if (n && (want_mapping(p, n, "access_log", false) < 0 ||
                     map_collect(p, n, names, 3, vals, "in access_log") < 0))
        return -1;
    if (vals[0] && want_bool(p, vals[0], "access_log.enabled", &c->access_log) < 0)
        return -1;
    if (vals[1]) {
        const char *q;
        if (want_string(p, vals[1], "access_log.query", &q) < 0)
            return -1;
        if (strcmp(q, "redact") == 0)
            c->log_query = LOG_QUERY_REDACT;
        else if (strcmp(q, "full") == 0)
            c->log_query = LOG_QUERY_FULL;
        else if (strcmp(q, "drop") == 0)
            c->log_query = LOG_QUERY_DROP;
        else
            return fail(p, vals[1], "access_log.query: expected redact, full or drop, not \"%s\"",
                        show(p, q));
    }
    if (!vals[2]) {
        for (size_t i = 0; i < sizeof log_redact_default / sizeof log_redact_default[0]; i++)
            if (add_redact(p, log_redact_default[i]) < 0)
                return -1;
        return 0;
    }
    if (want_sequence(p, vals[2], "access_log.redact_params") < 0)
        return -1;
    if (c->log_query != LOG_QUERY_REDACT)
        return fail(p, vals[2], "access_log.redact_params applies with query: redact");
    for (yaml_node_item_t *it = vals[2]->data.sequence.items.start;
         it < vals[2]->data.sequence.items.top; it++) {
        const yaml_node_t *item = node(p, *it);
        const char *name;
        if (want_string(p, item, "access_log.redact_params", &name) < 0)
            return -1;
        bool ok = name[0] != '\0' && strlen(name) <= 64;
        for (const char *q = name; ok && *q; q++)
            ok = (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f && !strchr("&=#", *q);
        if (!ok)
            return fail(p, item,
                        "access_log.redact_params: \"%s\" is not a query parameter name (1 to 64 "
                        "printable characters without '&', '=' or '#')",
                        show(p, name));
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
            return fail(p, root, "expected a mapping at the top level");
        if (want_mapping(p, root, "the top level", false) < 0 ||
            map_collect(p, root, names, K_N, vals, "at the top level") < 0)
            return -1;
    }
    /* Fixed order: services need the domain and the listen addresses first. */
    if (vals[K_DOMAIN] && parse_domain(p, vals[K_DOMAIN]) < 0)
        return -1;
    if (vals[K_WORKERS]) {
        uint32_t w;
        if (want_uint(p, vals[K_WORKERS], "workers", 1, LIMIT_WORKERS_MAX, &w) < 0)
            return -1;
        c->workers = w;
    }
    if (parse_access_log(p, vals[K_ACCESS_LOG]) < 0)
        return -1;
    if (vals[K_LIMITS] && parse_limits(p, vals[K_LIMITS]) < 0)
        return -1;
    if (!vals[K_LISTEN]) /* the line of the top level, where listen: belongs */
        return failat(p, root ? root->start_mark.line + 1 : 1,
                      "no listen addresses (add listen: [{addr: host:port}])");
    if (parse_listen(p, vals[K_LISTEN]) < 0)
        return -1;
    if (vals[K_METRICS] && parse_metrics(p, vals[K_METRICS]) < 0)
        return -1;
    if (vals[K_AUTH] && parse_auth(p, vals[K_AUTH]) < 0)
        return -1;
    if (vals[K_SERVICES] && parse_services(p, vals[K_SERVICES]) < 0)
        return -1;
    if (vals[K_TLS] && parse_tls(p, vals[K_TLS]) < 0)
        return -1;
    return load_tls(p);
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
        return fail_oom(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)p->text, p->len);
    for (;;) {
        if (!yaml_parser_parse(&yp, &ev)) {
            rc = fail_yaml(p, &yp);
            break;
        }
        size_t line = ev.start_mark.line + 1;
        const yaml_char_t *anchor = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = failat(p, line, "only one document is allowed in a configuration file");
            break;
        case YAML_ALIAS_EVENT:
            rc = failat(p, line, "aliases (*%s) are not supported; write the value out",
                        show(p, (const char *)ev.data.alias.anchor));
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
            rc = failat(p, line, "anchors (&%s) are not supported; write the value out",
                        show(p, (const char *)anchor));
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
        return fail_oom(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)p->text, p->len);
    if (yaml_parser_load(&yp, &p->doc))
        p->have_doc = true;
    else
        rc = fail_yaml(p, &yp);
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
        failat(&p, 0, "the file is larger than %u MiB", LIMIT_CONFIG_BYTES >> 20);
        return NULL;
    }
    struct config *c = calloc(1, sizeof *c);
    if (!c) {
        fail_oom(&p);
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
    int rc = !c->path || !c->routes ? fail_oom(&p) : 0;
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
