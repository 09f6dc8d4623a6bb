/* log.h - operational messages and the access log, both on stderr.
 *
 * Lines are logfmt (text) or one JSON object each (json), as
 * access_log.format says. Operational lines carry level, access lines
 * carry service. Access lines are gathered in a per-worker buffer and
 * written once per event-loop iteration, whole lines only, so threads never
 * interleave inside a line. */
#ifndef PORTICO_LOG_H
#define PORTICO_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* The format of operational lines from now on, in every thread: set when a
 * configuration takes effect. Until the first one has, lines are text (a
 * configuration that cannot be read cannot say its format). */
void log_set_format(enum log_format f);

/* One operational line: ts=... level=... msg="<formatted, escaped>", or
 * {"ts":...,"level":...,"msg":...}. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One operational line with fields after the message:
 * ts=... level=... msg="msg" k1=v1 k2=v2 ... for the n pairs in kv (key,
 * value, key, value, ...); a value is quoted and escaped when it needs it. */
void log_fields(enum log_level level, const char *msg, const char *const *kv, size_t n);

struct log_buf {
    size_t len;
    char data[LIMIT_LOG_BUF];
};

struct access_entry {
    const char *service; /* "-" when none matched */
    const char *client;
    const char *user; /* "-" when unknown */
    const char *method;
    const char *path; /* target as sent; escaped on output */
    size_t path_len;
    int status;
    uint64_t bytes_in, bytes_out;
    uint64_t usec;
    /* NULL, or why portico answered itself or cut the response (a fixed
     * sentence); logged last as reason="...". */
    const char *reason;
    /* NULL, or how the caller came in, logged as via=...: "local" on a
     * tailscale.hairpin listener. */
    const char *via;
};

/* One access line in format f, into the buffer (flushed first when the
 * line might not fit). Strings longer than LIMIT_LOG_FIELD_BYTES (the
 * path: LIMIT_LOG_PATH_BYTES) are cut. */
void log_access(struct log_buf *lb, const struct access_entry *e, enum log_format f);

/* A request target as the access log shows it, into out (at most cap
 * bytes, cut if longer): with drop_query, without its query; otherwise
 * the value of each query parameter whose name is in names (compared
 * case-insensitively) replaced by "REDACTED". Returns the length. */
size_t log_target(const char *target, size_t len, bool drop_query, const char *const *names,
                  size_t nnames, char *out, size_t cap);
/* Write out whatever the buffer holds. */
void log_flush(struct log_buf *lb);

/* Append s to out as a logfmt quoted-string body: '"' and '\\' escaped,
 * bytes outside printable ASCII as \xHH. Returns bytes written (never more
 * than cap; the output is cut at a character boundary). */
size_t log_escape(char *out, size_t cap, const char *s, size_t len);

/* Append s to out as the body of a JSON string: '"' and '\\' escaped,
 * \n \r \t, other C0 and C1 controls and DEL as \u00XX, valid UTF-8
 * otherwise as it is, and each maximal ill-formed subsequence (Unicode
 * 3.9, "U+FFFD substitution of maximal subparts") as U+FFFD, so the
 * result is valid UTF-8 and a valid JSON string whatever s holds. At most
 * 6 bytes per byte of s. Returns bytes written (never more than cap; cut
 * before the first unit that does not fit whole). */
size_t log_json_escape(char *out, size_t cap, const char *s, size_t len);

/* one when n is 1, else many: "1 service", "2 services". */
const char *log_plural(size_t n, const char *one, const char *many);

/* "2026-11-24T22:46:00.123Z" into out (>= 25 bytes). */
void log_time(char *out);

#endif
