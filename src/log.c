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

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info"};
    char msg[2048], line[4352], ts[25];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t mlen = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    log_time(ts);
    int h = snprintf(line, sizeof line, "ts=%s level=%s msg=\"", ts, names[level]);
    size_t o = (size_t)h;
    o += log_escape(line + o, sizeof line - o - 2, msg, mlen);
    line[o++] = '"';
    line[o++] = '\n';
    write_all(line, o);
}

void log_fields(enum log_level level, const char *msg, const char *const *kv, size_t n)
{
    static const char *names[] = {"error", "warn", "info"};
    char line[4352], ts[25];
    log_time(ts);
    size_t cap = sizeof line - 1; /* room for the newline */
    size_t o = (size_t)snprintf(line, cap, "ts=%s level=%s msg=\"", ts, names[level]);
    o += log_escape(line + o, cap - o - 1, msg, strlen(msg));
    line[o++] = '"';
    for (size_t i = 0; i + 1 < 2 * n && o + 8 < cap; i += 2) {
        const char *v = kv[i + 1];
        bool plain = *v != '\0';
        for (const char *q = v; *q && plain; q++)
            plain = *q > ' ' && *q < 0x7f && *q != '"' && *q != '=' && *q != '\\';
        int h = snprintf(line + o, cap - o, " %s=%s", kv[i], plain ? "" : "\"");
        if (h < 0 || (size_t)h >= cap - o)
            break;
        o += (size_t)h;
        if (plain) {
            size_t vl = strlen(v);
            if (vl > cap - o)
                break;
            memcpy(line + o, v, vl);
            o += vl;
        } else {
            o += log_escape(line + o, cap - o - 1, v, strlen(v));
            line[o++] = '"';
        }
    }
    line[o++] = '\n';
    write_all(line, o);
}

void log_access(struct log_buf *lb, const struct access_entry *e)
{
    /* Worst case: escaped path (4 bytes per byte) plus the fixed fields. */
    size_t need = 4 * LIMIT_LOG_PATH_BYTES + 512;
    if (sizeof lb->data - lb->len < need)
        log_flush(lb);
    char ts[25];
    log_time(ts);
    char *p = lb->data + lb->len;
    size_t cap = sizeof lb->data - lb->len;
    int n = snprintf(p, cap, "ts=%s service=%s client=%s user=%s method=%s path=\"", ts, e->service,
                     e->client, e->user, e->method);
    if (n < 0 || (size_t)n >= cap)
        return;
    size_t o = (size_t)n;
    size_t plen = e->path_len < LIMIT_LOG_PATH_BYTES ? e->path_len : LIMIT_LOG_PATH_BYTES;
    o += log_escape(p + o, cap - o - 200, e->path, plen);
    n = snprintf(p + o, cap - o, "\" status=%d in=%llu out=%llu ms=%llu.%03llu", e->status,
                 (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out,
                 (unsigned long long)(e->usec / 1000), (unsigned long long)(e->usec % 1000));
    if (n < 0 || (size_t)n >= cap - o)
        return;
    o += (size_t)n;
    if (e->via && cap - o > 32) {
        n = snprintf(p + o, cap - o, " via=%s", e->via);
        if (n < 0 || (size_t)n >= cap - o)
            return;
        o += (size_t)n;
    }
    if (e->reason && cap - o > 16) {
        memcpy(p + o, " reason=\"", 9);
        o += 9;
        o += log_escape(p + o, cap - o - 3, e->reason, strlen(e->reason));
        p[o++] = '"';
    }
    if (o >= cap)
        return;
    p[o++] = '\n';
    lb->len += o;
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
