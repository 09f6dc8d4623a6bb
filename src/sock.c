/* sock.c - one stream socket, plain or TLS (see sock.h). */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "tls.h"

int sock_open(struct sock *s, struct loop *l, int fd, loop_io_fn fn)
{
    return loop_io_add(l, &s->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, fn);
}

bool sock_note_events(struct sock *s, uint32_t events)
{
    if (s->io.fd < 0)
        return false;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->writable = true;
    return true;
}

void sock_close(struct sock *s, struct loop *l, struct buf_pool *bufs)
{
    if (s->io.fd >= 0) {
        loop_io_del(l, &s->io);
        close(s->io.fd);
        s->io.fd = -1;
    }
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    buf_put(bufs, s->in);
    s->in = NULL;
}

int sock_handshake(struct sock *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        s->readable = false;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        s->writable = false;
        return 0;
    }
    return e ? -e : -SSL_ERROR_SYSCALL;
}

ssize_t sock_recv(struct sock *s, void *p, size_t n)
{
    return s->ssl ? tls_read(s->ssl, p, n) : recv(s->io.fd, p, n, 0);
}

ssize_t sock_writev(struct sock *s, const struct iovec *iov, int n)
{
    return s->ssl ? tls_writev(s->ssl, iov, n) : writev(s->io.fd, iov, n);
}

long sock_read(struct sock *s, struct buf_pool *bufs, bool may_compact)
{
    /* A buffer taken for this read goes back if the read brings nothing:
     * an idle keep-alive socket woken by an edge that reads EAGAIN must not
     * keep a buffer it never fills. */
    bool taken = !s->in;
    if (taken) {
        s->in = buf_get_small(bufs);
        if (!s->in)
            return 0;
    }
    /* Full: make room at the start, else move to a large buffer (a head
     * longer than a page, or a body streaming through). Both move the
     * bytes, which the caller allows with may_compact. */
    if (buf_space(s->in) == 0 && may_compact)
        buf_compact(s->in);
    if (buf_space(s->in) == 0 && may_compact && buf_grow(bufs, &s->in) < 0)
        return 0;
    if (buf_space(s->in) == 0)
        return 0;
    for (;;) {
        size_t want = buf_space(s->in);
        ssize_t n = sock_recv(s, s->in->data + s->in->wpos, want);
        if (n > 0) {
            s->in->wpos += (size_t)n;
            /* A read that fills a small buffer means more is coming (a
             * body): the next reads go to a large buffer, not a page at a
             * time. */
            if (buf_space(s->in) == 0 && s->in->cap < BUF_SIZE && may_compact)
                (void)buf_grow(bufs, &s->in);
            /* A short read of a plain stream socket took everything queued:
             * bytes that come later raise a new edge, so reading again now
             * would only return EAGAIN. Not so once the peer has shut its
             * side (no edge follows the FIN already seen: read on to the
             * end), nor with TLS (OpenSSL may hold whole records read
             * ahead). TCP urgent data, which HTTP never sends, also ends a
             * read early: such a peer waits for its timeout, as with nginx. */
            if ((size_t)n < want && !s->ssl && !s->rdhup)
                s->readable = false;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            s->readable = false;
            if (taken) {
                buf_put(bufs, s->in);
                s->in = NULL;
            }
            return 0;
        }
        s->eof = true;
        s->readable = false;
        return -1;
    }
}

static int write_rest(struct sock *s, const void *p, size_t len, size_t *off, bool clear, int flags)
{
    while (*off < len) {
        const char *from = (const char *)p + *off;
        ssize_t n;
        if (clear || !s->ssl) {
            n = send(s->io.fd, from, len - *off, MSG_NOSIGNAL | flags);
        } else {
            struct iovec v = {(void *)from, len - *off};
            n = tls_writev(s->ssl, &v, 1);
        }
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            s->writable = false;
            return 0;
        }
        return n < 0 ? -errno : -EPIPE;
    }
    return 1;
}

int sock_write_rest(struct sock *s, const void *p, size_t len, size_t *off, bool clear)
{
    return write_rest(s, p, len, off, clear, 0);
}

int sock_write_rest_more(struct sock *s, const void *p, size_t len, size_t *off)
{
    return write_rest(s, p, len, off, false, MSG_MORE);
}

bool sock_output_pending(const struct sock *s)
{
    return s->ssl && tls_out_pending(s->ssl);
}

int sock_discard(struct sock *s)
{
    char scratch[16384];
    for (;;) {
        ssize_t n = read(s->io.fd, scratch, sizeof scratch);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        s->readable = false;
        if (n < 0 && errno == EAGAIN)
            return 0;
        s->eof = true;
        return -1;
    }
}

void sock_shutdown(struct sock *s)
{
    if (s->ssl)
        tls_shutdown_write(s->ssl);
    shutdown(s->io.fd, SHUT_WR);
}

int sock_peek(const struct sock *s)
{
    char b;
    ssize_t n = recv(s->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return 1;
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

int sock_pipe_open(struct sock_pipe *p, size_t want)
{
    p->queued = 0;
    if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
        p->fd[0] = p->fd[1] = -1;
        return -1;
    }
    /* Linux's default pipe holds 64 KiB; a larger one may be refused
     * (fs.pipe-max-size, or the user's pipe quota), which is no error. */
    int sz = want ? fcntl(p->fd[1], F_SETPIPE_SZ, (int)want) : -1;
    p->cap = sz > 0 ? (size_t)sz : 65536;
    return 0;
}

void sock_pipe_close(struct sock_pipe *p)
{
    for (int i = 0; i < 2; i++) {
        if (p->fd[i] >= 0)
            close(p->fd[i]);
        p->fd[i] = -1;
    }
    p->queued = 0;
}

ssize_t sock_splice_in(struct sock *src, struct sock_pipe *p, size_t max)
{
    for (;;) {
        ssize_t n =
            splice(src->io.fd, NULL, p->fd[1], NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0)
            p->queued += (size_t)n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && p->queued == 0)
            src->readable = false;
        return n;
    }
}

ssize_t sock_splice_out(struct sock_pipe *p, struct sock *dst, size_t max)
{
    if (max > p->queued)
        max = p->queued;
    for (;;) {
        ssize_t n =
            splice(p->fd[0], NULL, dst->io.fd, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0)
            p->queued -= (size_t)n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            dst->writable = false;
        return n;
    }
}
