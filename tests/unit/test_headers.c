/* test_headers.c - what crosses the proxy in request and response heads. */
#include "unit.h"

#include <stdio.h>

#include "config.h"
#include "decimal.h"
#include "headers.h"

static struct http_request req;
static struct http_response resp;
static char out[8192];

static void parse(const char *s)
{
    size_t scan = 0;
    struct http1_limits lim = {16384, 8192};
    long end = http1_find_head_end(s, strlen(s), &scan, &lim);
    assert_true(end > 0);
    assert_true(http1_parse_request(s, (size_t)end, &req) > 0);
}

static const char *build(const struct request_rewrite *rw)
{
    long n = headers_build_request(&req, rw, out, sizeof out - 1);
    assert_true(n > 0);
    out[n] = '\0';
    return out;
}

static void test_headers_forwarding_set_added(void **state)
{
    parse("GET /x HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 10.0.0.1\r\n"
          "X-Forwarded-For: 10.0.0.2\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
          "Accept: */*\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "127.0.0.1", .proto = "http"};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "GET /x HTTP/1.1\r\n"));
    assert_non_null(strstr(h, "\r\nHost: a.test\r\n"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"));
    assert_non_null(strstr(h, "\r\nX-Real-IP: 127.0.0.1\r\n"));
    assert_null(strstr(h, "6.6.6.6"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Proto: http\r\n"));
    assert_null(strstr(h, "https"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Host: a.test\r\n"));
    assert_non_null(strstr(h, "\r\nAccept: */*\r\n"));
}

static void test_headers_hop_by_hop_and_connection_named_removed(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n"
          "TE: trailers\r\nTrailer: X\r\nProxy-Connection: x\r\nX-Secret: s\r\n"
          "Upgrade: h2c\r\nX-Kept: k\r\nExpect: 100-continue\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_null(strstr(h, "Connection"));
    assert_null(strstr(h, "Keep-Alive"));
    assert_null(strstr(h, "TE:"));
    assert_null(strstr(h, "Trailer"));
    assert_null(strstr(h, "X-Secret"));
    assert_null(strstr(h, "Upgrade"));
    assert_null(strstr(h, "Expect"));
    assert_non_null(strstr(h, "X-Kept: k"));
}

static void test_headers_connection_cannot_remove_portico_headers(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For, X-Real-IP\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "X-Forwarded-For: 1.2.3.4\r\n"));
    assert_non_null(strstr(h, "X-Real-IP: 1.2.3.4\r\n"));
}

static void test_headers_identity_headers_removed(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Tailscale-User: evil\r\nTailscale-User-Login: evil\r\n"
          "Remote-User: evil\r\nremote_groups: evil\r\nX_Tailscale_Caps: evil\r\n"
          "X-Other: ok\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_null(strstr(h, "evil"));
    assert_non_null(strstr(h, "X-Other: ok"));
}

static void test_headers_identity_names_match_with_underscores(void **state)
{
    struct http_slice a = {"REMOTE_USER", 11}, b = {"Remotely", 8}, c = {"X-Tailscale-", 12};
    assert_true(headers_is_identity(a));
    assert_false(headers_is_identity(b));
    assert_true(headers_is_identity(c));
    assert_true(headers_name_alias_eq(a, "remote-user"));
}

static void test_headers_service_headers_replace_client_copies(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Tenant: client\r\n\r\n");
    struct config_header sh[] = {{"X-Tenant", "home"}, {"X-Added", "1"}};
    struct request_rewrite rw = {
        .client_addr = "1.2.3.4", .proto = "http", .service_headers = sh, .nservice_headers = 2};
    const char *h = build(&rw);
    assert_null(strstr(h, "client"));
    assert_non_null(strstr(h, "X-Tenant: home\r\n"));
    assert_non_null(strstr(h, "X-Added: 1\r\n"));
}

static void test_headers_strip_names_and_added_headers(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Auth-User: forged\r\n\r\n");
    const char *strip[] = {"x-auth-user"};
    struct header_set add[] = {{"X-Auth-User", "alice"}};
    struct request_rewrite rw = {.client_addr = "1.2.3.4",
                                 .proto = "http",
                                 .strip_names = strip,
                                 .nstrip_names = 1,
                                 .add = add,
                                 .nadd = 1};
    const char *h = build(&rw);
    assert_null(strstr(h, "forged"));
    assert_non_null(strstr(h, "X-Auth-User: alice\r\n"));
}

static void test_headers_framing_rewritten(void **state)
{
    parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    struct request_rewrite rw = {
        .client_addr = "1.2.3.4", .proto = "http", .body = HTTP_BODY_CHUNKED};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nTransfer-Encoding: chunked\r\n"));
    parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
    rw.body = HTTP_BODY_LENGTH;
    rw.content_length = 12;
    h = build(&rw);
    assert_non_null(strstr(h, "\r\nContent-Length: 12\r\n"));
    assert_null(strstr(h, "Transfer-Encoding"));
}

static void test_headers_absolute_target_becomes_origin_form(void **state)
{
    parse("GET http://b.test/p?q=1 HTTP/1.1\r\nHost: b.test\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    assert_non_null(strstr(build(&rw), "GET /p?q=1 HTTP/1.1\r\n"));
    parse("GET http://b.test HTTP/1.0\r\n\r\n");
    const char *h = build(&rw);
    assert_non_null(strstr(h, "GET / HTTP/1.1\r\n"));
    assert_non_null(strstr(h, "\r\nHost: b.test\r\n"));
}

static void test_headers_upgrade_forwarded_when_asked(void **state)
{
    parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          "Sec-WebSocket-Key: k\r\n\r\n");
    struct request_rewrite rw = {
        .client_addr = "1.2.3.4", .proto = "http", .upgrade = {"websocket", 9}};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(h, "\r\nConnection: upgrade\r\n"));
    assert_non_null(strstr(h, "Sec-WebSocket-Key: k"));
}

static void test_headers_request_too_big_fails(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    assert_int_equal(headers_build_request(&req, &rw, out, 40), -1);
}

/* The lines portico adds count against the limit the client's head met. */
static void test_headers_request_field_lines_counted(void **state)
{
    static char head[8192];
    size_t o = (size_t)snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 93; i++)
        o += (size_t)snprintf(head + o, sizeof head - o, "X-H%d: v\r\n", i);
    snprintf(head + o, sizeof head - o, "\r\n");
    parse(head); /* 94 lines: Host, 93 more */
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    /* + X-Forwarded-For, -Proto, -Host, -Port, X-Real-IP, Forwarded = 100 */
    assert_true(headers_build_request(&req, &rw, out, sizeof out) > 0);
    rw.body = HTTP_BODY_CHUNKED; /* Transfer-Encoding makes 101 */
    assert_int_equal(headers_build_request(&req, &rw, out, sizeof out), HEADERS_TOO_MANY);
    rw.body = HTTP_BODY_NONE;
    rw.max_fields = 99; /* room kept for a provider's line */
    assert_int_equal(headers_build_request(&req, &rw, out, sizeof out), HEADERS_TOO_MANY);
}

static const char *build_resp(const char *s, int method, const struct response_rewrite *rw)
{
    size_t scan = 0;
    struct http1_limits lim = {32768, 32768};
    long end = http1_find_head_end(s, strlen(s), &scan, &lim);
    assert_true(end > 0);
    assert_true(http1_parse_response(s, (size_t)end, method, &resp) > 0);
    long n = headers_build_response(&resp, rw, out, sizeof out - 1);
    assert_true(n > 0);
    out[n] = '\0';
    return out;
}

/* The response head built from in (with value put in at %s) contains want
 * (with value put in too). */
static void expect_built(const char *in, const char *want, const char *value, enum http_body body)
{
    char head[128], line[64];
    struct response_rewrite rw = {.client_minor = 1, .body = body};
    snprintf(head, sizeof head, in, value);
    snprintf(line, sizeof line, want, value);
    assert_non_null(strstr(build_resp(head, METHOD_GET, &rw), line));
}

/* The status line and Content-Length toward the client, written without
 * printf: every status the parser lets through keeps its three digits, and
 * lengths from 0 to the largest the parser accepts come out in full. */
/* The formatter behind Content-Length, the log's numbers and LISTEN_PID:
 * what "%llu" writes, from 0 to UINT64_MAX. */
static void test_decimal_format_u64_matches_printf(void **state)
{
    const uint64_t vs[] = {0,         9, 10, 99, 100, 65535, 4294967296ull, 9999999999999999999ull,
                           UINT64_MAX};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char got[DECIMAL_U64_DIGITS + 1], want[24];
        size_t n = decimal_format_u64(got, vs[i]);
        got[n] = '\0';
        snprintf(want, sizeof want, "%llu", (unsigned long long)vs[i]);
        assert_string_equal(got, want);
        assert_true(n <= DECIMAL_U64_DIGITS);
    }
}

static void test_headers_response_status_and_length_digits(void **state)
{
    static const char *const lines[] = {"100 Continue",     "200 OK",        "204 No Content",
                                        "304 Not Modified", "404 Not Found", "599 Odd"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        expect_built("HTTP/1.1 %s\r\nX-A: b\r\n\r\n", "HTTP/1.1 %s\r\nX-A: b\r\n", lines[i],
                     HTTP_BODY_NONE);
    static const char *const lengths[] = {
        "0", "7", "10", "65536", "1099511627776", "9223372036854775807"};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
        expect_built("HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n",
                     "\r\nContent-Length: %s\r\n\r\n", lengths[i], HTTP_BODY_LENGTH);
}

static void test_headers_response_hop_by_hop_removed(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_CHUNKED};
    const char *h = build_resp("HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\n"
                               "Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n"
                               "Trailer: X-T\r\nX-App: y\r\n\r\n",
                               1, &rw);
    assert_non_null(strstr(h, "HTTP/1.1 200 OK\r\n"));
    assert_null(strstr(h, "X-Internal"));
    assert_null(strstr(h, "Keep-Alive"));
    assert_null(strstr(h, "Trailer"));
    assert_non_null(strstr(h, "X-App: y\r\n"));
    assert_non_null(strstr(h, "Transfer-Encoding: chunked\r\n"));
}

static void test_headers_response_framing_for_http10_client(void **state)
{
    struct response_rewrite rw = {.client_minor = 0, .body = HTTP_BODY_EOF, .close = true};
    const char *h = build_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, &rw);
    assert_null(strstr(h, "Transfer-Encoding"));
    assert_null(strstr(h, "Content-Length"));
    assert_non_null(strstr(h, "Connection: close\r\n"));
    struct response_rewrite ka = {.client_minor = 0, .body = HTTP_BODY_LENGTH};
    h = build_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 1, &ka);
    assert_non_null(strstr(h, "Content-Length: 3\r\n"));
    assert_non_null(strstr(h, "Connection: keep-alive\r\n"));
}

static void test_headers_head_response_keeps_content_length(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_NONE};
    const char *h = build_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 2 /* HEAD */, &rw);
    assert_non_null(strstr(h, "Content-Length: 99\r\n"));
}

static void test_headers_response_upgrade_kept(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_NONE, .upgrade = true};
    const char *h = build_resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                               "Upgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n",
                               1, &rw);
    assert_non_null(strstr(h, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(h, "Upgrade: websocket\r\n"));
    assert_non_null(strstr(h, "Connection: upgrade\r\n"));
    assert_non_null(strstr(h, "Sec-WebSocket-Accept: x\r\n"));
}

static void test_headers_host_comes_first_and_once(void **state)
{
    parse("GET /p HTTP/1.1\r\nAccept: */*\r\nHost: a.test\r\nX: y\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_memory_equal(h, "GET /p HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nX: y\r\n", 50);
    assert_null(strstr(strstr(h, "Host:") + 1, "\nHost:"));
}

static void test_headers_absolute_form_authority_beats_host_field(void **state)
{
    parse("GET http://b.test/p HTTP/1.1\r\nHost: other.test\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nHost: b.test\r\n"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Host: b.test\r\n"));
    assert_null(strstr(h, "other.test"));
}

static void test_headers_http10_without_host_gets_empty_host(void **state)
{
    parse("GET / HTTP/1.0\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "GET / HTTP/1.1\r\nHost: \r\n"));
    assert_null(strstr(h, "X-Forwarded-Host"));
}

static void test_headers_rewrite_target_used_when_given(void **state)
{
    parse("GET /api/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    struct request_rewrite rw = {
        .client_addr = "1.2.3.4", .proto = "https", .target = {"/x?q=1", 6}};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "GET /x?q=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Proto: https\r\n"));
}

static void test_headers_asterisk_target_forwarded(void **state)
{
    parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    assert_non_null(strstr(build(&rw), "OPTIONS * HTTP/1.1\r\n"));
}

static void test_headers_absolute_target_with_query_only_gets_slash(void **state)
{
    parse("GET http://b.test?x=1 HTTP/1.1\r\nHost: b.test\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    assert_non_null(strstr(build(&rw), "GET /?x=1 HTTP/1.1\r\n"));
}

static void test_headers_underscore_spoofs_of_portico_headers_removed(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nX_Real_IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n"
          "x-forwarded_proto: evil\r\nX_Forwarded_Host: evil\r\nContent_Length: 5\r\n"
          "Transfer_Encoding: chunked\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_null(strstr(h, "6.6.6.6"));
    assert_null(strstr(h, "evil"));
    assert_null(strstr(h, "Content_Length"));
    assert_null(strstr(h, "Transfer_Encoding"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-For: 1.2.3.4\r\n"));
}

static void test_headers_empty_client_xff_not_joined(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For:\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "unix:", .proto = "http"};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nX-Forwarded-For: 9.9.9.9, unix:\r\n"));
    assert_non_null(strstr(h, "\r\nX-Real-IP: unix:\r\n"));
}

static void test_headers_connection_cannot_remove_host(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: host, x_drop\r\nX-Drop: 1\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nHost: a\r\n"));
    assert_null(strstr(h, "X-Drop"));
}

static void test_headers_connection_cannot_remove_service_or_added_headers(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Tenant, X-User\r\n\r\n");
    struct config_header sh[] = {{"X-Tenant", "home"}};
    struct header_set add[] = {{"X-User", "alice"}};
    struct request_rewrite rw = {.client_addr = "1.2.3.4",
                                 .proto = "http",
                                 .service_headers = sh,
                                 .nservice_headers = 1,
                                 .add = add,
                                 .nadd = 1};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nX-Tenant: home\r\n"));
    assert_non_null(strstr(h, "\r\nX-User: alice\r\n"));
}

static void test_headers_service_headers_replace_underscore_variants(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\nx_tenant: client\r\n\r\n");
    struct config_header sh[] = {{"X-Tenant", "home"}};
    struct request_rewrite rw = {
        .client_addr = "1.2.3.4", .proto = "http", .service_headers = sh, .nservice_headers = 1};
    const char *h = build(&rw);
    assert_null(strstr(h, "client"));
    assert_non_null(strstr(h, "X-Tenant: home\r\n"));
}

static void test_headers_no_body_means_no_framing_headers(void **state)
{
    parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http", .body = HTTP_BODY_NONE};
    const char *h = build(&rw);
    assert_null(strstr(h, "Content-Length"));
    assert_null(strstr(h, "Transfer-Encoding"));
    assert_null(strstr(h, "Connection"));
    assert_int_equal(strcmp(h + strlen(h) - 4, "\r\n\r\n"), 0);
}

static void test_headers_chunked_client_body_framed_once(void **state)
{
    parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n");
    struct request_rewrite rw = {
        .client_addr = "1.2.3.4", .proto = "http", .body = HTTP_BODY_CHUNKED};
    const char *h = build(&rw);
    const char *te = strstr(h, "Transfer-Encoding: chunked\r\n");
    assert_non_null(te);
    assert_null(strstr(te + 1, "Transfer-Encoding"));
    assert_null(strstr(h, "TE: trailers"));
}

static void test_headers_content_length_zero_kept(void **state)
{
    parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4",
                                 .proto = "http",
                                 .body = req.body,
                                 .content_length = req.content_length};
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nContent-Length: 0\r\n"));
}

static void test_headers_upgrade_not_forwarded_unless_asked(void **state)
{
    parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "http"};
    const char *h = build(&rw);
    assert_null(strstr(h, "Upgrade"));
    assert_null(strstr(h, "upgrade"));
}

static size_t filter(const char *offered, const char *const *allow, size_t n, char *dst)
{
    size_t len =
        headers_filter_upgrade((struct http_slice){offered, strlen(offered)}, allow, n, dst, 64);
    dst[len] = '\0';
    return len;
}

static void test_headers_upgrade_filtered_to_allowed_protocols(void **state)
{
    static const char *const ws[] = {"websocket"};
    static const char *const two[] = {"websocket", "foo"};
    char got[80];
    assert_int_equal(filter("websocket", ws, 1, got), 9);
    assert_string_equal(got, "websocket");
    assert_int_equal(filter("WebSocket/13", ws, 1, got), 12); /* names are case-insensitive */
    assert_string_equal(got, "WebSocket/13");
    assert_int_equal(filter("h2c", ws, 1, got), 0);
    assert_int_equal(filter("h2c, websocket", ws, 1, got), 9);
    assert_string_equal(got, "websocket");
    assert_int_equal(filter(" foo/2 ,, h2c,websocket ", two, 2, got), 16);
    assert_string_equal(got, "foo/2, websocket");
    assert_int_equal(filter("websocketx, web, , ", ws, 1, got), 0); /* whole names only */
    assert_int_equal(filter("", ws, 1, got), 0);
    assert_int_equal(filter("websocket", ws, 0, got), 0);

    struct http_slice v = {"websocket", 9};
    assert_true(headers_upgrade_allowed(v, ws, 1));
    v = (struct http_slice){"h2c", 3};
    assert_false(headers_upgrade_allowed(v, ws, 1));
    v = (struct http_slice){"websocket, h2c", 14};
    assert_false(headers_upgrade_allowed(v, two, 2));
    v = (struct http_slice){" , ", 3};
    assert_false(headers_upgrade_allowed(v, ws, 1));
}

static void test_headers_hop_by_hop_names(void **state)
{
    const char *yes[] = {"Connection", "keep-alive",        "PROXY-CONNECTION", "te",
                         "Trailer",    "transfer-encoding", "Upgrade",          "Keep_Alive"};
    const char *no[] = {"Trailers", "Host", "Content-Length", "X-Connection", "tea"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(headers_is_hop_by_hop((struct http_slice){yes[i], strlen(yes[i])}));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(headers_is_hop_by_hop((struct http_slice){no[i], strlen(no[i])}));
}

static void test_headers_identity_prefixes(void **state)
{
    const char *yes[] = {"X-Tailscale-User",
                         "x_tailscale_login",
                         "Tailscale-User-Name",
                         "TAILSCALE_USER_PROFILE_PIC",
                         "Remote-Email",
                         "remote_name",
                         "Tailscale-Headers-Info",
                         "Tailscale-App-Capabilities",
                         "tailscale_funnel_request"};
    const char *no[] = {"X-Tailscale", "Tailscale", "Remote", "X-Remote-User", "Tailscalex-User"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(headers_is_identity((struct http_slice){yes[i], strlen(yes[i])}));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(headers_is_identity((struct http_slice){no[i], strlen(no[i])}));
}

static void test_headers_alias_eq_is_exact_length(void **state)
{
    struct http_slice a = {"X-Foo", 5};
    assert_true(headers_name_alias_eq(a, "x_foo"));
    assert_false(headers_name_alias_eq(a, "x-fo"));
    assert_false(headers_name_alias_eq(a, "x-foox"));
    assert_false(headers_name_alias_eq(a, "x.foo"));
}

static void test_headers_response_reason_defaulted_when_empty(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_LENGTH};
    const char *h = build_resp("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 1, &rw);
    assert_non_null(strstr(h, "HTTP/1.1 404 Not Found\r\n"));
    h = build_resp("HTTP/1.0 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n", 1, &rw);
    assert_non_null(strstr(h, "HTTP/1.1 200 Fine Thanks\r\n"));
}

static void test_headers_response_length_reframed_from_parsed_value(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_LENGTH};
    const char *h = build_resp("HTTP/1.1 200 OK\r\nContent-Length: 0012\r\nX: y\r\n\r\n", 1, &rw);
    assert_non_null(strstr(h, "\r\nContent-Length: 12\r\n"));
    assert_null(strstr(h, "0012"));
}

static void test_headers_response_204_never_gets_content_length(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_NONE};
    const char *h = build_resp("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 1, &rw);
    assert_null(strstr(h, "Content-Length"));
}

static void test_headers_response_304_keeps_content_length(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_NONE};
    const char *h =
        build_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: \"x\"\r\n\r\n", 1, &rw);
    assert_non_null(strstr(h, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(h, "\r\nETag: \"x\"\r\n"));
}

static void test_headers_response_eof_body_has_no_framing(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_EOF, .close = true};
    const char *h = build_resp("HTTP/1.1 200 OK\r\nConnection: close\r\nX: y\r\n\r\n", 1, &rw);
    assert_null(strstr(h, "Content-Length"));
    assert_null(strstr(h, "Transfer-Encoding"));
    const char *c = strstr(h, "Connection: close\r\n");
    assert_non_null(c);
    assert_null(strstr(c + 1, "Connection"));
}

static void test_headers_response_keep_alive_silent_for_http11_client(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_LENGTH};
    const char *h = build_resp(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 1, &rw);
    assert_null(strstr(h, "Connection"));
}

static void test_headers_response_upgrade_dropped_when_not_upgrading(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_LENGTH};
    const char *h = build_resp("HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                               "Content-Length: 1\r\n\r\n",
                               1, &rw);
    assert_null(strstr(h, "Upgrade"));
    assert_null(strstr(h, "upgrade"));
}

static void test_headers_response_too_big_fails(void **state)
{
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_LENGTH};
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Long: 01234567890123456789\r\n\r\n";
    size_t scan = 0;
    struct http1_limits lim = {32768, 32768};
    long end = http1_find_head_end(s, strlen(s), &scan, &lim);
    assert_true(http1_parse_response(s, (size_t)end, 1, &resp) > 0);
    assert_int_equal(headers_build_response(&resp, &rw, out, 30), -1);
    long full = headers_build_response(&resp, &rw, out, sizeof out);
    assert_true(full > 0);
    assert_int_equal(headers_build_response(&resp, &rw, out, (size_t)full), full);
    assert_int_equal(headers_build_response(&resp, &rw, out, (size_t)full - 1), -1);
}

static void test_headers_client_forwarded_port_prefix_replaced(void **state)
{
    parse("GET /x HTTP/1.1\r\nHost: a.test\r\nForwarded: for=6.6.6.6;host=evil;proto=https\r\n"
          "X-Forwarded-Port: 6666\r\nX-Forwarded-Prefix: /evil\r\nforwarded: for=7.7.7.7\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "127.0.0.1", .proto = "http"};
    const char *h = build(&rw);
    assert_null(strstr(h, "6.6.6.6"));
    assert_null(strstr(h, "7.7.7.7"));
    assert_null(strstr(h, "evil"));
    assert_null(strstr(h, "6666"));
    assert_non_null(strstr(h, "\r\nForwarded: for=127.0.0.1;host=\"a.test\";proto=http\r\n"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Port: 80\r\n"));
    assert_null(strstr(h, "X-Forwarded-Prefix"));
}

static void test_headers_forwarded_quotes_ipv6_and_port_from_host(void **state)
{
    parse("GET /x HTTP/1.1\r\nHost: A.test:8443\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "2001:db8::1", .proto = "https"};
    const char *h = build(&rw);
    assert_non_null(
        strstr(h, "\r\nForwarded: for=\"[2001:db8::1]\";host=\"A.test:8443\";proto=https\r\n"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Port: 8443\r\n"));
    parse("GET /x HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    rw.client_addr = "unix:";
    h = build(&rw);
    assert_non_null(strstr(h, "\r\nForwarded: for=unknown;host=\"[::1]\";proto=https\r\n"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Port: 443\r\n"));
}

static void test_headers_host_override_keeps_forwarded_host(void **state)
{
    parse("GET /x HTTP/1.1\r\nHost: jupyter.example.com\r\n\r\n");
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "https"};
    rw.host.p = "127.0.0.1:8888";
    rw.host.len = strlen(rw.host.p);
    rw.prefix.p = "/api";
    rw.prefix.len = 4;
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nHost: 127.0.0.1:8888\r\n"));
    assert_null(strstr(h, "\r\nHost: jupyter"));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Host: jupyter.example.com\r\n"));
    assert_non_null(strstr(h, "host=\"jupyter.example.com\""));
    assert_non_null(strstr(h, "\r\nX-Forwarded-Prefix: /api\r\n"));
}

static void test_headers_host_override_rewrites_same_origin_only(void **state)
{
    struct request_rewrite rw = {.client_addr = "1.2.3.4", .proto = "https"};
    rw.host.p = "127.0.0.1:8888";
    rw.host.len = strlen(rw.host.p);
    rw.origin.p = "http://127.0.0.1:8888";
    rw.origin.len = strlen(rw.origin.p);
    /* The page's own origin (any case): the app's address, once. */
    parse("POST /api/sessions HTTP/1.1\r\nHost: nb.example.com\r\n"
          "Origin: HTTPS://NB.example.com\r\nContent-Length: 0\r\n\r\n");
    const char *h = build(&rw);
    assert_non_null(strstr(h, "\r\nOrigin: http://127.0.0.1:8888\r\n"));
    assert_null(strstr(h, "Origin: HTTPS://NB"));
    /* Another site, another scheme or port, "null", a longer name: as sent. */
    static const char *const keep[] = {"https://evil.example", "http://nb.example.com",
                                       "https://nb.example.com:8443", "null",
                                       "https://nb.example.com.evil.example"};
    char head[256];
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: nb.example.com\r\nOrigin: %s\r\n\r\n",
                 keep[i]);
        parse(head);
        h = build(&rw);
        char want[128];
        snprintf(want, sizeof want, "\r\nOrigin: %s\r\n", keep[i]);
        assert_non_null(strstr(h, want));
    }
    /* Without a Host override (origin unset) the Origin is never touched. */
    parse("GET / HTTP/1.1\r\nHost: nb.example.com\r\nOrigin: https://nb.example.com\r\n\r\n");
    struct request_rewrite plain = {.client_addr = "1.2.3.4", .proto = "https"};
    h = build(&plain);
    assert_non_null(strstr(h, "\r\nOrigin: https://nb.example.com\r\n"));
}

static const char *rewrite(const char *value, bool refresh, const struct redirect_rewrite *rr)
{
    static char buf[512];
    struct http_slice v = {value, strlen(value)};
    long n = headers_rewrite_redirect(v, refresh, rr, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    return n ? buf : NULL;
}

static void test_headers_redirect_to_upstream_rewritten(void **state)
{
    static const char *const from[] = {"http://127.0.0.1:3000", "http://localhost:3000"};
    struct redirect_rewrite rr = {from, 2, "https", {"app.example.com", 15}, {"", 0}};
    assert_string_equal(rewrite("http://127.0.0.1:3000/login?next=/x", false, &rr),
                        "https://app.example.com/login?next=/x");
    assert_string_equal(rewrite("HTTP://LOCALHOST:3000", false, &rr), "https://app.example.com");
    assert_string_equal(rewrite("http://127.0.0.1:3000#top", false, &rr),
                        "https://app.example.com#top");
    /* Elsewhere, another port, a longer host, relative: untouched. */
    assert_null(rewrite("https://accounts.example.org/x", false, &rr));
    assert_null(rewrite("http://127.0.0.1:30000/x", false, &rr));
    assert_null(rewrite("http://127.0.0.1:3000.evil.com/x", false, &rr));
    assert_null(rewrite("/login", false, &rr));
    /* Refresh: only the URL part changes, quoted or not. */
    assert_string_equal(rewrite("5; url=http://127.0.0.1:3000/next", true, &rr),
                        "5; url=https://app.example.com/next");
    assert_string_equal(rewrite("0;URL='http://localhost:3000/a' ", true, &rr),
                        "0;URL='https://app.example.com/a' ");
    assert_null(rewrite("5", true, &rr));
    assert_null(rewrite("5; url=/relative", true, &rr));
}

static void test_headers_redirect_gets_stripped_prefix_back(void **state)
{
    static const char *const from[] = {"http://127.0.0.1:3001"};
    struct redirect_rewrite rr = {from, 1, "http", {"a.test:8080", 11}, {"/api", 4}};
    assert_string_equal(rewrite("http://127.0.0.1:3001/v1/x", false, &rr),
                        "http://a.test:8080/api/v1/x");
    assert_string_equal(rewrite("http://127.0.0.1:3001", false, &rr), "http://a.test:8080/api/");
    assert_string_equal(rewrite("http://127.0.0.1:3001?q=1", false, &rr),
                        "http://a.test:8080/api/?q=1");
}

static void test_headers_response_location_rewritten_only_when_asked(void **state)
{
    static const char *const from[] = {"http://10.0.0.5:8080"};
    struct redirect_rewrite rr = {from, 1, "https", {"app.test", 8}, {"", 0}};
    struct response_rewrite rw = {.client_minor = 1, .body = HTTP_BODY_LENGTH};
    const char *resp_text = "HTTP/1.1 302 Found\r\nLocation: http://10.0.0.5:8080/home\r\n"
                            "Refresh: 1; url=http://10.0.0.5:8080/r\r\nContent-Length: 0\r\n\r\n";
    const char *h = build_resp(resp_text, 1, &rw);
    assert_non_null(strstr(h, "\r\nLocation: http://10.0.0.5:8080/home\r\n"));
    rw.redirect = &rr;
    h = build_resp(resp_text, 1, &rw);
    assert_non_null(strstr(h, "\r\nLocation: https://app.test/home\r\n"));
    assert_non_null(strstr(h, "\r\nRefresh: 1; url=https://app.test/r\r\n"));
    assert_null(strstr(h, "10.0.0.5"));
}

static void test_headers_status_reasons(void **state)
{
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(504), "Gateway Timeout");
    assert_string_equal(http_status_reason(599), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_forwarding_set_added),
        cmocka_unit_test(test_headers_hop_by_hop_and_connection_named_removed),
        cmocka_unit_test(test_headers_connection_cannot_remove_portico_headers),
        cmocka_unit_test(test_headers_identity_headers_removed),
        cmocka_unit_test(test_headers_identity_names_match_with_underscores),
        cmocka_unit_test(test_headers_service_headers_replace_client_copies),
        cmocka_unit_test(test_headers_strip_names_and_added_headers),
        cmocka_unit_test(test_headers_framing_rewritten),
        cmocka_unit_test(test_headers_absolute_target_becomes_origin_form),
        cmocka_unit_test(test_headers_upgrade_forwarded_when_asked),
        cmocka_unit_test(test_headers_request_too_big_fails),
        cmocka_unit_test(test_headers_request_field_lines_counted),
        cmocka_unit_test(test_headers_response_hop_by_hop_removed),
        cmocka_unit_test(test_decimal_format_u64_matches_printf),
        cmocka_unit_test(test_headers_response_status_and_length_digits),
        cmocka_unit_test(test_headers_response_framing_for_http10_client),
        cmocka_unit_test(test_headers_head_response_keeps_content_length),
        cmocka_unit_test(test_headers_response_upgrade_kept),
        cmocka_unit_test(test_headers_host_comes_first_and_once),
        cmocka_unit_test(test_headers_absolute_form_authority_beats_host_field),
        cmocka_unit_test(test_headers_http10_without_host_gets_empty_host),
        cmocka_unit_test(test_headers_rewrite_target_used_when_given),
        cmocka_unit_test(test_headers_asterisk_target_forwarded),
        cmocka_unit_test(test_headers_absolute_target_with_query_only_gets_slash),
        cmocka_unit_test(test_headers_underscore_spoofs_of_portico_headers_removed),
        cmocka_unit_test(test_headers_empty_client_xff_not_joined),
        cmocka_unit_test(test_headers_connection_cannot_remove_host),
        cmocka_unit_test(test_headers_connection_cannot_remove_service_or_added_headers),
        cmocka_unit_test(test_headers_service_headers_replace_underscore_variants),
        cmocka_unit_test(test_headers_no_body_means_no_framing_headers),
        cmocka_unit_test(test_headers_chunked_client_body_framed_once),
        cmocka_unit_test(test_headers_content_length_zero_kept),
        cmocka_unit_test(test_headers_upgrade_not_forwarded_unless_asked),
        cmocka_unit_test(test_headers_upgrade_filtered_to_allowed_protocols),
        cmocka_unit_test(test_headers_hop_by_hop_names),
        cmocka_unit_test(test_headers_identity_prefixes),
        cmocka_unit_test(test_headers_status_reasons),
        cmocka_unit_test(test_headers_alias_eq_is_exact_length),
        cmocka_unit_test(test_headers_response_reason_defaulted_when_empty),
        cmocka_unit_test(test_headers_response_length_reframed_from_parsed_value),
        cmocka_unit_test(test_headers_response_204_never_gets_content_length),
        cmocka_unit_test(test_headers_response_304_keeps_content_length),
        cmocka_unit_test(test_headers_response_eof_body_has_no_framing),
        cmocka_unit_test(test_headers_response_keep_alive_silent_for_http11_client),
        cmocka_unit_test(test_headers_response_upgrade_dropped_when_not_upgrading),
        cmocka_unit_test(test_headers_response_too_big_fails),
        cmocka_unit_test(test_headers_client_forwarded_port_prefix_replaced),
        cmocka_unit_test(test_headers_forwarded_quotes_ipv6_and_port_from_host),
        cmocka_unit_test(test_headers_host_override_keeps_forwarded_host),
        cmocka_unit_test(test_headers_host_override_rewrites_same_origin_only),
        cmocka_unit_test(test_headers_redirect_to_upstream_rewritten),
        cmocka_unit_test(test_headers_redirect_gets_stripped_prefix_back),
        cmocka_unit_test(test_headers_response_location_rewritten_only_when_asked),
    };
    return cmocka_run_group_tests_name("headers", tests, NULL, NULL);
}
