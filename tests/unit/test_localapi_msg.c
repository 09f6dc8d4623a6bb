/* test_localapi_msg.c - the LocalAPI messages without any socket: the
 * request head portico sends tailscaled, and the answer reader fed in
 * every split (Content-Length, chunked, until close), refusing what it
 * must (garbage, oversize, truncation, interim answers), and the message
 * shown for an error answer. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "localapi.h"

static char err[512];
/* ---- request building ---------------------------------------------------- */

static void test_localapi_get_head_is_exact(void **state)
{
    char out[1024];
    struct localapi_request r = {.method = METHOD_GET,
                                 .path = "/localapi/v0/whois?addr=100.64.0.2"};
    long n = localapi_build_request(&r, out, sizeof out, err, sizeof err);
    const char *want = "GET /localapi/v0/whois?addr=100.64.0.2 HTTP/1.1\r\n"
                       "Host: local-tailscaled.sock\r\n"
                       "User-Agent: portico/" PORTICO_VERSION "\r\n\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, strlen(want));
}

static void test_localapi_post_head_has_length_and_if_match(void **state)
{
    char out[1024];
    struct localapi_request r = {.method = METHOD_POST,
                                 .path = "/localapi/v0/serve-config",
                                 .if_match = "\"abc\"",
                                 .body = "{}",
                                 .body_len = 2};
    long n = localapi_build_request(&r, out, sizeof out, err, sizeof err);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "POST /localapi/v0/serve-config HTTP/1.1\r\n"));
    assert_non_null(strstr(out, "\r\nIf-Match: \"abc\"\r\n"));
    assert_non_null(strstr(out, "\r\nContent-Length: 2\r\n"));
    assert_null(strstr(out, "Origin"));
    assert_null(strstr(out, "Referer"));
}

static void test_localapi_bad_requests_refused(void **state)
{
    char out[1024];
    const char *paths[] = {"/api/v2/x", "/localapi/v0/whois?addr=a b",
                           "/localapi/v0/x\r\nOrigin: evil", NULL};
    for (int i = 0; i < 4; i++) {
        struct localapi_request r = {.method = METHOD_GET, .path = paths[i]};
        assert_int_equal(localapi_build_request(&r, out, sizeof out, err, sizeof err), -1);
        assert_non_null(strstr(err, "must start with /localapi/v0/"));
    }
    struct localapi_request r = {.method = METHOD_OTHER, .path = "/localapi/v0/status"};
    assert_int_equal(localapi_build_request(&r, out, sizeof out, err, sizeof err), -1);
    r = (struct localapi_request){
        .method = METHOD_POST, .path = "/localapi/v0/serve-config", .if_match = "a\r\nX: y"};
    assert_int_equal(localapi_build_request(&r, out, sizeof out, err, sizeof err), -1);
}

static void test_localapi_query_escape_and_endpoints(void **state)
{
    char out[64];
    assert_int_equal(localapi_query_escape("fd7a::1", out, sizeof out), 11);
    assert_string_equal(out, "fd7a%3A%3A1");
    assert_int_equal(localapi_query_escape("abcdef", out, 6), -1);
    assert_int_equal(localapi_endpoint_of("/localapi/v0/whois?addr=1"), LOCALAPI_EP_WHOIS);
    assert_int_equal(localapi_endpoint_of("/localapi/v0/cert/a.ts.net?type=pair"),
                     LOCALAPI_EP_CERT);
    assert_int_equal(localapi_endpoint_of("/localapi/v0/serve-config"), LOCALAPI_EP_SERVE_CONFIG);
    assert_int_equal(localapi_endpoint_of("/localapi/v0/statusx"), LOCALAPI_EP_OTHER);
}

/* ---- the reader ----------------------------------------------------------- */

/* Feed msg to a reader in pieces of step bytes: its final feed result. */
static int feed_all(struct localapi_reader *r, const char *msg, size_t step, bool close_at_end)
{
    size_t len = strlen(msg), off = 0;
    int rc = 0;
    localapi_reader_init(r, METHOD_GET);
    while (off < len && rc == 0) {
        size_t avail;
        char *p = localapi_reader_space(r, &avail, err, sizeof err);
        assert_non_null(p);
        size_t n = len - off < step ? len - off : step;
        memcpy(p, msg + off, n);
        off += n;
        rc = localapi_reader_feed(r, n, false, err, sizeof err);
    }
    if (rc == 0 && close_at_end)
        rc = localapi_reader_feed(r, 0, true, err, sizeof err);
    return rc;
}

static void test_localapi_reader_length_and_chunked_any_split(void **state)
{
    const char *msgs[] = {
        "HTTP/1.1 200 OK\r\nEtag: 0123abcd\r\nContent-Length: 11\r\n\r\n{\"a\":\"xyz\"}",
        "HTTP/1.1 200 OK\r\nEtag: 0123abcd\r\nTransfer-Encoding: "
        "chunked\r\n\r\n4\r\n{\"a\"\r\n7\r\n:\"xyz\"}\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nEtag: 0123abcd\r\nConnection: close\r\n\r\n{\"a\":\"xyz\"}",
    };
    for (int m = 0; m < 3; m++)
        for (size_t step = 1; step <= strlen(msgs[m]); step++) {
            struct localapi_reader r = {0};
            if (feed_all(&r, msgs[m], step, m == 2) != 1)
                fail_msg("answer %d in steps of %zu: %s", m, step, err);
            size_t len;
            const char *body = localapi_reader_body(&r, &len);
            assert_int_equal(len, 11);
            assert_string_equal(body, "{\"a\":\"xyz\"}");
            assert_int_equal(r.resp.status, 200);
            assert_int_equal(r.extra, m == 2);
            char etag[LIMIT_LOCALAPI_ETAG_BYTES];
            assert_true(localapi_reader_etag(&r, etag, sizeof etag));
            assert_string_equal(etag, "0123abcd");
            localapi_reader_free(&r);
        }
}

/* An Etag that cannot go back as If-Match is not one. */
static void test_localapi_reader_etag_absent_or_unusable(void **state)
{
    struct localapi_reader r = {0};
    char etag[16];
    assert_int_equal(feed_all(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 64, false), 1);
    assert_false(localapi_reader_etag(&r, etag, sizeof etag));
    assert_int_equal(
        feed_all(&r, "HTTP/1.1 200 OK\r\nEtag: 12345678\r\nContent-Length: 0\r\n\r\n", 64, false),
        1);
    assert_false(localapi_reader_etag(&r, etag, 8)); /* 8 bytes and a NUL need 9 */
    assert_true(localapi_reader_etag(&r, etag, 9));
    assert_string_equal(etag, "12345678");
    /* A tab is allowed in a header value but not worth sending back. */
    assert_int_equal(
        feed_all(&r, "HTTP/1.1 200 OK\r\nEtag: 12\t34\r\nContent-Length: 0\r\n\r\n", 64, false), 1);
    assert_false(localapi_reader_etag(&r, etag, sizeof etag));
    localapi_reader_free(&r);
}

/* A 204 has no body, whatever follows its head in the same read. */
static void test_localapi_reader_answer_without_body(void **state)
{
    static const char text[] = "HTTP/1.1 204 No Content\r\nEtag: e1\r\n\r\nnot a body";
    for (size_t step = 1; step <= sizeof text - 1; step++) {
        struct localapi_reader r = {0};
        if (feed_all(&r, text, step, true) != 1)
            fail_msg("steps of %zu: %s", step, err);
        assert_int_equal(r.resp.status, 204);
        size_t len;
        assert_string_equal(localapi_reader_body(&r, &len), "");
        assert_int_equal(len, 0);
        char etag[16];
        assert_true(localapi_reader_etag(&r, etag, sizeof etag));
        assert_string_equal(etag, "e1");
        if (step == sizeof text - 1)
            assert_true(r.extra); /* bytes after it: never reuse the connection */
        localapi_reader_free(&r);
    }
}

static void test_localapi_reader_broken_answers(void **state)
{
    static const struct {
        const char *text;
        size_t step;
        bool eof;
        const char *err;
    } cases[] = {
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 64, true,
         "tailscaled sent an interim 100 answer, which portico did not ask for"},
        {"HTTP/1.1 100 Continue\r\n\r\n", 1, false,
         "tailscaled sent an interim 100 answer, which portico did not ask for"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort", 7, true,
         "tailscaled closed the connection in the middle of its answer"},
        {"HTTP/1.1 200 OK\r\nContent-", 5, true,
         "tailscaled closed the connection in the middle of its answer"},
        {"SSH-2.0-OpenSSH\r\n\r\n", 64, false,
         "tailscaled's answer is not a valid HTTP/1.1 response"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 64, false,
         "tailscaled's answer has a malformed chunked body"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct localapi_reader r = {0};
        assert_int_equal(feed_all(&r, cases[i].text, cases[i].step, cases[i].eof), -1);
        assert_string_equal(err, cases[i].err);
        localapi_reader_free(&r);
    }
}

/* tailscaled's error answers: JSON (WriteErrorJSON) read as JSON, text as
 * text; one printable line, bounded. */
static void test_localapi_error_text(void **state)
{
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"{\"error\":\"updating config: netMap is nil\"}\n", "updating config: netMap is nil"},
        {"{\"error\":\"want to serve \\\"x\\\"\\n\"}", "want to serve \"x\""},
        {"etag mismatch\n", "etag mismatch"},
        {"bad\x1b[31m\nline", "bad?[31m?line"},
        {"{\"error\": 3}", "{\"error\": 3}"},
        {"", ""},
    };
    char text[1100], out[LOCALAPI_ERROR_SHOWN + 8];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct localapi_reader r = {0};
        snprintf(text, sizeof text,
                 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(cases[i].body), cases[i].body);
        assert_int_equal(feed_all(&r, text, sizeof text, false), 1);
        localapi_error_text(&r, out, sizeof out);
        assert_string_equal(out, cases[i].want);
        localapi_reader_free(&r);
    }
    struct localapi_reader r = {0};
    int n = snprintf(text, sizeof text, "HTTP/1.1 500 Oops\r\nContent-Length: 1000\r\n\r\n");
    memset(text + n, 'x', 1000);
    text[n + 1000] = '\0';
    assert_int_equal(feed_all(&r, text, sizeof text, false), 1);
    localapi_error_text(&r, out, sizeof out);
    assert_int_equal(strlen(out), LOCALAPI_ERROR_SHOWN);
    char msg[512];
    localapi_status_error(&r, "GET /localapi/v0/prefs", 22, msg, sizeof msg);
    assert_int_equal(strncmp(msg, "tailscaled answered 500 to GET /localapi/v0/prefs: xxx", 54), 0);
    localapi_reader_free(&r);
}

static void test_localapi_reader_until_close_and_truncation(void **state)
{
    struct localapi_reader r = {0};
    assert_int_equal(feed_all(&r, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", 3, true), 1);
    size_t len;
    assert_string_equal(localapi_reader_body(&r, &len), "hello");
    assert_true(r.extra); /* never reuse a connection whose end was the framing */
    assert_int_equal(feed_all(&r, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", 4, true),
                     -1);
    assert_non_null(strstr(err, "closed the connection in the middle of its answer"));
    assert_int_equal(feed_all(&r, "", 1, true), -1);
    assert_non_null(strstr(err, "closed the connection without answering"));
    assert_int_equal(feed_all(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP", 64, false),
                     1);
    assert_true(r.extra);
    assert_int_equal(
        feed_all(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 64, false),
        1);
    assert_true(r.extra);
    localapi_reader_free(&r);
}

static void test_localapi_reader_refuses_garbage_and_oversize(void **state)
{
    struct localapi_reader r = {0};
    assert_int_equal(feed_all(&r, "SSH-2.0-OpenSSH\r\n\r\n", 64, false), -1);
    assert_non_null(strstr(err, "not a valid HTTP/1.1 response"));
    char big[128];
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
             LIMIT_TS_JSON_BYTES + 1);
    assert_int_equal(feed_all(&r, big, 64, false), -1);
    assert_non_null(strstr(err, "portico reads at most"));
    assert_int_equal(
        feed_all(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 64, false), -1);
    assert_non_null(strstr(err, "malformed chunked body"));
    /* A head that never ends */
    localapi_reader_init(&r, METHOD_GET);
    const char *start = "HTTP/1.1 200 OK\r\n";
    size_t avail;
    char *p = localapi_reader_space(&r, &avail, err, sizeof err);
    memcpy(p, start, strlen(start));
    int rc = localapi_reader_feed(&r, strlen(start), false, err, sizeof err);
    for (int i = 0; rc == 0 && i < 2000; i++) {
        p = localapi_reader_space(&r, &avail, err, sizeof err);
        memcpy(p, "X-Pad: 0123456789\r\n", 19);
        rc = localapi_reader_feed(&r, 19, false, err, sizeof err);
    }
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "head is over"));
    localapi_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localapi_get_head_is_exact),
        cmocka_unit_test(test_localapi_post_head_has_length_and_if_match),
        cmocka_unit_test(test_localapi_bad_requests_refused),
        cmocka_unit_test(test_localapi_query_escape_and_endpoints),
        cmocka_unit_test(test_localapi_reader_length_and_chunked_any_split),
        cmocka_unit_test(test_localapi_reader_until_close_and_truncation),
        cmocka_unit_test(test_localapi_reader_refuses_garbage_and_oversize),
        cmocka_unit_test(test_localapi_reader_etag_absent_or_unusable),
        cmocka_unit_test(test_localapi_reader_answer_without_body),
        cmocka_unit_test(test_localapi_reader_broken_answers),
        cmocka_unit_test(test_localapi_error_text),
    };
    return cmocka_run_group_tests_name("localapi_msg", tests, NULL, NULL);
}
