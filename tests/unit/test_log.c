/* test_log.c - what the access log shows of a request target, and the
 * escapers that keep a line one logfmt line or one JSON object. */
#include "unit.h"

#include <stdbool.h>
#include <string.h>

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

/* s (n bytes) through log_json_escape with room cap, as a C string. */
static const char *jesc(const char *s, size_t n, size_t cap)
{
    static char out[1024];
    assert_true(cap < sizeof out);
    size_t o = log_json_escape(out, cap, s, n);
    assert_true(o <= cap);
    out[o] = '\0';
    return out;
}

#define JESC(lit) jesc(lit, sizeof lit - 1, 1000)

static void test_log_json_escape_quotes_backslashes_and_controls(void **state)
{
    assert_string_equal(JESC("/plain?a=1&b=2"), "/plain?a=1&b=2");
    assert_string_equal(JESC("a\"b\\c"), "a\\\"b\\\\c");
    assert_string_equal(JESC("\n\r\t"), "\\n\\r\\t");
    assert_string_equal(JESC("\x01\x1b[31m\x7f"), "\\u0001\\u001b[31m\\u007f");
    /* A NUL in the middle is data like any other control byte. */
    assert_string_equal(JESC("a\0b"), "a\\u0000b");
    assert_string_equal(JESC(""), "");
}

static void test_log_json_escape_keeps_valid_utf8(void **state)
{
    /* 2, 3 and 4 byte sequences at the edges of their ranges. */
    assert_string_equal(JESC("caf\xc3\xa9"), "caf\xc3\xa9");
    assert_string_equal(JESC("\xc2\xa0\xdf\xbf"), "\xc2\xa0\xdf\xbf");
    assert_string_equal(JESC("\xe0\xa0\x80\xed\x9f\xbf\xef\xbf\xbf"),
                        "\xe0\xa0\x80\xed\x9f\xbf\xef\xbf\xbf");
    assert_string_equal(JESC("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"),
                        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
    /* C1 controls are valid UTF-8, but terminals act on some (U+009B is CSI). */
    assert_string_equal(JESC("\xc2\x80\xc2\x9b\xc2\x9f"), "\\u0080\\u009b\\u009f");
}

#define FFFD "\xef\xbf\xbd"

static void test_log_json_escape_replaces_invalid_utf8(void **state)
{
    /* Bytes that never start a sequence, each its own U+FFFD. */
    assert_string_equal(JESC("a\x80z"), "a" FFFD "z");
    assert_string_equal(JESC("\xc0\xaf"), FFFD FFFD); /* overlong '/' */
    assert_string_equal(JESC("\xc1\xbf\xf5\xff"), FFFD FFFD FFFD FFFD);
    /* A truncated sequence is one maximal subpart: one U+FFFD. */
    assert_string_equal(JESC("\xe2\x82"), FFFD);
    assert_string_equal(JESC("\xe2\x82z"), FFFD "z");
    assert_string_equal(JESC("\xf0\x9f\x98"), FFFD);
    assert_string_equal(JESC("\xf0\x9f\x98\""), FFFD "\\\"");
    /* Second bytes outside the lead's range: surrogates, overlongs, > U+10FFFF. */
    assert_string_equal(JESC("\xed\xa0\x80"), FFFD FFFD FFFD);
    assert_string_equal(JESC("\xe0\x80\xaf"), FFFD FFFD FFFD);
    assert_string_equal(JESC("\xf0\x80\x80\x80"), FFFD FFFD FFFD FFFD);
    assert_string_equal(JESC("\xf4\x90\x80\x80"), FFFD FFFD FFFD FFFD);
    /* A lead followed by another lead: the second starts afresh. */
    assert_string_equal(JESC("\xc3\xc3\xa9"), FFFD "\xc3\xa9");
}

static void test_log_json_escape_cuts_between_units(void **state)
{
    /* Never half an escape or half a character: what does not fit is left out. */
    assert_string_equal(jesc("ab\"c", 4, 3), "ab");
    assert_string_equal(jesc("ab\"c", 4, 4), "ab\\\"");
    assert_string_equal(jesc("a\x01", 2, 6), "a");
    assert_string_equal(jesc("a\x01", 2, 7), "a\\u0001");
    assert_string_equal(jesc("a\xc3\xa9", 3, 2), "a");
    assert_string_equal(jesc("a\xf0\x9f\x98\x80", 5, 4), "a");
    assert_string_equal(jesc("a\xff", 2, 3), "a");
    assert_string_equal(jesc("a\xff", 2, 4), "a" FFFD);
    assert_string_equal(jesc("abc", 3, 0), "");
}

static void test_log_json_escape_worst_case_is_six_per_byte(void **state)
{
    char in[256], out[6 * 256];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (char)i;
    size_t o = log_json_escape(out, sizeof out, in, sizeof in);
    assert_true(o <= sizeof out);
    /* Every byte was written: the last one (0xff) is a U+FFFD at the end. */
    assert_memory_equal(out + o - 3, FFFD, 3);
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = '\x1f';
    assert_int_equal(log_json_escape(out, sizeof out, in, sizeof in), 6 * sizeof in);
}

static void test_log_escape_text_keeps_bytes(void **state)
{
    char out[64];
    size_t o = log_escape(out, sizeof out, "a\"\\\xc3\xa9\x01", 6);
    assert_int_equal(o, 17);
    assert_memory_equal(out, "a\\\"\\\\\\xc3\\xa9\\x01", 17);
}

static const char *access_text(const char *user)
{
    static struct log_buf lb;
    static char line[1024];
    struct access_entry e = {.service = "app",
                             .client = "100.64.0.2",
                             .user = user,
                             .method = "GET",
                             .path = "/x",
                             .path_len = 2,
                             .status = 200,
                             .bytes_in = 10,
                             .bytes_out = 20,
                             .usec = 1500};
    lb.len = 0;
    log_access(&lb, &e, LOG_FORMAT_TEXT);
    assert_true(lb.len > 0 && lb.len < sizeof line);
    memcpy(line, lb.data, lb.len);
    line[lb.len] = '\0';
    return line;
}

/* A user name is written bare when logfmt can carry it so, and quoted and
 * escaped otherwise: a login with a space (from tailscaled or the auth
 * provider) must not split into fields, nor pose as a status. */
static void test_log_access_text_quotes_a_user_that_needs_it(void **state)
{
    assert_non_null(strstr(access_text("alice@example.com"), " user=alice@example.com "));
    assert_non_null(strstr(access_text("-"), " user=- "));
    const char *l = access_text("eve status=500");
    assert_non_null(strstr(l, " user=\"eve status=500\" "));
    assert_non_null(strstr(l, " status=200 "));
    assert_non_null(strstr(access_text("Zo\xc3\xab \"q\""), " user=\"Zo\\xc3\\xab \\\"q\\\"\" "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_target_redacts_named_parameters),
        cmocka_unit_test(test_log_target_full_and_drop),
        cmocka_unit_test(test_log_target_cut_at_capacity),
        cmocka_unit_test(test_log_plural_is_singular_for_one),
        cmocka_unit_test(test_log_json_escape_quotes_backslashes_and_controls),
        cmocka_unit_test(test_log_json_escape_keeps_valid_utf8),
        cmocka_unit_test(test_log_json_escape_replaces_invalid_utf8),
        cmocka_unit_test(test_log_json_escape_cuts_between_units),
        cmocka_unit_test(test_log_json_escape_worst_case_is_six_per_byte),
        cmocka_unit_test(test_log_escape_text_keeps_bytes),
        cmocka_unit_test(test_log_access_text_quotes_a_user_that_needs_it),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
