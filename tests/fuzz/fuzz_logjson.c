/* fuzz_logjson.c - the access log's escapers and the line around them,
 * over bytes a client chose.
 *
 * Beyond "no crash": the JSON-escaped string parses as a JSON string
 * (jansson, which also checks UTF-8) and holds no raw control character
 * (C0, DEL or C1); a smaller room gives a prefix of the whole output, cut
 * only where the next unit would not fit; an access line with the bytes as
 * its path and reason is one line and one JSON object in the json format,
 * and printable ASCII in the text format. */
#include "fuzz.h"

#include <jansson.h>
#include <string.h>

#include "log.h"

#define MAX_IN (LIMIT_LOG_PATH_BYTES + 64)

static void check_json_string(const char *s, size_t n)
{
    static char quoted[6 * MAX_IN + 2];
    quoted[0] = '"';
    memcpy(quoted + 1, s, n);
    quoted[n + 1] = '"';
    json_error_t err;
    json_t *v = json_loadb(quoted, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v)
        fprintf(stderr, "not a JSON string: %s\n", err.text);
    FUZZ_CHECK(v && json_is_string(v));
    json_decref(v);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        if (c == 0xc2 && i + 1 < n)
            FUZZ_CHECK((unsigned char)s[i + 1] >= 0xa0);
    }
}

static void check_line(const struct log_buf *lb)
{
    FUZZ_CHECK(lb->len > 0 && lb->data[lb->len - 1] == '\n');
    FUZZ_CHECK(memchr(lb->data, '\n', lb->len) == lb->data + lb->len - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char full[6 * MAX_IN], cut[6 * MAX_IN], reason[LIMIT_LOG_FIELD_BYTES + 1];
    static struct log_buf lb;
    if (size > MAX_IN)
        return 0;
    const char *s = (const char *)data;
    size_t n = log_json_escape(full, sizeof full, s, size);
    FUZZ_CHECK(n <= 6 * size && (size == 0 || n > 0));
    check_json_string(full, n);
    size_t cap = size ? data[0] % (n + 1) : 0;
    size_t m = log_json_escape(cut, cap, s, size);
    FUZZ_CHECK(m <= cap && memcmp(cut, full, m) == 0);
    FUZZ_CHECK(m == n || cap - m < 6); /* no unit is longer than 6 bytes */

    size_t rn = size < LIMIT_LOG_FIELD_BYTES ? size : LIMIT_LOG_FIELD_BYTES;
    memcpy(reason, data, rn);
    reason[rn] = '\0';
    struct access_entry e = {.service = "svc",
                             .client = "192.0.2.1",
                             .user = "-",
                             .method = "GET",
                             .path = s,
                             .path_len = size,
                             .status = 400,
                             .bytes_in = size,
                             .bytes_out = 158,
                             .usec = 1234,
                             .reason = reason};
    lb.len = 0;
    log_access(&lb, &e, LOG_FORMAT_JSON);
    check_line(&lb);
    json_error_t err;
    json_t *o = json_loadb(lb.data, lb.len - 1, JSON_ALLOW_NUL, &err);
    if (!o)
        fprintf(stderr, "not a JSON object: %s: %.*s\n", err.text, (int)lb.len, lb.data);
    FUZZ_CHECK(o && json_is_object(o));
    FUZZ_CHECK(json_is_string(json_object_get(o, "path")));
    FUZZ_CHECK(json_is_string(json_object_get(o, "reason")));
    FUZZ_CHECK(json_integer_value(json_object_get(o, "status")) == 400);
    FUZZ_CHECK(json_is_real(json_object_get(o, "ms")));
    json_decref(o);

    lb.len = 0;
    log_access(&lb, &e, LOG_FORMAT_TEXT);
    check_line(&lb);
    for (size_t i = 0; i + 1 < lb.len; i++)
        FUZZ_CHECK(lb.data[i] >= 0x20 && lb.data[i] < 0x7f);
    return 0;
}
