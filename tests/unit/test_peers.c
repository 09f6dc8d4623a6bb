/* test_peers.c - client address keys, which of them are loopback, and the
 * per-client count. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "peers.h"

/* The key of a textual IPv4 or IPv6 address, through its sockaddr. */
static void key_of(const char *text, uint8_t key[16])
{
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
        sa.ss_family = AF_INET;
    else {
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
        sa.ss_family = AF_INET6;
    }
    assert_true(peer_key_of(&sa, key));
}

static bool loopback(const char *text)
{
    uint8_t key[16];
    key_of(text, key);
    return peer_key_loopback(key);
}

static void test_peers_loopback_addresses(void **state)
{
    (void)state;
    assert_true(loopback("127.0.0.1"));
    assert_true(loopback("127.0.0.0"));
    assert_true(loopback("127.1.2.3"));
    assert_true(loopback("127.255.255.255"));
    assert_true(loopback("::1"));
    assert_true(loopback("::ffff:127.0.0.1"));
    assert_true(loopback("::ffff:127.9.8.7"));
}

static void test_peers_other_addresses_not_loopback(void **state)
{
    (void)state;
    assert_false(loopback("126.255.255.255"));
    assert_false(loopback("128.0.0.1"));
    assert_false(loopback("0.0.0.0"));
    assert_false(loopback("10.0.0.1"));
    assert_false(loopback("192.0.2.7"));
    assert_false(loopback("100.64.0.1"));
    assert_false(loopback("::"));
    assert_false(loopback("::2"));
    assert_false(loopback("::127.0.0.1")); /* IPv4-compatible, not mapped */
    assert_false(loopback("::ffff:10.0.0.1"));
    assert_false(loopback("::ffff:0:127.0.0.1"));
    assert_false(loopback("fe80::1"));
    assert_false(loopback("fd7a:115c:a1e0::1"));
    assert_false(loopback("1::1"));
}

static void test_peers_ipv4_and_mapped_share_a_key(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    key_of("192.0.2.7", a);
    key_of("::ffff:192.0.2.7", b);
    assert_memory_equal(a, b, 16);
}

static void test_peers_unix_socket_has_no_key(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    sa.ss_family = AF_UNIX;
    uint8_t key[16];
    assert_false(peer_key_of(&sa, key));
}

static void test_peers_table_limits_each_address(void **state)
{
    (void)state;
    static struct peer_table t;
    assert_int_equal(peer_table_init(&t), 0);
    uint8_t a[16], b[16];
    key_of("192.0.2.7", a);
    key_of("192.0.2.8", b);
    bool counted;
    for (int i = 0; i < 3; i++) {
        assert_true(peer_table_acquire(&t, a, 3, &counted));
        assert_true(counted);
    }
    assert_false(peer_table_acquire(&t, a, 3, &counted));
    assert_false(counted);
    assert_true(peer_table_acquire(&t, b, 3, &counted));
    assert_true(counted);
    peer_table_release(&t, a);
    assert_true(peer_table_acquire(&t, a, 3, &counted));
    assert_true(counted);
    peer_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peers_loopback_addresses),
        cmocka_unit_test(test_peers_other_addresses_not_loopback),
        cmocka_unit_test(test_peers_ipv4_and_mapped_share_a_key),
        cmocka_unit_test(test_peers_unix_socket_has_no_key),
        cmocka_unit_test(test_peers_table_limits_each_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
