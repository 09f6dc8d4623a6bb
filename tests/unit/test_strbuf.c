/* test_strbuf.c - growing printf strings. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void test_strbuf_grows_from_empty(void **state)
{
    struct strbuf b = {0};
    char want[4096] = "";
    for (int i = 0; i < 300; i++) { /* well past the first allocation */
        strbuf_printf(&b, "line %d\n", i);
        snprintf(want + strlen(want), sizeof want - strlen(want), "line %d\n", i);
    }
    assert_false(b.oom);
    assert_int_equal(b.len, strlen(want));
    assert_string_equal(b.s, want);
    free(b.s);
}

static void test_strbuf_empty_append_is_a_string(void **state)
{
    struct strbuf b = {0};
    strbuf_printf(&b, "%s", "");
    assert_false(b.oom);
    assert_non_null(b.s);
    assert_string_equal(b.s, "");
    free(b.s);
}

static void test_strbuf_preallocated_keeps_what_it_has(void **state)
{
    struct strbuf b = {.cap = 8};
    b.s = malloc(b.cap);
    assert_non_null(b.s);
    b.s[0] = '\0';
    strbuf_printf(&b, "abc");
    assert_int_equal(b.cap, 8); /* fits: no reallocation */
    strbuf_printf(&b, "%s", "defghijklmnop");
    assert_false(b.oom);
    assert_string_equal(b.s, "abcdefghijklmnop");
    assert_int_equal(b.len, 16);
    free(b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strbuf_grows_from_empty),
        cmocka_unit_test(test_strbuf_empty_append_is_a_string),
        cmocka_unit_test(test_strbuf_preallocated_keeps_what_it_has),
    };
    return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
