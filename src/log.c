/* log.c - operational and access logging (see log.h). */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "decimal.h"

static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

static void write_all(const char *p, size_t n)
{
    pthread_mutex_lock(&write_mu);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

void log_time(char *out)
{
    /* Formatting the date is the costly part; redo it once per second per thread. */
    static __thread time_t cached_sec = -1;
    static __thread char cached[21];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    memcpy(out, cached, 19);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

size_t log_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            if (o + 2 > cap)
                break;
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            if (o + 4 > cap)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            if (o + 1 > cap)
                break;
            out[o++] = (char)c;
        }
    }
    return o;
}

/* Operational lines' format; relaxed: a line racing a reload may take either. */
static int op_format = LOG_FORMAT_TEXT;

void log_set_format(enum log_format f)
{
    __atomic_store_n(&op_format, (int)f, __ATOMIC_RELAXED);
}

/* The byte range the second byte of a UTF-8 sequence must fall in after
 * lead byte c (Unicode 3.9, table 3-7), and how many continuation bytes
 * follow; 0 for a byte that cannot start a sequence. */
static size_t utf8_tail(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        return 1;
    if (c == 0xe0)
        *lo = 0xa0;
    else if (c == 0xed)
        *hi = 0x9f; /* no surrogates */
    if (c >= 0xe0 && c <= 0xef)
        return 2;
    if (c == 0xf0)
        *lo = 0x90;
    else if (c == 0xf4)
        *hi = 0x8f; /* nothing above U+10FFFF */
    if (c >= 0xf0 && c <= 0xf4)
        return 3;
    return 0;
}

size_t log_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, i = 0;
    while (i < len) {
        unsigned char c = u[i];
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        const char *unit = esc;
        size_t n, used = 1;
        int code = -1; /* a code point written as \u00XX */
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            unit = s + i;
            n = 1;
        } else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c;
            n = 2;
        } else if (c < 0x80) {
            code = c;
        } else {
            unsigned char lo, hi;
            size_t tail = utf8_tail(c, &lo, &hi), k = 0;
            while (k < tail && i + 1 + k < len && u[i + 1 + k] >= lo && u[i + 1 + k] <= hi) {
                k++;
                lo = 0x80;
                hi = 0xbf;
            }
            used = 1 + k;
            if (tail == 0 || k < tail) {
                unit = "\xef\xbf\xbd"; /* U+FFFD for the maximal subpart */
                n = 3;
            } else if (c == 0xc2 && u[i + 1] < 0xa0) {
                code = u[i + 1]; /* a C1 control: terminals act on some */
            } else {
                unit = s + i;
                n = used;
            }
        }
        if (code >= 0) {
            esc[4] = hex[code >> 4];
            esc[5] = hex[code & 15];
            n = 6;
        }
        if (n > cap - o)
            break;
        memcpy(out + o, unit, n);
        o += n;
        i += used;
    }
    return o;
}

/* A line being built in a fixed buffer; full once something did not fit,
 * after which nothing more is added. */
struct line {
    char *p;
    size_t len, cap;
    bool full;
};

static void line_put(struct line *l, const char *s, size_t n)
{
    if (l->full || n > l->cap - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* s escaped for format f, cut to what fits before the last reserve bytes. */
static void line_escaped(struct line *l, enum log_format f, const char *s, size_t n, size_t reserve)
{
    if (l->full || l->cap - l->len < reserve) {
        l->full = true;
        return;
    }
    size_t room = l->cap - l->len - reserve;
    l->len += f == LOG_FORMAT_JSON ? log_json_escape(l->p + l->len, room, s, n)
                                   : log_escape(l->p + l->len, room, s, n);
}

static void line_uint(struct line *l, unsigned long long v)
{
    char d[DECIMAL_U64_DIGITS];
    line_put(l, d, decimal_format_u64(d, v));
}

/* ts, level and the opening of msg: ts=... level=... msg=" or
 * {"ts":"...","level":"...","msg":" */
static void line_head(struct line *l, enum log_format f, enum log_level level)
{
    static const char *names[] = {"error", "warn", "info"};
    char ts[25];
    log_time(ts);
    line_puts(l, f == LOG_FORMAT_JSON ? "{\"ts\":\"" : "ts=");
    line_puts(l, ts);
    line_puts(l, f == LOG_FORMAT_JSON ? "\",\"level\":\"" : " level=");
    line_puts(l, names[level]);
    line_puts(l, f == LOG_FORMAT_JSON ? "\",\"msg\":\"" : " msg=\"");
}

/* Room kept at the end of an operational line for what closes it. */
#define LINE_TAIL 3 /* "}\n */

static void line_end(struct line *l, enum log_format f)
{
    /* The tail was reserved: a cut line still closes. */
    l->full = false;
    l->cap += LINE_TAIL;
    line_puts(l, f == LOG_FORMAT_JSON ? "}\n" : "\n");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[2048], buf[LIMIT_LOG_LINE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t mlen = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    enum log_format f = (enum log_format)__atomic_load_n(&op_format, __ATOMIC_RELAXED);
    struct line l = {buf, 0, sizeof buf - LINE_TAIL, false};
    line_head(&l, f, level);
    line_escaped(&l, f, msg, mlen, 1);
    line_puts(&l, "\"");
    line_end(&l, f);
    write_all(buf, l.len);
}

void log_fields(enum log_level level, const char *msg, const char *const *kv, size_t n)
{
    char buf[LIMIT_LOG_LINE_BYTES];
    enum log_format f = (enum log_format)__atomic_load_n(&op_format, __ATOMIC_RELAXED);
    bool json = f == LOG_FORMAT_JSON;
    struct line l = {buf, 0, sizeof buf - LINE_TAIL, false};
    line_head(&l, f, level);
    line_escaped(&l, f, msg, strlen(msg), 1);
    line_puts(&l, "\"");
    for (size_t i = 0; i + 1 < 2 * n; i += 2) {
        const char *k = kv[i], *v = kv[i + 1];
        bool plain = !json && *v != '\0';
        for (const char *q = v; *q && plain; q++)
            plain = *q > ' ' && *q < 0x7f && *q != '"' && *q != '=' && *q != '\\';
        /* A field goes in whole or not at all, so a cut line still parses. */
        size_t mark = l.len, vl = strlen(v);
        line_puts(&l, json ? ",\"" : " ");
        line_puts(&l, k);
        line_puts(&l, json ? "\":\"" : plain ? "=" : "=\"");
        if (plain)
            line_put(&l, v, vl);
        else
            line_escaped(&l, f, v, vl, 1);
        if (!plain)
            line_puts(&l, "\"");
        if (l.full) {
            l.len = mark;
            break;
        }
    }
    line_end(&l, f);
    write_all(buf, l.len);
}

/* The bytes a line of e can take at most: every string escaped at the
 * worst ratio (6 in JSON, 4 in text) plus the fixed part. */
#define ACCESS_LINE_MAX (6 * (LIMIT_LOG_PATH_BYTES + 6 * LIMIT_LOG_FIELD_BYTES) + 512)
_Static_assert(ACCESS_LINE_MAX <= LIMIT_LOG_BUF, "an access line fits in the empty buffer");

/* A text value that logfmt can carry bare: no space, quote, backslash, '='
 * or byte outside printable ASCII. Anything else (a login or a user name
 * from the auth provider may hold spaces) is written quoted and escaped, so
 * a value can never pose as further fields of the line. */
static bool text_bare_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=')
            return false;
    }
    return true;
}

void log_access(struct log_buf *lb, const struct access_entry *e, enum log_format f)
{
    if (sizeof lb->data - lb->len < ACCESS_LINE_MAX)
        log_flush(lb);
    bool json = f == LOG_FORMAT_JSON;
    char ts[25];
    log_time(ts);
    struct line l = {lb->data + lb->len, 0, sizeof lb->data - lb->len, false};
    const struct {
        const char *key, *v;
        size_t len;
        bool quote; /* text: a value that may hold anything */
    } strs[] = {
        {"ts", ts, 24, false},
        {"service", e->service, strnlen(e->service, LIMIT_LOG_FIELD_BYTES), false},
        {"client", e->client, strnlen(e->client, LIMIT_LOG_FIELD_BYTES), false},
        {"user", e->user, strnlen(e->user, LIMIT_LOG_FIELD_BYTES), false},
        {"method", e->method, strnlen(e->method, LIMIT_LOG_FIELD_BYTES), false},
        {"path", e->path, e->path_len < LIMIT_LOG_PATH_BYTES ? e->path_len : LIMIT_LOG_PATH_BYTES,
         true},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        line_puts(&l, json ? (i ? ",\"" : "{\"") : (i ? " " : ""));
        line_puts(&l, strs[i].key);
        bool q = json || strs[i].quote || !text_bare_ok(strs[i].v, strs[i].len);
        line_puts(&l, json ? "\":\"" : q ? "=\"" : "=");
        if (q)
            line_escaped(&l, f, strs[i].v, strs[i].len, 0);
        else
            line_put(&l, strs[i].v, strs[i].len);
        if (q)
            line_puts(&l, "\"");
    }
    const struct {
        const char *key;
        unsigned long long v;
    } nums[] = {{"status", (unsigned long long)e->status},
                {"in", e->bytes_in},
                {"out", e->bytes_out},
                {"ms", e->usec / 1000}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        line_puts(&l, json ? ",\"" : " ");
        line_puts(&l, nums[i].key);
        line_puts(&l, json ? "\":" : "=");
        line_uint(&l, nums[i].v);
    }
    /* ms with microseconds' precision: a decimal number in both formats. */
    char frac[5] = {'.', (char)('0' + e->usec / 100 % 10), (char)('0' + e->usec / 10 % 10),
                    (char)('0' + e->usec % 10), 0};
    line_puts(&l, frac);
    const struct {
        const char *key, *v;
        bool quote;
    } opt[] = {{"via", e->via, false}, {"reason", e->reason, true}};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
        if (!opt[i].v)
            continue;
        line_puts(&l, json ? ",\"" : " ");
        line_puts(&l, opt[i].key);
        size_t n = strnlen(opt[i].v, LIMIT_LOG_FIELD_BYTES);
        bool q = json || opt[i].quote || !text_bare_ok(opt[i].v, n);
        line_puts(&l, json ? "\":\"" : q ? "=\"" : "=");
        if (q)
            line_escaped(&l, f, opt[i].v, n, 0);
        else
            line_put(&l, opt[i].v, n);
        if (q)
            line_puts(&l, "\"");
    }
    line_puts(&l, json ? "}\n" : "\n");
    if (!l.full) /* cannot happen (ACCESS_LINE_MAX); never half a line */
        lb->len += l.len;
}

void log_flush(struct log_buf *lb)
{
    if (lb->len == 0)
        return;
    write_all(lb->data, lb->len);
    lb->len = 0;
}

static void copy_cut(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (n > cap - *o)
        n = cap - *o;
    memcpy(out + *o, s, n);
    *o += n;
}

size_t log_target(const char *t, size_t len, bool drop_query, const char *const *names,
                  size_t nnames, char *out, size_t cap)
{
    const char *q = memchr(t, '?', len);
    size_t o = 0;
    if (!q || (!drop_query && nnames == 0)) {
        copy_cut(out, cap, &o, t, len);
        return o;
    }
    copy_cut(out, cap, &o, t, (size_t)(q - t));
    if (drop_query)
        return o;
    const char *p = q, *end = t + len;
    while (p < end) {
        /* p is at '?' or '&': copy it, then one name[=value] pair. */
        copy_cut(out, cap, &o, p, 1);
        p++;
        const char *pair_end = memchr(p, '&', (size_t)(end - p));
        if (!pair_end)
            pair_end = end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        bool hide = false;
        for (size_t i = 0; eq && i < nnames && !hide; i++)
            hide = strlen(names[i]) == (size_t)(eq - p) &&
                   strncasecmp(p, names[i], (size_t)(eq - p)) == 0;
        if (hide) {
            copy_cut(out, cap, &o, p, (size_t)(eq - p) + 1);
            copy_cut(out, cap, &o, "REDACTED", 8);
        } else {
            copy_cut(out, cap, &o, p, (size_t)(pair_end - p));
        }
        p = pair_end;
    }
    return o;
}

const char *log_plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}
