/* config_addr.c - durations and addresses: listen addresses, upstream targets
 * and Unix socket access. */
#include "config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "limits.h"

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

int config_parse_addr(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    return cfg_parse_addr(s, out, false, true, err, errlen);
}

int config_parse_target(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    return cfg_parse_addr(s, out, false, false, err, errlen);
}

int cfg_parse_addr(const char *s, struct config_addr *out, bool any_port, bool resolve, char *err,
                   size_t errlen)
{
    char shown[SHOW_MAX + 8];
    char host[sizeof out->text];
    const char *portstr;
    uint16_t port;

    memset(out, 0, sizeof *out);
    if (strlen(s) >= sizeof out->text) {
        snprintf(err, errlen, "address \"%s\" is too long", cfg_show_into(shown, sizeof shown, s));
        return -EINVAL;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        const char *path = s + 5;
        struct sockaddr_un *un = (struct sockaddr_un *)&out->sa;
        if (path[0] != '/') {
            snprintf(err, errlen, "unix socket path in \"%s\" must be absolute",
                     cfg_show_into(shown, sizeof shown, s));
            return -EINVAL;
        }
        size_t plen = strlen(path);
        if (plen >= sizeof un->sun_path) {
            snprintf(err, errlen, "unix socket path in \"%s\" is too long (at most %zu bytes)",
                     cfg_show_into(shown, sizeof shown, s), sizeof un->sun_path - 1);
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
                 cfg_show_into(shown, sizeof shown, s), any_port ? "0 (any free port)" : "1");
        return -EINVAL;
    }

    if (s[0] == '[') {
        struct addrinfo hints = {.ai_family = AF_INET6,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
            snprintf(err, errlen, "invalid IPv6 address in \"%s\" " ADDR_HELP,
                     cfg_show_into(shown, sizeof shown, s));
            return -EINVAL;
        }
        addr_set(out, res, port);
        freeaddrinfo(res);
    } else if (looks_numeric(host)) {
        /* inet_pton, not getaddrinfo: "127.1" and "1" are typos, not addresses. */
        struct in_addr ip;
        if (inet_pton(AF_INET, host, &ip) != 1) {
            snprintf(err, errlen, "invalid IPv4 address in \"%s\" " ADDR_HELP,
                     cfg_show_into(shown, sizeof shown, s));
            return -EINVAL;
        }
        addr_set4(out, ip, port);
    } else if (!resolve) {
        if (!host_name_valid(host)) {
            snprintf(err, errlen,
                     "invalid host name \"%s\" (labels of letters, digits, '-' and '_' "
                     "separated by dots)",
                     cfg_show_into(shown, sizeof shown, host));
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
            snprintf(err, errlen, "cannot resolve \"%s\": %s",
                     cfg_show_into(shown, sizeof shown, host),
                     rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
            return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
        }
        addr_set(out, res, port);
        freeaddrinfo(res);
    }
    strcpy(out->text, s);
    return 0;

invalid:
    snprintf(err, errlen, "invalid address \"%s\" " ADDR_HELP,
             cfg_show_into(shown, sizeof shown, s));
    return -EINVAL;
}

int config_parse_listen_addr(const char *s, struct config_addr *out, char *err, size_t errlen)
{
    return cfg_parse_addr(s, out, true, true, err, errlen);
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
bool cfg_addr_clash(const struct config_addr *a, const struct config_addr *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0 &&
           !config_addr_any_port(a);
}
int cfg_read_addr(struct parser *p, const yaml_node_t *n, const char *what, struct config_addr *out,
                  bool any_port)
{
    const char *s;
    char msg[512];
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (cfg_parse_addr(s, out, any_port, true, msg, sizeof msg) < 0)
        return cfg_fail(p, n, "%s: %s", what, msg);
    return 0;
}

/* An address portico connects to: a host name in it is resolved at run time. */
int cfg_read_target(struct parser *p, const yaml_node_t *n, const char *what,
                    struct config_addr *out)
{
    const char *s;
    char msg[512];
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (config_parse_target(s, out, msg, sizeof msg) < 0)
        return cfg_fail(p, n, "%s: %s", what, msg);
    cfg_set_owner(p, n, out);
    return 0;
}
/* Record who wrote a target address and where, for messages about its name. */
void cfg_set_owner(struct parser *p, const yaml_node_t *n, struct config_addr *a)
{
    a->owner_kind = p->owner_kind;
    a->owner = p->owner;
    a->line = n ? (int)n->start_mark.line + 1 : 0;
}

int cfg_fn_listen_addr(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                       void *target)
{
    return cfg_read_addr(p, n, what, field, true);
}

int cfg_fn_target(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                  void *target)
{
    return cfg_read_target(p, n, what, field);
}
