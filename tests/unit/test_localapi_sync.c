/* test_localapi_sync.c - the LocalAPI client's pure parts: the request head
 * and reading an answer in any split (Content-Length, chunked, until
 * close), and the message shown for an error answer. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "localapi_sync.h"

static char err[256];

/* Feed text in pieces of step bytes (then the close when eof); returns the
 * last result of localapi_reader_feed. */
static int feed(const char *text, size_t step, bool eof, struct localapi_answer *a)
{
    struct localapi_reader r;
    localapi_reader_init(&r, a);
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (rc == 0 && off < len) {
        size_t n = len - off < step ? len - off : step;
        char *space = localapi_reader_space(&r, n);
        assert_non_null(space);
        memcpy(space, text + off, n);
        off += n;
        rc = localapi_reader_feed(&r, n, err, sizeof err);
    }
    if (rc == 0 && eof)
        rc = localapi_reader_feed(&r, 0, err, sizeof err);
    localapi_reader_free(&r);
    return rc;
}

static void test_localapi_request_head(void **state)
{
    char *h = localapi_format_request("GET", "/localapi/v0/status?peers=false", NULL, false, 0);
    assert_string_equal(h, "GET /localapi/v0/status?peers=false HTTP/1.1\r\n"
                           "Host: local-tailscaled.sock\r\nUser-Agent: portico/" PORTICO_VERSION
                           "\r\nConnection: close\r\n\r\n");
    free(h);
    h = localapi_format_request("POST", "/localapi/v0/serve-config", "abc123", true, 17);
    assert_string_equal(h, "POST /localapi/v0/serve-config HTTP/1.1\r\n"
                           "Host: local-tailscaled.sock\r\nUser-Agent: portico/" PORTICO_VERSION
                           "\r\nConnection: close\r\nIf-Match: abc123\r\n"
                           "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n");
    free(h);
    assert_null(localapi_format_request("GET", "/x\r\nOrigin: evil", NULL, false, 0));
    assert_null(localapi_format_request("POST", "/x", "a\r\nOrigin: evil", true, 0));
}

static void test_localapi_answer_any_split(void **state)
{
    static const char *const answers[] = {
        "HTTP/1.1 200 OK\r\nEtag: 0123abcd\r\nContent-Length: 11\r\n\r\n{\"a\": true}",
        "HTTP/1.1 200 OK\r\nEtag: 0123abcd\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\n{\"a\"\r\n7\r\n: true}\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nEtag: 0123abcd\r\nConnection: close\r\n\r\n{\"a\": true}",
    };
    for (size_t i = 0; i < 3; i++)
        for (size_t step = 1; step <= strlen(answers[i]); step++) {
            struct localapi_answer a;
            if (feed(answers[i], step, i == 2, &a) != 1)
                fail_msg("answer %zu in steps of %zu: %s", i, step, err);
            assert_int_equal(a.status, 200);
            assert_string_equal(a.etag, "0123abcd");
            assert_int_equal(a.len, 11);
            assert_string_equal(a.body, "{\"a\": true}");
            localapi_answer_free(&a);
        }
}

/* A 204 has no body, whatever follows its head in the same read. */
static void test_localapi_answer_without_body(void **state)
{
    static const char text[] = "HTTP/1.1 204 No Content\r\nEtag: e1\r\n\r\nnot a body";
    for (size_t step = 1; step <= sizeof text - 1; step++) {
        struct localapi_answer a;
        if (feed(text, step, true, &a) != 1)
            fail_msg("steps of %zu: %s", step, err);
        assert_int_equal(a.status, 204);
        assert_int_equal(a.len, 0);
        assert_string_equal(a.body, "");
        assert_string_equal(a.etag, "e1");
        localapi_answer_free(&a);
    }
}

static void test_localapi_answer_broken(void **state)
{
    static const struct {
        const char *text;
        size_t step;
        bool eof;
        const char *err;
    } cases[] = {
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 64, true,
         "an interim 100 answer, which the request did not ask for"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort", 7, true,
         "the connection closed in the middle of the answer"},
        {"HTTP/1.1 200 OK\r\nContent-", 5, true, "the connection closed before an answer"},
        {"SSH-2.0-OpenSSH\r\n\r\n", 64, false, "the answer is not a valid HTTP/1.1 response"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 64, false,
         "the answer's chunked body is malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct localapi_answer a;
        assert_int_equal(feed(cases[i].text, cases[i].step, cases[i].eof, &a), -1);
        assert_string_equal(err, cases[i].err);
        localapi_answer_free(&a);
    }
}

static void test_localapi_error_text(void **state)
{
    char out[LOCALAPI_ERROR_SHOWN + 8], big[1000];
    struct localapi_answer a = {500, "{\"error\":\"updating config: netMap is nil\"}\n", 43, ""};
    localapi_error_text(&a, out, sizeof out);
    assert_string_equal(out, "updating config: netMap is nil");
    static const char quoted[] = "{\"error\":\"want to serve \\\"x\\\"\\n\"}";
    a = (struct localapi_answer){500, (char *)quoted, sizeof quoted - 1, ""};
    localapi_error_text(&a, out, sizeof out);
    assert_string_equal(out, "want to serve \"x\"");
    a = (struct localapi_answer){412, "etag mismatch\n", 14, ""};
    localapi_error_text(&a, out, sizeof out);
    assert_string_equal(out, "etag mismatch");
    a = (struct localapi_answer){403, "bad\x1b[31m\nline", 13, ""};
    localapi_error_text(&a, out, sizeof out);
    assert_string_equal(out, "bad?[31m?line");
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    a = (struct localapi_answer){500, big, sizeof big - 1, ""};
    localapi_error_text(&a, out, sizeof out);
    assert_int_equal(strlen(out), LOCALAPI_ERROR_SHOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localapi_request_head),
        cmocka_unit_test(test_localapi_answer_any_split),
        cmocka_unit_test(test_localapi_answer_without_body),
        cmocka_unit_test(test_localapi_answer_broken),
        cmocka_unit_test(test_localapi_error_text),
    };
    return cmocka_run_group_tests_name("localapi_sync", tests, NULL, NULL);
}
