/* config_listen.c - the "listen:" and "metrics:" sections. */
#include "config_int.h"

#include <grp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

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
        char buf[LIMIT_GETGR_BUF];
        struct group gr, *res = NULL;
        int e = getgrnam_r(v, &gr, buf, sizeof buf, &res);
        if (e != 0 || !res)
            return cfg_fail(p, group, "listen.group: no group named \"%s\"%s%s", cfg_show(p, v),
                            e ? ": " : "", e ? strerror(e) : "");
        a->unix_gid = (long)res->gr_gid;
    }
    return 0;
}

int cfg_parse_listen(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"addr",   "proxy_protocol", "tls",
                                        "scheme", "redirect_https", "https_port",
                                        "mode",   "group",          "strict_sni_host"};
    struct config *c = p->c;
    if (cfg_want_sequence(p, n, "listen") < 0)
        return -1;
    if (cfg_seq_len(n) == 0)
        return cfg_fail(p, n, "no listen addresses (listen is empty)");
    c->listens = calloc(cfg_seq_len(n), sizeof *c->listens);
    if (!c->listens)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        yaml_node_t *vals[9] = {0};
        if (cfg_want_mapping(p, item, "listen", false) < 0 ||
            cfg_map_collect(p, item, names, 9, vals, "in a listen entry") < 0)
            return -1;
        if (!vals[0])
            return cfg_fail(p, item, "listen: entry has no addr");
        struct config_listen *l = &c->listens[c->nlistens];
        if (cfg_read_addr(p, vals[0], "listen", &l->addr, true) < 0)
            return -1;
        l->line = (int)vals[0]->start_mark.line + 1;
        if (vals[1] && cfg_want_bool(p, vals[1], "listen.proxy_protocol", &l->proxy_protocol) < 0)
            return -1;
        if (vals[2] && cfg_want_bool(p, vals[2], "listen.tls", &l->tls) < 0)
            return -1;
        if (l->tls && l->addr.sa.ss_family == AF_UNIX)
            return cfg_fail(p, vals[2], "listen.tls: TLS on a Unix socket is not supported");
        l->https = l->tls;
        if (vals[3]) {
            const char *sch;
            if (cfg_want_string(p, vals[3], "listen.scheme", &sch) < 0)
                return -1;
            if (strcmp(sch, "https") == 0)
                l->https = true;
            else if (strcmp(sch, "http") != 0)
                return cfg_fail(p, vals[3], "listen.scheme: expected http or https, not \"%s\"",
                                cfg_show(p, sch));
            else if (l->tls)
                return cfg_fail(p, vals[3], "listen.scheme: a listener with tls: true is https");
        }
        if (vals[4] && cfg_want_bool(p, vals[4], "listen.redirect_https", &l->redirect_https) < 0)
            return -1;
        if (l->redirect_https && l->https)
            return cfg_fail(
                p, vals[4],
                "listen.redirect_https: this listener already serves https; the redirect "
                "belongs on a plain-HTTP listener");
        if (vals[5]) {
            uint32_t port;
            if (cfg_want_uint(p, vals[5], "listen.https_port", 1, 65535, &port) < 0)
                return -1;
            if (!l->redirect_https)
                return cfg_fail(p, vals[5], "listen.https_port applies with redirect_https: true");
            l->https_port = (uint16_t)port;
        }
        if (parse_unix_access(p, vals[6], vals[7], &l->addr) < 0)
            return -1;
        l->strict_sni_host = l->tls;
        if (vals[8]) {
            if (cfg_want_bool(p, vals[8], "listen.strict_sni_host", &l->strict_sni_host) < 0)
                return -1;
            if (!l->tls)
                return cfg_fail(p, vals[8],
                                "listen.strict_sni_host applies to a listener with tls: true");
        }
        for (size_t i = 0; i < c->nlistens; i++)
            if (cfg_addr_clash(&c->listens[i].addr, &l->addr))
                return cfg_fail(p, vals[0],
                                "listen: address \"%s\" is the same as \"%s\" on line %d",
                                cfg_show(p, l->addr.text), cfg_show(p, c->listens[i].addr.text),
                                c->listens[i].line);
        c->nlistens++;
    }
    return 0;
}

int cfg_parse_metrics(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"listen"};
    struct config *c = p->c;
    yaml_node_t *vals[1] = {0};
    if (cfg_want_mapping(p, n, "metrics", false) < 0 ||
        cfg_map_collect(p, n, names, 1, vals, "in metrics") < 0)
        return -1;
    if (!vals[0])
        return cfg_fail(p, n, "metrics: no listen address");
    if (cfg_read_addr(p, vals[0], "metrics.listen", &c->metrics_listen, true) < 0)
        return -1;
    for (size_t i = 0; i < c->nlistens; i++)
        if (cfg_addr_clash(&c->listens[i].addr, &c->metrics_listen))
            return cfg_fail(p, vals[0],
                            "metrics.listen: \"%s\" is also a listen address (line %d); use "
                            "another port",
                            cfg_show(p, c->metrics_listen.text), c->listens[i].line);
    c->metrics_enabled = true;
    return 0;
}
