/* access.c - allow lists (see access.h). */
#include "access.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>
#include <unistd.h>

#include "rfc2047.h"

#define ACCESS_HELP "(write a login such as alice@example.com, *@example.com, tag:NAME or local)"

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The entry as shown in a message: printable ASCII, at most 64 bytes. */
static const char *shown(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 4 < cap && n < 64; s++)
        out[n++] = (*s >= ' ' && *s <= '~') ? *s : '?';
    if (*s)
        for (int i = 0; i < 3 && n + 1 < cap; i++)
            out[n++] = '.';
    out[n] = '\0';
    return out;
}

/* tailcfg.CheckTag: "tag:", then a letter, then letters, digits and '-'. */
static const char *tag_problem(const char *name)
{
    if (!*name)
        return "a tag name must not be empty";
    if (!is_alpha(*name))
        return "a tag name must start with a letter after \"tag:\"";
    for (const char *p = name; *p; p++)
        if (!is_alpha(*p) && !is_digit(*p) && *p != '-')
            return "a tag name may contain only letters, digits and '-'";
    return NULL;
}

/* A login's domain: DNS labels of letters, digits and '-' (one label is
 * enough: GitHub logins are "alice@github"). */
static const char *domain_problem(const char *d)
{
    size_t len = strlen(d);
    if (len == 0)
        return "the domain after '@' is empty";
    if (len > LIMIT_HOST_LEN)
        return "the domain after '@' is longer than 253 bytes";
    size_t label = 0;
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0)
                return "the domain after '@' has an empty label";
            if (label > 63)
                return "the domain after '@' has a label longer than 63 bytes";
            if (p[-1] == '-')
                return "a domain label must not end with '-'";
            if (*p == '\0')
                return NULL;
            label = 0;
            continue;
        }
        if (!is_alpha(*p) && !is_digit(*p) && *p != '-')
            return "the domain after '@' may contain only letters, digits, '-' and '.'";
        if (label == 0 && *p == '-')
            return "a domain label must not start with '-'";
        label++;
    }
}

/* What is wrong with an entry, or NULL; *kind set when it is right. */
static const char *entry_problem(const char *e, enum access_kind *kind)
{
    if (strcmp(e, "local") == 0) {
        *kind = ACCESS_LOCAL;
        return NULL;
    }
    if (strncmp(e, "tag:", 4) == 0) {
        *kind = ACCESS_TAG;
        return tag_problem(e + 4);
    }
    if (strncmp(e, "group:", 6) == 0 || strncmp(e, "autogroup:", 10) == 0)
        return "tailnet groups are not known to portico; list the logins, or grant the "
               "group access to the service in the tailnet policy";
    const char *at = strchr(e, '@');
    if (!at)
        return "is not a login " ACCESS_HELP;
    if (strchr(at + 1, '@'))
        return "has more than one '@' " ACCESS_HELP;
    if (rfc2047_check_text(e, strlen(e)) < 0)
        return "is not UTF-8 text without control characters";
    for (const char *p = e; p < at; p++)
        if (*p == ' ' || *p == '\t')
            return "a login must not contain spaces";
    const char *dp = domain_problem(at + 1);
    if (dp)
        return dp;
    if (at - e == 1 && e[0] == '*') {
        *kind = ACCESS_DOMAIN;
        return NULL;
    }
    if (at == e)
        return "the part before '@' is empty " ACCESS_HELP;
    if (memchr(e, '*', (size_t)(at - e)))
        return "'*' may only stand alone before '@', as in *@example.com";
    *kind = ACCESS_LOGIN;
    return NULL;
}

int access_entry_check(const char *entry, char *err, size_t errlen)
{
    enum access_kind kind;
    const char *why = entry_problem(entry, &kind);
    if (!why)
        return 0;
    char buf[80];
    snprintf(err, errlen, "allow entry \"%s\": %s", shown(entry, buf, sizeof buf), why);
    return -1;
}

static void lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

int access_list_add(struct access_list *l, const char *entry, char *err, size_t errlen)
{
    if (access_entry_check(entry, err, errlen) < 0)
        return -1;
    if (l->n >= LIMIT_ACCESS_ENTRIES) {
        snprintf(err, errlen, "allow: more than %d entries", LIMIT_ACCESS_ENTRIES);
        return -1;
    }
    enum access_kind kind = ACCESS_LOCAL;
    entry_problem(entry, &kind);
    const char *v = kind == ACCESS_DOMAIN ? entry + 2 : entry;
    char *copy = strdup(v);
    struct access_rule *grown = realloc(l->entries, (l->n + 1) * sizeof *grown);
    if (!copy || !grown) {
        free(copy);
        if (grown)
            l->entries = grown;
        snprintf(err, errlen, "allow: out of memory");
        return -1;
    }
    if (kind == ACCESS_LOGIN)
        lower_ascii(strchr(copy, '@'));
    else if (kind == ACCESS_DOMAIN)
        lower_ascii(copy);
    l->entries = grown;
    l->entries[l->n].kind = kind;
    l->entries[l->n].value = copy;
    l->n++;
    return 0;
}

void access_list_free(struct access_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->entries[i].value);
    free(l->entries);
    l->entries = NULL;
    l->n = 0;
}

/* The caller's login split at its one '@'; false if it has none or more. */
static bool split_login(const char *login, size_t *local_len, const char **domain)
{
    const char *at = strchr(login, '@');
    if (!at || at == login || strchr(at + 1, '@') || !at[1])
        return false;
    *local_len = (size_t)(at - login);
    *domain = at + 1;
    return true;
}

static bool entry_matches(const struct access_rule *e, const struct identity *id, bool user,
                          bool tagged)
{
    switch (e->kind) {
    case ACCESS_LOCAL:
        return id->local && !id->funnel;
    case ACCESS_TAG:
        if (!tagged || id->funnel)
            return false;
        for (size_t i = 0; i < identity_count(id, IDENTITY_TAGS); i++)
            if (strcmp(identity_item(id, IDENTITY_TAGS, i), e->value) == 0)
                return true;
        return false;
    case ACCESS_LOGIN:
    case ACCESS_DOMAIN:
        break;
    }
    if (!user)
        return false;
    size_t local_len;
    const char *domain;
    if (!split_login(identity_get(id, IDENTITY_LOGIN), &local_len, &domain))
        return false;
    if (e->kind == ACCESS_DOMAIN)
        return strcasecmp(domain, e->value) == 0;
    const char *eat = strchr(e->value, '@');
    return (size_t)(eat - e->value) == local_len &&
           memcmp(e->value, identity_get(id, IDENTITY_LOGIN), local_len) == 0 &&
           strcasecmp(domain, eat + 1) == 0;
}

bool access_list_allows(const struct access_list *l, const struct identity *id)
{
    bool user = identity_is_user(id);
    bool tagged = id->source != IDENTITY_NONE && identity_is_tagged(id);
    for (size_t i = 0; i < l->n; i++)
        if (entry_matches(&l->entries[i], id, user, tagged))
            return true;
    return false;
}

bool access_tailnet_address(const struct sockaddr_storage *sa)
{
    static const uint8_t ula[6] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0}; /* fd7a:115c:a1e0::/48 */
    const uint8_t *v4 = NULL;
    if (sa->ss_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (!IN6_IS_ADDR_V4MAPPED(a))
            return memcmp(a->s6_addr, ula, sizeof ula) == 0;
        v4 = &a->s6_addr[12];
    }
    /* 100.64.0.0/10: Tailscale's CGNAT range. */
    return v4 && v4[0] == 100 && (v4[1] & 0xc0) == 64;
}

void access_probe_init(struct access_probe *p)
{
    p->fd[0] = p->fd[1] = -1;
}

void access_probe_close(struct access_probe *p)
{
    for (int i = 0; i < 2; i++)
        if (p->fd[i] >= 0)
            close(p->fd[i]);
    access_probe_init(p);
}

bool access_address_is_own(struct access_probe *p, const struct sockaddr_storage *sa)
{
    struct sockaddr_storage probe;
    memset(&probe, 0, sizeof probe);
    socklen_t len;
    int *fd;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (sa->ss_family == AF_INET ||
        (sa->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))) {
        struct sockaddr_in *p4 = (struct sockaddr_in *)&probe;
        p4->sin_family = AF_INET;
        if (sa->ss_family == AF_INET)
            p4->sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
        else
            memcpy(&p4->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
        len = sizeof *p4;
        fd = &p->fd[0];
    } else if (sa->ss_family == AF_INET6) {
        struct sockaddr_in6 *p6 = (struct sockaddr_in6 *)&probe;
        p6->sin6_family = AF_INET6;
        p6->sin6_addr = in6->sin6_addr;
        p6->sin6_scope_id = in6->sin6_scope_id;
        len = sizeof *p6;
        fd = &p->fd[1];
    } else {
        return true;
    }
    if (*fd < 0 && (*fd = socket(probe.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return true;
    /* Port 0 takes no port unless the bind succeeds. */
    if (bind(*fd, (const struct sockaddr *)&probe, len) < 0 && errno == EADDRNOTAVAIL) {
        /* A scoped IPv6 bind ties the socket to that interface even when
         * it fails, which would narrow the next answer: not kept. */
        if (probe.ss_family == AF_INET6 && in6->sin6_scope_id) {
            close(*fd);
            *fd = -1;
        }
        return false;
    }
    /* Bound (or an odd failure): this socket cannot ask again. */
    close(*fd);
    *fd = -1;
    return true;
}

bool access_peer_tailnet(struct access_probe *p, const struct sockaddr_storage *peer,
                         bool from_proxy_header)
{
    if (!access_tailnet_address(peer))
        return false;
    return from_proxy_header || !access_address_is_own(p, peer);
}
