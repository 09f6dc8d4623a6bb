/* test_servecfg.c - portico's Tailscale Services merged into tailscaled's
 * serve configuration: exact JSON for 64, 63 and 65 services, foreign
 * entries untouched, nothing written when nothing changed, the PROXY
 * protocol version gate, serve-type changes, ownership, the plan and the
 * AdvertiseServices list. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "servecfg.h"
#include "tsfixture.h"

#define SOCK   "unix:/run/portico/tailnet.sock"
#define SUFFIX "tail1234.ts.net"

static char err[512];

/* n HTTP services app00..app(n-1), all behind portico's socket. */
static struct servecfg_service apps[128];
static char app_names[128][24];

static void make_apps(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(app_names[i], sizeof app_names[i], "app%02zu", i);
        apps[i] = (struct servecfg_service){app_names[i], SERVECFG_HTTP, 443, SOCK, false};
    }
}

/* The JSON portico must write for apps [0, n): built here by hand, in the
 * sorted key order, independently of the code under test. */
static char *expected_apps(size_t n)
{
    size_t cap = 256 * n + 64, o = 0;
    char *s = malloc(cap);
    if (n == 0)
        return strcpy(s, "{}");
    o += (size_t)snprintf(s + o, cap - o, "{\"Services\":{");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o,
                              "%s\"svc:app%02zu\":{\"TCP\":{\"443\":{\"HTTPS\":true}},\"Web\":{"
                              "\"app%02zu." SUFFIX ":443\":{\"Handlers\":{\"/\":{\"Proxy\":\"" SOCK
                              "\"}}}}}",
                              i ? "," : "", i, i);
    snprintf(s + o, cap - o, "}}");
    return s;
}

static int merge(const char *cur, const struct servecfg_service *svcs, size_t n,
                 const char *const *owned, size_t n_owned, const char *const *adv, size_t n_adv,
                 int major, int minor, struct servecfg_result *r)
{
    struct servecfg_input in = {svcs,    n,   SUFFIX, major, minor, owned,
                                n_owned, adv, n_adv,  NULL,  NULL,  0};
    return servecfg_merge(cur, cur ? strlen(cur) : 0, &in, r, err, sizeof err);
}

static void assert_plan_has(const struct servecfg_result *r, const char *line)
{
    if (!strstr(r->plan, line))
        fprintf(stderr, "plan:\n%s--- has no line: %s\n", r->plan, line);
    assert_non_null(strstr(r->plan, line));
}

static void test_publish_64_then_63_then_65(void **state)
{
    make_apps(65);
    struct servecfg_result r64, r63, r65;

    /* 64 on a node with no serve configuration yet ("null", as GET answers). */
    assert_int_equal(merge("null", apps, 64, NULL, 0, NULL, 0, 1, 94, &r64), 0);
    char *want = expected_apps(64);
    assert_string_equal(r64.json, want);
    free(want);
    assert_true(r64.changed);
    assert_null(r64.interim);
    assert_int_equal(r64.owned.n, 64);
    assert_int_equal(r64.advertise.n, 64);
    assert_string_equal(r64.advertise.v[0], "svc:app00");
    assert_string_equal(r64.advertise.v[63], "svc:app63");
    assert_true(r64.advertise_changed);
    assert_plan_has(&r64, "+ svc:app00  https 443 -> " SOCK "\n");
    assert_plan_has(&r64, "+ svc:app63  https 443 -> " SOCK "\n");

    /* Reload with app63 removed: its entry is deleted and unadvertised. */
    assert_int_equal(merge(r64.json, apps, 63, (const char *const *)r64.owned.v, r64.owned.n,
                           (const char *const *)r64.advertise.v, r64.advertise.n, 1, 94, &r63),
                     0);
    want = expected_apps(63);
    assert_string_equal(r63.json, want);
    free(want);
    assert_true(r63.changed);
    assert_string_equal(r63.plan, "- svc:app63  https 443 -> " SOCK "\n");
    assert_int_equal(r63.advertise.n, 63);
    assert_true(r63.advertise_changed);
    assert_int_equal(r63.owned.n, 63);

    /* Reload with 65: app63 and app64 come back / appear, appended in order. */
    assert_int_equal(merge(r63.json, apps, 65, (const char *const *)r63.owned.v, r63.owned.n,
                           (const char *const *)r63.advertise.v, r63.advertise.n, 1, 94, &r65),
                     0);
    want = expected_apps(65);
    assert_string_equal(r65.json, want);
    free(want);
    assert_string_equal(r65.plan, "+ svc:app63  https 443 -> " SOCK "\n"
                                  "+ svc:app64  https 443 -> " SOCK "\n");
    assert_int_equal(r65.advertise.n, 65);
    assert_string_equal(r65.advertise.v[63], "svc:app63");
    assert_string_equal(r65.advertise.v[64], "svc:app64");
    servecfg_result_free(&r64);
    servecfg_result_free(&r63);
    servecfg_result_free(&r65);
}

static void test_nothing_changed_writes_nothing(void **state)
{
    make_apps(64);
    struct servecfg_result a, b;
    assert_int_equal(merge("", apps, 64, NULL, 0, NULL, 0, 1, 94, &a), 0);
    /* tailscaled answers with its own key order and whitespace: still equal. */
    json_t *j = json_loads(a.json, 0, NULL);
    char *pretty = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    assert_int_equal(merge(pretty, apps, 64, (const char *const *)a.owned.v, a.owned.n,
                           (const char *const *)a.advertise.v, a.advertise.n, 1, 94, &b),
                     0);
    assert_false(b.changed);
    assert_false(b.advertise_changed);
    assert_string_equal(b.plan, "");
    assert_string_equal(b.json, a.json);
    free(pretty);
    servecfg_result_free(&a);
    servecfg_result_free(&b);

    /* No services and nothing owned on an empty node: nothing at all. */
    assert_int_equal(merge("null", NULL, 0, NULL, 0, NULL, 0, 1, 94, &a), 0);
    assert_false(a.changed);
    assert_string_equal(a.json, "{}");
    assert_string_equal(a.plan, "");
    servecfg_result_free(&a);
}

/* The fixture's value at a JSON path of object keys. */
static json_t *at(json_t *root, const char *k1, const char *k2)
{
    json_t *v = json_object_get(root, k1);
    return k2 ? json_object_get(v, k2) : v;
}

static void test_foreign_entries_untouched(void **state)
{
    size_t len;
    char *cur = ts_fixture("serve_config_foreign.json", &len);
    const struct servecfg_service svcs[] = {
        {"grafana", SERVECFG_HTTP, 443, SOCK, false},
        {"db", SERVECFG_TCP, 5432, "127.0.0.1:15432", true},
    };
    const char *adv[] = {"svc:wiki", "svc:pg"};
    struct servecfg_result r;
    struct servecfg_input in = {svcs, 2, SUFFIX, 1, 103, NULL, 0, adv, 2, NULL, NULL, 0};
    assert_int_equal(servecfg_merge(cur, len, &in, &r, err, sizeof err), 0);
    assert_true(r.changed);
    json_t *old = json_loads(cur, 0, NULL), *new = json_loads(r.json, 0, NULL);
    assert_non_null(old);
    assert_non_null(new);
    /* The node's own serve config, Funnel and foreground sessions: as they were. */
    const char *keys[] = {"TCP", "Web", "AllowFunnel", "Foreground"};
    for (size_t i = 0; i < 4; i++)
        assert_true(json_equal(at(old, keys[i], NULL), at(new, keys[i], NULL)));
    /* Foreign services, unknown fields included. */
    const char *foreign[] = {"svc:wiki", "svc:vpn", "svc:pg"};
    for (size_t i = 0; i < 3; i++)
        assert_true(json_equal(at(old, "Services", foreign[i]), at(new, "Services", foreign[i])));
    assert_non_null(json_object_get(at(new, "Services", "svc:wiki"), "FutureField"));
    assert_int_equal(json_object_size(json_object_get(new, "Services")), 5);
    /* Ours. */
    char *db = json_dumps(at(new, "Services", "svc:db"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(db, "{\"TCP\":{\"5432\":{\"ProxyProtocol\":2,\"TCPForward\":"
                            "\"127.0.0.1:15432\"}}}");
    free(db);
    assert_string_equal(r.plan, "+ svc:db  tcp 5432 -> 127.0.0.1:15432 (PROXY v2)\n"
                                "+ svc:grafana  https 443 -> " SOCK "\n");
    /* Foreign advertisements stay, in their order; ours are appended. */
    assert_int_equal(r.advertise.n, 4);
    assert_string_equal(r.advertise.v[0], "svc:wiki");
    assert_string_equal(r.advertise.v[1], "svc:pg");
    assert_string_equal(r.advertise.v[2], "svc:db");
    assert_string_equal(r.advertise.v[3], "svc:grafana");
    json_decref(old);
    json_decref(new);

    /* Removing everything portico owned leaves the foreign part exactly. */
    struct servecfg_result r2;
    struct servecfg_input in2 = {NULL,          0,
                                 SUFFIX,        1,
                                 103,           (const char *const *)r.owned.v,
                                 r.owned.n,     (const char *const *)r.advertise.v,
                                 r.advertise.n, NULL,
                                 NULL,          0};
    assert_int_equal(servecfg_merge(r.json, strlen(r.json), &in2, &r2, err, sizeof err), 0);
    old = json_loads(cur, 0, NULL);
    new = json_loads(r2.json, 0, NULL);
    assert_true(json_equal(old, new));
    assert_string_equal(r2.plan, "- svc:db  tcp 5432 -> 127.0.0.1:15432 (PROXY v2)\n"
                                 "- svc:grafana  https 443 -> " SOCK "\n");
    assert_int_equal(r2.advertise.n, 2);
    assert_string_equal(r2.advertise.v[1], "svc:pg");
    json_decref(old);
    json_decref(new);
    servecfg_result_free(&r);
    servecfg_result_free(&r2);
    free(cur);
}

static void test_proxy_protocol_needs_1_94(void **state)
{
    const struct servecfg_service svcs[] = {
        {"ssh", SERVECFG_TCP, 22, "127.0.0.1:2222", true},
        {"web", SERVECFG_PASSTHROUGH, 443, "127.0.0.1:8443", true},
        {"raw", SERVECFG_TCP, 7000, "127.0.0.1:7000", false},
    };
    struct servecfg_result r;
    assert_int_equal(merge(NULL, svcs, 3, NULL, 0, NULL, 0, 1, 93, &r), 0);
    assert_string_equal(r.json,
                        "{\"Services\":{"
                        "\"svc:raw\":{\"TCP\":{\"7000\":{\"TCPForward\":\"127.0.0.1:7000\"}}},"
                        "\"svc:ssh\":{\"TCP\":{\"22\":{\"TCPForward\":\"127.0.0.1:2222\"}}},"
                        "\"svc:web\":{\"TCP\":{\"443\":{\"TCPForward\":\"127.0.0.1:8443\"}}}}}");
    assert_plan_has(&r, "+ svc:ssh  tcp 22 -> 127.0.0.1:2222 (no PROXY header: tailscaled 1.93 is "
                        "older than 1.94, so callers are unknown)\n");
    char *old = strdup(r.json);
    const char *owned[] = {"svc:raw", "svc:ssh", "svc:web"};
    servecfg_result_free(&r);

    /* tailscaled upgraded to 1.94: the same services gain the header. */
    assert_int_equal(merge(old, svcs, 3, owned, 3, owned, 3, 1, 94, &r), 0);
    assert_string_equal(r.json,
                        "{\"Services\":{"
                        "\"svc:raw\":{\"TCP\":{\"7000\":{\"TCPForward\":\"127.0.0.1:7000\"}}},"
                        "\"svc:ssh\":{\"TCP\":{\"22\":{\"ProxyProtocol\":2,\"TCPForward\":"
                        "\"127.0.0.1:2222\"}}},"
                        "\"svc:web\":{\"TCP\":{\"443\":{\"ProxyProtocol\":2,\"TCPForward\":"
                        "\"127.0.0.1:8443\"}}}}}");
    assert_string_equal(r.plan, "~ svc:ssh  tcp 22 -> 127.0.0.1:2222 (PROXY v2) (was: tcp 22 -> "
                                "127.0.0.1:2222)\n"
                                "~ svc:web  passthrough 443 -> 127.0.0.1:8443 (PROXY v2) (was: "
                                "tcp 443 -> 127.0.0.1:8443)\n");
    assert_true(r.changed);
    assert_false(r.advertise_changed);
    assert_null(r.interim);
    servecfg_result_free(&r);
    free(old);

    /* A later major version counts too. */
    assert_int_equal(merge(NULL, svcs, 1, NULL, 0, NULL, 0, 2, 0, &r), 0);
    assert_non_null(strstr(r.json, "\"ProxyProtocol\":2"));
    servecfg_result_free(&r);
}

static void test_serve_type_change_takes_two_writes(void **state)
{
    const char *cur = "{\"Services\":{\"svc:app\":{\"TCP\":{\"443\":{\"TCPForward\":"
                      "\"127.0.0.1:9\"}}},\"svc:other\":{\"Tun\":true}}}";
    const struct servecfg_service svcs[] = {{"app", SERVECFG_HTTP, 443, SOCK, false}};
    const char *owned[] = {"svc:app"};
    struct servecfg_result r;
    assert_int_equal(merge(cur, svcs, 1, owned, 1, owned, 1, 1, 94, &r), 0);
    assert_non_null(r.interim);
    assert_string_equal(r.interim, "{\"Services\":{\"svc:other\":{\"Tun\":true}}}");
    assert_plan_has(&r, "~ svc:app  https 443 -> " SOCK " (was: tcp 443 -> 127.0.0.1:9)\n");
    assert_plan_has(&r, "! svc:app  port 443 changes from tcp to https: tailscaled needs the old "
                        "entry removed first (two writes)\n");
    servecfg_result_free(&r);

    /* Same serve type, other backend: one write. */
    const struct servecfg_service moved[] = {{"app", SERVECFG_TCP, 443, "127.0.0.1:10", false}};
    assert_int_equal(merge(cur, moved, 1, owned, 1, owned, 1, 1, 94, &r), 0);
    assert_null(r.interim);
    assert_string_equal(r.plan,
                        "~ svc:app  tcp 443 -> 127.0.0.1:10 (was: tcp 443 -> 127.0.0.1:9)\n");
    servecfg_result_free(&r);

    /* A TUN entry taken over: removed first as well. */
    const struct servecfg_service tun[] = {{"other", SERVECFG_HTTP, 443, SOCK, false}};
    assert_int_equal(merge(cur, tun, 1, NULL, 0, NULL, 0, 1, 94, &r), 0);
    assert_string_equal(r.interim, "{\"Services\":{\"svc:app\":{\"TCP\":{\"443\":{\"TCPForward\":"
                                   "\"127.0.0.1:9\"}}}}}");
    assert_plan_has(&r, "! svc:other  https 443 -> " SOCK
                        " (replaces an entry portico did not publish: tun)\n");
    assert_plan_has(&r, "! svc:other  TUN mode cannot become ports");
    servecfg_result_free(&r);
}

static void test_ownership_rules(void **state)
{
    size_t len;
    char *cur = ts_fixture("serve_config_foreign.json", &len);
    /* wiki is configured now: portico takes it over and says so. */
    const struct servecfg_service svcs[] = {{"wiki", SERVECFG_HTTP, 443, SOCK, false}};
    struct servecfg_result r;
    struct servecfg_input in = {svcs, 1, SUFFIX, 1, 94, NULL, 0, NULL, 0, NULL, NULL, 0};
    assert_int_equal(servecfg_merge(cur, len, &in, &r, err, sizeof err), 0);
    assert_plan_has(&r, "! svc:wiki  https 443 -> " SOCK " (replaces an entry portico did not "
                        "publish: https 443 -> http://127.0.0.1:3001)\n");
    assert_int_equal(r.owned.n, 1);
    assert_string_equal(r.owned.v[0], "svc:wiki");
    servecfg_result_free(&r);

    /* A name portico never published is never deleted, even if it is gone
     * from the configuration; one it did publish is. */
    const char *owned[] = {"svc:pg", "svc:gone"};
    const char *adv[] = {"svc:gone", "svc:vpn"};
    struct servecfg_input in2 = {NULL, 0, SUFFIX, 1, 94, owned, 2, adv, 2, NULL, NULL, 0};
    assert_int_equal(servecfg_merge(cur, len, &in2, &r, err, sizeof err), 0);
    assert_string_equal(r.plan, "- svc:gone  unadvertise\n"
                                "- svc:pg  tcp 5432 -> 127.0.0.1:5432 (PROXY v1)\n");
    json_t *new = json_loads(r.json, 0, NULL);
    assert_null(at(new, "Services", "svc:pg"));
    assert_non_null(at(new, "Services", "svc:wiki"));
    assert_non_null(at(new, "Services", "svc:vpn"));
    json_decref(new);
    assert_int_equal(r.advertise.n, 1);
    assert_string_equal(r.advertise.v[0], "svc:vpn");
    assert_int_equal(r.owned.n, 0);
    servecfg_result_free(&r);
    free(cur);

    /* A foreign entry that routes to portico's backend: pointed at, left alone. */
    const char *lost = "{\"Services\":{\"svc:old\":{\"TCP\":{\"443\":{\"HTTPS\":true}},\"Web\":{"
                       "\"old." SUFFIX ":443\":{\"Handlers\":{\"/\":{\"Proxy\":\"" SOCK "\"}}}}}}}";
    const struct servecfg_service one[] = {{"new", SERVECFG_HTTP, 443, SOCK, false}};
    assert_int_equal(merge(lost, one, 1, NULL, 0, NULL, 0, 1, 94, &r), 0);
    assert_plan_has(&r, "? svc:old  routes to portico's backend but portico has no record of "
                        "publishing it: left alone\n");
    assert_non_null(strstr(r.json, "svc:old"));
    servecfg_result_free(&r);
}

static void test_advertise_only_when_missing(void **state)
{
    make_apps(2);
    struct servecfg_result a, b;
    assert_int_equal(merge(NULL, apps, 2, NULL, 0, NULL, 0, 1, 94, &a), 0);
    /* The entries are there but someone unadvertised app01. */
    const char *adv[] = {"svc:app00", "svc:app00", "svc:x"};
    assert_int_equal(
        merge(a.json, apps, 2, (const char *const *)a.owned.v, a.owned.n, adv, 3, 1, 94, &b), 0);
    assert_false(b.changed);
    assert_string_equal(b.plan, "+ svc:app01  advertise\n");
    assert_true(b.advertise_changed);
    assert_int_equal(b.advertise.n, 3);
    assert_string_equal(b.advertise.v[0], "svc:app00");
    assert_string_equal(b.advertise.v[1], "svc:x");
    assert_string_equal(b.advertise.v[2], "svc:app01");
    servecfg_result_free(&a);
    servecfg_result_free(&b);
}

static void test_suffix_change_rewrites_web_key(void **state)
{
    make_apps(1);
    struct servecfg_result a, b;
    assert_int_equal(merge(NULL, apps, 1, NULL, 0, NULL, 0, 1, 94, &a), 0);
    struct servecfg_input in = {
        apps, 1, "tail5678.ts.net", 1, 94, (const char *const *)a.owned.v, a.owned.n, NULL, 0, NULL,
        NULL, 0};
    assert_int_equal(servecfg_merge(a.json, strlen(a.json), &in, &b, err, sizeof err), 0);
    assert_true(b.changed);
    assert_null(b.interim);
    assert_non_null(strstr(b.json, "\"app00.tail5678.ts.net:443\""));
    assert_null(strstr(b.json, SUFFIX));
    servecfg_result_free(&a);
    servecfg_result_free(&b);
}

/* Found by fuzz_tsjson: a Services key shorter than "svc:" was read past
 * its end. Such a key is foreign like any other and comes through as is. */
static void test_foreign_key_not_a_service_name(void **state)
{
    const char *cur = "{\"Services\":{\"g\":{\"Tun\":true},\"\":{}}}";
    const struct servecfg_service one[] = {{"new", SERVECFG_HTTP, 443, SOCK, false}};
    struct servecfg_result r;
    assert_int_equal(merge(cur, one, 1, NULL, 0, NULL, 0, 1, 94, &r), 0);
    json_t *new = json_loads(r.json, 0, NULL);
    assert_non_null(at(new, "Services", "g"));
    assert_non_null(at(new, "Services", ""));
    assert_int_equal(json_object_size(json_object_get(new, "Services")), 3);
    json_decref(new);
    assert_string_equal(r.plan, "+ svc:new  https 443 -> " SOCK "\n");
    servecfg_result_free(&r);
}

static void expect_error(const char *cur, const struct servecfg_service *svcs, size_t n,
                         const char *const *owned, size_t n_owned, const char *suffix,
                         const char *needle)
{
    struct servecfg_result r;
    struct servecfg_input in = {svcs, n, suffix, 1, 94, owned, n_owned, NULL, 0, NULL, NULL, 0};
    err[0] = '\0';
    int rc = servecfg_merge(cur, cur ? strlen(cur) : 0, &in, &r, err, sizeof err);
    if (rc == 0 || !strstr(err, needle))
        fprintf(stderr, "rc %d, err \"%s\", wanted \"%s\"\n", rc, err, needle);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, needle));
    servecfg_result_free(&r);
}

static void test_refused(void **state)
{
    const struct servecfg_service ok[] = {{"a", SERVECFG_HTTP, 443, SOCK, false}};
    expect_error("{", ok, 1, NULL, 0, SUFFIX, "serve config: not valid JSON");
    expect_error("[]", ok, 1, NULL, 0, SUFFIX, "not a JSON object");
    expect_error("{\"Services\":[]}", ok, 1, NULL, 0, SUFFIX, "Services is not an object");
    expect_error("{\"Services\":{\"svc:a\":\"x\"}}", ok, 1, NULL, 0, SUFFIX,
                 "Services[\"svc:a\"] is not an object");
    expect_error("{\"TCP\":{},\"TCP\":{}}", ok, 1, NULL, 0, SUFFIX, "duplicate");
    expect_error(NULL, ok, 1, NULL, 0, "", "MagicDNS suffix is unknown");
    expect_error(NULL, ok, 1, NULL, 0, NULL, "MagicDNS suffix is unknown");
    expect_error(NULL, ok, 1, NULL, 0, "Tail.ts.net", "not a lower-case DNS name");
    const char *bad_owned[] = {"grafana"};
    expect_error(NULL, ok, 1, bad_owned, 1, SUFFIX, "not a service name");

    const struct servecfg_service twice[] = {{"a", SERVECFG_HTTP, 443, SOCK, false},
                                             {"a", SERVECFG_TCP, 22, "127.0.0.1:22", false}};
    expect_error(NULL, twice, 2, NULL, 0, SUFFIX, "service a is published twice");
    const struct servecfg_service bad[][1] = {
        {{"Grafana", SERVECFG_HTTP, 443, SOCK, false}},
        {{"a.b", SERVECFG_HTTP, 443, SOCK, false}},
        {{"a", SERVECFG_HTTP, 0, SOCK, false}},
        {{"a", SERVECFG_HTTP, 443, "", false}},
        {{"a", SERVECFG_HTTP, 443, "127.0.0.1:80", false}},
        {{"a", SERVECFG_HTTP, 443, "http://x y", false}},
        {{"a", SERVECFG_HTTP, 443, SOCK, true}},
        {{"a", SERVECFG_TCP, 22, "127.0.0.1", false}},
        {{"a", SERVECFG_TCP, 22, "127.0.0.1:65536", false}},
        {{"a", SERVECFG_TCP, 22, "unix:/run/x.sock", true}},
        {{"a", SERVECFG_TCP, 22, "unix:", false}},
    };
    const char *why[] = {
        "lower-case DNS label",
        "lower-case DNS label",
        "port 0",
        "is empty",
        "an HTTP backend is unix:/PATH or http://HOST:PORT",
        "spaces",
        "PROXY header only to TCP backends",
        "a TCP backend is HOST:PORT",
        "a TCP backend is HOST:PORT",
        "does not send a PROXY header to a unix: backend",
        "a TCP backend is HOST:PORT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(NULL, bad[i], 1, NULL, 0, SUFFIX, why[i]);

    /* Oversize current configuration. */
    size_t big = LIMIT_TS_JSON_BYTES + 1;
    char *buf = malloc(big + 1);
    memset(buf, ' ', big);
    buf[0] = '{';
    buf[big - 1] = '}';
    buf[big] = '\0';
    expect_error(buf, ok, 1, NULL, 0, SUFFIX, "more than the");
    free(buf);
}

/* ---- Funnel on the node's own name ---------------------------------------- */

#define NODE "portico." SUFFIX
/* Another admin's `tailscale serve` and `tailscale funnel` on the node. */
#define FOREIGN_NODE                                                                               \
    "\"AllowFunnel\":{\"" NODE ":10000\":true},"                                                   \
    "\"TCP\":{\"10000\":{\"HTTPS\":true},\"80\":{\"HTTP\":true}},"                                 \
    "\"Web\":{\"" NODE ":10000\":{\"Handlers\":{\"/\":{\"Proxy\":\"http://127.0.0.1:7000\"}}},"    \
    "\"" NODE ":80\":{\"Handlers\":{\"/\":{\"Text\":\"hi\"}}}}"

static int merge_funnel(const char *cur, const struct servecfg_funnel *f, const char *const *owned,
                        size_t n_owned, struct servecfg_result *r)
{
    struct servecfg_input in = {NULL, 0, SUFFIX, 1, 103, NULL, 0, NULL, 0, f, owned, n_owned};
    return servecfg_merge(cur, cur ? strlen(cur) : 0, &in, r, err, sizeof err);
}

static void test_funnel_publish_keep_remove(void **state)
{
    const char *paths[] = {"/", "/_matrix/"};
    const char *targets[] = {"http://127.0.0.1:8081", "http://127.0.0.1:8081/_matrix"};
    const struct servecfg_funnel f = {NODE, 443, paths, targets, 2};
    struct servecfg_result r;
    assert_int_equal(merge_funnel("{" FOREIGN_NODE "}", &f, NULL, 0, &r), 0);
    assert_string_equal(
        r.json,
        "{\"AllowFunnel\":{\"" NODE ":10000\":true,\"" NODE ":443\":true},"
        "\"TCP\":{\"10000\":{\"HTTPS\":true},\"443\":{\"HTTPS\":true},\"80\":{\"HTTP\":true}},"
        "\"Web\":{\"" NODE ":10000\":{\"Handlers\":{\"/\":{\"Proxy\":\"http://127.0.0.1:7000\"}}},"
        "\"" NODE ":443\":{\"Handlers\":{\"/\":{\"Proxy\":\"http://127.0.0.1:8081\"},"
        "\"/_matrix/\":{\"Proxy\":\"http://127.0.0.1:8081/_matrix\"}}},"
        "\"" NODE ":80\":{\"Handlers\":{\"/\":{\"Text\":\"hi\"}}}}}");
    assert_string_equal(r.plan, "+ funnel " NODE ":443  / -> http://127.0.0.1:8081, /_matrix/ -> "
                                "http://127.0.0.1:8081/_matrix\n");
    assert_true(r.changed);
    assert_int_equal(r.funnel_owned.n, 1);
    assert_string_equal(r.funnel_owned.v[0], NODE ":443");
    char *published = strdup(r.json);
    servecfg_result_free(&r);

    /* Published before: nothing to do. */
    const char *owned[] = {NODE ":443"};
    assert_int_equal(merge_funnel(published, &f, owned, 1, &r), 0);
    assert_false(r.changed);
    assert_string_equal(r.plan, "");
    servecfg_result_free(&r);

    /* Moved to 8443: 443 goes, 8443 comes; the foreign 10000 and 80 stay. */
    const struct servecfg_funnel f8443 = {NODE, 8443, paths, targets, 1};
    assert_int_equal(merge_funnel(published, &f8443, owned, 1, &r), 0);
    assert_string_equal(
        r.json,
        "{\"AllowFunnel\":{\"" NODE ":10000\":true,\"" NODE ":8443\":true},"
        "\"TCP\":{\"10000\":{\"HTTPS\":true},\"80\":{\"HTTP\":true},\"8443\":{\"HTTPS\":true}},"
        "\"Web\":{\"" NODE ":10000\":{\"Handlers\":{\"/\":{\"Proxy\":\"http://127.0.0.1:7000\"}}},"
        "\"" NODE ":80\":{\"Handlers\":{\"/\":{\"Text\":\"hi\"}}},"
        "\"" NODE ":8443\":{\"Handlers\":{\"/\":{\"Proxy\":\"http://127.0.0.1:8081\"}}}}}");
    assert_string_equal(r.plan, "- funnel " NODE ":443\n"
                                "+ funnel " NODE ":8443  / -> http://127.0.0.1:8081\n");
    servecfg_result_free(&r);

    /* Funnel removed from the configuration: back to the foreign entries. */
    assert_int_equal(merge_funnel(published, NULL, owned, 1, &r), 0);
    assert_string_equal(r.json, "{" FOREIGN_NODE "}");
    assert_string_equal(r.plan, "- funnel " NODE ":443\n");
    assert_int_equal(r.funnel_owned.n, 0);
    servecfg_result_free(&r);
    free(published);
}

static void test_funnel_refuses_a_foreign_handler(void **state)
{
    const char *paths[] = {"/"}, *targets[] = {"unix:/run/portico/tailnet.sock"};
    const struct servecfg_funnel f = {NODE, 10000, paths, targets, 1},
                                 f80 = {NODE, 80, paths, targets, 1};
    struct servecfg_result r;
    assert_int_equal(merge_funnel("{" FOREIGN_NODE "}", &f, NULL, 0, &r), -1);
    assert_string_equal(err, "funnel: " NODE ":10000 is already served by a web handler portico "
                             "did not publish; remove it (tailscale funnel --https=10000 off, or "
                             "tailscale serve reset) or choose another tailscale.funnel.port");
    servecfg_result_free(&r);
    assert_int_equal(merge_funnel("{\"TCP\":{\"80\":{\"HTTP\":true}}}", &f80, NULL, 0, &r), -1);
    assert_non_null(strstr(err, "is already served by a TCP handler on its port"));
    servecfg_result_free(&r);
    const char *bad_owned[] = {"no-port"};
    assert_int_equal(merge_funnel(NULL, NULL, bad_owned, 1, &r), -1);
    assert_non_null(strstr(err, "which is not HOST:PORT"));
    servecfg_result_free(&r);
    const struct servecfg_funnel nohost = {"", 443, paths, targets, 1};
    assert_int_equal(merge_funnel(NULL, &nohost, NULL, 0, &r), -1);
    assert_non_null(strstr(err, "is not a lower-case DNS name"));
    servecfg_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_64_then_63_then_65),
        cmocka_unit_test(test_nothing_changed_writes_nothing),
        cmocka_unit_test(test_foreign_entries_untouched),
        cmocka_unit_test(test_proxy_protocol_needs_1_94),
        cmocka_unit_test(test_serve_type_change_takes_two_writes),
        cmocka_unit_test(test_ownership_rules),
        cmocka_unit_test(test_advertise_only_when_missing),
        cmocka_unit_test(test_suffix_change_rewrites_web_key),
        cmocka_unit_test(test_foreign_key_not_a_service_name),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_funnel_publish_keep_remove),
        cmocka_unit_test(test_funnel_refuses_a_foreign_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
