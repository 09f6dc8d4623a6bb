/* tsimport_read.c - the two structured inputs of `portico import tsnsrv`:
 * the forward-auth fork's multi-service YAML (`tsnsrv -config FILE`,
 * arsfeld/tsnsrv config.go) read with libyaml, and `nix eval --json` of
 * services.tsnsrv.services (the NixOS module's options, boinkor-net/tsnsrv
 * nixos/default.nix, and the fork's additions) read with jansson. Both
 * become the settings the command-line reader makes (tsimport_int.h).
 * The URLs all three carry are read here too (tsi_url_parse). */
#include "tsimport_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Keys of both files whose flag has another name, or which hold a list or
 * a mapping where the flag is repeated. */
static const struct {
    const char *key, *flag;
} renamed[] = {
    {"upstream", "toURL"},                 /* YAML */
    {"prefixes", "prefix"},                /* list */
    {"tags", "tag"},                       /* list */
    {"upstreamHeaders", "upstreamHeader"}, /* mapping Name: value */
    {"authCopyHeaders", "authCopyHeader"}, /* mapping Name: "" */
    {"certificateKey", "keyFile"},         /* NixOS */
    {"authKeyPath", "authkeyPath"},        /* NixOS */
};

static const char *flag_for(const char *key)
{
    for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++)
        if (strcmp(renamed[i].key, key) == 0)
            return renamed[i].flag;
    return key;
}

static bool is_header_map(const char *flag)
{
    return strcmp(flag, "upstreamHeader") == 0 || strcmp(flag, "authCopyHeader") == 0;
}

/* ---- the fork's YAML --------------------------------------------------------------- */

struct yreader {
    struct tsi_input *in;
    yaml_document_t doc;
};

static size_t yline(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 0;
}

static const char *yscalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* YAML 1.1 booleans, as yaml.v3 reads them into a bool field. */
static const char *ybool(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", "y"};
    static const char *const no[] = {"false", "no", "off", "n"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return "true";
        if (strcasecmp(s, no[i]) == 0)
            return "false";
    }
    return s;
}

static int yvalue(struct yreader *r, struct tsi_service *s, const char *key, const yaml_node_t *v)
{
    struct tsi_input *in = r->in;
    const char *flag = flag_for(key);
    const enum tsi_kind *kind = tsi_flag_kind(flag);
    if (v->type == YAML_SEQUENCE_NODE) {
        if (!kind || *kind != TSI_LIST)
            return tsi_fail(in, yline(v), "%s: a list where one value belongs", key);
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            const char *item = yscalar(yaml_document_get_node(&r->doc, *it));
            if (!item)
                return tsi_fail(in, yline(v), "%s: every entry must be a string", key);
            if (tsi_add(in, s, flag, item, yline(yaml_document_get_node(&r->doc, *it)), key) < 0)
                return -1;
        }
        return 0;
    }
    if (v->type == YAML_MAPPING_NODE) {
        if (!is_header_map(flag))
            return tsi_fail(in, yline(v), "%s: a mapping where a value belongs", key);
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            const char *name = yscalar(yaml_document_get_node(&r->doc, p->key));
            const char *val = yscalar(yaml_document_get_node(&r->doc, p->value));
            if (!name || !val)
                return tsi_fail(in, yline(v), "%s: every header needs a name and a string value",
                                key);
            char hdr[2048];
            snprintf(hdr, sizeof hdr, "%s: %s", name, val);
            if (tsi_add(in, s, flag, hdr, yline(yaml_document_get_node(&r->doc, p->key)), key) < 0)
                return -1;
        }
        return 0;
    }
    const char *val = yscalar(v);
    if (kind && *kind == TSI_LIST && strcmp(flag, key) != 0)
        return tsi_fail(in, yline(v), "%s: a list belongs here", key);
    if (kind && *kind == TSI_BOOL)
        val = ybool(val);
    if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(val, "~") == 0 || strcasecmp(val, "null") == 0 || !*val))
        return 0; /* null: as if absent */
    return tsi_add(in, s, flag, val, yline(v), key);
}

static int yservice(struct yreader *r, const yaml_node_t *n)
{
    struct tsi_input *in = r->in;
    if (n->type != YAML_MAPPING_NODE)
        return tsi_fail(in, yline(n),
                        "services: every entry must be a mapping (name: ..., "
                        "upstream: ...)");
    struct tsi_service *s = tsi_service_new(in, yline(n));
    if (!s)
        return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
        const char *key = yscalar(k);
        if (!key)
            return tsi_fail(in, yline(k), "service keys must be strings");
        const enum tsi_kind *kind = tsi_flag_kind(flag_for(key));
        if ((!kind && strcmp(key, "upstream") != 0) || strcmp(key, "service") == 0 ||
            strcmp(key, "config") == 0 || strcmp(key, "prefix") == 0 || strcmp(key, "tag") == 0 ||
            strcmp(key, "upstreamHeader") == 0 || strcmp(key, "authCopyHeader") == 0 ||
            strcmp(key, "prometheusAddr") == 0) {
            /* yaml.v3 ignores a key the struct lacks: keep it for a comment */
            if (tsi_add(in, s, key, "(ignored by tsnsrv)", yline(k), key) < 0)
                return -1;
            continue;
        }
        if (yvalue(r, s, key, yaml_document_get_node(&r->doc, p->value)) < 0)
            return -1;
    }
    return 0;
}

int tsi_read_yaml(struct tsi_input *in, const char *text, size_t len)
{
    struct yreader r = {.in = in};
    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp))
        return tsi_oom(in);
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&yp, &r.doc);
    if (!ok) {
        tsi_fail(in, yp.problem_mark.line + 1, "not YAML: %s",
                 yp.problem ? yp.problem : "unreadable");
        yaml_parser_delete(&yp);
        return -1;
    }
    yaml_parser_delete(&yp);
    int rc = 0;
    const yaml_node_t *root = yaml_document_get_root_node(&r.doc);
    const yaml_node_t *services = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = tsi_fail(in, yline(root), "expected the tsnsrv -config file (services: [...])");
        goto out;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(&r.doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&r.doc, p->value);
        const char *key = yscalar(k);
        if (key && strcmp(key, "services") == 0) {
            services = v;
        } else if (key && strcmp(key, "prometheusAddr") == 0 && yscalar(v)) {
            in->prometheus_addr = arena_strdup(in->arena, yscalar(v));
            in->prometheus_line = yline(v);
            if (!in->prometheus_addr) {
                rc = tsi_oom(in);
                goto out;
            }
        } else {
            rc = tsi_fail(in, yline(k),
                          "\"%.80s\": a tsnsrv -config file has only services and prometheusAddr",
                          key ? key : "?");
            goto out;
        }
    }
    if (!services || services->type != YAML_SEQUENCE_NODE) {
        rc = tsi_fail(in, services ? yline(services) : yline(root),
                      "services: expected a list of services");
        goto out;
    }
    for (yaml_node_item_t *it = services->data.sequence.items.start;
         it < services->data.sequence.items.top && rc == 0; it++)
        rc = yservice(&r, yaml_document_get_node(&r.doc, *it));
out:
    yaml_document_delete(&r.doc);
    return rc;
}

/* ---- nix eval --json ---------------------------------------------------------------- */

static int jscalar(const json_t *v, char *buf, size_t cap, const char **out)
{
    if (json_is_string(v))
        *out = json_string_value(v);
    else if (json_is_true(v))
        *out = "true";
    else if (json_is_false(v))
        *out = "false";
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v)), *out = buf;
    else
        return -1;
    return 0;
}

static int jvalue(struct tsi_input *in, struct tsi_service *s, const char *svc, const char *key,
                  const json_t *v)
{
    const char *flag = flag_for(key);
    const enum tsi_kind *kind = tsi_flag_kind(flag);
    char num[32];
    const char *val;
    if (json_is_null(v))
        return 0; /* the module's null: the flag is not passed */
    if (strcmp(key, "extraArgs") == 0) {
        /* passed to tsnsrv before the URL: read as flags */
        if (!json_is_array(v))
            return tsi_fail(in, 0, "%s.extraArgs: expected a list of strings", svc);
        size_t n = json_array_size(v);
        if (n == 0)
            return 0;
        char **words = arena_calloc(in->arena, n, sizeof *words);
        if (!words)
            return tsi_oom(in);
        for (size_t i = 0; i < n; i++) {
            const json_t *w = json_array_get(v, i);
            if (!json_is_string(w))
                return tsi_fail(in, 0, "%s.extraArgs: expected a list of strings", svc);
            words[i] = (char *)json_string_value(w);
        }
        return tsi_read_flags(in, s, words, n, 0, false);
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (jscalar(json_array_get(v, i), num, sizeof num, &val) < 0)
                return tsi_fail(in, 0, "%s.%s: expected a list of strings", svc, key);
            if (tsi_add(in, s, kind && *kind == TSI_LIST ? flag : key, val, 0, key) < 0)
                return -1;
        }
        return 0;
    }
    if (json_is_object(v)) {
        if (!is_header_map(flag))
            return tsi_add(in, s, key, "(a set of options)", 0, key);
        const char *name;
        const json_t *hv;
        json_object_foreach((json_t *)v, name, hv)
        {
            if (!json_is_string(hv))
                return tsi_fail(in, 0, "%s.%s.%s: expected a string", svc, key, name);
            char hdr[2048];
            snprintf(hdr, sizeof hdr, "%s: %s", name, json_string_value(hv));
            if (tsi_add(in, s, flag, hdr, 0, key) < 0)
                return -1;
        }
        return 0;
    }
    if (jscalar(v, num, sizeof num, &val) < 0)
        return tsi_fail(in, 0, "%s.%s: unexpected value", svc, key);
    if (kind && *kind == TSI_LIST && strcmp(flag, key) != 0)
        return tsi_fail(in, 0, "%s.%s: expected a list", svc, key);
    return tsi_add(in, s, flag, val, 0, key);
}

int tsi_read_nixjson(struct tsi_input *in, const char *text, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return tsi_fail(in, (size_t)(je.line > 0 ? je.line : 0), "not JSON: %s", je.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = tsi_fail(in, 0,
                      "expected an object of services (nix eval --json "
                      "CONFIG.services.tsnsrv.services)");
        goto out;
    }
    const char *name;
    json_t *opts;
    json_object_foreach(root, name, opts)
    {
        if (!json_is_object(opts)) {
            rc = tsi_fail(in, 0, "%.80s: expected the service's options as an object", name);
            goto out;
        }
        if (json_object_get(opts, "enable") && !json_object_get(opts, "toURL")) {
            rc = tsi_fail(in, 0,
                          "this looks like services.tsnsrv itself; give nix eval "
                          "services.tsnsrv.services");
            goto out;
        }
        struct tsi_service *s = tsi_service_new(in, 0);
        if (!s || tsi_add(in, s, "name", name, 0, "name") < 0) {
            rc = -1;
            goto out;
        }
        const char *key;
        json_t *v;
        json_object_foreach(opts, key, v)
        {
            if (strcmp(key, "name") == 0)
                continue; /* the attribute name is the -name */
            if (jvalue(in, s, name, key, v) < 0) {
                /* JSON has no lines to point at: name the service instead */
                char msg[512];
                size_t skip = strlen(in->name) + 2;
                snprintf(msg, sizeof msg, "%s", strlen(in->err) > skip ? in->err + skip : "");
                if (strncmp(msg, name, strlen(name)) != 0)
                    tsi_fail(in, 0, "service %.80s: %s", name, msg);
                rc = -1;
                goto out;
            }
        }
    }
out:
    json_decref(root);
    return rc;
}

/* ---- URLs ------------------------------------------------------------------------ */

int tsi_url_parse(const char *s, struct tsi_url *u)
{
    memset(u, 0, sizeof *u);
    const char *rest;
    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8, u->https = true;
    else
        return -1;
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0 || alen >= sizeof u->authority)
        return -1;
    memcpy(u->authority, rest, alen);
    const char *at = memchr(u->authority, '@', alen);
    if (at) {
        u->userinfo = true;
        memmove(u->authority, at + 1, strlen(at + 1) + 1);
    }
    char *h = u->authority, *colon;
    if (h[0] == '[') {
        char *rb = strchr(h, ']');
        if (!rb)
            return -1;
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (rb[1] && !colon)
            return -1;
    } else {
        colon = strrchr(h, ':');
    }
    size_t hlen = colon ? (size_t)(colon - h) : strlen(h);
    if (hlen == 0 || hlen >= sizeof u->host)
        return -1;
    memcpy(u->host, h, hlen);
    u->host[hlen] = '\0';
    const char *port = colon ? colon + 1 : (u->https ? "443" : "80");
    if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
        atoi(port) < 1 || atoi(port) > 65535)
        return -1;
    snprintf(u->port, sizeof u->port, "%d", atoi(port));
    for (const char *q = u->host; *q; q++)
        if ((unsigned char)*q <= 0x20 || strchr("\"\\<>{}|^`", *q))
            return -1;
    const char *p = rest + alen;
    size_t plen = p[0] == '/' ? strcspn(p, "?#") : 0;
    if (plen >= sizeof u->pathbuf)
        return -1;
    memcpy(u->pathbuf, p, plen);
    u->path = u->pathbuf;
    u->query = p[plen] == '?' && p[plen + 1];
    return 0;
}
