/* test_relay.c - one direction of a byte stream between two sockets, in
 * both of its modes (spliced through a pipe, copied through the input
 * buffer), over socketpairs: bytes arrive in order, a full destination
 * holds the source back, and the end of stream is passed on once the
 * bytes before it are. */
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "relay.h"
#include "sock.h"

/* src and dst are the relay's ends of two socketpairs; the test talks
 * through their peers. */
struct rig {
    int src_peer, dst_peer;
    struct sock src, dst;
    struct relay r;
    struct buf_pool bufs;
};

static void pair(int *mine, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    *mine = sv[0];
    *peer = sv[1];
}

static void rig_open(struct rig *g, bool spliced)
{
    memset(g, 0, sizeof *g);
    pair(&g->src.io.fd, &g->src_peer);
    pair(&g->dst.io.fd, &g->dst_peer);
    g->src.readable = g->dst.writable = true;
    relay_init(&g->r);
    if (spliced)
        assert_int_equal(relay_use_pipe(&g->r, 65536), 0);
}

static void rig_close(struct rig *g)
{
    relay_close(&g->r);
    close(g->src.io.fd);
    close(g->dst.io.fd);
    close(g->src_peer);
    close(g->dst_peer);
    buf_put(&g->bufs, g->src.in);
    buf_pool_drain(&g->bufs);
}

static size_t drain_peer(int fd, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - n);
        if (r <= 0)
            return n;
        n += (size_t)r;
    }
}

static void bytes_then_eof(bool spliced)
{
    struct rig g;
    rig_open(&g, spliced);
    assert_int_equal(write(g.src_peer, "hello, ", 7), 7);
    assert_int_equal(write(g.src_peer, "tunnel", 6), 6);
    assert_int_equal(relay_pump(&g.r, &g.src, &g.dst, &g.bufs), RELAY_PROGRESS);
    char got[64];
    size_t n = drain_peer(g.dst_peer, got, sizeof got - 1);
    got[n] = '\0';
    assert_string_equal(got, "hello, tunnel");
    assert_int_equal(g.r.bytes, 13);
    assert_false(g.src.readable); /* it read until the socket was empty */
    assert_false(g.r.shut);

    /* Nothing new: nothing moves. */
    g.src.readable = true;
    assert_int_equal(relay_pump(&g.r, &g.src, &g.dst, &g.bufs), RELAY_IDLE);

    /* The source's FIN becomes the destination's, once. */
    shutdown(g.src_peer, SHUT_WR);
    g.src.readable = true;
    assert_int_equal(relay_pump(&g.r, &g.src, &g.dst, &g.bufs), RELAY_PROGRESS);
    assert_true(g.r.src_eof);
    assert_true(g.r.shut);
    assert_int_equal(read(g.dst_peer, got, sizeof got), 0);
    assert_int_equal(relay_pump(&g.r, &g.src, &g.dst, &g.bufs), RELAY_IDLE);
    rig_close(&g);
}

static void test_relay_copied_bytes_then_eof(void **state)
{
    bytes_then_eof(false);
}

static void test_relay_spliced_bytes_then_eof(void **state)
{
    bytes_then_eof(true);
}

/* A destination that takes nothing: what was read waits, no more is
 * read, and the FIN waits behind the bytes. */
static void full_destination_holds_source(bool spliced)
{
    struct rig g;
    rig_open(&g, spliced);
    static char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    /* Fill dst's socket until it refuses. */
    while (write(g.dst.io.fd, chunk, sizeof chunk) > 0)
        ;
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(write(g.src_peer, "abc", 3), 3);
    shutdown(g.src_peer, SHUT_WR);
    relay_pump(&g.r, &g.src, &g.dst, &g.bufs);
    assert_false(g.dst.writable);
    assert_false(g.r.shut);
    assert_int_equal(g.r.bytes, 0);

    /* The reader catches up: the three bytes, then the FIN. */
    char sink[65536];
    size_t total = 0, n;
    while ((n = drain_peer(g.dst_peer, sink, sizeof sink)) > 0)
        total += n;
    assert_true(total > 0);
    g.dst.writable = true;
    g.src.readable = true;
    assert_int_equal(relay_pump(&g.r, &g.src, &g.dst, &g.bufs), RELAY_PROGRESS);
    assert_int_equal(g.r.bytes, 3);
    assert_true(g.r.shut);
    char got[8];
    assert_int_equal(drain_peer(g.dst_peer, got, sizeof got), 3);
    assert_memory_equal(got, "abc", 3);
    rig_close(&g);
}

static void test_relay_copied_full_destination_holds_source(void **state)
{
    full_destination_holds_source(false);
}

static void test_relay_spliced_full_destination_holds_source(void **state)
{
    full_destination_holds_source(true);
}

/* A destination gone for good is an error, not a silent loss. */
static void broken_destination(bool spliced)
{
    struct rig g;
    rig_open(&g, spliced);
    close(g.dst_peer);
    g.dst_peer = -1;
    assert_int_equal(write(g.src_peer, "lost", 4), 4);
    assert_int_equal(relay_pump(&g.r, &g.src, &g.dst, &g.bufs), RELAY_ERROR);
    rig_close(&g);
}

static void test_relay_copied_broken_destination_is_an_error(void **state)
{
    broken_destination(false);
}

static void test_relay_spliced_broken_destination_is_an_error(void **state)
{
    broken_destination(true);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as portico runs: a write to a closed peer is EPIPE */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_copied_bytes_then_eof),
        cmocka_unit_test(test_relay_spliced_bytes_then_eof),
        cmocka_unit_test(test_relay_copied_full_destination_holds_source),
        cmocka_unit_test(test_relay_spliced_full_destination_holds_source),
        cmocka_unit_test(test_relay_copied_broken_destination_is_an_error),
        cmocka_unit_test(test_relay_spliced_broken_destination_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
