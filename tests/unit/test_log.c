/* test_log.c - what the access log shows of a request target. */
#include "unit.h"

#include <stdbool.h>

#include "log.h"

static const char *const names[] = {"token", "password"};

static const char *target(const char *t, bool drop, size_t nnames, size_t cap)
{
    static char out[256];
    size_t n = log_target(t, strlen(t), drop, names, nnames, out, cap);
    assert_true(n <= cap);
    out[n] = '\0';
    return out;
}

static void test_log_target_redacts_named_parameters(void **state)
{
    assert_string_equal(target("/tree?token=abc123&x=1", false, 2, 200),
                        "/tree?token=REDACTED&x=1");
    assert_string_equal(target("/a?x=1&TOKEN=s&password=p&tokens=kept", false, 2, 200),
                        "/a?x=1&TOKEN=REDACTED&password=REDACTED&tokens=kept");
    /* A name without '=' has no value to hide; an empty value is still replaced. */
    assert_string_equal(target("/a?token&token=", false, 2, 200), "/a?token&token=REDACTED");
    assert_string_equal(target("/no/query", false, 2, 200), "/no/query");
    assert_string_equal(target("/a?", false, 2, 200), "/a?");
}

static void test_log_target_full_and_drop(void **state)
{
    assert_string_equal(target("/tree?token=abc", false, 0, 200), "/tree?token=abc");
    assert_string_equal(target("/tree?token=abc", true, 2, 200), "/tree");
    assert_string_equal(target("http://a.test/x?token=abc", true, 0, 200), "http://a.test/x");
}

static void test_log_plural_is_singular_for_one(void **state)
{
    assert_string_equal(log_plural(1, "service", "services"), "service");
    assert_string_equal(log_plural(0, "service", "services"), "services");
    assert_string_equal(log_plural(2, "listener", "listeners"), "listeners");
}

static void test_log_target_cut_at_capacity(void **state)
{
    assert_string_equal(target("/abcdef?token=secret", false, 2, 10), "/abcdef?to");
    assert_string_equal(target("/a?token=secretsecret", false, 2, 12), "/a?token=RED");
    assert_string_equal(target("/abcdef", false, 2, 3), "/ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_target_redacts_named_parameters),
        cmocka_unit_test(test_log_target_full_and_drop),
        cmocka_unit_test(test_log_target_cut_at_capacity),
        cmocka_unit_test(test_log_plural_is_singular_for_one),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
