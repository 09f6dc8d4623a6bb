/* tsimport.c - `portico import tsnsrv`: the entry point, the model every
 * reader fills, and the command-line reader (a shell line split into
 * words, then tsnsrv's flags read as Go's flag package reads them).
 *
 * The flag set is tsnsrv's (boinkor-net/tsnsrv cli.go,
 * TailnetSrvFromArgs) plus the forward-auth fork's (arsfeld/tsnsrv cli.go:
 * -authURL and friends, -service, -config). A flag tsnsrv does not have is
 * an error, as it is for tsnsrv: a typo must not vanish in the output. */
#include "tsimport_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "limits.h"

int tsi_fail(struct tsi_input *in, size_t line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *q = msg; *q; q++) /* user text quoted in it: one line, printable */
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = '?';
    if (line)
        snprintf(in->err, in->errlen, "%s:%zu: %s", in->name, line, msg);
    else
        snprintf(in->err, in->errlen, "%s: %s", in->name, msg);
    return -1;
}

int tsi_oom(struct tsi_input *in)
{
    return tsi_fail(in, 0, "out of memory");
}

struct tsi_service *tsi_service_new(struct tsi_input *in, size_t line)
{
    if (in->n == LIMIT_IMPORT_SERVICES) {
        tsi_fail(in, line, "more than %d services", LIMIT_IMPORT_SERVICES);
        return NULL;
    }
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        struct tsi_service *s = arena_calloc(in->arena, cap, sizeof *s);
        if (!s) {
            tsi_oom(in);
            return NULL;
        }
        if (in->n)
            memcpy(s, in->svc, in->n * sizeof *s);
        in->svc = s;
        in->cap = cap;
    }
    struct tsi_service *s = &in->svc[in->n++];
    s->line = line;
    return s;
}

/* ---- tsnsrv's flags ------------------------------------------------------------ */

static const struct {
    const char *name;
    enum tsi_kind kind;
} flags[] = {
    /* boinkor-net/tsnsrv cli.go */
    {"upstreamTCPAddr", TSI_STRING},
    {"upstreamUnixAddr", TSI_STRING},
    {"ephemeral", TSI_BOOL},
    {"funnel", TSI_BOOL},
    {"funnelOnly", TSI_BOOL},
    {"listenAddr", TSI_STRING},
    {"certificateFile", TSI_STRING},
    {"keyFile", TSI_STRING},
    {"name", TSI_STRING},
    {"recommendedProxyHeaders", TSI_BOOL},
    {"plaintext", TSI_BOOL},
    {"timeout", TSI_DURATION},
    {"prefix", TSI_LIST},
    {"stripPrefix", TSI_BOOL},
    {"stateDir", TSI_STRING},
    {"authkeyPath", TSI_STRING},
    {"tag", TSI_LIST},
    {"insecureHTTPS", TSI_BOOL},
    {"whoisTimeout", TSI_DURATION},
    {"suppressWhois", TSI_BOOL},
    {"prometheusAddr", TSI_STRING},
    {"enableBugReports", TSI_BOOL},
    {"upstreamHeader", TSI_LIST},
    {"suppressTailnetDialer", TSI_BOOL},
    {"readHeaderTimeout", TSI_DURATION},
    {"tsnetVerbose", TSI_BOOL},
    {"upstreamAllowInsecureCiphers", TSI_BOOL},
    /* the forward-auth fork, arsfeld/tsnsrv cli.go */
    {"authURL", TSI_STRING},
    {"authPath", TSI_STRING},
    {"authTimeout", TSI_DURATION},
    {"authCopyHeader", TSI_LIST},
    {"authInsecureHTTPS", TSI_BOOL},
    {"authBypassForTailnet", TSI_BOOL},
    {"config", TSI_STRING},
    {"service", TSI_LIST},
};

const enum tsi_kind *tsi_flag_kind(const char *name)
{
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i].kind;
    return NULL;
}

int tsi_parse_bool(const char *s)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0)
            return 1;
        if (strcmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

long tsi_parse_duration(const char *s)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"\xce\xbcs", 1e-3},
                 {"ms", 1.0},  {"s", 1e3},   {"m", 60e3},         {"h", 3600e3}};
    const char *p = s;
    if (*p == '+')
        p++;
    if (strcmp(p, "0") == 0)
        return 0;
    if (!*p)
        return -1;
    double total = 0;
    while (*p) {
        double v = 0, scale = 1;
        bool digits = false;
        for (; *p >= '0' && *p <= '9'; p++, digits = true)
            v = v * 10 + (*p - '0');
        if (*p == '.')
            for (p++; *p >= '0' && *p <= '9'; p++, digits = true)
                v += (*p - '0') * (scale /= 10);
        if (!digits || v > 1e12)
            return -1;
        size_t best = 0, which = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i].unit);
            if (n > best && strncmp(p, units[i].unit, n) == 0) {
                best = n;
                which = i;
            }
        }
        if (!best)
            return -1;
        total += v * units[which].ms;
        p += best;
        if (total > 86400e3)
            return -1;
    }
    long ms = (long)total;
    return (double)ms < total ? ms + 1 : ms;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80             ? 0
                   : (*p & 0xe0) == 0xc0 ? 1
                   : (*p & 0xf0) == 0xe0 ? 2
                   : (*p & 0xf8) == 0xf0 ? 3
                                         : 4;
        if (n == 4 || (n == 1 && *p < 0xc2) || (n == 3 && *p > 0xf4))
            return false;
        unsigned cp = n ? (unsigned)(*p & (0x3f >> n)) : *p;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

/* A value as tsnsrv would accept it for the flag: booleans written
 * "true"/"false" from here on, durations and the checked lists as tsnsrv
 * checks them. Keys that are no flag (YAML and NixOS spellings, kept for
 * the comments) pass as they are. */
int tsi_add(struct tsi_input *in, struct tsi_service *s, const char *key, const char *value,
            size_t line, const char *written)
{
    const enum tsi_kind *kind = tsi_flag_kind(key);
    char disp[96];
    snprintf(disp, sizeof disp, "%s%s", written ? "" : "-", written ? written : key);
    if (kind && *kind == TSI_BOOL) {
        int b = tsi_parse_bool(value);
        if (b < 0)
            return tsi_fail(in, line, "%s: \"%.80s\" is not a boolean (use true or false)", disp,
                            value);
        value = b ? "true" : "false";
    }
    if (kind && *kind == TSI_DURATION && tsi_parse_duration(value) < 0)
        return tsi_fail(in, line, "%s: \"%.80s\" is not a duration (use 500ms, 5s, 1m30s)", disp,
                        value);
    if (strcmp(key, "tag") == 0 && strncmp(value, "tag:", 4) != 0)
        return tsi_fail(in, line, "%s: \"%.80s\": tags must start with 'tag:'", disp, value);
    if ((strcmp(key, "upstreamHeader") == 0 || strcmp(key, "authCopyHeader") == 0) &&
        !strstr(value, ": ") && !(value[0] && value[strlen(value) - 1] == ':'))
        return tsi_fail(in, line, "%s: \"%.80s\": header format must be 'Header-Name: value'", disp,
                        value);
    if (!utf8_valid(value))
        return tsi_fail(in, line, "%s: the value is not UTF-8 text", disp);
    if (s->n == LIMIT_IMPORT_SETTINGS)
        return tsi_fail(in, line, "more than %d settings in one service", LIMIT_IMPORT_SETTINGS);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct tsi_setting *n = arena_calloc(in->arena, cap, sizeof *n);
        if (!n)
            return tsi_oom(in);
        if (s->n)
            memcpy(n, s->set, s->n * sizeof *n);
        s->set = n;
        s->cap = cap;
    }
    char *k = arena_strdup(in->arena, key), *v = arena_strdup(in->arena, value);
    char *w = written ? arena_strdup(in->arena, written) : NULL;
    if (!k || !v || (written && !w))
        return tsi_oom(in);
    s->set[s->n++] = (struct tsi_setting){k, v, line, w};
    return 0;
}

/* ---- the fork's -service "k=v,k=v" --------------------------------------------- */

/* Keys of a -service value (arsfeld/tsnsrv cli.go parseServiceFlag) that
 * are spelled differently from the flags. */
static const char *service_key(const char *k)
{
    return strcmp(k, "upstream") == 0 ? "toURL" : k;
}

static int read_service_flag(struct tsi_input *in, const char *value, size_t line)
{
    struct tsi_service *s = tsi_service_new(in, line);
    if (!s)
        return -1;
    char *copy = arena_strdup(in->arena, value);
    if (!copy)
        return tsi_oom(in);
    for (char *save = NULL, *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return tsi_fail(in, line, "-service: \"%.80s\" is not key=value", kv);
        *eq = '\0';
        const char *key = service_key(kv), *v = eq + 1;
        const enum tsi_kind *kind = tsi_flag_kind(key);
        if ((!kind && strcmp(key, "toURL") != 0) || strcmp(key, "service") == 0 ||
            strcmp(key, "config") == 0 || strcmp(key, "prometheusAddr") == 0)
            return tsi_fail(in, line, "-service: unknown key \"%.80s\"", kv);
        if (kind && *kind == TSI_BOOL) {
            /* the fork's parseBool: true/yes/1/y and false/no/0/n */
            if (!strcasecmp(v, "yes") || !strcasecmp(v, "y") || !strcasecmp(v, "true") ||
                !strcmp(v, "1"))
                v = "true";
            else if (!strcasecmp(v, "no") || !strcasecmp(v, "n") || !strcasecmp(v, "false") ||
                     !strcmp(v, "0"))
                v = "false";
        }
        char hdr[1024];
        if ((strcmp(key, "upstreamHeader") == 0 || strcmp(key, "authCopyHeader") == 0) &&
            !strstr(v, ": ")) {
            /* -service writes headers Name:Value */
            const char *colon = strchr(v, ':');
            if (!colon)
                return tsi_fail(in, line, "-service: %s \"%.80s\" is not Name:Value", key, v);
            snprintf(hdr, sizeof hdr, "%.*s: %s", (int)(colon - v), v, colon + 1);
            v = hdr;
        }
        if (tsi_add(in, s, key, v, line, NULL) < 0)
            return -1;
    }
    return 0;
}

/* ---- one tsnsrv invocation ------------------------------------------------------ */

int tsi_read_flags(struct tsi_input *in, struct tsi_service *s, char **words, size_t nwords,
                   size_t line, bool want_url)
{
    size_t i = 0;
    for (; i < nwords; i++) {
        const char *w = words[i];
        if (w[0] != '-' || w[1] == '\0')
            break;
        if (strcmp(w, "--") == 0) {
            i++;
            break;
        }
        const char *name = w + (w[1] == '-' ? 2 : 1);
        if (!*name || *name == '-' || *name == '=')
            return tsi_fail(in, line, "bad flag syntax: %.80s", w);
        const char *eq = strchr(name, '=');
        char fname[64];
        size_t flen = eq ? (size_t)(eq - name) : strlen(name);
        if (flen >= sizeof fname)
            return tsi_fail(in, line, "flag provided but not defined: -%.80s", name);
        memcpy(fname, name, flen);
        fname[flen] = '\0';
        const enum tsi_kind *kind = tsi_flag_kind(fname);
        if (!kind)
            return tsi_fail(in, line, "flag provided but not defined: -%s (not a tsnsrv flag)",
                            fname);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (*kind == TSI_BOOL)
            value = "true";
        else if (i + 1 < nwords)
            value = words[++i];
        else
            return tsi_fail(in, line, "flag needs an argument: -%s", fname);
        if (strcmp(fname, "config") == 0)
            return tsi_fail(in, line,
                            "-config %.80s: convert that file instead: portico import tsnsrv %.80s",
                            value, value);
        if (strcmp(fname, "service") == 0) {
            if (read_service_flag(in, value, line) < 0)
                return -1;
            continue;
        }
        if (strcmp(fname, "prometheusAddr") == 0 && !s) {
            in->prometheus_addr = arena_strdup(in->arena, value);
            in->prometheus_line = line;
            if (!in->prometheus_addr)
                return tsi_oom(in);
            continue;
        }
        if (!s)
            return tsi_fail(in, line, "-%s: put it inside -service \"...\" in multi-service mode",
                            fname);
        if (tsi_add(in, s, fname, value, line, NULL) < 0)
            return -1;
    }
    if (!s || !want_url) {
        if (i < nwords)
            return tsi_fail(in, line, "\"%.80s\": %s", words[i],
                            s ? "not a flag (only flags here)"
                              : "no destination URL with -service");
        return 0;
    }
    if (i == nwords)
        return tsi_fail(in, line, "no destination URL: tsnsrv -name NAME [flags] URL");
    if (i + 1 < nwords)
        return tsi_fail(in, line, "\"%.80s\" after the destination URL: flags come before it",
                        words[i + 1]);
    return tsi_add(in, s, "toURL", words[i], line, NULL);
}

/* ---- command lines ------------------------------------------------------------- */

int tsimport_split_words(const char *line, size_t len, char *buf, size_t bufcap, char **words,
                         size_t max, char *err, size_t errlen)
{
    size_t n = 0, o = 0, i = 0;
    while (i < len) {
        while (i < len &&
               (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r' ||
                (line[i] == '\\' && i + 1 < len && line[i + 1] == '\n')))
            i += line[i] == '\\' ? 2 : 1;
        if (i == len || line[i] == '#')
            break;
        if (n == max) {
            snprintf(err, errlen, "more than %zu words", max);
            return -1;
        }
        words[n] = buf + o;
        bool quoted = false;
        while (i < len && !strchr(" \t\r\n", line[i])) {
            char c = line[i];
            if (!quoted && strchr(";&|<>()`", c)) {
                snprintf(err, errlen, "'%c': one tsnsrv command per line, without shell operators",
                         c);
                return -1;
            }
            if (o + 2 > bufcap) {
                snprintf(err, errlen, "line too long");
                return -1;
            }
            if (c == '\'') {
                size_t end = i + 1;
                while (end < len && line[end] != '\'')
                    end++;
                if (end == len) {
                    snprintf(err, errlen, "unterminated ' quote");
                    return -1;
                }
                if (o + (end - i) + 1 > bufcap) {
                    snprintf(err, errlen, "line too long");
                    return -1;
                }
                memcpy(buf + o, line + i + 1, end - i - 1);
                o += end - i - 1;
                i = end + 1;
            } else if (c == '"') {
                for (i++;; i++) {
                    if (i == len) {
                        snprintf(err, errlen, "unterminated \" quote");
                        return -1;
                    }
                    if (line[i] == '"')
                        break;
                    if (o + 2 > bufcap) {
                        snprintf(err, errlen, "line too long");
                        return -1;
                    }
                    if (line[i] == '\\' && i + 1 < len && strchr("$`\"\\\n", line[i + 1])) {
                        i++;
                        if (line[i] == '\n')
                            continue;
                    }
                    buf[o++] = line[i];
                }
                i++;
            } else if (c == '\\') {
                if (i + 1 == len) {
                    i++;
                    continue;
                }
                if (line[i + 1] != '\n')
                    buf[o++] = line[i + 1];
                i += 2;
            } else {
                buf[o++] = c;
                i++;
            }
            quoted = true; /* '#' inside a word is no comment */
        }
        buf[o++] = '\0';
        n++;
    }
    return (int)n;
}

/* The program's own words before the flags: "exec", "env", VAR=value, a
 * "$ " prompt, then tsnsrv by any path. A line that starts with a flag
 * has no program name. */
static size_t skip_program(char **w, size_t n, bool *ok)
{
    size_t i = 0;
    while (
        i < n &&
        (strcmp(w[i], "$") == 0 || strcmp(w[i], "exec") == 0 || strcmp(w[i], "env") == 0 ||
         (w[i][0] != '-' && strchr(w[i], '=') && strchr(w[i], '=') > w[i] && !strchr(w[i], '/'))))
        i++;
    *ok = true;
    if (i == n || w[i][0] == '-')
        return i;
    const char *base = strrchr(w[i], '/');
    base = base ? base + 1 : w[i];
    *ok = strcmp(base, "tsnsrv") == 0;
    return i + 1;
}

static int read_cmdlines(struct tsi_input *in, const char *text, size_t len)
{
    char *buf = arena_alloc(in->arena, len + 1);
    char **words = arena_calloc(in->arena, LIMIT_IMPORT_WORDS, sizeof *words);
    if (!buf || !words)
        return tsi_oom(in);
    size_t lineno = 1;
    for (size_t i = 0; i < len;) {
        /* a logical line: physical lines joined by a backslash at their end */
        size_t start = i, first = lineno, end = i;
        for (;;) {
            while (end < len && text[end] != '\n')
                end++;
            size_t bs = 0;
            for (size_t k = end; k > start && text[k - 1] == '\\'; k--)
                bs++;
            if (end < len && bs % 2 == 1) {
                end++;
                lineno++;
                continue;
            }
            break;
        }
        i = end < len ? end + 1 : end;
        lineno++;
        if (memchr(text + start, '\0', end - start))
            return tsi_fail(in, first, "a NUL byte: this is not a text file");
        char err[160];
        int nw = tsimport_split_words(text + start, end - start, buf, len + 1, words,
                                      LIMIT_IMPORT_WORDS, err, sizeof err);
        if (nw < 0)
            return tsi_fail(in, first, "%s", err);
        if (nw == 0)
            continue;
        bool ok;
        size_t skip = skip_program(words, (size_t)nw, &ok);
        if (!ok)
            return tsi_fail(in, first,
                            "\"%.80s\" is not tsnsrv: expected one tsnsrv command line per "
                            "service (tsnsrv -name NAME [flags] URL)",
                            words[skip - 1]);
        bool multi = false;
        for (size_t k = skip; k < (size_t)nw; k++) {
            const char *f = words[k] + (strncmp(words[k], "--", 2) == 0 ? 2 : 1);
            if (words[k][0] == '-' && strncmp(f, "service", 7) == 0 && (!f[7] || f[7] == '='))
                multi = true;
        }
        struct tsi_service *s = multi ? NULL : tsi_service_new(in, first);
        if (!multi && !s)
            return -1;
        if (tsi_read_flags(in, s, words + skip, (size_t)nw - skip, first, true) < 0)
            return -1;
    }
    return 0;
}

/* ---- detection and the entry point ------------------------------------------------ */

enum tsimport_from tsimport_detect(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        i = 3;
    while (i < len) {
        while (i < len && isspace((unsigned char)text[i]))
            i++;
        if (i < len && text[i] == '#') {
            while (i < len && text[i] != '\n')
                i++;
            continue;
        }
        break;
    }
    if (i == len)
        return TSIMPORT_CMDLINE;
    if (text[i] == '{' || text[i] == '[')
        return TSIMPORT_NIXJSON;
    if (len - i >= 3 && memcmp(text + i, "---", 3) == 0)
        return TSIMPORT_YAML;
    /* a YAML key: a word and a colon; a command line has no colon before its first space */
    size_t k = i;
    while (k < len && (isalnum((unsigned char)text[k]) || text[k] == '_'))
        k++;
    if (k > i && k < len && text[k] == ':')
        return TSIMPORT_YAML;
    return TSIMPORT_CMDLINE;
}

int tsimport_convert(const char *text, size_t len, enum tsimport_from from, const char *name,
                     struct tsimport_result *out, char *err, size_t errlen)
{
    struct tsi_input in = {.name = name, .err = err, .errlen = errlen};
    if (len > LIMIT_IMPORT_BYTES) {
        snprintf(err, errlen, "%s: more than %u bytes", name, LIMIT_IMPORT_BYTES);
        return -1;
    }
    if (!(in.arena = arena_new())) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    in.from = from == TSIMPORT_AUTO ? tsimport_detect(text, len) : from;
    int r;
    if (in.from == TSIMPORT_NIXJSON)
        r = tsi_read_nixjson(&in, text, len);
    else if (in.from == TSIMPORT_YAML)
        r = tsi_read_yaml(&in, text, len);
    else
        r = read_cmdlines(&in, text, len);
    if (r == 0 && in.n == 0)
        r = tsi_fail(&in, 0, "no tsnsrv service found (nothing to convert)");
    if (r == 0)
        r = tsi_emit(&in, out);
    if (r == 0) {
        /* What portico's own loader refuses (an address it reads more
         * strictly than Go did, say) is an error here, never a file that
         * `portico check` then refuses. */
        char cerr[768];
        struct config *c =
            config_parse("(the result)", out->yaml, strlen(out->yaml), cerr, sizeof cerr);
        if (c) {
            config_unref(c);
        } else {
            tsi_fail(&in, 0, "portico cannot use the result: %s", cerr);
            tsimport_result_free(out);
            r = -1;
        }
    }
    arena_free(in.arena);
    return r;
}

void tsimport_result_free(struct tsimport_result *r)
{
    free(r->yaml);
    free(r->summary);
    r->yaml = r->summary = NULL;
}
