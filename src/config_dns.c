/* config_dns.c - the "dns:" section: the authoritative DNS responder of
 * split-DNS mode (see dns.h and dnsserver.h).
 *
 * Read after "tailscale:" (config.c): without dns.listen the responder
 * listens on the node's tailnet addresses, which only a tailscale section
 * can give. */
#include "config_int.h"

#include <arpa/inet.h>
#include <string.h>

#include "dns.h"
#include "limits.h"

#define DNS_LISTEN_HELP "(use IP:PORT or [IPv6]:PORT, e.g. 100.101.102.103:53)"

static size_t list_len(const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE
               ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
               : 1;
}

static const yaml_node_t *list_item(struct parser *p, const yaml_node_t *n, size_t i)
{
    return n->type == YAML_SEQUENCE_NODE ? cfg_node(p, n->data.sequence.items.start[i]) : n;
}

static bool addr_unspecified(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
}

/* One address for UDP and TCP: an IP literal and a port. A wildcard
 * address is refused: a UDP answer would leave from whichever address the
 * kernel picks, which the asking resolver does not accept. */
static int read_listen_one(struct parser *p, const yaml_node_t *n, const char *what,
                           struct config_addr *a)
{
    const char *s;
    char msg[300];
    if (cfg_want_string(p, n, what, &s) < 0)
        return -1;
    if (cfg_parse_addr(s, a, true, false, msg, sizeof msg) < 0)
        return cfg_fail(p, n, "%s: %s", what, msg);
    if (a->host[0] || (a->sa.ss_family != AF_INET && a->sa.ss_family != AF_INET6))
        return cfg_fail(p, n, "%s: \"%s\" is not an IP address and port %s", what, cfg_show(p, s),
                        DNS_LISTEN_HELP);
    if (addr_unspecified(a))
        return cfg_fail(p, n,
                        "%s: \"%s\" is a wildcard address; list the addresses to answer on "
                        "(answers must leave from the address the query came to)",
                        what, cfg_show(p, s));
    a->line = (int)n->start_mark.line + 1;
    return 0;
}

static int read_listen(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                       void *target)
{
    struct config_dns *d = target;
    size_t count = list_len(n);
    if (n->type == YAML_SEQUENCE_NODE && count == 0)
        return cfg_fail(p, n, "%s: the list is empty (leave it out for the tailnet addresses)",
                        what);
    if (count > LIMIT_DNS_LISTEN)
        return cfg_fail(p, n, "%s: more than %d addresses", what, LIMIT_DNS_LISTEN);
    if (!(d->listen = cfg_calloc(p, count, sizeof *d->listen)))
        return cfg_fail_oom(p);
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = list_item(p, n, i);
        if (read_listen_one(p, item, what, &d->listen[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (cfg_addr_clash(&d->listen[j], &d->listen[i]))
                return cfg_fail(p, item, "%s: \"%s\" is listed twice", what,
                                cfg_show(p, d->listen[i].text));
    }
    d->nlisten = count;
    return 0;
}

static int read_answer(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                       void *target)
{
    struct config_dns *d = target;
    size_t count = list_len(n);
    if (n->type == YAML_SEQUENCE_NODE && count == 0)
        return cfg_fail(p, n, "%s: the list is empty (leave it out for the listen addresses)",
                        what);
    if (count > LIMIT_DNS_ANSWERS)
        return cfg_fail(p, n, "%s: more than %d addresses", what, LIMIT_DNS_ANSWERS);
    d->answer4 = cfg_calloc(p, count, sizeof *d->answer4);
    d->answer6 = cfg_calloc(p, count, sizeof *d->answer6);
    if (!d->answer4 || !d->answer6)
        return cfg_fail_oom(p);
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = list_item(p, n, i);
        const char *s;
        struct in_addr a4;
        struct in6_addr a6;
        if (cfg_want_string(p, item, what, &s) < 0)
            return -1;
        bool dup = false;
        if (inet_pton(AF_INET, s, &a4) == 1) {
            for (size_t j = 0; j < d->nanswer4; j++)
                dup = dup || memcmp(&d->answer4[j], &a4, sizeof a4) == 0;
            d->answer4[d->nanswer4++] = a4;
        } else if (inet_pton(AF_INET6, s, &a6) == 1) {
            for (size_t j = 0; j < d->nanswer6; j++)
                dup = dup || memcmp(&d->answer6[j], &a6, sizeof a6) == 0;
            d->answer6[d->nanswer6++] = a6;
        } else {
            return cfg_fail(p, item,
                            "%s: \"%s\" is not an IP address (use 100.101.102.103 or "
                            "fd7a:115c:a1e0::1, without a port)",
                            what, cfg_show(p, s));
        }
        if (dup)
            return cfg_fail(p, item, "%s: \"%s\" is listed twice", what, cfg_show(p, s));
    }
    return 0;
}

/* A zone: a DNS name (not a wildcard), each once, none inside another. */
static int check_zone(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                      char *const *prev, size_t nprev)
{
    struct dns_name name;
    if (dns_name_from_text(v, &name) < 0 || name.wildcard)
        return cfg_fail(p, n,
                        "%s: \"%s\" is not a DNS name (use a domain such as home.example.com)",
                        what, cfg_show(p, v));
    size_t len = strlen(v);
    if (v[len - 1] == '.')
        v[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (v[i] >= 'A' && v[i] <= 'Z')
            v[i] = (char)(v[i] + 32);
    for (size_t i = 0; i < nprev; i++)
        if (strcmp(prev[i], v) == 0)
            return cfg_fail(p, n, "%s: \"%s\" is listed twice", what, cfg_show(p, v));
    return 0;
}

#define DN(f) CFG_AT(struct config_dns, f)
static const struct cfg_key dns_keys[] = {
    {"listen", CFG_FUNC, DN(listen), .fn = read_listen},
    {"zones", CFG_STRINGS, DN(zones), .off_n = offsetof(struct config_dns, nzones),
     .max = LIMIT_DNS_ZONES, .item = check_zone},
    {"answer", CFG_FUNC, DN(answer4), .fn = read_answer},
    {"ttl", CFG_DURATION, DN(ttl_ms), DNS_TTL_DEFAULT_MS},
};

int cfg_parse_dns(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    struct config_dns *d = &c->dns;
    struct cfg_seen seen;
    if (cfg_keys_read(p, n, dns_keys, CFG_NKEYS(dns_keys), d, "dns", "in dns", &seen) < 0)
        return -1;
    d->line = (int)n->start_mark.line + 1;
    if (d->nzones == 0)
        return cfg_fail(p, cfg_seen_node(&seen, "zones") ? cfg_seen_node(&seen, "zones") : n,
                        "dns: no zones (add zones: [home.example.com], the domains to answer for)");
    const yaml_node_t *ttl = cfg_seen_node(&seen, "ttl");
    if (d->ttl_ms % 1000 != 0 || d->ttl_ms > DNS_TTL_MAX_MS)
        return cfg_fail(p, ttl, "dns.ttl: use whole seconds from 1s to 24h");
    if (d->nlisten == 0 && !c->tailscale.enabled)
        return cfg_fail(p, n,
                        "dns: no listen addresses: set dns.listen (e.g. [100.101.102.103:53]), "
                        "or add a tailscale: section to answer on the node's tailnet addresses");
    for (size_t i = 0; i < d->nlisten; i++) {
        const struct config_addr *a = &d->listen[i];
        for (size_t k = 0; k < c->nlistens; k++)
            if (cfg_addr_clash(&c->listens[k].addr, a))
                return cfg_failat(p, (size_t)a->line,
                                  "dns.listen: \"%s\" is also a listen address (line %d); use "
                                  "another port",
                                  cfg_show(p, a->text), c->listens[k].line);
        if (c->metrics_enabled && cfg_addr_clash(&c->metrics_listen, a))
            return cfg_failat(p, (size_t)a->line,
                              "dns.listen: \"%s\" is also the metrics address; use another port",
                              cfg_show(p, a->text));
    }
    d->enabled = true;
    return 0;
}
