/* config_tls.c - the "tls:" section and the certificates it names. */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

/* "tls: {certs: [{cert, key}], default_cert: NAME}". The files are read
 * once every key is known (load_tls), so that check reports broken
 * certificates too. */
int cfg_parse_tls(struct parser *p, const yaml_node_t *n)
{
    static const char *const names[] = {"certs", "default_cert"};
    static const char *const cert_names[] = {"cert", "key"};
    struct config *c = p->c;
    yaml_node_t *vals[2] = {0};
    if (cfg_want_mapping(p, n, "tls", false) < 0 ||
        cfg_map_collect(p, n, names, 2, vals, "in tls") < 0)
        return -1;
    if (!vals[0])
        return cfg_fail(p, n, "tls: no certs");
    if (cfg_want_sequence(p, vals[0], "tls.certs") < 0)
        return -1;
    if (cfg_seq_len(vals[0]) == 0)
        return cfg_fail(p, vals[0], "tls.certs is empty");
    c->tls_certs = calloc(cfg_seq_len(vals[0]), sizeof *c->tls_certs);
    if (!c->tls_certs)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = vals[0]->data.sequence.items.start;
         it < vals[0]->data.sequence.items.top; it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        yaml_node_t *cv[2] = {0};
        if (cfg_want_mapping(p, item, "tls.certs", false) < 0 ||
            cfg_map_collect(p, item, cert_names, 2, cv, "in a tls.certs entry") < 0)
            return -1;
        if (!cv[0] || !cv[1])
            return cfg_fail(p, item, "tls.certs: an entry needs both cert and key");
        struct config_tls_cert *tc = &c->tls_certs[c->ntls_certs++];
        const char *cert, *key;
        if (cfg_want_string(p, cv[0], "tls.certs.cert", &cert) < 0 ||
            cfg_want_string(p, cv[1], "tls.certs.key", &key) < 0)
            return -1;
        tc->line = (int)item->start_mark.line + 1;
        tc->cert = strdup(cert);
        tc->key = strdup(key);
        if (!tc->cert || !tc->key)
            return cfg_fail_oom(p);
    }
    if (vals[1]) {
        const char *d;
        if (cfg_want_string(p, vals[1], "tls.default_cert", &d) < 0)
            return -1;
        c->tls_default = strdup(d);
        if (!c->tls_default)
            return cfg_fail_oom(p);
        p->tls_default_line = (int)vals[1]->start_mark.line + 1;
    }
    p->tls_line = (int)n->start_mark.line + 1;
    return 0;
}

/* Read the certificates when a listener terminates TLS. */
int cfg_load_tls(struct parser *p)
{
    struct config *c = p->c;
    bool wanted = false;
    for (size_t i = 0; i < c->nlistens; i++)
        wanted = wanted || c->listens[i].tls;
    if (!wanted) {
        for (size_t i = 0; i < c->nservices; i++)
            if (c->services[i].passthrough)
                return cfg_failat(
                    p, (size_t)c->services[i].line,
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
        return cfg_failat(
            p, (size_t)c->listens[i].line,
            "listen %s has tls: true but no tls.certs are configured (add tls: {certs: "
            "[{cert: FILE, key: FILE}]}, or a service with passthrough:)",
            c->listens[i].addr.text);
    }
    struct tls_cert_spec *specs = calloc(c->ntls_certs, sizeof *specs);
    if (!specs)
        return cfg_fail_oom(p);
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
    return cfg_failat(p, (size_t)line, "%s", msg);
}
