/* test_http1.c - request and response head parsing, and its refusals. */
#include "unit.h"

#include <http_parser.h>
#include <stdio.h>

#include "http1.h"

static const struct http1_limits LIM = {16384, 8192};

/* Find the head end of a whole message and parse it. */
static long parse_req(const char *s, struct http_request *req)
{
    size_t scan = 0;
    long end = http1_find_head_end(s, strlen(s), &scan, &LIM);
    if (end <= 0)
        return end;
    return http1_parse_request(s, (size_t)end, req);
}

static long parse_resp(const char *s, int method, struct http_response *resp)
{
    size_t scan = 0;
    struct http1_limits lim = {32768, 32768};
    long end = http1_find_head_end(s, strlen(s), &scan, &lim);
    if (end <= 0)
        return end;
    return http1_parse_response(s, (size_t)end, method, resp);
}

static struct http_request req;
static struct http_response resp;

static void test_http1_simple_get_parses(void **state)
{
    const char *s = "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.test:8080\r\nX-A:  v \r\n\r\n";
    assert_int_equal(parse_req(s, &req), (long)strlen(s));
    assert_true(http_slice_eq(req.method, "GET"));
    assert_int_equal(req.method_id, HTTP_GET);
    assert_int_equal(req.path.len, 4);
    assert_memory_equal(req.path.p, "/a/b", 4);
    assert_int_equal(req.query.len, 3);
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.nheaders, 2);
    assert_true(http_slice_eq(req.headers[1].value, "v"));
    assert_true(http_slice_eq(req.host, "Example.test:8080"));
    assert_int_equal(req.body, HTTP_BODY_NONE);
    assert_true(req.keep_alive);
}

static void test_http1_head_end_found_incrementally(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    size_t scan = 0;
    for (size_t n = 1; n < strlen(s); n++) {
        long r = http1_find_head_end(s, n, &scan, &LIM);
        if (n < 27)
            assert_int_equal(r, 0);
        else
            assert_int_equal(r, 27);
    }
}

static void test_http1_request_line_too_long_is_414(void **state)
{
    char s[9100];
    memset(s, 'a', sizeof s);
    memcpy(s, "GET /", 5);
    size_t scan = 0;
    assert_int_equal(http1_find_head_end(s, sizeof s, &scan, &LIM), HTTP1_URI_TOO_LONG);
    /* Also when the whole head is already there. */
    char t[9200];
    int n = snprintf(t, sizeof t, "GET /%09000d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    scan = 0;
    assert_int_equal(http1_find_head_end(t, (size_t)n, &scan, &LIM), HTTP1_URI_TOO_LONG);
}

static void test_http1_headers_too_large_is_431(void **state)
{
    static char s[20000];
    memset(s, 'x', sizeof s);
    memcpy(s, "GET / HTTP/1.1\r\nX: ", 19);
    size_t scan = 0;
    assert_int_equal(http1_find_head_end(s, sizeof s, &scan, &LIM), HTTP1_HEADERS_TOO_LARGE);
}

static void test_http1_too_many_headers_is_431(void **state)
{
    static char s[8192];
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < LIMIT_HEADERS_COUNT + 1; i++)
        n += (size_t)sprintf(s + n, "X-%d: y\r\n", i);
    strcpy(s + n, "\r\n");
    assert_int_equal(parse_req(s, &req), HTTP1_HEADERS_TOO_LARGE);
}

static void test_http1_smuggling_cl_and_te_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_repeated_content_length_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "Content-Length: 5\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_non_numeric_content_length_rejected(void **state)
{
    const char *bad[] = {"+5", "-5", "0x5", "5 5", "abc", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
        assert_int_equal(parse_req(s, &req), HTTP1_BAD_REQUEST);
    }
}

static void test_http1_transfer_encoding_must_end_in_chunked(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity"
                               "\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &req),
        HTTP1_BAD_REQUEST);
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &req),
        HTTP1_NOT_IMPLEMENTED);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_chunked_request_parses(void **state)
{
    assert_true(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &req) > 0);
    assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

static void test_http1_te_in_http10_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_obs_fold_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_bare_lf_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\n\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_whitespace_before_colon_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_header_without_colon_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_two_host_headers_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_missing_host_in_11_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nX: y\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_http10_without_host_accepted(void **state)
{
    assert_true(parse_req("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_int_equal(req.minor, 0);
    assert_int_equal(req.host.len, 0);
    assert_false(req.keep_alive);
    assert_true(parse_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req) > 0);
    assert_true(req.keep_alive);
}

static void test_http1_request_line_shape_is_strict(void **state)
{
    assert_int_equal(parse_req("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET /\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTX/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_other_versions_are_505(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_VERSION);
    assert_int_equal(parse_req("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_VERSION);
    assert_int_equal(parse_req("GET / HTTP/0.9\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_VERSION);
}

static void test_http1_unknown_method_and_connect_are_501(void **state)
{
    assert_int_equal(parse_req("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_NOT_IMPLEMENTED);
    assert_int_equal(parse_req("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", &req),
                     HTTP1_NOT_IMPLEMENTED);
}

static void test_http1_absolute_form_takes_host_from_authority(void **state)
{
    assert_true(parse_req("GET http://b.test:81/p?q HTTP/1.1\r\nHost: a.test\r\n\r\n", &req) > 0);
    assert_true(http_slice_eq(req.host, "b.test:81"));
    assert_true(http_slice_eq(req.path, "/p"));
    assert_true(http_slice_eq(req.query, "q"));
    assert_int_equal(parse_req("GET http://u@b.test/ HTTP/1.1\r\nHost: a\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_asterisk_only_with_options(void **state)
{
    assert_true(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req) > 0);
    assert_int_equal(parse_req("GET * HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_connection_tokens_expect_and_upgrade(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                          "Upgrade: websocket\r\nExpect: 100-Continue\r\n\r\n",
                          &req) > 0);
    assert_int_equal(req.conn_flags, HTTP_CONN_KEEP_ALIVE | HTTP_CONN_UPGRADE);
    assert_true(req.upgrade);
    assert_true(req.expect_continue);
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &req) > 0);
    assert_false(req.keep_alive);
}

static void test_http1_bad_host_value_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: \r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_control_bytes_in_value_rejected(void **state)
{
    const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    size_t scan = 0;
    long end = http1_find_head_end(s, sizeof s - 1, &scan, &LIM);
    assert_true(end > 0);
    assert_int_equal(http1_parse_request(s, (size_t)end, &req), HTTP1_BAD_REQUEST);
}

static void test_http1_response_framing(void **state)
{
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", HTTP_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_LENGTH);
    assert_int_equal(resp.content_length, 5);
    assert_true(resp.keep_alive);
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", HTTP_HEAD, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(resp.has_content_length);
    assert_true(parse_resp("HTTP/1.1 204 No Content\r\n\r\n", HTTP_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(
        parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", HTTP_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(parse_resp("HTTP/1.1 100 Continue\r\n\r\n", HTTP_POST, &resp) > 0);
    assert_int_equal(resp.status, 100);
    assert_true(parse_resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                           HTTP_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(
        parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_CHUNKED);
    assert_true(parse_resp("HTTP/1.1 200\r\n\r\n", HTTP_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_EOF);
    assert_false(resp.keep_alive);
    assert_true(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP_GET, &resp) > 0);
    assert_false(resp.keep_alive);
}

static void test_http1_malformed_responses_rejected(void **state)
{
    const char *bad[] = {
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        "HTTP/1.1 200 OK\nX: y\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_resp(bad[i], HTTP_GET, &resp), HTTP1_BAD_RESPONSE);
}

static void test_http1_status_reasons(void **state)
{
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(504), "Gateway Timeout");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_simple_get_parses),
        cmocka_unit_test(test_http1_head_end_found_incrementally),
        cmocka_unit_test(test_http1_request_line_too_long_is_414),
        cmocka_unit_test(test_http1_headers_too_large_is_431),
        cmocka_unit_test(test_http1_too_many_headers_is_431),
        cmocka_unit_test(test_http1_smuggling_cl_and_te_rejected),
        cmocka_unit_test(test_http1_repeated_content_length_rejected),
        cmocka_unit_test(test_http1_non_numeric_content_length_rejected),
        cmocka_unit_test(test_http1_transfer_encoding_must_end_in_chunked),
        cmocka_unit_test(test_http1_chunked_request_parses),
        cmocka_unit_test(test_http1_te_in_http10_rejected),
        cmocka_unit_test(test_http1_obs_fold_rejected),
        cmocka_unit_test(test_http1_bare_lf_rejected),
        cmocka_unit_test(test_http1_whitespace_before_colon_rejected),
        cmocka_unit_test(test_http1_header_without_colon_rejected),
        cmocka_unit_test(test_http1_two_host_headers_rejected),
        cmocka_unit_test(test_http1_missing_host_in_11_rejected),
        cmocka_unit_test(test_http1_http10_without_host_accepted),
        cmocka_unit_test(test_http1_request_line_shape_is_strict),
        cmocka_unit_test(test_http1_other_versions_are_505),
        cmocka_unit_test(test_http1_unknown_method_and_connect_are_501),
        cmocka_unit_test(test_http1_absolute_form_takes_host_from_authority),
        cmocka_unit_test(test_http1_asterisk_only_with_options),
        cmocka_unit_test(test_http1_connection_tokens_expect_and_upgrade),
        cmocka_unit_test(test_http1_bad_host_value_rejected),
        cmocka_unit_test(test_http1_control_bytes_in_value_rejected),
        cmocka_unit_test(test_http1_response_framing),
        cmocka_unit_test(test_http1_malformed_responses_rejected),
        cmocka_unit_test(test_http1_status_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
