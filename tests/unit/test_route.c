/* test_route.c - host table, host and path normalisation, path routes. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "route.h"

static void test_route_exact_and_wildcard_lookup(void **state)
{
    struct route_table *t = route_table_new(4);
    int a, b, c;
    assert_int_equal(route_table_add(t, "grafana.example.com", &a, NULL), 0);
    assert_int_equal(route_table_add(t, "*.example.com", &b, NULL), 0);
    assert_int_equal(route_table_add(t, "*.deep.example.com", &c, NULL), 0);
    assert_ptr_equal(route_table_lookup(t, "grafana.example.com", 19), &a);
    assert_ptr_equal(route_table_lookup(t, "other.example.com", 17), &b);
    assert_ptr_equal(route_table_lookup(t, "x.deep.example.com", 18), &c);
    assert_ptr_equal(route_table_lookup(t, "a.b.deep.example.com", 20), &c);
    /* The bare domain is not matched by its own wildcard. */
    assert_null(route_table_lookup(t, "example.com", 11));
    assert_null(route_table_lookup(t, "example.org", 11));
    route_table_free(t);
}

static void test_route_duplicate_rejected(void **state)
{
    struct route_table *t = route_table_new(1);
    int a, b;
    void *prev = NULL;
    assert_int_equal(route_table_add(t, "a.example", &a, NULL), 0);
    assert_int_equal(route_table_add(t, "a.example", &b, &prev), -EEXIST);
    assert_ptr_equal(prev, &a);
    route_table_free(t);
}

static void test_route_many_names_grow(void **state)
{
    enum { N = 10000 };
    static char names[N][32];
    struct route_table *t = route_table_new(0);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "svc%05d.example.test", i);
        assert_int_equal(route_table_add(t, names[i], names[i], NULL), 0);
    }
    for (int i = 0; i < N; i++)
        assert_ptr_equal(route_table_lookup(t, names[i], strlen(names[i])), names[i]);
    assert_null(route_table_lookup(t, "svc10000.example.test", 21));
    route_table_free(t);
}

/* The work of a lookup does not grow with the number of names: 64 and
 * 20,000 names (exact, and wildcards of 2,000 zones) leave the same short
 * runs of occupied slots, so a hit or a miss compares a handful of slots,
 * once for the name and once per wildcard suffix. */
static size_t worst_probe_with(int n)
{
    static char names[20000][40];
    struct route_table *t = route_table_new(0);
    for (int i = 0; i < n; i++) {
        if (i % 10 == 9)
            snprintf(names[i], sizeof names[i], "*.zone%05d.example.test", i);
        else
            snprintf(names[i], sizeof names[i], "svc%05d.example.test", i);
        assert_int_equal(route_table_add(t, names[i], names[i], NULL), 0);
    }
    for (int i = 9; i < n; i += 10) {
        char host[64];
        int len = snprintf(host, sizeof host, "app.zone%05d.example.test", i);
        assert_ptr_equal(route_table_lookup(t, host, (size_t)len), names[i]);
    }
    size_t worst = route_table_worst_probe(t);
    route_table_free(t);
    return worst;
}

static void test_route_lookup_work_does_not_grow_with_names(void **state)
{
    size_t small = worst_probe_with(64), large = worst_probe_with(20000);
    /* Linear probing at most half full: the longest run grows like log n at
     * worst (about 20 here); a list, or a table that filled up, would not
     * stay under 64. */
    assert_true(small >= 1);
    assert_true(large <= 64);
    print_message("worst probe: %zu slots with 64 names, %zu with 20,000\n", small, large);
}

static void check_host(const char *in, const char *want)
{
    char out[256];
    int n = route_host_normalize(in, strlen(in), out, sizeof out);
    if (!want) {
        assert_int_equal(n, -1);
        return;
    }
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
}

static void test_route_host_normalize_case_port_dot(void **state)
{
    check_host("Grafana.Example.COM", "grafana.example.com");
    check_host("grafana.example.com.", "grafana.example.com");
    check_host("grafana.example.com:8080", "grafana.example.com");
    check_host("GRAFANA.example.com.:443", "grafana.example.com");
    check_host("[::1]:8080", "[::1]");
    check_host("127.0.0.1:80", "127.0.0.1");
    check_host("a.example:", "a.example");
}

static void test_route_host_normalize_rejects_garbage(void **state)
{
    check_host("", NULL);
    check_host(":80", NULL);
    check_host("a b", NULL);
    check_host("a..b", NULL);
    check_host("a.example:80x", NULL);
    check_host("a.example:123456", NULL);
    check_host("[::1", NULL);
    check_host("[zz]", NULL);
    check_host("a/b", NULL);
    check_host("a@b", NULL);
    check_host(".", NULL);
}

static void check_path(const char *in, const char *want)
{
    char out[256];
    int n = route_path_normalize(in, strlen(in), out, sizeof out);
    if (!want) {
        assert_int_equal(n, -1);
        return;
    }
    assert_string_equal(out, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_route_path_normalize_dot_segments(void **state)
{
    check_path("/", "/");
    check_path("/a/b/../c", "/a/c");
    check_path("/a/./b", "/a/b");
    check_path("/a/.", "/a/");
    check_path("/a/..", "/");
    check_path("/a/b/../../c", "/c");
    check_path("//a///b", "/a/b");
    check_path("/a/", "/a/");
    check_path("/health/../admin", "/admin");
}

static void test_route_path_normalize_percent(void **state)
{
    check_path("/%61%62c", "/abc");
    check_path("/a%2fb", "/a%2Fb");
    check_path("/%2e%2e/x", NULL); /* "/.." above the root */
    check_path("/a/%2E%2E/b", "/b");
    check_path("/a%20b", "/a%20b");
    check_path("/a%", NULL);
    check_path("/a%4", NULL);
    check_path("/a%zz", NULL);
    check_path("/a%00", NULL);
}

static void check_read(const char *in, unsigned how, const char *want)
{
    char got[256];
    int n = route_path_read(in, strlen(in), how, got, sizeof got);
    if (!want) {
        assert_int_equal(n, -1);
        return;
    }
    if (n < 0)
        fail_msg("%s (how %u): -1, expected %s", in, how, want);
    assert_string_equal(got, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_route_path_read_as_origins_do(void **state)
{
    /* Without an option a reading is route_path_normalize (minus its refusal
     * of ".." above the root, which origins clamp). */
    static const char *const same[] = {"/",       "/a/b/../c", "/a/./b",   "/a/.",   "/a/..",
                                       "//a///b", "/a/",       "/%61%62c", "/a%2fb", "/a/%2E%2E/b",
                                       "/a%20b",  "/a;b/c",    "/a\\b"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char want[256];
        assert_true(route_path_normalize(same[i], strlen(same[i]), want, sizeof want) > 0);
        check_read(same[i], 0, want);
    }
    check_read("/../a", 0, "/a");
    /* Decoding first: an encoded '/' separates, so hidden dot-segments resolve. */
    check_read("/health/..%2fsecret.txt", ROUTE_READ_DECODE, "/secret.txt");
    check_read("/public/%2e%2e%2fadmin/", ROUTE_READ_DECODE, "/admin/");
    check_read("/health/..%2f..%2f..%2fx", ROUTE_READ_DECODE, "/x");
    check_read("/api/group%2Fproject", ROUTE_READ_DECODE, "/api/group/project");
    check_read("/health/%2F/../admin", ROUTE_READ_DECODE, "/admin"); /* an empty segment merges */
    check_read("/a%3Bb/c", ROUTE_READ_DECODE, "/a;b/c");
    check_read("/a%25/b", ROUTE_READ_DECODE, "/a%/b"); /* decoded once, not twice */
    /* Parameters: ";..." up to the next '/' is not part of the segment. */
    check_read("/health/..;/admin", ROUTE_READ_PARAMS, "/admin");
    check_read("/health/;x/../admin", ROUTE_READ_PARAMS, "/admin"); /* ";x" leaves an empty one */
    check_read("/a;jsessionid=1/b;v=2", ROUTE_READ_PARAMS, "/a/b");
    check_read("/health/..%3B/admin", ROUTE_READ_PARAMS, "/health/..%3B/admin");
    check_read("/health/..%3B/admin", ROUTE_READ_PARAMS | ROUTE_READ_DECODE, "/admin");
    /* Tomcat: parameters come off the raw path first, to the next raw '/'. */
    check_read("/a;x%2F..%2F/b", ROUTE_READ_PARAMS_RAW | ROUTE_READ_DECODE, "/a/b");
    check_read("/a;x%2F..%2F/b", ROUTE_READ_PARAMS | ROUTE_READ_DECODE, "/b");
    check_read("/health/..%3B/admin", ROUTE_READ_PARAMS_RAW | ROUTE_READ_DECODE,
               "/health/..;/admin");
    /* Backslash as '/', raw or (when decoding) encoded. */
    check_read("/health/..\\admin", ROUTE_READ_BACKSLASH, "/admin");
    check_read("/health/..%5cadmin", ROUTE_READ_BACKSLASH, "/health/..%5Cadmin");
    check_read("/health/..%5cadmin", ROUTE_READ_BACKSLASH | ROUTE_READ_DECODE, "/admin");
    check_read("/a%zz", ROUTE_READ_DECODE, NULL);
    check_read("/a%2", ROUTE_READ_DECODE, NULL);

    assert_false(route_path_ambiguous("/health/../admin/%61%2e", 23));
    assert_true(route_path_ambiguous("/a%2fb", 6));
    assert_true(route_path_ambiguous("/a%5Cb", 6));
    assert_true(route_path_ambiguous("/a%3bb", 6));
    assert_true(route_path_ambiguous("/a;b", 4));
    assert_true(route_path_ambiguous("/a\\b", 4));
}

static void test_route_path_normalize_rejects(void **state)
{
    check_path("", NULL);
    check_path("a/b", NULL);
    check_path("/..", NULL);
    check_path("/../a", NULL);
    check_path("/a\x01", NULL);
}

static void test_route_match_longest_prefix(void **state)
{
    struct config_route routes[] = {
        {.prefix = "/api/v2/", .prefix_len = 8},
        {.prefix = "/api/", .prefix_len = 5},
        {.prefix = "/a", .prefix_len = 2},
    };
    struct config_service svc = {.routes = routes, .nroutes = 3};
    assert_ptr_equal(route_match(&svc, "/api/v2/x", 9), &routes[0]);
    assert_ptr_equal(route_match(&svc, "/api/v1/x", 9), &routes[1]);
    assert_ptr_equal(route_match(&svc, "/api", 4), &routes[2]);
    assert_null(route_match(&svc, "/b", 2));
}

/* One service with a stripped /api/ route, an auth provider skipped under
 * /health, and a passthrough-only name. */
struct resolve_fixture {
    struct config_upstream up_svc, up_api;
    struct config_route routes[1];
    struct config_auth auth;
    char *skip[1];
    struct config_service svc, tls_only;
    struct route_table *t;
};

static void resolve_fixture_init(struct resolve_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->routes[0] = (struct config_route){
        .prefix = "/api/", .prefix_len = 5, .upstream = &f->up_api, .strip_prefix = true};
    f->skip[0] = "/health";
    f->svc = (struct config_service){.upstream = &f->up_svc,
                                     .routes = f->routes,
                                     .nroutes = 1,
                                     .auth = &f->auth,
                                     .auth_skip = f->skip,
                                     .nauth_skip = 1};
    static struct config_addr pass;
    f->tls_only.passthrough = &pass;
    f->t = route_table_new(2);
    assert_int_equal(route_table_add(f->t, "app.example", &f->svc, NULL), 0);
    assert_int_equal(route_table_add(f->t, "tls.example", &f->tls_only, NULL), 0);
}

static enum route_outcome resolve(struct resolve_fixture *f, const char *host, const char *path,
                                  const char *query, struct route_result *res)
{
    struct route_request rq = {
        .host = {host, strlen(host)},
        .path = {path, strlen(path)},
        .query = {query, strlen(query)},
    };
    return route_resolve(f->t, &rq, res);
}

static void test_route_resolve_service_route_and_target(void **state)
{
    struct resolve_fixture f;
    resolve_fixture_init(&f);
    static struct route_result res;
    /* Host normalised (case, port, trailing dot); the path normalised before
     * the route is picked; the prefix stripped from the target, query kept. */
    assert_int_equal(resolve(&f, "App.Example.:8443", "/x/../api/%61b", "q=1", &res), ROUTE_OK);
    assert_string_equal(res.host, "app.example");
    assert_int_equal(res.host_len, 11);
    assert_ptr_equal(res.svc, &f.svc);
    assert_ptr_equal(res.route, &f.routes[0]);
    assert_ptr_equal(res.up, &f.up_api);
    assert_ptr_equal(res.auth, &f.auth);
    assert_int_equal(res.target.len, strlen("/ab?q=1"));
    assert_memory_equal(res.target.p, "/ab?q=1", res.target.len);
    assert_int_equal(res.prefix.len, 4);
    assert_memory_equal(res.prefix.p, "/api", 4);
    /* The bare prefix becomes "/". */
    assert_int_equal(resolve(&f, "app.example", "/api/", "", &res), ROUTE_OK);
    assert_int_equal(res.target.len, 1);
    assert_memory_equal(res.target.p, "/", 1);
    /* Outside every route: the service's upstream, the target unchanged. */
    assert_int_equal(resolve(&f, "app.example", "/other", "", &res), ROUTE_OK);
    assert_null(res.route);
    assert_ptr_equal(res.up, &f.up_svc);
    assert_int_equal(res.target.len, 0);
    assert_int_equal(res.prefix.len, 0);
    route_table_free(f.t);
}

static void test_route_resolve_auth_skip(void **state)
{
    struct resolve_fixture f;
    resolve_fixture_init(&f);
    static struct route_result res;
    assert_int_equal(resolve(&f, "app.example", "/health", "", &res), ROUTE_OK);
    assert_null(res.auth);
    assert_int_equal(resolve(&f, "app.example", "/health/live", "", &res), ROUTE_OK);
    assert_null(res.auth);
    assert_int_equal(resolve(&f, "app.example", "/healthz", "", &res), ROUTE_OK);
    assert_ptr_equal(res.auth, &f.auth);
    route_table_free(f.t);
}

static void test_route_resolve_refusals_in_order(void **state)
{
    struct resolve_fixture f;
    resolve_fixture_init(&f);
    static struct route_result res;
    assert_int_equal(resolve(&f, "bad host", "/", "", &res), ROUTE_BAD_HOST);
    assert_null(res.svc);
    /* No Host, an unknown one, and a name that is TLS passthrough only. */
    assert_int_equal(resolve(&f, "", "/", "", &res), ROUTE_NO_SERVICE);
    assert_int_equal(res.host_len, 0);
    assert_int_equal(resolve(&f, "nope.example", "/", "", &res), ROUTE_NO_SERVICE);
    assert_int_equal(res.host_len, 12);
    assert_null(res.svc);
    assert_int_equal(resolve(&f, "tls.example", "/", "", &res), ROUTE_NO_SERVICE);
    assert_null(res.svc);
    /* A bad path is found after the service (a redirect may still apply). */
    assert_int_equal(resolve(&f, "app.example", "/../x", "", &res), ROUTE_BAD_PATH);
    assert_ptr_equal(res.svc, &f.svc);
    assert_null(res.up);
    /* "/health/..%2fsecret" is "/secret" to a server that decodes first. */
    assert_int_equal(resolve(&f, "app.example", "/health/..%2fsecret", "", &res), ROUTE_AMBIGUOUS);
    assert_int_equal(resolve(&f, "app.example", "/api/..%2fadmin", "", &res), ROUTE_AMBIGUOUS);
    /* An encoded '/' that stays inside the prefix under every reading is fine. */
    assert_int_equal(resolve(&f, "app.example", "/api/a%2fb", "", &res), ROUTE_OK);
    route_table_free(f.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_exact_and_wildcard_lookup),
        cmocka_unit_test(test_route_duplicate_rejected),
        cmocka_unit_test(test_route_many_names_grow),
        cmocka_unit_test(test_route_host_normalize_case_port_dot),
        cmocka_unit_test(test_route_host_normalize_rejects_garbage),
        cmocka_unit_test(test_route_path_normalize_dot_segments),
        cmocka_unit_test(test_route_path_normalize_percent),
        cmocka_unit_test(test_route_path_normalize_rejects),
        cmocka_unit_test(test_route_path_read_as_origins_do),
        cmocka_unit_test(test_route_match_longest_prefix),
        cmocka_unit_test(test_route_lookup_work_does_not_grow_with_names),
        cmocka_unit_test(test_route_resolve_service_route_and_target),
        cmocka_unit_test(test_route_resolve_auth_skip),
        cmocka_unit_test(test_route_resolve_refusals_in_order),
    };
    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
