/* test_worker.c - how many connections a worker accepts per wake-up: a
 * flood of connects must leave the kernel's queue within a few wake-ups
 * (one accept per wake-up left thousands of 10,000 connects queued for the
 * whole of a 10 s run), while a worker more than a batch above its share
 * leaves the rest to the others. */
#include "unit.h"

#include "worker.h"

/* How many one wake-up takes from a deep queue. */
static int batch(size_t mine, size_t all, unsigned nworkers)
{
    int taken = 0;
    while (worker_accept_more(taken, mine, all, nworkers)) {
        taken++;
        mine++;
        all++;
    }
    return taken;
}

static void test_worker_at_its_share_takes_a_batch(void **state)
{
    assert_int_equal(batch(0, 0, 2), LIMIT_ACCEPT_BATCH);
    assert_int_equal(batch(0, 0, 1), LIMIT_ACCEPT_BATCH);
    /* Below its share, it may take a whole batch. */
    assert_int_equal(batch(1000, 5000, 2), LIMIT_ACCEPT_BATCH);
    assert_true(LIMIT_ACCEPT_BATCH >= 32);
}

static void test_worker_above_its_share_takes_one(void **state)
{
    /* 3,000 of 5,000 with two workers: the first accept only. */
    assert_int_equal(batch(3000, 5000, 2), 1);
    /* 2,560 of 5,000: it may go 64 past its share of 2,500, so it takes
     * 9 (each one it takes raises the share by half of one). */
    assert_int_equal(batch(2560, 5000, 2), 9);
    /* Alone, every connection is its own: never above its share. */
    assert_int_equal(batch(5000, 5000, 1), LIMIT_ACCEPT_BATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_at_its_share_takes_a_batch),
        cmocka_unit_test(test_worker_above_its_share_takes_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
