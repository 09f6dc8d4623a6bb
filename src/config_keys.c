/* config_keys.c - messages, YAML nodes and the typed value readers shared by every
 * section of the configuration. */
#include "config_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- messages --------------------------------------------------------------- */

/* Copy user text for a message: printable, bounded, one line, no quotes. */
const char *cfg_show_into(char *buf, size_t cap, const char *s)
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

const char *cfg_show(struct parser *p, const char *s)
{
    char *buf = p->shown[p->nshown++ % 4];
    return cfg_show_into(buf, sizeof p->shown[0], s);
}

int cfg_vfailat(struct parser *p, size_t line, const char *fmt, va_list ap)
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

__attribute__((format(printf, 3, 4))) int cfg_failat(struct parser *p, size_t line, const char *fmt,
                                                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vfailat(p, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* A setting that loads but is likely a mistake: noted for `check` and the
 * log, as "FILE:LINE: warning: message". */
__attribute__((format(printf, 3, 0))) static void warn_v(struct parser *p, size_t lineno,
                                                         const char *fmt, va_list ap)
{
    char msg[768], line[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    int len = snprintf(line, sizeof line, "%s:%zu: warning: %s\n", p->name, lineno, msg);
    if (len < 0)
        return;
    /* A new copy per warning: they are few, and the old copies stay in the arena. */
    size_t have = p->c->warnings ? strlen(p->c->warnings) : 0;
    char *w = arena_alloc(p->c->arena, have + (size_t)len + 1);
    if (!w)
        return; /* a warning lost to a failed allocation leaves the config valid */
    if (have)
        memcpy(w, p->c->warnings, have);
    memcpy(w + have, line, (size_t)len + 1);
    p->c->warnings = w;
}

__attribute__((format(printf, 3, 4))) void cfg_warn(struct parser *p, const yaml_node_t *n,
                                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    warn_v(p, n ? n->start_mark.line + 1 : 0, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) void cfg_warn_at(struct parser *p, size_t line,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    warn_v(p, line, fmt, ap);
    va_end(ap);
}

/* Fail at the line of node n (or with no line when n is NULL). */
__attribute__((format(printf, 3, 4))) int cfg_fail(struct parser *p, const yaml_node_t *n,
                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vfailat(p, n ? n->start_mark.line + 1 : 0, fmt, ap);
    va_end(ap);
    return -1;
}

int cfg_fail_oom(struct parser *p)
{
    return cfg_failat(p, 0, "out of memory");
}

int cfg_fail_yaml(struct parser *p, const yaml_parser_t *yp)
{
    if (yp->error == YAML_MEMORY_ERROR)
        return cfg_fail_oom(p);
    const char *problem = yp->problem ? yp->problem : "cannot parse the file";
    if (yp->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        size_t line = 1;
        for (size_t i = 0; i < yp->problem_offset && i < p->len; i++)
            line += p->text[i] == '\n';
        return cfg_failat(p, line, "%s (the file must be UTF-8 text)", problem);
    }
    if (yp->context)
        return cfg_failat(p, yp->problem_mark.line + 1, "%s (%s on line %zu)", problem, yp->context,
                          yp->context_mark.line + 1);
    return cfg_failat(p, yp->problem_mark.line + 1, "%s", problem);
}
/* ---- nodes and scalars -------------------------------------------------------- */

yaml_node_t *cfg_node(struct parser *p, int i)
{
    return yaml_document_get_node(&p->doc, i);
}

const char *cfg_scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

bool cfg_is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

bool cfg_is_null(const yaml_node_t *n)
{
    if (!cfg_is_plain(n))
        return false;
    const char *v = cfg_scalar(n);
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

int cfg_want_string(struct parser *p, const yaml_node_t *n, const char *what, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || cfg_is_null(n))
        return cfg_fail(p, n, "%s: expected a string", what);
    if (strlen(cfg_scalar(n)) != n->data.scalar.length)
        return cfg_fail(p, n, "%s: contains a NUL byte", what);
    *out = cfg_scalar(n);
    return 0;
}

int cfg_want_bool(struct parser *p, const yaml_node_t *n, const char *what, bool *out)
{
    if (cfg_is_plain(n) && strcmp(cfg_scalar(n), "true") == 0)
        *out = true;
    else if (cfg_is_plain(n) && strcmp(cfg_scalar(n), "false") == 0)
        *out = false;
    else
        return cfg_fail(p, n, "%s: expected a boolean (true or false)", what);
    return 0;
}

int cfg_want_uint(struct parser *p, const yaml_node_t *n, const char *what, uint32_t min,
                  uint32_t max, uint32_t *out)
{
    if (!cfg_is_plain(n))
        return cfg_fail(p, n, "%s: expected a number", what);
    const char *v = cfg_scalar(n);
    bool neg = v[0] == '-';
    size_t i = neg;
    uint64_t x = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++)
        if (x <= UINT32_MAX)
            x = x * 10 + (uint64_t)(v[i] - '0');
    if (i == (size_t)neg || v[i] != '\0')
        return cfg_fail(p, n, "%s: expected a whole number, not \"%s\"", what, cfg_show(p, v));
    if (neg && x != 0)
        x = UINT64_MAX;
    if (x < min || x > max) {
        if (max == UINT32_MAX)
            return cfg_fail(p, n, "%s: must be at least %u", what, min);
        return cfg_fail(p, n, "%s: must be between %u and %u", what, min, max);
    }
    *out = (uint32_t)x;
    return 0;
}

int cfg_want_duration(struct parser *p, const yaml_node_t *n, const char *what, uint32_t *out)
{
    const char *v;
    uint64_t ms;
    if (n->type != YAML_SCALAR_NODE || cfg_is_null(n))
        return cfg_fail(p, n, "%s: expected a duration " DURATION_HELP, what);
    if (cfg_want_string(p, n, what, &v) < 0)
        return -1;
    size_t digits = strspn(v, "0123456789");
    if (digits > 0 && v[digits] == '\0')
        return cfg_fail(p, n,
                        "%s: duration \"%s\" has no unit (write %ss, or %sms for milliseconds)",
                        what, cfg_show(p, v), cfg_show(p, v), cfg_show(p, v));
    int rc = config_parse_duration(v, &ms);
    if (rc == -EINVAL)
        return cfg_fail(p, n, "%s: invalid duration \"%s\" " DURATION_HELP, what, cfg_show(p, v));
    if (rc < 0 || ms > UINT32_MAX)
        return cfg_fail(p, n, "%s: duration \"%s\" is too long (at most %uh)", what, cfg_show(p, v),
                        UINT32_MAX / 3600000u);
    if (ms == 0)
        return cfg_fail(p, n, "%s: duration must be greater than 0", what);
    *out = (uint32_t)ms;
    return 0;
}

/* A duration, or "off" for none (0). */
int cfg_want_duration_or_off(struct parser *p, const yaml_node_t *n, const char *what,
                             uint32_t *out)
{
    uint64_t ms;
    if (n->type == YAML_SCALAR_NODE && strcmp(cfg_scalar(n), "off") == 0) {
        *out = 0;
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE && config_parse_duration(cfg_scalar(n), &ms) == -EINVAL &&
        strspn(cfg_scalar(n), "0123456789") != strlen(cfg_scalar(n)))
        return cfg_fail(p, n,
                        "%s: invalid duration \"%s\" (use 250ms, 5s, 2m or 1h, or off for no "
                        "limit)",
                        what, cfg_show(p, cfg_scalar(n)));
    return cfg_want_duration(p, n, what, out);
}

int cfg_want_sequence(struct parser *p, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_fail(p, n, "%s: expected a sequence", what);
    return 0;
}

size_t cfg_seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

size_t cfg_map_len(const yaml_node_t *n)
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
        return strcasecmp(cfg_scalar(x->node), cfg_scalar(y->node));
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
int cfg_want_mapping(struct parser *p, const yaml_node_t *n, const char *what, bool nocase)
{
    if (n->type != YAML_MAPPING_NODE)
        return cfg_fail(p, n, "%s: expected a mapping", what);
    size_t len = cfg_map_len(n);
    if (len < 2) {
        if (len == 1 && cfg_node(p, n->data.mapping.pairs.start->key)->type != YAML_SCALAR_NODE)
            return cfg_fail(p, cfg_node(p, n->data.mapping.pairs.start->key),
                            "%s: expected a string as key", what);
        return 0;
    }
    struct key_ref *keys = calloc(len, sizeof *keys);
    if (!keys)
        return cfg_fail_oom(p);
    for (size_t i = 0; i < len; i++) {
        keys[i].node = cfg_node(p, n->data.mapping.pairs.start[i].key);
        keys[i].idx = i;
        if (keys[i].node->type != YAML_SCALAR_NODE) {
            int rc = cfg_fail(p, keys[i].node, "%s: expected a string as key", what);
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
        rc = cfg_fail(p, dup->node, "duplicate key \"%s\" in %s",
                      cfg_show(p, cfg_scalar(dup->node)), what);
    free(keys);
    return rc;
}

/* ---- key tables ------------------------------------------------------------------ */

bool cfg_key_is(const yaml_node_t *k, const char *name)
{
    return strlen(name) == k->data.scalar.length && strcmp(cfg_scalar(k), name) == 0;
}

int cfg_keys_collect(struct parser *p, const yaml_node_t *n, const struct cfg_key *keys,
                     size_t nkeys, const char *what, const char *where, struct cfg_seen *seen)
{
    memset(seen, 0, sizeof *seen);
    seen->keys = keys;
    seen->nkeys = nkeys;
    seen->map = n;
    if (nkeys > CFG_KEYS_MAX) /* a table grew past the bound: caught by any test loading it */
        return cfg_fail(p, n, "%s: more than %d keys in the schema", what, CFG_KEYS_MAX);
    if (cfg_want_mapping(p, n, what, false) < 0)
        return -1;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *k = cfg_node(p, pair->key);
        size_t i = 0;
        while (i < nkeys && !cfg_key_is(k, keys[i].name))
            i++;
        if (i == nkeys)
            return cfg_fail(p, k, "unknown key \"%s\" %s", cfg_show(p, cfg_scalar(k)), where);
        seen->vals[i] = cfg_node(p, pair->value);
    }
    return 0;
}

const yaml_node_t *cfg_seen_node(const struct cfg_seen *seen, const char *name)
{
    for (size_t i = 0; i < seen->nkeys; i++)
        if (strcmp(seen->keys[i].name, name) == 0)
            return seen->vals[i];
    return NULL;
}

/* An unsigned value into a field of the width the table gives. */
static void store_uint(void *field, size_t size, uint64_t v)
{
    if (size == sizeof(uint8_t))
        *(uint8_t *)field = (uint8_t)v;
    else if (size == sizeof(uint16_t))
        *(uint16_t *)field = (uint16_t)v;
    else if (size == sizeof(uint32_t))
        *(uint32_t *)field = (uint32_t)v;
    else
        *(uint64_t *)field = v;
}

static int read_strings(struct parser *p, const struct cfg_key *k, const yaml_node_t *n,
                        const char *what, char ***list, size_t *count)
{
    size_t cap = 0;
    if (n) {
        if (cfg_want_sequence(p, n, what) < 0)
            return -1;
        cap = cfg_seq_len(n);
        if (k->max && cap > k->max)
            return cfg_fail(p, n, "%s: at most %u names", what, k->max);
    } else {
        while (k->def_list && k->def_list[cap])
            cap++;
    }
    char **items = cfg_calloc(p, cap, sizeof *items);
    if (!items)
        return cfg_fail_oom(p);
    *list = items;
    *count = 0;
    for (size_t i = 0; i < cap; i++) {
        const yaml_node_t *item = n ? cfg_node(p, n->data.sequence.items.start[i]) : NULL;
        const char *v = n ? NULL : k->def_list[i];
        if (item && cfg_want_string(p, item, what, &v) < 0)
            return -1;
        char *copy = cfg_strdup(p, v);
        if (!copy)
            return cfg_fail_oom(p);
        if (item && k->item && k->item(p, item, what, copy, items, *count) < 0)
            return -1;
        items[(*count)++] = copy;
    }
    return 0;
}

int cfg_keys_defaults(struct parser *p, const struct cfg_key *keys, size_t nkeys, void *target)
{
    for (size_t i = 0; i < nkeys; i++) {
        const struct cfg_key *k = &keys[i];
        void *field = (char *)target + k->off;
        switch (k->type) {
        case CFG_BOOL:
            *(bool *)field = k->def != 0;
            break;
        case CFG_UINT:
        case CFG_DURATION:
        case CFG_DURATION_OFF:
        case CFG_ENUM:
            store_uint(field, k->size, k->def);
            break;
        case CFG_STRINGS:
            if (read_strings(p, k, NULL, k->name, (char ***)field,
                             (size_t *)((char *)target + k->off_n)) < 0)
                return -1;
            break;
        case CFG_STRING:
        case CFG_FUNC:
        case CFG_LATER:
            break;
        }
    }
    return 0;
}

/* "WHAT: expected A, B or C, not \"V\"" */
static int read_enum(struct parser *p, const struct cfg_key *k, const yaml_node_t *n,
                     const char *what, void *field)
{
    const char *v;
    char names[256];
    size_t o = 0, count = 0;
    if (cfg_want_string(p, n, what, &v) < 0)
        return -1;
    for (const struct cfg_choice *c = k->choices; c->name; c++, count++)
        if (strcmp(v, c->name) == 0) {
            store_uint(field, k->size, (uint64_t)c->value);
            return 0;
        }
    for (size_t i = 0; i < count && o < sizeof names; i++)
        o += (size_t)snprintf(names + o, sizeof names - o, "%s%s",
                              i == 0           ? ""
                              : i + 1 == count ? " or "
                                               : ", ",
                              k->choices[i].name);
    return cfg_fail(p, n, "%s: expected %s, not \"%s\"", what, names, cfg_show(p, v));
}

static int read_key(struct parser *p, const struct cfg_key *k, const yaml_node_t *n,
                    const char *what, void *target)
{
    void *field = (char *)target + k->off;
    uint32_t u;
    const char *s;
    int rc = 0;
    switch (k->type) {
    case CFG_BOOL:
        return cfg_want_bool(p, n, what, (bool *)field);
    case CFG_UINT:
        if ((rc = cfg_want_uint(p, n, what, k->min, k->max, &u)) == 0)
            store_uint(field, k->size, u);
        return rc;
    case CFG_DURATION:
        return cfg_want_duration(p, n, what, (uint32_t *)field);
    case CFG_DURATION_OFF:
        return cfg_want_duration_or_off(p, n, what, (uint32_t *)field);
    case CFG_STRING:
        if (cfg_want_string(p, n, what, &s) < 0)
            return -1;
        if (!(*(char **)field = cfg_strdup(p, s)))
            return cfg_fail_oom(p);
        return 0;
    case CFG_ENUM:
        return read_enum(p, k, n, what, field);
    case CFG_STRINGS:
        return read_strings(p, k, n, what, (char ***)field, (size_t *)((char *)target + k->off_n));
    case CFG_FUNC:
        return k->fn(p, n, what, field, target);
    case CFG_LATER:
        return 0;
    }
    return 0;
}

int cfg_keys_apply(struct parser *p, const struct cfg_seen *seen, void *target, const char *prefix)
{
    if (cfg_keys_defaults(p, seen->keys, seen->nkeys, target) < 0)
        return -1;
    const yaml_node_t *n = seen->map;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *key = cfg_node(p, pair->key);
        const struct cfg_key *k = seen->keys;
        while (strcmp(k->name, cfg_scalar(key)) != 0)
            k++; /* present: cfg_keys_collect found it */
        char what[256];
        if (k->bare || !prefix[0])
            snprintf(what, sizeof what, "%s", prefix[0] ? prefix : k->name);
        else
            snprintf(what, sizeof what, "%s.%s", prefix, k->name);
        if (read_key(p, k, cfg_node(p, pair->value), what, target) < 0)
            return -1;
    }
    return 0;
}

int cfg_keys_read(struct parser *p, const yaml_node_t *n, const struct cfg_key *keys, size_t nkeys,
                  void *target, const char *prefix, const char *where, struct cfg_seen *seen)
{
    if (cfg_keys_collect(p, n, keys, nkeys, prefix, where, seen) < 0)
        return -1;
    return cfg_keys_apply(p, seen, target, prefix);
}
