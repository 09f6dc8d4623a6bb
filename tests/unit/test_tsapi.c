/* test_tsapi.c - the control API's requests and answers for service
 * definitions: request heads, the token form and answer, error texts, and
 * the comparison that decides whether a definition is written. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tsapi.h"

static char err[512];

static const char *const port443[] = {"tcp:443"};
static const char *const tag_svc[] = {"tag:portico-svc"};
static const struct tsapi_want grafana = {"grafana", port443, 1, tag_svc, 1};

static void test_tsapi_head_get_with_token(void **state)
{
    char head[1024];
    struct tsapi_request r = {"GET",
                              "/api/v2/tailnet/-/vip-services/svc:grafana",
                              "api.tailscale.com",
                              "tskey-api-abc",
                              NULL,
                              0};
    long n = tsapi_build_head(&r, head, sizeof head, err, sizeof err);
    assert_int_equal(n, (long)strlen(head));
    assert_string_equal(head, "GET /api/v2/tailnet/-/vip-services/svc:grafana HTTP/1.1\r\n"
                              "Host: api.tailscale.com\r\n"
                              "User-Agent: portico/" PORTICO_VERSION "\r\n"
                              "Accept: application/json\r\n"
                              "Authorization: Bearer tskey-api-abc\r\n"
                              "\r\n");
}

static void test_tsapi_head_put_and_token_request(void **state)
{
    char head[1024];
    struct tsapi_request r = {"PUT",
                              "/api/v2/tailnet/-/vip-services/svc:grafana",
                              "[::1]:8443",
                              "tok",
                              "application/json",
                              42};
    assert_true(tsapi_build_head(&r, head, sizeof head, err, sizeof err) > 0);
    assert_string_equal(head, "PUT /api/v2/tailnet/-/vip-services/svc:grafana HTTP/1.1\r\n"
                              "Host: [::1]:8443\r\n"
                              "User-Agent: portico/" PORTICO_VERSION "\r\n"
                              "Accept: application/json\r\n"
                              "Authorization: Bearer tok\r\n"
                              "Content-Type: application/json\r\nContent-Length: 42\r\n"
                              "\r\n");
    struct tsapi_request t = {"POST",
                              "/api/v2/oauth/token",
                              "api.tailscale.com",
                              NULL,
                              "application/x-www-form-urlencoded",
                              7};
    assert_true(tsapi_build_head(&t, head, sizeof head, err, sizeof err) > 0);
    assert_null(strstr(head, "Authorization"));
    assert_non_null(strstr(head, "Content-Type: application/x-www-form-urlencoded\r\n"));
}

static void test_tsapi_head_refuses_injection_and_never_quotes_token(void **state)
{
    char head[1024];
    struct tsapi_request r = {"GET", "/api/v2/x", "h", "tok\r\nX-Evil: 1", NULL, 0};
    assert_int_equal(tsapi_build_head(&r, head, sizeof head, err, sizeof err), -1);
    assert_string_equal(err, "GET: a byte that cannot go in an HTTP request");
    struct tsapi_request s = {"GET", "/api/v2/x y", "h", NULL, NULL, 0};
    assert_int_equal(tsapi_build_head(&s, head, sizeof head, err, sizeof err), -1);
    struct tsapi_request t = {"GET", "/api/v2/x", "h", "secret-token", NULL, 0};
    assert_int_equal(tsapi_build_head(&t, head, 40, err, sizeof err), -1);
    assert_string_equal(err, "GET /api/v2/x: the request head is longer than 40 bytes");
    assert_null(strstr(err, "secret-token"));
}

static void test_tsapi_service_path(void **state)
{
    char p[128];
    assert_int_equal(tsapi_service_path("-", "grafana", p, sizeof p), 0);
    assert_string_equal(p, "/api/v2/tailnet/-/vip-services/svc:grafana");
    assert_int_equal(tsapi_service_path("example.com", "grafana", p, 20), -1);
}

static void test_tsapi_token_form_escapes(void **state)
{
    char *f = tsapi_token_form("kABC123", "tskey-client-k/x+y=z&w ü");
    assert_string_equal(f, "grant_type=client_credentials&client_id=kABC123&client_secret="
                           "tskey-client-k%2Fx%2By%3Dz%26w%20%C3%BC");
    free(f);
}

static void test_tsapi_token_answer(void **state)
{
    char tok[TSAPI_TOKEN_MAX + 1];
    long exp = 0;
    const char *ok = "{\"access_token\":\"tskey-api-k1-abc\",\"token_type\":\"Bearer\","
                     "\"expires_in\":3600,\"scope\":\"services\"}";
    assert_int_equal(tsapi_parse_token(ok, strlen(ok), tok, sizeof tok, &exp, err, sizeof err), 0);
    assert_string_equal(tok, "tskey-api-k1-abc");
    assert_int_equal(exp, 3600);
    /* token_type is case-insensitive (RFC 6749 7.1); expires_in may be absent */
    const char *lower = "{\"access_token\":\"t\",\"token_type\":\"bearer\"}";
    assert_int_equal(
        tsapi_parse_token(lower, strlen(lower), tok, sizeof tok, &exp, err, sizeof err), 0);
    assert_int_equal(exp, TSAPI_TOKEN_EXPIRES_DEFAULT);
    static const struct {
        const char *body, *err;
    } bad[] = {
        {"{}", "the token answer has no access_token string"},
        {"{\"access_token\":\"\"}", "the token answer has no access_token string"},
        {"{\"access_token\":5}", "the token answer has no access_token string"},
        {"{\"access_token\":\"a b\"}",
         "the token answer's access_token holds a byte that cannot go in an Authorization "
         "header"},
        {"{\"access_token\":\"a\\r\\nX: y\"}",
         "the token answer's access_token holds a byte that cannot go in an Authorization "
         "header"},
        {"{\"access_token\":\"a\",\"token_type\":\"mac\"}",
         "the token answer's token_type is not \"Bearer\""},
        {"{\"access_token\":\"a\",\"expires_in\":0}",
         "the token answer's expires_in is not a number of seconds from 1 to a year"},
        {"{\"access_token\":\"a\",\"expires_in\":\"3600\"}",
         "the token answer's expires_in is not a number of seconds from 1 to a year"},
        {"[1]", "the token answer: not a JSON object"},
        {"{\"access_token\":\"a\",\"access_token\":\"b\"}", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(tsapi_parse_token(bad[i].body, strlen(bad[i].body), tok, sizeof tok, &exp,
                                           err, sizeof err),
                         -1);
        if (bad[i].err)
            assert_string_equal(err, bad[i].err);
        assert_true(err[0] != '\0');
    }
    /* a token longer than the limit is refused, not cut */
    size_t n = TSAPI_TOKEN_MAX + 1;
    char *big = malloc(n + 40);
    int k = snprintf(big, n + 40, "{\"access_token\":\"");
    memset(big + k, 'a', n);
    strcpy(big + k + n, "\"}");
    assert_int_equal(tsapi_parse_token(big, strlen(big), tok, sizeof tok, &exp, err, sizeof err),
                     -1);
    assert_string_equal(err, "the token answer's access_token is longer than 4096 bytes");
    free(big);
}

static void test_tsapi_error_text(void **state)
{
    char out[TSAPI_ERROR_SHOWN + 8];
    const char *m = "{\"message\":\"calling actor does not have enough permissions\"}";
    tsapi_error_text(m, strlen(m), out, sizeof out);
    assert_string_equal(out, "calling actor does not have enough permissions");
    const char *o = "{\"error\":\"invalid_client\",\"error_description\":\"bad\\ncredentials\"}";
    tsapi_error_text(o, strlen(o), out, sizeof out);
    assert_string_equal(out, "invalid_client: bad?credentials");
    const char *e = "{\"error\":\"invalid_client\"}";
    tsapi_error_text(e, strlen(e), out, sizeof out);
    assert_string_equal(out, "invalid_client");
    tsapi_error_text("upstream connect error\r\n", 24, out, sizeof out);
    assert_string_equal(out, "upstream connect error");
    tsapi_error_text("", 0, out, sizeof out);
    assert_string_equal(out, "");
    char big[1000];
    memset(big, 'x', sizeof big);
    tsapi_error_text(big, sizeof big, out, sizeof out);
    assert_int_equal(strlen(out), TSAPI_ERROR_SHOWN);
}

static void test_tsapi_new_body(void **state)
{
    char *b = tsapi_new_body(&grafana);
    assert_string_equal(b, "{\"name\":\"svc:grafana\",\"comment\":\"" TSAPI_COMMENT
                           "\",\"ports\":[\"tcp:443\"],\"tags\":[\"tag:portico-svc\"]}");
    free(b);
}

static void test_tsapi_compare_equal_whatever_the_order(void **state)
{
    const char *const tags2[] = {"tag:b", "tag:a"};
    const struct tsapi_want w = {"grafana", port443, 1, tags2, 2};
    const char *held =
        "{\"name\":\"svc:grafana\",\"addrs\":[\"100.124.0.1\",\"fd7a:115c:a1e0::1\"],"
        "\"comment\":\"x\",\"ports\":[\"tcp:443\"],\"tags\":[\"tag:a\",\"tag:b\"]}";
    char *put = (char *)1, what[256];
    assert_int_equal(
        tsapi_compare(held, strlen(held), &w, &put, what, sizeof what, err, sizeof err), 0);
    assert_null(put);
    assert_string_equal(what, "");
}

static void test_tsapi_compare_changed_tag_resends_everything(void **state)
{
    const char *held =
        "{\"name\":\"svc:grafana\",\"addrs\":[\"100.124.0.1\",\"fd7a:115c:a1e0::1\"],"
        "\"comment\":\"the wiki\",\"annotations\":{\"owner\":\"ops\"},"
        "\"ports\":[\"tcp:443\"],\"tags\":[\"tag:old\"],\"extra\":true}";
    char *put = NULL, what[256];
    assert_int_equal(
        tsapi_compare(held, strlen(held), &grafana, &put, what, sizeof what, err, sizeof err), 1);
    assert_string_equal(what, "tags [tag:old] -> [tag:portico-svc]");
    assert_string_equal(
        put, "{\"name\":\"svc:grafana\",\"addrs\":[\"100.124.0.1\",\"fd7a:115c:a1e0::1\"],"
             "\"comment\":\"the wiki\",\"annotations\":{\"owner\":\"ops\"},"
             "\"ports\":[\"tcp:443\"],\"tags\":[\"tag:portico-svc\"],\"extra\":true}");
    free(put);
    /* ports and tags both absent (omitempty): both change */
    const char *bare = "{\"name\":\"svc:grafana\",\"addrs\":[\"100.124.0.1\"]}";
    assert_int_equal(
        tsapi_compare(bare, strlen(bare), &grafana, &put, what, sizeof what, err, sizeof err), 1);
    assert_string_equal(what, "ports [] -> [tcp:443], tags [] -> [tag:portico-svc]");
    assert_string_equal(put, "{\"name\":\"svc:grafana\",\"addrs\":[\"100.124.0.1\"],\"ports\":"
                             "[\"tcp:443\"],\"tags\":[\"tag:portico-svc\"]}");
    free(put);
    /* a description cut to its buffer, still terminated */
    assert_int_equal(tsapi_compare(bare, strlen(bare), &grafana, &put, what, 10, err, sizeof err),
                     1);
    assert_string_equal(what, "ports [] ");
    free(put);
}

static void test_tsapi_compare_refuses_what_is_not_a_definition(void **state)
{
    static const struct {
        const char *body, *err;
    } bad[] = {
        {"{\"name\":\"svc:wiki\"}", "svc:grafana: the definition control sent is named svc:wiki"},
        {"{\"ports\":\"tcp:443\"}", "svc:grafana: \"ports\" is not a list of at most 64 strings"},
        {"{\"tags\":[1]}", "svc:grafana: \"tags\" is not a list of at most 64 strings"},
        {"{\"addrs\":[\"100.124.0.1\",\"not-an-ip\"]}",
         "svc:grafana: \"addrs\" holds \"not-an-ip\", not an IP address"},
        {"{\"addrs\":[\"a\\nb\"]}", "svc:grafana: \"addrs\" holds \"a?b\", not an IP address"},
        {"\"svc:grafana\"", "svc:grafana: not a JSON object"},
        {"{", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *put = NULL, what[64];
        err[0] = '\0';
        assert_int_equal(tsapi_compare(bad[i].body, strlen(bad[i].body), &grafana, &put, what,
                                       sizeof what, err, sizeof err),
                         -1);
        assert_null(put);
        if (bad[i].err)
            assert_string_equal(err, bad[i].err);
        assert_true(err[0] != '\0');
    }
}

static void test_tsapi_url(void **state)
{
    char host[256];
    unsigned port = 0;
    assert_int_equal(
        tsapi_parse_url("https://api.tailscale.com", host, sizeof host, &port, err, sizeof err), 0);
    assert_string_equal(host, "api.tailscale.com");
    assert_int_equal(port, 443);
    assert_int_equal(
        tsapi_parse_url("https://127.0.0.1:8443/", host, sizeof host, &port, err, sizeof err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8443);
    assert_int_equal(
        tsapi_parse_url("https://[fd7a::1]:1", host, sizeof host, &port, err, sizeof err), 0);
    assert_string_equal(host, "fd7a::1");
    static const char *const bad[] = {
        "http://api.tailscale.com",
        "https://",
        "https://a:65536",
        "https://a:-1",
        "https://a:x",
        "https://a/api/v2",
        "https://u@a",
        "https://[::1",
        "https://[zz]",
        "https://a..b",
        "https://a?x=1",
        "https://a:443x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tsapi_parse_url(bad[i], host, sizeof host, &port, err, sizeof err), -1);
}

static void test_tsapi_names(void **state)
{
    assert_true(tsapi_tailnet_valid("-"));
    assert_true(tsapi_tailnet_valid("example.com"));
    assert_true(tsapi_tailnet_valid("alice+x@gmail.com"));
    assert_true(tsapi_tailnet_valid("T1234CNTRL"));
    assert_false(tsapi_tailnet_valid(""));
    assert_false(tsapi_tailnet_valid("a/b"));
    assert_false(tsapi_tailnet_valid(".."));
    assert_false(tsapi_tailnet_valid("a?b"));
    assert_false(tsapi_tailnet_valid("a%2Fb"));
    assert_true(tsapi_client_id_valid("kABC123CNTRL"));
    assert_false(tsapi_client_id_valid(""));
    assert_false(tsapi_client_id_valid("k ABC"));
    assert_false(tsapi_client_id_valid("k\x01"));
}

static void test_tsapi_secret_file(void **state)
{
    char dir[] = "/tmp/portico-secret-XXXXXX", path[64], out[TSAPI_SECRET_MAX + 1];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s", dir);
    FILE *f = fopen(path, "w");
    fputs("  tskey-client-abc  \r\nsecond line ignored\n", f);
    fclose(f);
    assert_int_equal(tsapi_read_secret(path, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "tskey-client-abc");
    f = fopen(path, "w");
    for (int i = 0; i < TSAPI_SECRET_MAX + 1; i++)
        fputc('a', f);
    fclose(f);
    assert_int_equal(tsapi_read_secret(path, out, sizeof out, err, sizeof err), -1);
    char want[256];
    snprintf(want, sizeof want, "%s: the OAuth client secret is longer than 1024 bytes", path);
    assert_string_equal(err, want);
    f = fopen(path, "w");
    fputs("\n", f);
    fclose(f);
    assert_int_equal(tsapi_read_secret(path, out, sizeof out, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s is empty: put the OAuth client secret in it", path);
    assert_string_equal(err, want);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsapi_head_get_with_token),
        cmocka_unit_test(test_tsapi_head_put_and_token_request),
        cmocka_unit_test(test_tsapi_head_refuses_injection_and_never_quotes_token),
        cmocka_unit_test(test_tsapi_service_path),
        cmocka_unit_test(test_tsapi_token_form_escapes),
        cmocka_unit_test(test_tsapi_token_answer),
        cmocka_unit_test(test_tsapi_error_text),
        cmocka_unit_test(test_tsapi_new_body),
        cmocka_unit_test(test_tsapi_compare_equal_whatever_the_order),
        cmocka_unit_test(test_tsapi_compare_changed_tag_resends_everything),
        cmocka_unit_test(test_tsapi_compare_refuses_what_is_not_a_definition),
        cmocka_unit_test(test_tsapi_url),
        cmocka_unit_test(test_tsapi_names),
        cmocka_unit_test(test_tsapi_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
