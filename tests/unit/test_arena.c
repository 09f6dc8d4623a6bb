/* test_arena.c - the bump allocator behind configuration snapshots. */
#include "unit.h"

#include <stdalign.h>
#include <stdint.h>

#include "arena.h"
#include "limits.h"

static void test_arena_alloc_zeroed_aligned_distinct(void **state)
{
    struct arena *a = arena_new();
    assert_non_null(a);
    unsigned char *prev = NULL;
    for (size_t size = 0; size < 100; size++) {
        unsigned char *p = arena_alloc(a, size);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        assert_true(p != prev);
        for (size_t i = 0; i < size; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xa5, size); /* ASan: every byte handed out is ours to write */
        prev = p;
    }
    arena_free(a);
}

static void test_arena_blocks_never_overlap_across_chunks(void **state)
{
    struct arena *a = arena_new();
    enum { N = 2000 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        /* Mostly small, now and then larger than a quarter chunk. */
        sizes[i] = i % 97 == 0 ? LIMIT_ARENA_CHUNK + i : 1 + i % 300;
        blocks[i] = arena_alloc(a, sizes[i]);
        assert_non_null(blocks[i]);
        memset(blocks[i], (int)(i & 0xff), sizes[i]);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            if (blocks[i][j] != (unsigned char)(i & 0xff))
                fail_msg("block %zu byte %zu overwritten", i, j);
    assert_true(arena_used(a) >= N);
    arena_free(a);
}

static void test_arena_strings_copied(void **state)
{
    struct arena *a = arena_new();
    char src[] = "hello, arena";
    char *d = arena_strdup(a, src);
    char *n = arena_strndup(a, src, 5);
    char *longer = arena_strndup(a, "ab", 10);
    src[0] = 'J';
    assert_string_equal(d, "hello, arena");
    assert_string_equal(n, "hello");
    assert_string_equal(longer, "ab");
    assert_string_equal(arena_strdup(a, ""), "");
    arena_free(a);
}

static void test_arena_calloc_refuses_overflow(void **state)
{
    struct arena *a = arena_new();
    assert_null(arena_calloc(a, SIZE_MAX / 2, 4));
    assert_null(arena_alloc(a, SIZE_MAX));
    size_t *v = arena_calloc(a, 10, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(v[i], 0);
    assert_non_null(arena_calloc(a, 0, 8));
    arena_free(a);
    arena_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alloc_zeroed_aligned_distinct),
        cmocka_unit_test(test_arena_blocks_never_overlap_across_chunks),
        cmocka_unit_test(test_arena_strings_copied),
        cmocka_unit_test(test_arena_calloc_refuses_overflow),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
