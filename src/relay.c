/* relay.c - one direction of a byte stream between two sockets (see relay.h). */
#include "relay.h"

#include <errno.h>

#include "buf.h"

void relay_init(struct relay *r)
{
    sock_pipe_init(&r->pipe);
    r->src_eof = r->shut = false;
    r->bytes = 0;
}

int relay_use_pipe(struct relay *r, size_t want)
{
    return sock_pipe_open(&r->pipe, want);
}

void relay_close(struct relay *r)
{
    sock_pipe_close(&r->pipe);
}

/* One step through the pipe. 1: something moved or src ended; 0: waiting
 * on a socket; -1: an error. */
static int step_spliced(struct relay *r, struct sock *src, struct sock *dst)
{
    if (r->pipe.queued && dst->writable) {
        ssize_t n = sock_splice_out(&r->pipe, dst, r->pipe.queued);
        if (n > 0) {
            r->bytes += (uint64_t)n;
            return 1;
        }
        if (n == 0 || errno != EAGAIN)
            return -1;
    }
    if (!r->src_eof && src->readable && r->pipe.queued < r->pipe.cap) {
        ssize_t n = sock_splice_in(src, &r->pipe, r->pipe.cap - r->pipe.queued);
        if (n >= 0) {
            r->src_eof = n == 0;
            return 1;
        }
        if (errno != EAGAIN)
            return -1;
    }
    return 0;
}

/* One step through src's input buffer, as step_spliced. */
static int step_copied(struct relay *r, struct sock *src, struct sock *dst, struct buf_pool *bufs)
{
    struct buf *b = src->in;
    if (b && buf_len(b)) {
        if (!dst->writable)
            return 0;
        struct iovec v = {buf_rptr(b), buf_len(b)};
        ssize_t n;
        do
            n = sock_writev(dst, &v, 1);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
            buf_consume(b, (size_t)n);
            r->bytes += (uint64_t)n;
            return 1;
        }
        if (n < 0 && errno == EAGAIN) {
            dst->writable = false;
            return 0;
        }
        return -1;
    }
    if (r->src_eof || !src->readable)
        return 0;
    long n = sock_read(src, bufs, true);
    if (n < 0)
        r->src_eof = true;
    return n != 0;
}

enum relay_result relay_pump(struct relay *r, struct sock *src, struct sock *dst,
                             struct buf_pool *bufs)
{
    enum relay_result progress = RELAY_IDLE;
    for (;;) {
        int moved = r->pipe.fd[0] >= 0 ? step_spliced(r, src, dst) : step_copied(r, src, dst, bufs);
        if (moved < 0)
            return RELAY_ERROR;
        if (moved > 0) {
            progress = RELAY_PROGRESS;
            continue;
        }
        bool drained = r->pipe.queued == 0 && (!src->in || buf_len(src->in) == 0);
        if (r->src_eof && drained && !r->shut) {
            sock_shutdown(dst);
            r->shut = true;
            progress = RELAY_PROGRESS;
        }
        return progress;
    }
}
