/* test_auth.c - forward auth: the subrequest, the verdicts, auth_skip, the cache. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "config.h"

static char *copy[] = {"Remote-User", "Remote-Groups", "Remote-Email"};
static struct config_auth fwd = {
    .name = "authelia",
    .style = AUTH_FORWARD,
    .path = "/api/authz/forward-auth",
    .host = "127.0.0.1:9091",
    .copy_headers = copy,
    .ncopy = 3,
};
static struct config_auth req_style = {
    .name = "authelia",
    .style = AUTH_REQUEST,
    .path = "/api/authz/auth-request",
    .host = "auth:9091",
    .copy_headers = copy,
    .ncopy = 3,
};

static char buf[65536], out[65536];
static struct http_request rq;
static struct http_response rs;

static void parse_req(const char *head)
{
    snprintf(buf, sizeof buf, "%s", head);
    assert_true(http1_parse_request(buf, strlen(buf), &rq) > 0);
}

static struct auth_target target(void)
{
    return (struct auth_target){.method = "POST",
                                .proto = "https",
                                .host = "app.example.com",
                                .port = 443,
                                .uri = {"/a?b=1", 6},
                                .client = "203.0.113.5"};
}

static void test_auth_request_carries_target_and_credentials_only(void **state)
{
    parse_req("POST /a?b=1 HTTP/1.1\r\nHost: App.Example.com\r\nCookie: s=1\r\n"
              "Authorization: Basic eDp5\r\nAccept: text/html\r\nX-Forwarded-Host: evil\r\n"
              "X-Forwarded-For: 169.254.1.2\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
              "X-Requested-With: XMLHttpRequest\r\nForwarded: for=1.1.1.1\r\n\r\n");
    struct auth_target t = target();
    long n = auth_build_request(&fwd, &rq, &t, out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "GET /api/authz/forward-auth HTTP/1.1\r\nHost: 127.0.0.1:9091\r\n"
                             "Cookie: s=1\r\nAuthorization: Basic eDp5\r\nAccept: text/html\r\n"
                             "X-Requested-With: XMLHttpRequest\r\n"
                             "X-Forwarded-Method: POST\r\nX-Forwarded-Proto: https\r\n"
                             "X-Forwarded-Host: app.example.com\r\nX-Forwarded-Uri: /a?b=1\r\n"
                             "X-Forwarded-For: 203.0.113.5\r\n\r\n");
    t.port = 8443;
    n = auth_build_request(&req_style, &rq, &t, out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "X-Original-Method: POST\r\n"
                                "X-Original-URL: https://app.example.com:8443/a?b=1\r\n"));
    assert_non_null(strstr(out, "X-Forwarded-Host: app.example.com:8443\r\n"));
    assert_int_equal(auth_build_request(&fwd, &rq, &t, out, 100), -1);
}

static void judge(const struct config_auth *a, const char *resp, bool head, struct auth_verdict *v,
                  size_t *outlen)
{
    snprintf(buf, sizeof buf, "%s", resp);
    const char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    long hl = http1_parse_response(buf, (size_t)(end + 4 - buf), 1 /* GET */, &rs);
    assert_true(hl > 0);
    struct auth_target t = target();
    auth_judge(a, &rs, buf + hl, strlen(buf + hl), &t, head, false, v, out, sizeof out, outlen);
    out[*outlen] = '\0';
}

static void test_auth_2xx_copies_exact_valid_headers(void **state)
{
    static struct auth_verdict v;
    size_t n;
    judge(&fwd,
          "HTTP/1.1 200 OK\r\nremote_user: alice\r\nRemote-Groups: \r\nRemote-Email: "
          "a@x\r\nRemote-Name: Alice\r\nSet-Cookie: x=1\r\nContent-Length: 2\r\n\r\nOK",
          false, &v, &n);
    assert_int_equal(v.result, AUTH_ALLOWED);
    assert_int_equal(n, 0);
    assert_int_equal(v.ncopy, 2); /* the empty Remote-Groups is dropped, Remote-Name not asked */
    assert_string_equal(v.copy[0].name, "Remote-User");
    assert_string_equal(v.copy[0].value, "alice");
    assert_string_equal(v.copy[1].name, "Remote-Email");
    assert_string_equal(v.user, "alice");
}

static void test_auth_forward_style_relays_denials(void **state)
{
    static struct auth_verdict v;
    size_t n;
    judge(&fwd,
          "HTTP/1.1 302 Found\r\nLocation: https://auth/?rd=x\r\nSet-Cookie: a=1\r\n"
          "Set-Cookie: b=2\r\nX-Other: no\r\nContent-Type: text/html\r\nContent-Length: "
          "4\r\n\r\nbody",
          false, &v, &n);
    assert_int_equal(v.result, AUTH_REDIRECTED);
    assert_int_equal(v.status, 302);
    assert_non_null(strstr(out, "HTTP/1.1 302 Found\r\n"));
    assert_non_null(strstr(out, "Location: https://auth/?rd=x\r\n"));
    assert_non_null(strstr(out, "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"));
    assert_null(strstr(out, "X-Other"));
    assert_non_null(strstr(out, "Content-Length: 4\r\n"));
    assert_true(n > 4 && memcmp(out + n - 4, "body", 4) == 0);
    judge(&fwd, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nbody", true, &v, &n);
    assert_int_equal(v.result, AUTH_DENIED);
    assert_true(memcmp(out + n - 4, "\r\n\r\n", 4) == 0); /* HEAD: no body */
    judge(&fwd, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", false, &v, &n);
    assert_int_equal(v.result, AUTH_DENIED);
    assert_int_equal(v.status, 403);
    judge(&fwd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad", false, &v, &n);
    assert_int_equal(v.status, 403);
    assert_null(strstr(out, "bad"));
}

static void test_auth_request_style_translates(void **state)
{
    static struct auth_verdict v;
    size_t n;
    judge(&req_style, "HTTP/1.1 401 Unauthorized\r\nLocation: https://auth/?rd=x\r\n\r\n", false,
          &v, &n);
    assert_int_equal(v.result, AUTH_REDIRECTED);
    assert_int_equal(v.status, 302);
    assert_non_null(strstr(out, "Location: https://auth/?rd=x\r\n"));
    judge(&req_style,
          "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: "
          "0\r\n\r\n",
          false, &v, &n);
    assert_int_equal(v.status, 401);
    assert_non_null(strstr(out, "WWW-Authenticate: Basic realm=\"r\"\r\n"));
    judge(&req_style, "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", false, &v, &n);
    assert_int_equal(v.result, AUTH_ERROR); /* nginx's auth_request takes no 3xx either */
    static struct config_auth portal;
    portal = req_style;
    portal.portal = "https://login.example.com/";
    judge(&portal, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", false, &v, &n);
    assert_int_equal(v.status, 302);
    assert_non_null(strstr(out, "Location: https://login.example.com/"
                                "?rd=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3D1\r\n"));
}

static void test_auth_other_statuses_are_errors(void **state)
{
    static struct auth_verdict v;
    size_t n;
    const char *bad[] = {"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
                         "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                         "HTTP/1.1 304 Not Modified\r\n\r\n",
                         "HTTP/1.1 407 Proxy\r\nContent-Length: 0\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        judge(&fwd, bad[i], false, &v, &n);
        assert_int_equal(v.result, AUTH_ERROR);
        assert_int_equal(v.status, 502);
    }
}

/* The proxy reuses one verdict per worker: an answer without a (valid)
 * Remote-User must not keep the user of an earlier answer, in a judged or a
 * cached verdict (found by fuzzing). */
static void test_auth_reused_verdict_forgets_earlier_user(void **state)
{
    static struct auth_verdict v;
    size_t n;
    judge(&fwd, "HTTP/1.1 200 OK\r\nRemote-User: alice\r\nContent-Length: 0\r\n\r\n", false, &v,
          &n);
    assert_string_equal(v.user, "alice");
    judge(&fwd,
          "HTTP/1.1 200 OK\r\nRemote-Groups: staff\r\nRemote-User: \r\nContent-Length: "
          "0\r\n\r\n",
          false, &v, &n);
    assert_int_equal(v.result, AUTH_ALLOWED);
    assert_int_equal(v.ncopy, 1);
    assert_null(v.user);
    judge(&fwd, "HTTP/1.1 200 OK\r\nRemote-User: bob\r\nContent-Length: 0\r\n\r\n", false, &v, &n);
    assert_string_equal(v.user, "bob");

    struct auth_cache *c = auth_cache_new();
    assert_non_null(c);
    unsigned char d[AUTH_DIGEST_BYTES] = {1};
    static struct auth_verdict anon = {.result = AUTH_ALLOWED, .status = 200};
    auth_cache_put(c, d, 1000, &anon);
    assert_true(auth_cache_get(c, d, 1, &v));
    assert_null(v.user);
    auth_cache_free(c);
}

/* Browsers refuse a redirect with two Location headers: relay the first. */
static void test_auth_one_location_relayed(void **state)
{
    static struct auth_verdict v;
    size_t n;
    judge(&fwd,
          "HTTP/1.1 302 Found\r\nLocation: https://auth/a\r\nLocation: https://auth/b\r\n"
          "Content-Length: 0\r\n\r\n",
          false, &v, &n);
    assert_int_equal(v.result, AUTH_REDIRECTED);
    assert_non_null(strstr(out, "Location: https://auth/a\r\n"));
    assert_null(strstr(out, "https://auth/b"));
    judge(&req_style,
          "HTTP/1.1 401 Unauthorized\r\nLocation: https://auth/a\r\nLocation: /b\r\n\r\n", false,
          &v, &n);
    assert_int_equal(v.status, 302);
    assert_non_null(strstr(out, "Location: https://auth/a\r\n"));
    assert_null(strstr(out, "Location: /b"));
}

static void test_auth_skip_prefixes(void **state)
{
    char *skips[] = {"/health", "/hooks/", "/"};
    struct config_service svc = {.auth_skip = skips, .nauth_skip = 2};
    assert_true(auth_skipped(&svc, "/health", 7));
    assert_true(auth_skipped(&svc, "/health/x", 9));
    assert_false(auth_skipped(&svc, "/healthz", 8));
    assert_true(auth_skipped(&svc, "/hooks/a", 8));
    assert_false(auth_skipped(&svc, "/hooks", 6));
    assert_false(auth_skipped(&svc, "/", 1));
    assert_int_equal(auth_skip_match(&svc, "/hooks/a", 8), 1);
    assert_int_equal(auth_skip_match(&svc, "/hook", 5), -1);
    assert_true(auth_skip_covers("/health", "/health/x/y", 11));
    assert_false(auth_skip_covers("/health", "/health%2Fx", 11));
    svc.nauth_skip = 3;
    assert_true(auth_skipped(&svc, "/anything", 9));
    assert_int_equal(auth_skip_match(&svc, "/anything", 9), 2);
}

/* The digest of one request with one input changed. */
static void digest_of(const char *head, struct auth_target t, unsigned char d[AUTH_DIGEST_BYTES])
{
    parse_req(head);
    auth_cache_digest(&fwd, &rq, &t, d);
}

static void test_auth_cache_keyed_by_every_input(void **state)
{
    struct auth_cache *c = auth_cache_new();
    assert_non_null(c);
    static const char base[] =
        "GET /a HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\nAuthorization: Basic eDp5\r\n\r\n";
    unsigned char d1[AUTH_DIGEST_BYTES], d2[AUTH_DIGEST_BYTES], d3[AUTH_DIGEST_BYTES];
    unsigned char again[AUTH_DIGEST_BYTES], other[AUTH_DIGEST_BYTES];
    digest_of(base, target(), d1);
    digest_of(base, target(), again);
    assert_memory_equal(d1, again, AUTH_DIGEST_BYTES);
    /* Each input the provider decides on, changed alone, changes the key. */
    struct auth_target t;
    const char *what[] = {"method", "scheme", "host", "port", "uri", "client"};
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        t = target();
        switch (i) {
        case 0:
            t.method = "GET";
            break;
        case 1:
            t.proto = "http";
            break;
        case 2:
            t.host = "app2.example.com";
            break;
        case 3:
            t.port = 8443;
            break;
        case 4:
            t.uri = (struct http_slice){"/a?b=2", 6};
            break;
        case 5:
            t.client = "203.0.113.6";
            break;
        }
        digest_of(base, t, other);
        if (memcmp(d1, other, AUTH_DIGEST_BYTES) == 0)
            fail_msg("the cache key ignores the %s", what[i]);
    }
    digest_of("GET /a HTTP/1.1\r\nHost: x\r\nCookie: s=2\r\nAuthorization: Basic eDp5\r\n\r\n",
              target(), other);
    assert_memory_not_equal(d1, other, AUTH_DIGEST_BYTES);
    digest_of("GET /a HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\nAuthorization: Basic eDp6\r\n\r\n",
              target(), other);
    assert_memory_not_equal(d1, other, AUTH_DIGEST_BYTES);
    digest_of("GET /a HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\nAuthorization: Basic eDp5\r\n"
              "Proxy-Authorization: Basic eDp5\r\n\r\n",
              target(), other);
    assert_memory_not_equal(d1, other, AUTH_DIGEST_BYTES);
    t = target();
    t.client = "203.0.113.6";
    digest_of(base, t, d2);
    digest_of("GET /a HTTP/1.1\r\nHost: x\r\nCookie: s=2\r\n\r\n", target(), d3);

    static struct auth_verdict v, got;
    memset(&v, 0, sizeof v);
    v.result = AUTH_ALLOWED;
    v.ncopy = 1;
    snprintf(v.copy[0].name, sizeof v.copy[0].name, "Remote-User");
    snprintf(v.copy[0].value, sizeof v.copy[0].value, "alice");
    v.copy[0].len = 5;
    auth_cache_put(c, d1, 1000, &v);
    assert_true(auth_cache_get(c, d1, 999, &got));
    assert_string_equal(got.copy[0].value, "alice");
    assert_string_equal(got.user, "alice");
    assert_false(auth_cache_get(c, d1, 1000, &got)); /* expired */
    assert_false(auth_cache_get(c, d2, 10, &got));
    v.result = AUTH_DENIED;
    auth_cache_put(c, d3, 1000, &v);
    assert_false(auth_cache_get(c, d3, 10, &got)); /* only allowances are kept */
    auth_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_request_carries_target_and_credentials_only),
        cmocka_unit_test(test_auth_2xx_copies_exact_valid_headers),
        cmocka_unit_test(test_auth_forward_style_relays_denials),
        cmocka_unit_test(test_auth_request_style_translates),
        cmocka_unit_test(test_auth_other_statuses_are_errors),
        cmocka_unit_test(test_auth_skip_prefixes),
        cmocka_unit_test(test_auth_reused_verdict_forgets_earlier_user),
        cmocka_unit_test(test_auth_one_location_relayed),
        cmocka_unit_test(test_auth_cache_keyed_by_every_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
