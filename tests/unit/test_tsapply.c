/* test_tsapply.c - the publishing steps without I/O: which LocalAPI call
 * comes next for each answer, If-Match from the last read, the 412 retry
 * and its bound, no write when nothing changed, the two-step write of a
 * port whose type changes, refusals, and the counts for the gauges. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "tsapply.h"
#include "tsfixture.h"

#define SOCK "unix:/run/portico/tailnet.sock"

static struct servecfg_service svcs[] = {
    {"grafana", SERVECFG_HTTP, 443, SOCK, false},
    {"wiki", SERVECFG_HTTP, 443, SOCK, false},
};

/* The serve config portico writes for grafana and wiki (canonical). */
#define ENTRY(n)                                                                                   \
    "\"svc:" n "\":{\"TCP\":{\"443\":{\"HTTPS\":true}},\"Web\":{\"" n                              \
    ".tail1234.ts.net:443\":{\"Handlers\":{\"/\":{\"Proxy\":\"" SOCK "\"}}}}}"
#define BOTH "{\"Services\":{" ENTRY("grafana") "," ENTRY("wiki") "}}"

static char *status_json;
static size_t status_len;

static int setup(void **state)
{
    status_json = ts_fixture("status_service_host.json", &status_len);
    return 0;
}

static int teardown(void **state)
{
    free(status_json);
    return 0;
}

/* Expect the next call to be method path, and return it. */
static struct localapi_request expect_call(struct tsapply *x, enum http1_method m, const char *path)
{
    struct localapi_request r;
    assert_int_equal(tsapply_next(x, &r), TSAPPLY_CALL);
    assert_int_equal(r.method, m);
    assert_string_equal(r.path, path);
    return r;
}

static void answer(struct tsapply *x, int status, const char *body, const char *etag)
{
    tsapply_answer(x, status, body, strlen(body), etag);
}

/* status and prefs read; adv is the prefs answer. */
static void read_node(struct tsapply *x, const char *adv)
{
    expect_call(x, METHOD_GET, "/localapi/v0/status?peers=false");
    tsapply_answer(x, 200, status_json, status_len, NULL);
    expect_call(x, METHOD_GET, "/localapi/v0/prefs");
    answer(x, 200, adv, NULL);
    expect_call(x, METHOD_GET, "/localapi/v0/serve-config");
}

/* An apply of the first n services on a node with no AdvertiseServices
 * and serve config sc (Etag "e0"), up to its first write. */
static struct localapi_request to_first_post(struct tsapply *x, size_t n, const char *sc)
{
    tsapply_init(x, TSAPPLY_APPLY, svcs, n, "tag:portico");
    read_node(x, "{}");
    answer(x, 200, sc, "e0");
    return expect_call(x, METHOD_POST, "/localapi/v0/serve-config");
}

static void test_apply_fresh_node_writes_both(void **state)
{
    struct tsapply x;
    tsapply_init(&x, TSAPPLY_APPLY, svcs, 2, "tag:portico");
    read_node(&x, "{\"AdvertiseServices\":[\"svc:other\"]}");
    answer(&x, 200, "null", "etag-1");
    struct localapi_request r = expect_call(&x, METHOD_POST, "/localapi/v0/serve-config");
    assert_string_equal(r.if_match, "etag-1");
    assert_string_equal(r.body, BOTH);
    assert_int_equal(r.body_len, strlen(BOTH));
    answer(&x, 200, "", NULL);
    r = expect_call(&x, METHOD_PATCH, "/localapi/v0/prefs");
    assert_string_equal(r.body, "{\"AdvertiseServicesSet\":true,\"AdvertiseServices\":[\"svc:"
                                "other\",\"svc:grafana\",\"svc:wiki\"]}");
    answer(&x, 200, "{}", NULL);
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_DONE);
    assert_true(x.written && x.advertise_set && !x.untagged_host);
    assert_int_equal(x.lost_races, 0);
    assert_true(tsapply_owned_changed(&x));
    assert_int_equal(x.result.owned.n, 2);
    assert_int_equal(tsapply_count_advertised(&x), 2);
    /* the fixture's service-host approves grafana and jellyfin */
    assert_int_equal(tsapply_count_approved(&x), 1);
    tsapply_free(&x);
}

static void test_apply_unchanged_makes_no_write(void **state)
{
    struct tsapply x;
    struct localapi_request r;
    tsapply_init(&x, TSAPPLY_APPLY, svcs, 2, "tag:portico");
    x.owned.v = calloc(2, sizeof *x.owned.v);
    x.owned.v[0] = strdup("svc:grafana");
    x.owned.v[1] = strdup("svc:wiki");
    x.owned.n = 2;
    read_node(&x, "{\"AdvertiseServices\":[\"svc:grafana\",\"svc:wiki\"]}");
    answer(&x, 200, BOTH, "etag-2");
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_DONE);
    assert_false(x.written || x.advertise_set);
    assert_false(tsapply_owned_changed(&x));
    assert_int_equal(tsapply_count_advertised(&x), 2);
    tsapply_free(&x);
}

static void test_apply_lost_race_reads_again_then_gives_up(void **state)
{
    struct tsapply x;
    struct localapi_request r;
    to_first_post(&x, 1, "{}");
    answer(&x, 412, "etag mismatch\n", NULL);
    assert_int_equal(x.lost_races, 1);
    expect_call(&x, METHOD_GET, "/localapi/v0/serve-config");
    answer(&x, 200, "{\"TCP\":{\"80\":{\"HTTP\":true}}}", "e1");
    r = expect_call(&x, METHOD_POST, "/localapi/v0/serve-config");
    assert_string_equal(r.if_match, "e1");
    assert_non_null(strstr(r.body, "\"TCP\":{\"80\":{\"HTTP\":true}}"));
    for (int i = 2; i <= TSAPPLY_ATTEMPTS; i++) {
        answer(&x, 412, "etag mismatch\n", NULL);
        if (i < TSAPPLY_ATTEMPTS) {
            expect_call(&x, METHOD_GET, "/localapi/v0/serve-config");
            answer(&x, 200, "{}", "e");
            expect_call(&x, METHOD_POST, "/localapi/v0/serve-config");
        }
    }
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_FAILED);
    assert_false(x.refused);
    assert_string_equal(x.err, "the serve config changed under every one of 5 attempts to write "
                               "it; another client keeps writing it, try again");
    tsapply_free(&x);
}

static void test_apply_port_type_change_writes_twice(void **state)
{
    struct tsapply x;
    struct localapi_request r;
    r = to_first_post(
        &x, 1,
        "{\"Services\":{\"svc:grafana\":{\"TCP\":{\"443\":{\"TCPForward\":\"127.0.0.1:9\"}}}}}");
    assert_string_equal(r.body, "{}");
    answer(&x, 200, "", NULL);
    expect_call(&x, METHOD_GET, "/localapi/v0/serve-config");
    answer(&x, 200, "{}", "e1");
    r = expect_call(&x, METHOD_POST, "/localapi/v0/serve-config");
    assert_string_equal(r.body, "{\"Services\":{" ENTRY("grafana") "}}");
    tsapply_free(&x);
}

static void test_refusals_and_failures(void **state)
{
    struct tsapply x;
    struct localapi_request r;
    to_first_post(&x, 1, "{}");
    answer(&x, 401, "must be root\n", NULL);
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_FAILED);
    assert_true(x.refused);
    assert_string_equal(x.err, "tailscaled refused POST /localapi/v0/serve-config with 401: must "
                               "be root");
    /* the node as it is, since nothing was written */
    assert_true(x.node_read);
    assert_int_equal(tsapply_count_advertised(&x), 0);
    assert_int_equal(tsapply_count_approved(&x), 1);
    tsapply_free(&x);

    tsapply_init(&x, TSAPPLY_APPLY, svcs, 1, "tag:portico");
    expect_call(&x, METHOD_GET, "/localapi/v0/status?peers=false");
    answer(&x, 500, "{\"error\":\"no \\\"backend\\\"\"}", NULL);
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_FAILED);
    assert_false(x.refused);
    assert_string_equal(x.err, "tailscaled refused GET /localapi/v0/status?peers=false with 500: "
                               "no \"backend\"");
    tsapply_free(&x);

    size_t len;
    char *stopped = ts_fixture("status_stopped.json", &len);
    tsapply_init(&x, TSAPPLY_APPLY, svcs, 1, "tag:portico");
    expect_call(&x, METHOD_GET, "/localapi/v0/status?peers=false");
    tsapply_answer(&x, 200, stopped, len, NULL);
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_FAILED);
    assert_string_equal(x.err, "tailscaled is not connected to a tailnet (BackendState "
                               "\"NeedsLogin\"): no MagicDNS suffix to name the services with; "
                               "log the node in first");
    tsapply_free(&x);
    free(stopped);

    tsapply_init(&x, TSAPPLY_APPLY, svcs, 1, "tag:portico");
    expect_call(&x, METHOD_GET, "/localapi/v0/status?peers=false");
    tsapply_unreachable(&x, "tailscaled is not running");
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_FAILED);
    assert_string_equal(x.err, "tailscaled is not running");
    tsapply_answer(&x, 200, "{}", 2, NULL); /* a late answer changes nothing */
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_FAILED);
    tsapply_free(&x);
}

static void test_plan_and_read_stop_before_writing(void **state)
{
    struct tsapply x;
    struct localapi_request r;
    tsapply_init(&x, TSAPPLY_PLAN, svcs, 2, "tag:other");
    read_node(&x, "{}");
    answer(&x, 200, "null", "e0");
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_DONE);
    assert_true(x.result.changed && x.result.advertise_changed && x.untagged_host);
    assert_string_equal(x.result.json, BOTH);
    tsapply_free(&x);

    tsapply_init(&x, TSAPPLY_READ, svcs, 2, "tag:portico");
    read_node(&x, "{}");
    answer(&x, 200, "{\"TCP\":{}}", "e0");
    assert_int_equal(tsapply_next(&x, &r), TSAPPLY_DONE);
    assert_string_equal(x.sc, "{\"TCP\":{}}");
    assert_string_equal(x.etag, "e0");
    assert_null(x.result.json);
    tsapply_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_fresh_node_writes_both),
        cmocka_unit_test(test_apply_unchanged_makes_no_write),
        cmocka_unit_test(test_apply_lost_race_reads_again_then_gives_up),
        cmocka_unit_test(test_apply_port_type_change_writes_twice),
        cmocka_unit_test(test_refusals_and_failures),
        cmocka_unit_test(test_plan_and_read_stop_before_writing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
