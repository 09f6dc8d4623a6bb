/* test_sni.c - the ClientHello server-name parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "limits.h"
#include "sni.h"

static uint8_t msg[70000];
static char name[300];

static size_t put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

/* A ClientHello handshake message (no record framing) with an optional
 * server_name, a padding extension of pad bytes, and other extensions. */
static size_t hello(uint8_t *out, const char *sni, size_t pad)
{
    uint8_t body[40000];
    size_t n = 0;
    n += put16(body + n, 0x0303);
    memset(body + n, 0xab, 32);
    n += 32;
    body[n++] = 32; /* session id */
    memset(body + n, 0x11, 32);
    n += 32;
    n += put16(body + n, 4);
    n += put16(body + n, 0x1301);
    n += put16(body + n, 0xc02b);
    body[n++] = 1;
    body[n++] = 0;
    size_t exts_at = n;
    n += 2;
    /* supported_versions */
    n += put16(body + n, 43);
    n += put16(body + n, 3);
    body[n++] = 2;
    n += put16(body + n, 0x0304);
    if (sni) {
        size_t l = strlen(sni);
        n += put16(body + n, 0);
        n += put16(body + n, l + 5);
        n += put16(body + n, l + 3);
        body[n++] = 0;
        n += put16(body + n, l);
        memcpy(body + n, sni, l);
        n += l;
    }
    if (pad) {
        n += put16(body + n, 21);
        n += put16(body + n, pad);
        memset(body + n, 0, pad);
        n += pad;
    }
    put16(body + exts_at, n - exts_at - 2);
    out[0] = 1;
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    memcpy(out + 4, body, n);
    return n + 4;
}

/* Frame a handshake message into records of at most frag bytes. */
static size_t records(uint8_t *out, const uint8_t *hs, size_t len, size_t frag)
{
    size_t n = 0;
    for (size_t off = 0; off < len; off += frag) {
        size_t k = len - off < frag ? len - off : frag;
        out[n++] = 22;
        out[n++] = 3;
        out[n++] = 1;
        n += put16(out + n, k);
        memcpy(out + n, hs + off, k);
        n += k;
    }
    return n;
}

static size_t build(const char *sni, size_t pad, size_t frag)
{
    static uint8_t hs[40000];
    size_t len = hello(hs, sni, pad);
    return records(msg, hs, len, frag);
}

static void test_sni_found_lower_cased_without_trailing_dot(void **state)
{
    size_t n = build("Vault.Example.TEST.", 0, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_FOUND);
    assert_string_equal(name, "vault.example.test");
}

/* An empty label is no host name; "a.." used to come out as "a." (found by
 * fuzzing), a name with a trailing dot that sni.h promises never to give. */
static void test_sni_empty_label_refused(void **state)
{
    const char *bad[] = {"a..", "a..b.test", "..", "a.test.."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = build(bad[i], 0, 16384);
        assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    }
    size_t n = build("a.", 0, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_FOUND);
    assert_string_equal(name, "a");
}

static void test_sni_every_prefix_needs_more(void **state)
{
    size_t n = build("a.test", 300, 16384);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sni_parse(msg, i, name, sizeof name), SNI_MORE);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_FOUND);
    assert_string_equal(name, "a.test");
}

static void test_sni_hello_across_records(void **state)
{
    size_t n = build("split.test", 3000, 700);
    for (size_t i = 0; i < n; i += 97)
        assert_int_equal(sni_parse(msg, i, name, sizeof name), SNI_MORE);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_FOUND);
    assert_string_equal(name, "split.test");
}

static void test_sni_absent(void **state)
{
    size_t n = build(NULL, 0, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_NONE);
    /* No extensions block at all. */
    static uint8_t hs[200];
    size_t len = hello(hs, NULL, 0);
    size_t cut = 4 + 2 + 32 + 1 + 32 + 2 + 4 + 2; /* up to the extensions */
    hs[1] = 0, hs[2] = 0, hs[3] = (uint8_t)(cut - 4);
    (void)len;
    n = records(msg, hs, cut, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_NONE);
}

static void test_sni_not_tls_refused(void **state)
{
    const char *http = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    assert_int_equal(sni_parse((const uint8_t *)http, strlen(http), name, sizeof name), SNI_BAD);
    assert_int_equal(sni_parse((const uint8_t *)"G", 1, name, sizeof name), SNI_BAD);
    const uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x00, 0x02};
    assert_int_equal(sni_parse(sslv2, sizeof sslv2, name, sizeof name), SNI_BAD);
    const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
    assert_int_equal(sni_parse(alert, sizeof alert, name, sizeof name), SNI_BAD);
    const uint8_t empty[] = {22, 3, 1, 0, 0};
    assert_int_equal(sni_parse(empty, sizeof empty, name, sizeof name), SNI_BAD);
    size_t n = build("a.test", 0, 16384);
    msg[5] = 2; /* ServerHello, not ClientHello */
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
}

static void test_sni_oversized_refused(void **state)
{
    /* A declared handshake length beyond the limit is refused at once. */
    uint8_t big[] = {22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00};
    assert_int_equal(sni_parse(big, sizeof big, name, sizeof name), SNI_BAD);
    /* A real one just over the limit, and one that fits. */
    size_t n = build("a.test", LIMIT_CLIENT_HELLO_BYTES, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    n = build("a.test", LIMIT_CLIENT_HELLO_BYTES - 300, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_FOUND);
    /* Records larger than TLS allows. */
    uint8_t rec[] = {22, 3, 1, 0x40, 0x01};
    assert_int_equal(sni_parse(rec, sizeof rec, name, sizeof name), SNI_BAD);
    /* Tiny fragments until the peek budget runs out. */
    n = build("a.test", 8000, 1);
    assert_true(n > sni_peek_max());
    assert_int_equal(sni_parse(msg, sni_peek_max(), name, sizeof name), SNI_BAD);
}

static void test_sni_malformed_refused(void **state)
{
    size_t n = build("a.test", 0, 16384);
    uint8_t copy[1000];
    memcpy(copy, msg, n);
    /* session id longer than 32 */
    msg[9 + 2 + 32] = 33;
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    memcpy(msg, copy, n);
    /* extensions length one too long */
    size_t ext_at = 9 + 2 + 32 + 1 + 32 + 2 + 4 + 2;
    msg[ext_at + 1]++;
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    memcpy(msg, copy, n);
    /* a bad character in the name */
    char *at = memmem(msg, n, "a.test", 6);
    assert_non_null(at);
    at[1] = '/';
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    memcpy(msg, copy, n);
    at[0] = 0;
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    memcpy(msg, copy, n);
    /* server_name list length that disagrees with the extension */
    at[-4]++;
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
    memcpy(msg, copy, n);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_FOUND);
}

static void test_sni_duplicate_extension_refused(void **state)
{
    static uint8_t hs[2000];
    size_t len = hello(hs, "a.test", 0);
    /* Append a second server_name extension. */
    const uint8_t dup[] = {0, 0, 0, 9, 0, 7, 0, 0, 4, 'b', '.', 't', 't'};
    memcpy(hs + len, dup, sizeof dup);
    size_t ext_at = 4 + 2 + 32 + 1 + 32 + 2 + 4 + 2;
    size_t exts = ((size_t)hs[ext_at] << 8 | hs[ext_at + 1]) + sizeof dup;
    put16(hs + ext_at, exts);
    size_t body = len - 4 + sizeof dup;
    hs[1] = (uint8_t)(body >> 16), hs[2] = (uint8_t)(body >> 8), hs[3] = (uint8_t)body;
    size_t n = records(msg, hs, len + sizeof dup, 16384);
    assert_int_equal(sni_parse(msg, n, name, sizeof name), SNI_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_found_lower_cased_without_trailing_dot),
        cmocka_unit_test(test_sni_every_prefix_needs_more),
        cmocka_unit_test(test_sni_empty_label_refused),
        cmocka_unit_test(test_sni_hello_across_records),
        cmocka_unit_test(test_sni_absent),
        cmocka_unit_test(test_sni_not_tls_refused),
        cmocka_unit_test(test_sni_oversized_refused),
        cmocka_unit_test(test_sni_malformed_refused),
        cmocka_unit_test(test_sni_duplicate_extension_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
