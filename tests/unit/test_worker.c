/* test_worker.c - how many connections a worker accepts per wake-up: a
 * flood of connects must leave the kernel's queue within a few wake-ups
 * (one accept per wake-up left thousands of 10,000 connects queued for the
 * whole of a 10 s run), while a worker above 9/8 of its share leaves the
 * rest to the others, so connects arriving together are spread. */
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
    /* Alone, every connection is its own: never above its share. */
    assert_int_equal(batch(0, 0, 1), LIMIT_ACCEPT_BATCH);
    assert_int_equal(batch(5000, 5000, 1), LIMIT_ACCEPT_BATCH);
    /* At or below its share among two, it may take a whole batch. */
    assert_int_equal(batch(2500, 5000, 2), LIMIT_ACCEPT_BATCH);
    assert_int_equal(batch(1000, 5000, 2), LIMIT_ACCEPT_BATCH);
    assert_true(LIMIT_ACCEPT_BATCH >= 32);
}

static void test_worker_above_its_share_takes_one(void **state)
{
    /* 3,000 of 5,000 with two workers (above 9/8 of 2,500): the first only. */
    assert_int_equal(batch(3000, 5000, 2), 1);
    /* 2,800 of 5,000: it takes more while it holds at most 9/8 of its
     * share, which grows by half of one with each it takes: 2,828 of 5,028
     * is the last at 9/8 (2 x 2,828 = 5,028 + 628), so it takes 29. */
    assert_int_equal(batch(2800, 5000, 2), 29);
    /* The first woken while no worker holds any takes one, not a batch. */
    assert_int_equal(batch(0, 0, 2), 1);
}

/* Connects that arrive together, e.g. a client opening 64 at once, are
 * taken by the workers' wake-ups in turn: none ends with all of them. */
static void test_worker_connects_arriving_together_are_spread(void **state)
{
    for (unsigned nworkers = 2; nworkers <= 4; nworkers++) {
        size_t mine[4] = {0};
        size_t all = 0;
        int queued = 64;
        for (unsigned turn = 0; queued > 0; turn = (turn + 1) % nworkers) {
            int taken = 0;
            while (queued > 0 && worker_accept_more(taken, mine[turn], all, nworkers)) {
                taken++;
                mine[turn]++;
                all++;
                queued--;
            }
        }
        size_t least = 64, most = 0;
        for (unsigned i = 0; i < nworkers; i++) {
            least = mine[i] < least ? mine[i] : least;
            most = mine[i] > most ? mine[i] : most;
        }
        assert_int_equal(all, 64);
        assert_true(most - least <= 64 / nworkers / 4 + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_at_its_share_takes_a_batch),
        cmocka_unit_test(test_worker_above_its_share_takes_one),
        cmocka_unit_test(test_worker_connects_arriving_together_are_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
