/* test_http1.c - request and response head parsing, and its refusals. */
#include "unit.h"

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

static long parse_resp(const char *s, enum http1_method method, struct http_response *resp)
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
    assert_int_equal(req.method_id, METHOD_GET);
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

/* Every byte in a header name: accepted exactly when it is a tchar (RFC
 * 9110 section 5.6.2), refused otherwise; the set is spelled out here
 * independently of the parser's table. ':' ends the name and is left out. */
static void test_http1_header_name_bytes_are_exactly_tchar(void **state)
{
    const char *specials = "!#$%&'*+-.^_`|~";
    for (int ch = 0; ch < 256; ch++) {
        if (ch == ':')
            continue;
        char s[64];
        int n =
            snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: a\r\nX%cY: v\r\n\r\n", ch ? ch : '@');
        if (ch == 0)
            s[strlen("GET / HTTP/1.1\r\nHost: a\r\nX")] = '\0';
        bool tchar = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || (ch && strchr(specials, ch));
        size_t scan = 0;
        long end = http1_find_head_end(s, (size_t)n, &scan, &LIM);
        long r = end > 0 ? http1_parse_request(s, (size_t)end, &req) : -1;
        if (tchar) {
            assert_int_equal(r, n);
            assert_int_equal(req.headers[1].name.len, 3);
        } else {
            assert_true(r < 0);
        }
    }
}

/* The end of a head found from every split of the bytes into two reads,
 * the second search starting where the first left off. */
static void test_http1_head_end_found_across_any_split(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\n c\r\n\r\nNEXT";
    size_t len = strlen(s), want = len - 4;
    for (size_t cut = 0; cut <= len; cut++) {
        size_t scan = 0;
        long first = http1_find_head_end(s, cut, &scan, &LIM);
        assert_true(scan <= cut);
        if (cut < want) {
            assert_int_equal(first, 0);
            assert_int_equal(http1_find_head_end(s, len, &scan, &LIM), (long)want);
        } else {
            assert_int_equal(first, (long)want);
        }
    }
    size_t scan = 0; /* "\n\n" ends a head too, for the parser to refuse */
    assert_int_equal(http1_find_head_end("GET / HTTP/1.1\nHost: a\n\nX", 25, &scan, &LIM), 24);
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

static void test_http1_cl_and_te_rejected(void **state)
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

/* OWS around a field value is not part of it (RFC 9110 section 5.5), so a
 * Content-Length with spaces or tabs before or after its digits is the
 * number; anything else inside stays refused. */
static void test_http1_content_length_with_surrounding_ows_accepted(void **state)
{
    const char *ok[] = {"5 \t", "5\t", "\t5", " \t5\t \t", "5 ", "\t 5 \t "};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:%s\r\n\r\n", ok[i]);
        if (parse_req(s, &req) <= 0)
            fail_msg("Content-Length \"%s\" refused", ok[i]);
        assert_int_equal(req.body, HTTP_BODY_LENGTH);
        assert_int_equal(req.content_length, 5);
        snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nContent-Length:%s\r\n\r\n", ok[i]);
        if (parse_resp(s, METHOD_GET, &resp) <= 0)
            fail_msg("response Content-Length \"%s\" refused", ok[i]);
        assert_int_equal(resp.content_length, 5);
    }
    const char *bad[] = {"5 \t5", "5\t5", "5\t,5", "5\t\v", "\t", "5\t+"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
        assert_int_equal(parse_req(s, &req), HTTP1_BAD_REQUEST);
    }
    /* Repeated, even when only the whitespace differs. */
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\t\r\n"
                               "Content-Length: 5\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\t\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
}

/* Every refusal says which rule fired (for the body and the access log). */
static void test_http1_refusals_name_the_rule(void **state)
{
    static const struct {
        const char *head;
        long status;
        const char *why;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTP1_BAD_REQUEST,
         "more than one Host header"},
        {"GET / HTTP/1.1\r\n\r\n", HTTP1_BAD_REQUEST, "no Host header (HTTP/1.1 requires one)"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", HTTP1_BAD_REQUEST,
         "whitespace between a header name and its colon"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", HTTP1_BAD_REQUEST,
         "obs-fold: a header line starts with whitespace"},
        {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTP1_BAD_REQUEST,
         "a header line without a colon"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A: \x01\r\n\r\n", HTTP1_BAD_REQUEST,
         "a control character in a header value"},
        {"GET /#f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD_REQUEST,
         "a space, control, non-ASCII byte or '#' in the target"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_BAD_REQUEST,
         "Transfer-Encoding in an HTTP/1.0 request"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         HTTP1_NOT_IMPLEMENTED, "a transfer coding other than chunked"},
        {"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_NOT_IMPLEMENTED, "an unknown method"},
        {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", HTTP1_NOT_IMPLEMENTED,
         "CONNECT: portico is not a forward proxy"},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP1_BAD_VERSION,
         "only HTTP/1.0 and HTTP/1.1 are served"},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_BAD_REQUEST,
         "an empty target (two spaces in the request line)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse_req(cases[i].head, &req), cases[i].status);
        assert_non_null(req.error);
        assert_string_equal(req.error, cases[i].why);
    }
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &req) > 0);
    assert_null(req.error);
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
        assert_int_equal(parse_resp(bad[i], METHOD_GET, &resp), HTTP1_BAD_RESPONSE);
}

static void test_http1_head_end_bytes_after_are_not_part_of_head(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n";
    size_t scan = 0;
    assert_int_equal(http1_find_head_end(s, strlen(s), &scan, &LIM), 27);
    assert_int_equal(parse_req(s, &req), 27);
    assert_int_equal(req.head_len, 27);
}

static void test_http1_head_end_found_for_bare_lf_so_parse_refuses(void **state)
{
    const char *s = "GET / HTTP/1.1\nHost: a\n\n";
    size_t scan = 0;
    long end = http1_find_head_end(s, strlen(s), &scan, &LIM);
    assert_int_equal(end, (long)strlen(s));
    assert_int_equal(http1_parse_request(s, (size_t)end, &req), HTTP1_BAD_REQUEST);
}

static void test_http1_request_line_at_limit_accepted(void **state)
{
    struct http1_limits lim = {16384, 64};
    char s[256];
    /* "GET /" + 50 digits + " HTTP/1.1" is 64 bytes exactly */
    int n = snprintf(s, sizeof s, "GET /%050d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    size_t scan = 0;
    assert_int_equal(http1_find_head_end(s, (size_t)n, &scan, &lim), n);
    n = snprintf(s, sizeof s, "GET /%051d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    scan = 0;
    assert_int_equal(http1_find_head_end(s, (size_t)n, &scan, &lim), HTTP1_URI_TOO_LONG);
    /* A line at the limit whose LF has not arrived yet is not too long. */
    n = snprintf(s, sizeof s, "GET /%050d HTTP/1.1\r", 0);
    scan = 0;
    assert_int_equal(http1_find_head_end(s, (size_t)n, &scan, &lim), 0);
}

static void test_http1_complete_head_over_limit_is_431(void **state)
{
    struct http1_limits lim = {64, 64};
    const char *s =
        "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789012345678901234567890123\r\n\r\n";
    size_t scan = 0;
    assert_int_equal(http1_find_head_end(s, strlen(s), &scan, &lim), HTTP1_HEADERS_TOO_LARGE);
}

static void test_http1_header_count_at_limit_accepted(void **state)
{
    static char s[8192];
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < LIMIT_HEADERS_COUNT - 1; i++)
        n += (size_t)sprintf(s + n, "X-%d: y\r\n", i);
    strcpy(s + n, "\r\n");
    assert_int_equal(parse_req(s, &req), (long)n + 2);
    assert_int_equal(req.nheaders, LIMIT_HEADERS_COUNT);
}

/* A request head with Host and n-1 lines X-i: i, into s. */
static void head_with_lines(char *s, size_t n)
{
    size_t len = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 0; i + 1 < n; i++)
        len += (size_t)sprintf(s + len, "X-%zu: %zu\r\n", i, i);
    strcpy(s + len, "\r\n");
}

/* Every line of the head head_with_lines(n) made, in order. */
static void assert_lines(const struct http_request *r, size_t n)
{
    assert_int_equal(r->nheaders, n);
    assert_true(http_slice_eq(r->headers[0].name, "Host"));
    for (size_t i = 0; i + 1 < n; i++) {
        char name[32], value[32];
        snprintf(name, sizeof name, "X-%zu", i);
        snprintf(value, sizeof value, "%zu", i);
        assert_true(http_slice_eq(r->headers[i + 1].name, name));
        assert_true(http_slice_eq(r->headers[i + 1].value, value));
    }
}

static void test_http1_header_storage_grows_to_the_limit_only(void **state)
{
    static char s[8192];
    struct http_request r;
    memset(&r, 0, sizeof r);
    /* Up to HTTP1_HEADERS_INLINE lines: no allocation. */
    head_with_lines(s, HTTP1_HEADERS_INLINE);
    assert_true(parse_req(s, &r) > 0);
    assert_ptr_equal(r.headers, r.headers_inline);
    assert_null(r.headers_heap);
    assert_lines(&r, HTTP1_HEADERS_INLINE);
    /* One more: an allocation of exactly that many. */
    head_with_lines(s, HTTP1_HEADERS_INLINE + 1);
    assert_true(parse_req(s, &r) > 0);
    assert_ptr_equal(r.headers, r.headers_heap);
    assert_int_equal(r.headers_cap, HTTP1_HEADERS_INLINE + 1);
    assert_lines(&r, HTTP1_HEADERS_INLINE + 1);
    /* The limit, and the same storage again for fewer. */
    head_with_lines(s, LIMIT_HEADERS_COUNT);
    assert_true(parse_req(s, &r) > 0);
    assert_int_equal(r.headers_cap, LIMIT_HEADERS_COUNT);
    assert_lines(&r, LIMIT_HEADERS_COUNT);
    head_with_lines(s, LIMIT_HEADERS_COUNT - 10);
    assert_true(parse_req(s, &r) > 0);
    assert_ptr_equal(r.headers, r.headers_heap);
    assert_lines(&r, LIMIT_HEADERS_COUNT - 10);
    /* Past the limit: refused as before, and nothing grows. */
    head_with_lines(s, LIMIT_HEADERS_COUNT + 1);
    assert_int_equal(parse_req(s, &r), HTTP1_HEADERS_TOO_LARGE);
    assert_int_equal(r.headers_cap, LIMIT_HEADERS_COUNT);
    /* A small head goes back to the inline lines. */
    head_with_lines(s, 3);
    assert_true(parse_req(s, &r) > 0);
    assert_ptr_equal(r.headers, r.headers_inline);
    assert_lines(&r, 3);
    http1_request_release(&r);
    assert_null(r.headers_heap);
    assert_int_equal(r.headers_cap, 0);
    assert_int_equal(r.nheaders, 0);
    /* Released, it parses again. */
    head_with_lines(s, HTTP1_HEADERS_INLINE + 5);
    assert_true(parse_req(s, &r) > 0);
    assert_lines(&r, HTTP1_HEADERS_INLINE + 5);
    http1_request_release(&r);
}

static void test_http1_response_header_storage_grows_to_the_limit_only(void **state)
{
    static char s[8192];
    struct http_response r;
    memset(&r, 0, sizeof r);
    size_t sizes[] = {HTTP1_HEADERS_INLINE, HTTP1_HEADERS_INLINE + 1, LIMIT_HEADERS_COUNT, 2};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        size_t len = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
        for (size_t i = 0; i + 1 < n; i++)
            len += (size_t)sprintf(s + len, "X-%zu: %zu\r\n", i, i);
        strcpy(s + len, "\r\n");
        assert_int_equal(parse_resp(s, METHOD_GET, &r), (long)len + 2);
        assert_int_equal(r.nheaders, n);
        assert_ptr_equal(r.headers, n <= HTTP1_HEADERS_INLINE ? r.headers_inline : r.headers_heap);
        assert_true(http_slice_eq(r.headers[0].name, "Content-Length"));
        char name[32];
        snprintf(name, sizeof name, "X-%zu", n - 2);
        assert_true(http_slice_eq(r.headers[n - 1].name, name));
        assert_int_equal(r.content_length, 0);
    }
    assert_int_equal(r.headers_cap, LIMIT_HEADERS_COUNT);
    http1_response_release(&r);
    assert_null(r.headers_heap);
}

static void test_http1_content_length_list_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_content_length_overflow_rejected(void **state)
{
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
                  &req),
        HTTP1_BAD_REQUEST);
    assert_true(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
                  &req) > 0);
    assert_true(req.content_length == UINT64_C(9223372036854775807));
}

static void test_http1_content_length_zero_is_length_framing(void **state)
{
    assert_true(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req) > 0);
    assert_int_equal(req.body, HTTP_BODY_LENGTH);
    assert_int_equal(req.content_length, 0);
    assert_true(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", &req) > 0);
    assert_int_equal(req.body, HTTP_BODY_LENGTH);
    assert_int_equal(req.content_length, 42);
}

static void test_http1_cl_zero_with_te_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                               "Content-Length: 0\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_chunked_listed_twice_in_one_field_rejected(void **state)
{
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                  &req),
        HTTP1_BAD_REQUEST);
}

static void test_http1_te_unknown_coding_before_chunked_is_501(void **state)
{
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &req),
        HTTP1_NOT_IMPLEMENTED);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &req),
                     HTTP1_NOT_IMPLEMENTED);
}

static void test_http1_te_chunked_then_identity_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity"
                               "\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                               "Transfer-Encoding: identity\r\n\r\n",
                               &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_te_empty_or_garbage_rejected(void **state)
{
    assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", &req),
        HTTP1_BAD_REQUEST);
    assert_int_equal(
        parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", &req),
        HTTP1_BAD_REQUEST);
}

static void test_http1_empty_field_name_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_non_token_field_name_rejected(void **state)
{
    const char *bad[] = {"X(y): v", "X\"y: v", "X/y: v", "X@y: v", "X\x01y: v", "X\xc3\xa9: v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[128];
        snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n", bad[i]);
        assert_int_equal(parse_req(s, &req), HTTP1_BAD_REQUEST);
    }
}

static void test_http1_bare_cr_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_control_bytes_in_target_rejected(void **state)
{
    assert_int_equal(parse_req("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_relative_target_rejected(void **state)
{
    assert_int_equal(parse_req("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_leading_empty_line_rejected(void **state)
{
    assert_int_equal(parse_req("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_lowercase_method_is_501(void **state)
{
    assert_int_equal(parse_req("get / HTTP/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_NOT_IMPLEMENTED);
}

static void test_http1_lowercase_version_rejected(void **state)
{
    assert_int_equal(parse_req("GET / http/1.1\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.10\r\nHost: a\r\n\r\n", &req), HTTP1_BAD_REQUEST);
}

static void test_http1_known_methods_parse(void **state)
{
    /* The ones portico tells apart, and WebDAV's: any other method is
     * METHOD_OTHER, forwarded by its name. */
    const char *m[] = {"GET",     "HEAD",  "POST",  "PUT",      "DELETE",
                       "OPTIONS", "TRACE", "PATCH", "PROPFIND", "MKCOL"};
    const enum http1_method id[] = {METHOD_GET,    METHOD_HEAD,    METHOD_POST,  METHOD_PUT,
                                    METHOD_DELETE, METHOD_OPTIONS, METHOD_TRACE, METHOD_PATCH,
                                    METHOD_OTHER,  METHOD_OTHER};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        char s[128];
        snprintf(s, sizeof s, "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", m[i]);
        assert_true(parse_req(s, &req) > 0);
        assert_int_equal(req.method_id, id[i]);
        assert_true(http_slice_eq(req.method, m[i]));
    }
}

static void test_http1_host_with_space_or_comma_rejected(void **state)
{
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n", &req),
                     HTTP1_BAD_REQUEST);
}

static void test_http1_host_with_port_and_ipv6_accepted(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", &req) > 0);
    assert_true(http_slice_eq(req.host, "[::1]:8080"));
}

static void test_http1_absolute_form_still_needs_host_in_11(void **state)
{
    assert_int_equal(parse_req("GET http://b.test/ HTTP/1.1\r\n\r\n", &req), HTTP1_BAD_REQUEST);
    assert_true(parse_req("GET http://b.test HTTP/1.0\r\n\r\n", &req) > 0);
    assert_true(http_slice_eq(req.host, "b.test"));
    assert_true(http_slice_eq(req.path, "/"));
    assert_int_equal(req.query.len, 0);
}

static void test_http1_absolute_form_without_path_keeps_query(void **state)
{
    assert_true(parse_req("GET http://b.test?x=1 HTTP/1.1\r\nHost: b.test\r\n\r\n", &req) > 0);
    assert_true(http_slice_eq(req.path, "/"));
    assert_true(http_slice_eq(req.query, "x=1"));
}

static void test_http1_asterisk_path_is_slash(void **state)
{
    assert_true(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req) > 0);
    assert_true(http_slice_eq(req.target, "*"));
    assert_true(http_slice_eq(req.path, "/"));
    assert_int_equal(req.method_id, METHOD_OPTIONS);
}

static void test_http1_header_values_trimmed(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost:a\r\nX-A:\t v w \t\r\nX-B:\r\nX-C:   \r\n\r\n",
                          &req) > 0);
    assert_int_equal(req.nheaders, 4);
    assert_true(http_slice_eq(req.headers[0].value, "a"));
    assert_true(http_slice_eq(req.headers[1].value, "v w"));
    assert_int_equal(req.headers[2].value.len, 0);
    assert_int_equal(req.headers[3].value.len, 0);
    assert_true(http_slice_eq(req.headers[3].name, "X-C"));
}

static void test_http1_obs_text_in_value_accepted(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", &req) > 0);
    assert_int_equal(req.headers[1].value.len, 5);
}

static void test_http1_connection_tokens_from_all_fields(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo ,  CLOSE\r\n"
                          "Connection: upgrade\r\n\r\n",
                          &req) > 0);
    assert_int_equal(req.conn_flags, HTTP_CONN_CLOSE | HTTP_CONN_UPGRADE);
    assert_false(req.keep_alive);
    assert_false(req.upgrade); /* no Upgrade field */
}

static void test_http1_http10_close_beats_keep_alive(void **state)
{
    assert_true(parse_req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &req) > 0);
    assert_false(req.keep_alive);
}

static void test_http1_upgrade_needs_connection_token(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &req) > 0);
    assert_false(req.upgrade);
}

static void test_http1_expect_other_than_continue_ignored(void **state)
{
    assert_true(parse_req("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-x\r\n"
                          "Content-Length: 1\r\n\r\n",
                          &req) > 0);
    assert_false(req.expect_continue);
    assert_true(
        parse_req("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &req) > 0);
    assert_false(req.expect_continue); /* HTTP/1.0 clients do not wait for it */
}

static void test_http1_response_content_length_framing(void **state)
{
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.status, 200);
    assert_true(http_slice_eq(resp.reason, "OK"));
    assert_int_equal(resp.body, HTTP_BODY_LENGTH);
    assert_int_equal(resp.content_length, 5);
    assert_true(resp.has_content_length);
    assert_true(resp.keep_alive);
}

static void test_http1_response_to_head_has_no_body(void **state)
{
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", METHOD_HEAD, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(resp.has_content_length);
    assert_int_equal(resp.content_length, 5);
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", METHOD_HEAD,
                           &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(resp.keep_alive);
}

static void test_http1_response_204_and_304_have_no_body(void **state)
{
    assert_true(parse_resp("HTTP/1.1 204 No Content\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(resp.keep_alive);
    assert_true(parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", METHOD_GET,
                           &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(resp.has_content_length);
    assert_int_equal(resp.content_length, 9);
}

static void test_http1_response_1xx_has_no_body(void **state)
{
    assert_true(parse_resp("HTTP/1.1 100 Continue\r\n\r\n", METHOD_POST, &resp) > 0);
    assert_int_equal(resp.status, 100);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(parse_resp("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n",
                           METHOD_GET, &resp) > 0);
    assert_int_equal(resp.status, 103);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
}

static void test_http1_response_101_parses_without_body(void **state)
{
    assert_true(parse_resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                           "Upgrade: websocket\r\n\r\n",
                           METHOD_GET, &resp) > 0);
    assert_int_equal(resp.status, 101);
    assert_int_equal(resp.body, HTTP_BODY_NONE);
    assert_true(resp.conn_flags & HTTP_CONN_UPGRADE);
}

static void test_http1_response_chunked_framing(void **state)
{
    assert_true(
        parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_CHUNKED);
    assert_false(resp.has_content_length);
    assert_true(resp.keep_alive);
}

static void test_http1_response_without_length_runs_to_eof(void **state)
{
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.body, HTTP_BODY_EOF);
    assert_false(resp.keep_alive);
}

static void test_http1_response_status_line_without_reason_accepted(void **state)
{
    assert_true(parse_resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.reason.len, 0);
    assert_true(parse_resp("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.status, 404);
    assert_int_equal(resp.reason.len, 0);
}

static void test_http1_response_keep_alive_by_version_and_connection(void **state)
{
    assert_true(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", METHOD_GET, &resp) > 0);
    assert_int_equal(resp.minor, 0);
    assert_false(resp.keep_alive);
    assert_true(parse_resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                           METHOD_GET, &resp) > 0);
    assert_true(resp.keep_alive);
    assert_true(parse_resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                           METHOD_GET, &resp) > 0);
    assert_false(resp.keep_alive);
    assert_int_equal(resp.conn_flags, HTTP_CONN_CLOSE);
}

static void test_http1_response_2xx_to_connect_rejected(void **state)
{
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\n\r\n", METHOD_CONNECT, &resp),
                     HTTP1_BAD_RESPONSE);
}

static void test_http1_response_repeated_content_length_rejected(void **state)
{
    /* Even the same value twice: nginx refuses it too, and it signals a broken upstream. */
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                                METHOD_GET, &resp),
                     HTTP1_BAD_RESPONSE);
}

static void test_http1_response_other_versions_rejected(void **state)
{
    assert_int_equal(parse_resp("HTTP/2.0 200 OK\r\n\r\n", METHOD_GET, &resp), HTTP1_BAD_RESPONSE);
    assert_int_equal(parse_resp("HTTP/1.2 200 OK\r\n\r\n", METHOD_GET, &resp), HTTP1_BAD_RESPONSE);
}

static void test_http1_response_header_strictness(void **state)
{
    const char *bad[] = {
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: v\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 099 Odd\r\n\r\n",
        "HTTP/1.1 600 Odd\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_resp(bad[i], METHOD_GET, &resp), HTTP1_BAD_RESPONSE);
}

static void test_http1_response_header_count_over_limit_rejected(void **state)
{
    static char s[8192];
    size_t n = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < LIMIT_HEADERS_COUNT + 1; i++)
        n += (size_t)sprintf(s + n, "X-%d: y\r\n", i);
    strcpy(s + n, "\r\n");
    assert_int_equal(parse_resp(s, METHOD_GET, &resp), HTTP1_BAD_RESPONSE);
}

static void test_http1_slice_eq_and_find_header(void **state)
{
    assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nx-one: 2\r\n\r\n", &req) > 0);
    const struct http_header *h = http_find_header(req.headers, req.nheaders, "X-ONE");
    assert_non_null(h);
    assert_true(http_slice_eq(h->value, "1"));
    assert_null(http_find_header(req.headers, req.nheaders, "X-Two"));
    struct http_slice s = {"Abc", 3};
    assert_true(http_slice_eq(s, "aBC"));
    assert_false(http_slice_eq(s, "ab"));
    assert_false(http_slice_eq(s, "abcd"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_simple_get_parses),
        cmocka_unit_test(test_http1_head_end_found_incrementally),
        cmocka_unit_test(test_http1_request_line_too_long_is_414),
        cmocka_unit_test(test_http1_headers_too_large_is_431),
        cmocka_unit_test(test_http1_too_many_headers_is_431),
        cmocka_unit_test(test_http1_cl_and_te_rejected),
        cmocka_unit_test(test_http1_repeated_content_length_rejected),
        cmocka_unit_test(test_http1_non_numeric_content_length_rejected),
        cmocka_unit_test(test_http1_content_length_with_surrounding_ows_accepted),
        cmocka_unit_test(test_http1_refusals_name_the_rule),
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
        cmocka_unit_test(test_http1_malformed_responses_rejected),
        cmocka_unit_test(test_http1_head_end_bytes_after_are_not_part_of_head),
        cmocka_unit_test(test_http1_head_end_found_for_bare_lf_so_parse_refuses),
        cmocka_unit_test(test_http1_request_line_at_limit_accepted),
        cmocka_unit_test(test_http1_complete_head_over_limit_is_431),
        cmocka_unit_test(test_http1_header_count_at_limit_accepted),
        cmocka_unit_test(test_http1_content_length_list_rejected),
        cmocka_unit_test(test_http1_content_length_overflow_rejected),
        cmocka_unit_test(test_http1_content_length_zero_is_length_framing),
        cmocka_unit_test(test_http1_cl_zero_with_te_rejected),
        cmocka_unit_test(test_http1_chunked_listed_twice_in_one_field_rejected),
        cmocka_unit_test(test_http1_te_unknown_coding_before_chunked_is_501),
        cmocka_unit_test(test_http1_te_chunked_then_identity_rejected),
        cmocka_unit_test(test_http1_te_empty_or_garbage_rejected),
        cmocka_unit_test(test_http1_empty_field_name_rejected),
        cmocka_unit_test(test_http1_non_token_field_name_rejected),
        cmocka_unit_test(test_http1_bare_cr_rejected),
        cmocka_unit_test(test_http1_control_bytes_in_target_rejected),
        cmocka_unit_test(test_http1_relative_target_rejected),
        cmocka_unit_test(test_http1_leading_empty_line_rejected),
        cmocka_unit_test(test_http1_lowercase_method_is_501),
        cmocka_unit_test(test_http1_lowercase_version_rejected),
        cmocka_unit_test(test_http1_known_methods_parse),
        cmocka_unit_test(test_http1_host_with_space_or_comma_rejected),
        cmocka_unit_test(test_http1_host_with_port_and_ipv6_accepted),
        cmocka_unit_test(test_http1_absolute_form_still_needs_host_in_11),
        cmocka_unit_test(test_http1_absolute_form_without_path_keeps_query),
        cmocka_unit_test(test_http1_asterisk_path_is_slash),
        cmocka_unit_test(test_http1_header_values_trimmed),
        cmocka_unit_test(test_http1_obs_text_in_value_accepted),
        cmocka_unit_test(test_http1_connection_tokens_from_all_fields),
        cmocka_unit_test(test_http1_http10_close_beats_keep_alive),
        cmocka_unit_test(test_http1_upgrade_needs_connection_token),
        cmocka_unit_test(test_http1_expect_other_than_continue_ignored),
        cmocka_unit_test(test_http1_response_content_length_framing),
        cmocka_unit_test(test_http1_response_to_head_has_no_body),
        cmocka_unit_test(test_http1_response_204_and_304_have_no_body),
        cmocka_unit_test(test_http1_response_1xx_has_no_body),
        cmocka_unit_test(test_http1_response_101_parses_without_body),
        cmocka_unit_test(test_http1_response_chunked_framing),
        cmocka_unit_test(test_http1_response_without_length_runs_to_eof),
        cmocka_unit_test(test_http1_response_status_line_without_reason_accepted),
        cmocka_unit_test(test_http1_response_keep_alive_by_version_and_connection),
        cmocka_unit_test(test_http1_response_2xx_to_connect_rejected),
        cmocka_unit_test(test_http1_response_repeated_content_length_rejected),
        cmocka_unit_test(test_http1_response_other_versions_rejected),
        cmocka_unit_test(test_http1_response_header_strictness),
        cmocka_unit_test(test_http1_response_header_count_over_limit_rejected),
        cmocka_unit_test(test_http1_slice_eq_and_find_header),
        cmocka_unit_test(test_http1_header_storage_grows_to_the_limit_only),
        cmocka_unit_test(test_http1_response_header_storage_grows_to_the_limit_only),
        cmocka_unit_test(test_http1_header_name_bytes_are_exactly_tchar),
        cmocka_unit_test(test_http1_head_end_found_across_any_split),
    };
    return cmocka_run_group_tests_name("http1", tests, NULL, NULL);
}
