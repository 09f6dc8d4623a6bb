/* test_exchange.c - the exchange's life: a released exchange is poisoned
 * where the build allows it (ASan, -DPORTICO_DEBUG), taken again clean,
 * and every state has its row in the state table. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "proxy.h"
#include "worker.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static struct config cfg;
static struct worker w;
static struct conn c;

static void setup_worker(void)
{
    memset(&cfg, 0, sizeof cfg);
    memset(&w, 0, sizeof w);
    memset(&c, 0, sizeof c);
    cfg.refs = 1; /* the worker's own reference */
    w.cfg = &cfg;
    c.w = &w;
}

static void test_exchange_recycled_clean(void **state)
{
    setup_worker();
    struct conn before = c;
    struct exchange *ex = proxy_new(&c);
    assert_non_null(ex);
    assert_ptr_equal(ex->c, &c);
    assert_int_equal(ex->state, EX_ROUTING);
    assert_int_equal(cfg.refs, 2);
    ex->status = 502;
    ex->close_client = true;
    proxy_release(ex);
    /* The connection records its exchange itself; the exchange never
     * writes a field of it. */
    assert_memory_equal(&before, &c, sizeof c);
    assert_int_equal(cfg.refs, 1);
    assert_ptr_equal(w.free_exchanges, ex);
    /* The next request gets the same memory, with nothing of the last one. */
    struct exchange *again = proxy_new(&c);
    assert_ptr_equal(again, ex);
    assert_null(w.free_exchanges);
    assert_int_equal(again->state, EX_ROUTING);
    assert_int_equal(again->status, 0);
    assert_false(again->close_client);
    assert_int_equal(again->sp_req.pipe.fd[0], -1);
    assert_int_equal(again->sp_resp.pipe.fd[0], -1);
    assert_int_equal(again->sp_resp.data, 0);
    assert_int_equal(again->tunnel_up.pipe.fd[0], -1); /* a tunnel relay copies */
    assert_false(again->tunnel_down.shut);
    proxy_release(again);
    w.free_exchanges = NULL;
    free(again);
}

static void test_exchange_released_is_poisoned(void **state)
{
#ifdef TEST_ASAN
    /* The ASan build is where use-after-release must fail loudly. */
    assert_true(proxy_poisons_released());
#endif
    if (!proxy_poisons_released())
        skip();
    setup_worker();
    struct exchange *ex = proxy_new(&c);
    assert_non_null(ex);
    proxy_release(ex);
#ifdef TEST_ASAN
    assert_true(__asan_address_is_poisoned(&ex->state));
    assert_true(__asan_address_is_poisoned(&ex->c));
    assert_true(__asan_address_is_poisoned((char *)ex + sizeof *ex - 1));
    /* The free-list link stays readable. */
    assert_false(__asan_address_is_poisoned(&ex->next_free));
#else
    unsigned char b[sizeof ex->state];
    memcpy(b, &ex->state, sizeof b);
    for (size_t i = 0; i < sizeof b; i++)
        assert_int_equal(b[i], 0xA5);
#endif
    struct exchange *again = proxy_new(&c);
    assert_ptr_equal(again, ex);
#ifdef TEST_ASAN
    assert_false(__asan_address_is_poisoned(&again->state));
    assert_false(__asan_address_is_poisoned((char *)again + sizeof *again - 1));
#endif
    assert_int_equal(again->state, EX_ROUTING);
    proxy_release(again);
    w.free_exchanges = NULL;
    free(again);
}

/* A burst of concurrent requests leaves at most EXCHANGE_FREELIST_MAX
 * released exchanges cached; the rest go back to malloc. */
static void test_exchange_cache_bounded(void **state)
{
    setup_worker();
    enum { N = EXCHANGE_FREELIST_MAX + 8 };
    struct exchange *ex[N];
    for (size_t i = 0; i < N; i++) {
        ex[i] = proxy_new(&c);
        assert_non_null(ex[i]);
    }
    for (size_t i = 0; i < N; i++)
        proxy_release(ex[i]);
    assert_int_equal(w.nfree_exchanges, EXCHANGE_FREELIST_MAX);
    size_t n = 0;
    while (w.free_exchanges) {
        struct exchange *e = proxy_new(&c);
        assert_non_null(e);
        n++;
        free(e);
    }
    assert_int_equal(n, EXCHANGE_FREELIST_MAX);
    assert_int_equal(w.nfree_exchanges, 0);
    assert_int_equal(cfg.refs, 1 + n); /* each exchange taken holds a reference */
}

static void test_exchange_every_state_named(void **state)
{
    const char *seen[EX_TUNNEL + 1];
    for (int st = EX_ROUTING; st <= EX_TUNNEL; st++) {
        const char *name = proxy_state_name((enum exchange_state)st);
        assert_string_not_equal(name, "?");
        for (int i = EX_ROUTING; i < st; i++)
            assert_string_not_equal(seen[i], name);
        seen[st] = name;
    }
    assert_string_equal(proxy_state_name((enum exchange_state)(EX_TUNNEL + 1)), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_recycled_clean),
        cmocka_unit_test(test_exchange_released_is_poisoned),
        cmocka_unit_test(test_exchange_cache_bounded),
        cmocka_unit_test(test_exchange_every_state_named),
    };
    return cmocka_run_group_tests_name("exchange", tests, NULL, NULL);
}
