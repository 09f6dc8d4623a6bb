/* config_listen.c - the "listen:" and "metrics:" sections. */
#include "config_int.h"

#include <grp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

int cfg_read_group(struct parser *p, const yaml_node_t *n, const char *what, const char *name,
                   long *gid)
{
    char buf[LIMIT_GETGR_BUF];
    struct group gr, *res = NULL;
    int e = getgrnam_r(name, &gr, buf, sizeof buf, &res);
    if (e != 0 || !res)
        return cfg_fail(p, n, "%s: no group named \"%s\"%s%s", what, cfg_show(p, name),
                        e ? ": " : "", e ? strerror(e) : "");
    *gid = (long)res->gr_gid;
    return 0;
}

/* "mode" and "group" of a Unix listen entry: who may connect. */
static int parse_unix_access(struct parser *p, const yaml_node_t *mode, const yaml_node_t *group,
                             struct config_addr *a)
{
    bool is_unix = a->sa.ss_family == AF_UNIX;
    if (mode) {
        const char *v;
        if (cfg_want_string(p, mode, "listen.mode", &v) < 0)
            return -1;
        if (!is_unix)
            return cfg_fail(p, mode, "listen.mode: only a unix:/path listener has a file mode");
        unsigned m = 0;
        size_t i = 0;
        for (; v[i] >= '0' && v[i] <= '7' && i < 4; i++)
            m = m * 8 + (unsigned)(v[i] - '0');
        if (i < 3 || v[i] != '\0' || m > 0777)
            return cfg_fail(p, mode,
                            "listen.mode: expected octal permission bits such as \"0660\", "
                            "not \"%s\"",
                            cfg_show(p, v));
        if ((m & 0600) != 0600)
            return cfg_fail(p, mode,
                            "listen.mode: \"%s\" leaves portico's own user without read "
                            "and write (the owner needs 6)",
                            cfg_show(p, v));
        a->unix_mode = m;
    }
    if (group) {
        const char *v;
        if (cfg_want_string(p, group, "listen.group", &v) < 0)
            return -1;
        if (!is_unix)
            return cfg_fail(p, group, "listen.group: only a unix:/path listener has a group");
        if (cfg_read_group(p, group, "listen.group", v, &a->unix_gid) < 0)
            return -1;
    }
    return 0;
}

#define AT(f) CFG_AT(struct config_listen, f)
static const struct cfg_choice schemes[] = {{"http", 0}, {"https", 1}, {NULL, 0}};
static const struct cfg_key listen_keys[] = {
    {"addr", CFG_FUNC, AT(addr), .bare = true, .fn = cfg_fn_listen_addr},
    {"proxy_protocol", CFG_BOOL, AT(proxy_protocol)},
    {"tls", CFG_BOOL, AT(tls)},
    {"scheme", CFG_ENUM, AT(https), .choices = schemes},
    {"redirect_https", CFG_BOOL, AT(redirect_https)},
    {"https_port", CFG_UINT, AT(https_port), 0, 1, 65535},
    {"mode", CFG_LATER,
     .off = 0}, /* parse_unix_access, once addr says whether it is a Unix socket */
    {"group", CFG_LATER, .off = 0}, /* the same */
    {"strict_sni_host", CFG_BOOL, AT(strict_sni_host)},
};

/* What one listen entry's keys say together. */
static int check_listen(struct parser *p, struct config_listen *l, const struct cfg_seen *seen)
{
    const yaml_node_t *tls = cfg_seen_node(seen, "tls"), *scheme = cfg_seen_node(seen, "scheme");
    const yaml_node_t *redirect = cfg_seen_node(seen, "redirect_https");
    const yaml_node_t *port = cfg_seen_node(seen, "https_port");
    const yaml_node_t *strict = cfg_seen_node(seen, "strict_sni_host");
    if (l->tls && l->addr.sa.ss_family == AF_UNIX)
        return cfg_fail(p, tls, "listen.tls: TLS on a Unix socket is not supported");
    if (l->tls && scheme && !l->https)
        return cfg_fail(p, scheme, "listen.scheme: a listener with tls: true is https");
    l->https = l->https || l->tls;
    if (l->redirect_https && l->https)
        return cfg_fail(p, redirect,
                        "listen.redirect_https: this listener already serves https; the redirect "
                        "belongs on a plain-HTTP listener");
    if (port && !l->redirect_https)
        return cfg_fail(p, port, "listen.https_port applies with redirect_https: true");
    if (parse_unix_access(p, cfg_seen_node(seen, "mode"), cfg_seen_node(seen, "group"), &l->addr) <
        0)
        return -1;
    if (strict && !l->tls)
        return cfg_fail(p, strict, "listen.strict_sni_host applies to a listener with tls: true");
    if (!strict)
        l->strict_sni_host = l->tls;
    return 0;
}

int cfg_parse_listen(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    if (cfg_want_sequence(p, n, "listen") < 0)
        return -1;
    /* Empty is allowed: whether anything serves is known once every
     * section is read (check_serves). */
    c->listens = cfg_calloc(p, cfg_seq_len(n) ? cfg_seq_len(n) : 1, sizeof *c->listens);
    if (!c->listens)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        struct config_listen *l = &c->listens[c->nlistens];
        struct cfg_seen seen;
        if (cfg_keys_collect(p, item, listen_keys, CFG_NKEYS(listen_keys), "listen",
                             "in a listen entry", &seen) < 0)
            return -1;
        const yaml_node_t *addr = cfg_seen_node(&seen, "addr");
        if (!addr)
            return cfg_fail(p, item, "listen: entry has no addr");
        if (cfg_keys_apply(p, &seen, l, "listen") < 0 || check_listen(p, l, &seen) < 0)
            return -1;
        l->line = (int)addr->start_mark.line + 1;
        for (size_t i = 0; i < c->nlistens; i++)
            if (cfg_addr_clash(&c->listens[i].addr, &l->addr))
                return cfg_fail(p, addr, "listen: address \"%s\" is the same as \"%s\" on line %d",
                                cfg_show(p, l->addr.text), cfg_show(p, c->listens[i].addr.text),
                                c->listens[i].line);
        c->nlistens++;
    }
    return 0;
}

static const struct cfg_key metrics_keys[] = {
    {"listen", CFG_FUNC, CFG_AT(struct config, metrics_listen), .fn = cfg_fn_listen_addr},
};

int cfg_parse_metrics(struct parser *p, const yaml_node_t *n)
{
    struct config *c = p->c;
    struct cfg_seen seen;
    if (cfg_keys_collect(p, n, metrics_keys, CFG_NKEYS(metrics_keys), "metrics", "in metrics",
                         &seen) < 0)
        return -1;
    const yaml_node_t *listen = cfg_seen_node(&seen, "listen");
    if (!listen)
        return cfg_fail(p, n, "metrics: no listen address");
    if (cfg_keys_apply(p, &seen, c, "metrics") < 0)
        return -1;
    for (size_t i = 0; i < c->nlistens; i++)
        if (cfg_addr_clash(&c->listens[i].addr, &c->metrics_listen))
            return cfg_fail(p, listen,
                            "metrics.listen: \"%s\" is also a listen address (line %d); use "
                            "another port",
                            cfg_show(p, c->metrics_listen.text), c->listens[i].line);
    c->metrics_enabled = true;
    return 0;
}
