/* test_tspolicy.c - the service definitions and policy fragment printed for
 * an administrator when portico has no API credentials. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "tspolicy.h"

static char err[512];

static const struct servecfg_service svcs[] = {
    {"grafana", SERVECFG_HTTP, 443, "unix:/run/portico/tailnet.sock", false},
    {"db", SERVECFG_TCP, 5432, "127.0.0.1:15432", true},
};

static void test_policy_text(void **state)
{
    struct tspolicy_input in = {svcs, 2, "tag:portico", "tag:portico-svc", NULL, 0, NULL, 0};
    char *t = tspolicy_print(&in, err, sizeof err);
    assert_non_null(t);
    assert_string_equal(
        t, "// Service definitions: add each in the admin console (Services), or\n"
           "// PUT https://api.tailscale.com/api/v2/tailnet/-/vip-services/svc:NAME\n"
           "// with its line as the body.\n"
           "{\"name\":\"svc:grafana\",\"comment\":\"published by portico\",\"ports\":"
           "[\"tcp:443\"],\"tags\":[\"tag:portico-svc\"]}\n"
           "{\"name\":\"svc:db\",\"comment\":\"published by portico\",\"ports\":[\"tcp:5432\"],"
           "\"tags\":[\"tag:portico-svc\"]}\n"
           "\n"
           "// Policy: merge into the tailnet policy file. The node running\n"
           "// tailscaled must carry tag:portico; services tagged tag:portico-svc are then\n"
           "// approved on it without a click.\n"
           "{\n"
           "  \"tagOwners\": {\"tag:portico\":[\"autogroup:admin\"],\"tag:portico-svc\":"
           "[\"autogroup:admin\"]},\n"
           "  \"autoApprovers\": {\"services\":{\"tag:portico-svc\":[\"tag:portico\"]}},\n"
           "  \"grants\": [\n"
           "    {\"src\":[\"autogroup:member\"],\"dst\":[\"svc:grafana\"],\"ip\":[\"tcp:443\"]},\n"
           "    {\"src\":[\"autogroup:member\"],\"dst\":[\"svc:db\"],\"ip\":[\"tcp:5432\"]}\n"
           "  ]\n"
           "}\n");
    free(t);
}

static void test_policy_owners_and_sources(void **state)
{
    const char *owners[] = {"group:ops", "alice@example.com"};
    const char *sources[] = {"group:eng"};
    struct tspolicy_input in = {svcs, 1, "tag:p", "tag:p-svc", owners, 2, sources, 1};
    char *t = tspolicy_print(&in, err, sizeof err);
    assert_non_null(t);
    assert_non_null(strstr(t, "\"tagOwners\": {\"tag:p\":[\"group:ops\",\"alice@example.com\"],"
                              "\"tag:p-svc\":[\"group:ops\",\"alice@example.com\"]},\n"));
    assert_non_null(strstr(t, "    {\"src\":[\"group:eng\"],\"dst\":[\"svc:grafana\"],\"ip\":"
                              "[\"tcp:443\"]}\n  ]\n}\n"));
    free(t);
}

static void test_policy_refused(void **state)
{
    struct tspolicy_input in = {svcs, 2, "portico", "tag:portico-svc", NULL, 0, NULL, 0};
    assert_null(tspolicy_print(&in, err, sizeof err));
    assert_non_null(strstr(err, "must both be tag:NAME"));
    in.host_tag = "tag:a b";
    assert_null(tspolicy_print(&in, err, sizeof err));
    in.host_tag = "tag:portico-svc";
    assert_null(tspolicy_print(&in, err, sizeof err));
    assert_non_null(strstr(err, "a tag of their own"));
    const struct servecfg_service bad[] = {{"Bad", SERVECFG_HTTP, 443, "unix:/x", false}};
    struct tspolicy_input in2 = {bad, 1, "tag:a", "tag:b", NULL, 0, NULL, 0};
    assert_null(tspolicy_print(&in2, err, sizeof err));
    assert_non_null(strstr(err, "service \"Bad\" cannot be defined"));
    const char *owners[] = {"\xff"};
    struct tspolicy_input in3 = {svcs, 1, "tag:a", "tag:b", owners, 1, NULL, 0};
    assert_null(tspolicy_print(&in3, err, sizeof err));
    assert_non_null(strstr(err, "not UTF-8"));
}

static void test_service_body(void **state)
{
    char *b = tspolicy_service_body(&svcs[1], "tag:portico-svc");
    assert_string_equal(b, "{\"name\":\"svc:db\",\"comment\":\"published by portico\",\"ports\":"
                           "[\"tcp:5432\"],\"tags\":[\"tag:portico-svc\"]}");
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_text),
        cmocka_unit_test(test_policy_owners_and_sources),
        cmocka_unit_test(test_policy_refused),
        cmocka_unit_test(test_service_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
