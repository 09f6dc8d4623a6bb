/* config_tls.c - the "tls:" section and the certificates it names. */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

static const struct cfg_key cert_keys[] = {
    {"cert", CFG_STRING, CFG_AT(struct config_tls_cert, cert)},
    {"key", CFG_STRING, CFG_AT(struct config_tls_cert, key)},
};

static int read_certs(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                      void *target)
{
    struct config *c = p->c;
    if (cfg_want_sequence(p, n, "tls.certs") < 0)
        return -1;
    if (cfg_seq_len(n) == 0)
        return cfg_fail(p, n, "tls.certs is empty");
    c->tls_certs = cfg_calloc(p, cfg_seq_len(n), sizeof *c->tls_certs);
    if (!c->tls_certs)
        return cfg_fail_oom(p);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = cfg_node(p, *it);
        struct cfg_seen seen;
        if (cfg_keys_collect(p, item, cert_keys, CFG_NKEYS(cert_keys), "tls.certs",
                             "in a tls.certs entry", &seen) < 0)
            return -1;
        if (!cfg_seen_node(&seen, "cert") || !cfg_seen_node(&seen, "key"))
            return cfg_fail(p, item, "tls.certs: an entry needs both cert and key");
        struct config_tls_cert *tc = &c->tls_certs[c->ntls_certs++];
        tc->line = (int)item->start_mark.line + 1;
        if (cfg_keys_apply(p, &seen, tc, "tls.certs") < 0)
            return -1;
    }
    return 0;
}

static const struct cfg_key tls_keys[] = {
    {"certs", CFG_FUNC, .fn = read_certs},
    {"default_cert", CFG_STRING, CFG_AT(struct config, tls_default)},
    {"tailscale", CFG_BOOL, CFG_AT(struct config, tls_tailscale), false},
};

/* "tls: {certs: [{cert, key}], default_cert: NAME, tailscale: BOOL}". The
 * files are read once every key is known (cfg_load_tls), so that check
 * reports broken certificates too. */
int cfg_parse_tls(struct parser *p, const yaml_node_t *n)
{
    struct cfg_seen seen;
    if (cfg_keys_collect(p, n, tls_keys, CFG_NKEYS(tls_keys), "tls", "in tls", &seen) < 0)
        return -1;
    if (cfg_keys_apply(p, &seen, p->c, "tls") < 0)
        return -1;
    if (!cfg_seen_node(&seen, "certs") && !p->c->tls_tailscale)
        return cfg_fail(p, n,
                        "tls: no certs (add certs: [{cert: FILE, key: FILE}], or "
                        "tailscale: true for certificates from tailscaled)");
    const yaml_node_t *ts = cfg_seen_node(&seen, "tailscale");
    if (ts)
        p->tls_tailscale_line = (int)ts->start_mark.line + 1;
    const yaml_node_t *d = cfg_seen_node(&seen, "default_cert");
    if (d)
        p->tls_default_line = (int)d->start_mark.line + 1;
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
    if (!wanted && c->tls_tailscale)
        return cfg_failat(p, (size_t)p->tls_tailscale_line,
                          "tls.tailscale is true, but no listener has tls: true to serve the "
                          "certificates on");
    if (!wanted) {
        for (size_t i = 0; i < c->nservices; i++)
            if (c->services[i].passthrough)
                return cfg_failat(
                    p, (size_t)c->services[i].line,
                    "service \"%s\" passes TLS through, but no listener has tls: true",
                    c->services[i].name);
        return 0;
    }
    if (c->tls_tailscale && cfg_tailscale_defaults(p) < 0)
        return -1;
    if (!c->ntls_certs && c->npassthrough && !c->tls_tailscale)
        return 0; /* passthrough only: unknown names are refused */
    if (!c->ntls_certs && !c->tls_tailscale) {
        size_t i = 0;
        while (!c->listens[i].tls)
            i++; /* the first TLS listener: one exists (wanted) */
        return cfg_failat(
            p, (size_t)c->listens[i].line,
            "listen %s has tls: true but no tls.certs are configured (add tls: {certs: "
            "[{cert: FILE, key: FILE}]}, or a service with passthrough:)",
            c->listens[i].addr.text);
    }
    struct tls_cert_spec *specs = calloc(c->ntls_certs ? c->ntls_certs : 1, sizeof *specs);
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
    if (c->tls && c->tls_tailscale)
        tls_store_use_tailscale(c->tls);
    if (c->tls)
        return 0;
    int line = bad < c->ntls_certs ? c->tls_certs[bad].line
               : c->tls_default    ? p->tls_default_line
                                   : p->tls_line;
    return cfg_failat(p, (size_t)line, "%s", msg);
}
