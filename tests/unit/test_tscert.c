/* test_tscert.c - the pure parts of the certificates from tailscaled:
 * splitting the ?type=pair answer, the renewal time, min_validity,
 * Retry-After, and checking a pair (tls_pair_check) on fixtures made with
 * openssl (a P-256 key and a certificate for alpha.tail1234.ts.net, valid
 * 36500 days; the same certificate with another key). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "tscert.h"
#include "tsfixture.h"

static const char PAIR[] = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
                           "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
                           "-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----\n";

static void test_split_at_the_first_boundary(void **state)
{
    (void)state;
    size_t k = 0;
    char err[200];
    assert_int_equal(tscert_split_pair(PAIR, strlen(PAIR), &k, err, sizeof err), 0);
    assert_int_equal(
        k, strlen("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"));
    assert_memory_equal(PAIR + k, "-----BEGIN CERTIFICATE-----\nBBBB", 32);
}

static void test_split_refuses_broken_answers(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"", "no boundary"},
        {"-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n", "no boundary"},
        /* the Go client's check: a key in the certificate part */
        {"-----BEGIN EC PRIVATE KEY-----\nA\n-----END EC PRIVATE KEY-----\n"
         "-----BEGIN PRIVATE KEY-----\nB\n-----END PRIVATE KEY-----\n",
         "a private key among the certificates"},
        {"-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"
         "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n",
         "does not start with a private key"},
        {"-----BEGIN EC PRIVATE KEY-----\nA\n-----END EC PRIVATE KEY-----\n--garbage\n",
         "no certificate after the key"},
        {"-----BEGIN EC PRIVATE KEY-----\nA\n-----END EC PRIVATE KEY-----\n", "no boundary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t k = 12345;
        char err[200] = "";
        assert_int_equal(tscert_split_pair(cases[i].in, strlen(cases[i].in), &k, err, sizeof err),
                         -1);
        if (!strstr(err, cases[i].msg))
            fail_msg("case %zu: %s", i, err);
        assert_int_equal(k, 12345);
    }
}

static void test_renewal_at_two_thirds(void **state)
{
    (void)state;
    /* tailscaled's own rule: NotBefore + lifetime * 2 / 3 */
    assert_int_equal(tscert_renew_at(0, 90 * 86400), 60 * 86400);
    assert_int_equal(tscert_renew_at(1000, 1003), 1002);
    assert_int_equal(tscert_renew_at(1000, 1014), 1009); /* 14 * 2 / 3 = 9.33 */
    assert_int_equal(tscert_renew_at(1700000000, 1700000000 + 7776000), 1700000000 + 5184000);
    /* no overflow for a long validity, and a broken one is due at once */
    assert_int_equal(tscert_renew_at(0, INT64_MAX / 2), INT64_MAX / 2 / 3 * 2);
    assert_int_equal(tscert_renew_at(500, 400), 500);
}

static void test_min_validity_asks_for_more_than_is_left(void **state)
{
    (void)state;
    char mv[32];
    tscert_min_validity(1000 + 3600, 1000, mv, sizeof mv);
    assert_string_equal(mv, "3601s");
    tscert_min_validity(1000, 1000, mv, sizeof mv);
    assert_string_equal(mv, "1s");
    tscert_min_validity(10, 1000, mv, sizeof mv); /* expired already */
    assert_string_equal(mv, "1s");
}

static void test_retry_after_seconds_only(void **state)
{
    (void)state;
    assert_int_equal(tscert_retry_after("120", 3), 120);
    assert_int_equal(tscert_retry_after("0", 1), 0);
    assert_int_equal(tscert_retry_after("86400", 5), 86400);
    assert_int_equal(tscert_retry_after("86401", 5), -1);
    assert_int_equal(tscert_retry_after("", 0), -1);
    assert_int_equal(tscert_retry_after("-1", 2), -1);
    assert_int_equal(tscert_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", 29), -1);
    assert_int_equal(tscert_retry_after("9999999999", 10), -1);
}

static void test_pair_check_on_fixtures(void **state)
{
    (void)state;
    size_t len, k;
    char err[300];
    char *pem = ts_fixture("cert_pair_alpha.pem", &len);
    assert_int_equal(tscert_split_pair(pem, len, &k, err, sizeof err), 0);
    struct tls_pair_info info;
    if (tls_pair_check(pem, k, pem + k, len - k, "alpha.tail1234.ts.net", &info, err, sizeof err) !=
        0)
        fail_msg("%s", err);
    assert_int_equal(info.not_after - info.not_before, (int64_t)36500 * 86400);
    assert_string_equal(info.serial, "2E1889040897F20A606F373D5448762E8D29A239");

    /* a pair for another name */
    assert_int_equal(
        tls_pair_check(pem, k, pem + k, len - k, "beta.tail1234.ts.net", &info, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "is for alpha.tail1234.ts.net"));
    /* the key and the certificate swapped */
    assert_int_equal(
        tls_pair_check(pem + k, len - k, pem, k, "alpha.tail1234.ts.net", &info, err, sizeof err),
        -1);
    /* a truncated chain */
    assert_int_equal(tls_pair_check(pem, k, pem + k, (len - k) / 2, "alpha.tail1234.ts.net", &info,
                                    err, sizeof err),
                     -1);
    free(pem);

    pem = ts_fixture("cert_pair_wrong_key.pem", &len);
    assert_int_equal(tscert_split_pair(pem, len, &k, err, sizeof err), 0);
    assert_int_equal(
        tls_pair_check(pem, k, pem + k, len - k, "alpha.tail1234.ts.net", &info, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "does not match"));
    free(pem);
}

static void test_dyn_set_builds_and_installs(void **state)
{
    (void)state;
    size_t len, k;
    char err[300];
    char *pem = ts_fixture("cert_pair_alpha.pem", &len);
    assert_int_equal(tscert_split_pair(pem, len, &k, err, sizeof err), 0);
    struct tls_pem_pair p = {"alpha.tail1234.ts.net", pem, pem + k, k, len - k};
    struct tls_dyn *d = tls_dyn_new(&p, 1, err, sizeof err);
    assert_non_null(d);
    tls_dyn_install(d);
    tls_dyn_install(NULL); /* frees it: no session holds it */
    d = tls_dyn_new(NULL, 0, err, sizeof err);
    assert_non_null(d);
    tls_dyn_install(d);
    tls_dyn_install(NULL);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_the_first_boundary),
        cmocka_unit_test(test_split_refuses_broken_answers),
        cmocka_unit_test(test_renewal_at_two_thirds),
        cmocka_unit_test(test_min_validity_asks_for_more_than_is_left),
        cmocka_unit_test(test_retry_after_seconds_only),
        cmocka_unit_test(test_pair_check_on_fixtures),
        cmocka_unit_test(test_dyn_set_builds_and_installs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
