/* test_buf.c - the buffer sizes: a read starts in a small buffer, a small
 * request leaves nothing larger behind, and bytes that do not fit move to a
 * large buffer without loss (sock_read over a socketpair); bulk buffers
 * (large bodies to TLS clients) keep to a short list of their own. */
#include "unit.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "sock.h"

static void pair(struct sock *s, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    memset(s, 0, sizeof *s);
    s->io.fd = sv[0];
    s->readable = true;
    *peer = sv[1];
}

static void test_buf_sizes_go_back_to_their_own_lists(void **state)
{
    struct buf_pool p = {0};
    struct buf *s = buf_get_small(&p), *l = buf_get(&p);
    assert_non_null(s);
    assert_non_null(l);
    assert_int_equal(s->cap, BUF_SMALL_SIZE);
    assert_int_equal(l->cap, BUF_SIZE);
    assert_int_equal(buf_space(s), BUF_SMALL_SIZE);
    assert_int_equal(p.in_use, 2);
    buf_put(&p, s);
    buf_put(&p, l);
    assert_int_equal(p.nfree_small, 1);
    assert_int_equal(p.nfree, 1);
    /* Each size comes back from its own list, never the other's. */
    assert_ptr_equal(buf_get(&p), l);
    assert_ptr_equal(buf_get_small(&p), s);
    buf_put(&p, s);
    buf_put(&p, l);
    buf_pool_drain(&p);
    assert_int_equal(p.nfree + p.nfree_small, 0);
}

static void test_buf_bulk_buffers_have_their_own_short_list(void **state)
{
    struct buf_pool p = {0};
    struct buf *b[BUF_BULK_FREELIST_MAX + 1];
    for (size_t i = 0; i <= BUF_BULK_FREELIST_MAX; i++) {
        b[i] = buf_get_bulk(&p);
        assert_non_null(b[i]);
        assert_int_equal(b[i]->cap, BUF_BULK_SIZE);
        assert_int_equal(buf_space(b[i]), BUF_BULK_SIZE);
    }
    /* The last one past the short list is freed and counted for the trim. */
    for (size_t i = 0; i <= BUF_BULK_FREELIST_MAX; i++)
        buf_put(&p, b[i]);
    assert_int_equal(p.nfree_bulk, BUF_BULK_FREELIST_MAX);
    assert_int_equal(p.nfree, 0);
    assert_true(p.released >= BUF_BULK_SIZE);
    /* A bulk buffer comes back as one, never as a 64 KiB one. */
    struct buf *l = buf_get(&p);
    assert_int_equal(l->cap, BUF_SIZE);
    struct buf *k = buf_get_bulk(&p);
    assert_ptr_equal(k, b[BUF_BULK_FREELIST_MAX - 1]);
    buf_put(&p, l);
    buf_put(&p, k);
    buf_pool_drain(&p);
    assert_int_equal(p.nfree_bulk, 0);
    assert_null(p.free_bulk);
}

static void test_buf_grow_keeps_unread_bytes(void **state)
{
    struct buf_pool p = {0};
    struct buf *b = buf_get_small(&p);
    memcpy(b->data, "xxGET / HTTP/1.1\r\n", 18);
    b->wpos = 18;
    buf_consume(b, 2);
    assert_int_equal(buf_grow(&p, &b), 0);
    assert_int_equal(b->cap, BUF_SIZE);
    assert_int_equal(b->rpos, 0);
    assert_int_equal(buf_len(b), 16);
    assert_memory_equal(buf_rptr(b), "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(p.in_use, 1);
    assert_int_equal(p.nfree_small, 1); /* the small one went back */
    buf_put(&p, b);
    buf_pool_drain(&p);
}

/* A head kept for a retry holds only its bytes, and goes back to no list. */
static void test_buf_fit_keeps_only_the_bytes(void **state)
{
    struct buf_pool p = {0};
    struct buf *b = buf_get_small(&p);
    memcpy(b->data, "GET / HTTP/1.1\r\n\r\n", 18);
    buf_fit(&p, &b, 18);
    assert_int_equal(b->cap, 18);
    assert_memory_equal(b->data, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(p.in_use, 1);
    assert_int_equal(p.nfree_small, 1); /* the page went back */
    buf_put(&p, b);
    assert_int_equal(p.in_use, 0);
    assert_int_equal(p.nfree_small + p.nfree, 1); /* the fitted one was freed */
    buf_pool_drain(&p);
}

/* A small request is read into a small buffer: 10,000 busy connections
 * with small requests must not each hold a large one. */
static void test_buf_small_read_stays_small(void **state)
{
    struct buf_pool p = {0};
    struct sock s;
    int peer;
    pair(&s, &peer);
    const char req[] = "GET /small HTTP/1.1\r\nHost: svc00.example.test\r\n\r\n";
    assert_int_equal(write(peer, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    assert_int_equal(sock_read(&s, &p, true), (long)(sizeof req - 1));
    assert_non_null(s.in);
    assert_int_equal(s.in->cap, BUF_SMALL_SIZE);
    assert_int_equal(p.nfree, 0); /* no large buffer was ever taken */
    buf_put(&p, s.in);
    close(s.io.fd);
    close(peer);
    buf_pool_drain(&p);
}

/* More than a page arrives: the read that fills the small buffer moves the
 * bytes to a large one, and the rest follows them in order. */
static void test_buf_large_read_moves_to_large_buffer(void **state)
{
    struct buf_pool p = {0};
    struct sock s;
    int peer;
    pair(&s, &peer);
    static char data[3 * BUF_SMALL_SIZE];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(write(peer, data, sizeof data), (ssize_t)sizeof data);
    size_t got = 0;
    for (int i = 0; i < 10 && got < sizeof data; i++) {
        long n = sock_read(&s, &p, true);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, sizeof data);
    assert_int_equal(s.in->cap, BUF_SIZE);
    assert_int_equal(buf_len(s.in), sizeof data);
    assert_memory_equal(buf_rptr(s.in), data, sizeof data);
    /* Without leave to move bytes (a flow points into them), a full
     * small buffer stays as it is. */
    struct sock t;
    int peer2;
    pair(&t, &peer2);
    assert_int_equal(write(peer2, data, sizeof data), (ssize_t)sizeof data);
    assert_int_equal(sock_read(&t, &p, false), BUF_SMALL_SIZE);
    assert_int_equal(t.in->cap, BUF_SMALL_SIZE);
    assert_int_equal(sock_read(&t, &p, false), 0);
    assert_memory_equal(buf_rptr(t.in), data, BUF_SMALL_SIZE);
    buf_put(&p, s.in);
    buf_put(&p, t.in);
    close(s.io.fd);
    close(peer);
    close(t.io.fd);
    close(peer2);
    buf_pool_drain(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_sizes_go_back_to_their_own_lists),
        cmocka_unit_test(test_buf_bulk_buffers_have_their_own_short_list),
        cmocka_unit_test(test_buf_grow_keeps_unread_bytes),
        cmocka_unit_test(test_buf_fit_keeps_only_the_bytes),
        cmocka_unit_test(test_buf_small_read_stays_small),
        cmocka_unit_test(test_buf_large_read_moves_to_large_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
