/* test_sdnotify.c - $NOTIFY_SOCKET and $WATCHDOG_* parsing, message formatting. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "sdnotify.h"

static void test_sdnotify_socket_path(void **state)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    char err[256];
    assert_int_equal(sdnotify_parse_socket("/run/systemd/notify", &sa, &len, err, sizeof err), 0);
    assert_int_equal(sa.sun_family, AF_UNIX);
    assert_string_equal(sa.sun_path, "/run/systemd/notify");
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify"));
}

static void test_sdnotify_socket_abstract(void **state)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    char err[256];
    assert_int_equal(sdnotify_parse_socket("@portico/n", &sa, &len, err, sizeof err), 0);
    /* A leading NUL, then the name without '@' and without a trailing NUL
     * in the length: the kernel compares every byte of the length. */
    assert_int_equal(sa.sun_path[0], '\0');
    assert_memory_equal(sa.sun_path + 1, "portico/n", 9);
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 10);
}

static void test_sdnotify_socket_rejected(void **state)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    char err[256];
    assert_int_equal(sdnotify_parse_socket("run/notify", &sa, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "neither a path"));
    assert_int_equal(sdnotify_parse_socket("vsock:2:1234", &sa, &len, err, sizeof err), -1);
    assert_int_equal(sdnotify_parse_socket("", &sa, &len, err, sizeof err), -1);
    assert_int_equal(sdnotify_parse_socket("@", &sa, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "names no socket"));
    char longp[sizeof sa.sun_path + 1];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(sdnotify_parse_socket(longp, &sa, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most 107"));
    /* The longest that fits. */
    longp[sizeof sa.sun_path - 1] = '\0';
    assert_int_equal(sdnotify_parse_socket(longp, &sa, &len, err, sizeof err), 0);
}

static void test_sdnotify_watchdog(void **state)
{
    uint64_t usec = 7;
    char err[256];
    assert_int_equal(sdnotify_parse_watchdog(NULL, NULL, 42, &usec, err, sizeof err), 0);
    assert_int_equal(usec, 0);
    assert_int_equal(sdnotify_parse_watchdog("30000000", NULL, 42, &usec, err, sizeof err), 0);
    assert_int_equal(usec, 30000000);
    assert_int_equal(sdnotify_parse_watchdog("30000000", "42", 42, &usec, err, sizeof err), 0);
    assert_int_equal(usec, 30000000);
    /* Meant for another process: off, without complaint. */
    assert_int_equal(sdnotify_parse_watchdog("30000000", "41", 42, &usec, err, sizeof err), 0);
    assert_int_equal(usec, 0);
}

static void test_sdnotify_watchdog_rejected(void **state)
{
    uint64_t usec = 7;
    char err[256];
    const char *bad[] = {"0", "", "-5", "1s", " 5", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sdnotify_parse_watchdog(bad[i], NULL, 42, &usec, err, sizeof err), -1);
        assert_int_equal(usec, 0);
        assert_non_null(strstr(err, "WATCHDOG_USEC="));
    }
    assert_int_equal(
        sdnotify_parse_watchdog("18446744073709551615", NULL, 42, &usec, err, sizeof err), 0);
    assert_true(usec == UINT64_MAX);
    assert_int_equal(sdnotify_parse_watchdog("1000", "x", 42, &usec, err, sizeof err), -1);
    assert_non_null(strstr(err, "WATCHDOG_PID=x"));
    assert_int_equal(usec, 0);
}

static void test_sdnotify_format_state_and_status(void **state)
{
    char out[LIMIT_SDNOTIFY_MSG_BYTES];
    assert_int_equal(sdnotify_format(out, sizeof out, "READY=1", NULL), 7);
    assert_string_equal(out, "READY=1");
    sdnotify_format(out, sizeof out, "RELOADING=1\nMONOTONIC_USEC=12", "reloading");
    assert_string_equal(out, "RELOADING=1\nMONOTONIC_USEC=12\nSTATUS=reloading");
    /* A newline in a status (an error message) would start a new key. */
    sdnotify_format(out, sizeof out, "READY=1", "refused: a.yaml:3: bad\nWATCHDOG=trigger\t!");
    assert_string_equal(out, "READY=1\nSTATUS=refused: a.yaml:3: bad WATCHDOG=trigger !");
}

static void test_sdnotify_format_cuts(void **state)
{
    char status[2 * LIMIT_SDNOTIFY_STATUS_BYTES];
    memset(status, 'x', sizeof status - 1);
    status[sizeof status - 1] = '\0';
    char out[LIMIT_SDNOTIFY_MSG_BYTES];
    size_t n = sdnotify_format(out, sizeof out, "READY=1", status);
    assert_int_equal(n, strlen("READY=1\nSTATUS=") + LIMIT_SDNOTIFY_STATUS_BYTES);
    assert_int_equal(strlen(out), n);
    /* A small buffer: no half STATUS= key, and still a string. */
    char small[18];
    n = sdnotify_format(small, 12, "READY=1", "abcdef");
    assert_int_equal(n, 7);
    assert_string_equal(small, "READY=1");
    n = sdnotify_format(small, sizeof small, "READY=1", "abcdef");
    assert_string_equal(small, "READY=1\nSTATUS=ab");
    n = sdnotify_format(small, 5, "READY=1", NULL);
    assert_string_equal(small, "READ");
}

static void test_sdnotify_summary(void **state)
{
    char out[LIMIT_SDNOTIFY_STATUS_BYTES];
    struct sdnotify_summary s = {.services = 3, .listeners = 2, .workers = 2, .connections = 5};
    sdnotify_format_summary(out, sizeof out, &s);
    assert_string_equal(out, "3 services, 2 listeners, 2 workers, 5 connections");
    s = (struct sdnotify_summary){.services = 1, .listeners = 1, .workers = 1, .reload = 1};
    sdnotify_format_summary(out, sizeof out, &s);
    assert_string_equal(out, "1 service, 1 listener, 1 worker, 0 connections; last reload done");
    s.reload = -1;
    s.reload_error = "p.yaml:4: unknown key 'x'";
    sdnotify_format_summary(out, sizeof out, &s);
    assert_string_equal(out, "1 service, 1 listener, 1 worker, 0 connections; last reload "
                             "refused: p.yaml:4: unknown key 'x'");
    char small[20];
    size_t n = sdnotify_format_summary(small, sizeof small, &s);
    assert_int_equal(n, 19);
    assert_string_equal(small, "1 service, 1 listen");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdnotify_socket_path),
        cmocka_unit_test(test_sdnotify_socket_abstract),
        cmocka_unit_test(test_sdnotify_socket_rejected),
        cmocka_unit_test(test_sdnotify_watchdog),
        cmocka_unit_test(test_sdnotify_watchdog_rejected),
        cmocka_unit_test(test_sdnotify_format_state_and_status),
        cmocka_unit_test(test_sdnotify_format_cuts),
        cmocka_unit_test(test_sdnotify_summary),
    };
    return cmocka_run_group_tests_name("sdnotify", tests, NULL, NULL);
}
