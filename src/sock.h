/* sock.h - one non-blocking stream socket, plain or TLS, as every side of
 * portico sees it: client connections, upstream connections and TCP
 * forwarders.
 *
 * A sock is the fd registered with the event loop (edge-triggered), the
 * TLS session when there is one, what the last events said about
 * readiness, and the input buffer. It is the only place that asks "TLS or
 * not?" for reads, writes and shutdowns, and the only place that turns
 * EINTR / EAGAIN / end-of-stream into the readiness flags, so the protocol
 * code above it never repeats those loops. The owner embeds the struct
 * and gets its events through the loop_io callback it registers
 * (container_of finds the owner): one owner per socket. */
#ifndef PORTICO_SOCK_H
#define PORTICO_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "loop.h"

struct buf;
struct buf_pool;
struct ssl_st;

struct sock {
    struct loop_io io;  /* fd (-1 once closed or handed over) and the owner's callback */
    struct ssl_st *ssl; /* TLS session, or NULL for a plain socket; owned */
    struct buf *in;     /* bytes read and not consumed yet; owned; NULL while idle */
    /* Readiness as the edge-triggered events and the last calls left it:
     * set by sock_note_events, cleared when a call would block. */
    bool readable, writable;
    bool eof;   /* the peer's end of stream (or an error) was read */
    bool rdhup; /* the peer shut its side (EPOLLRDHUP, HUP or ERR seen) */
};

/* Register fd with the loop for reading and writing, edge-triggered; fn
 * gets its events. 0, or -errno (fd is left open). */
int sock_open(struct sock *s, struct loop *l, int fd, loop_io_fn fn);

/* Record what an event says about the socket. false when the socket is
 * closed already (an event queued before the close): ignore the event. */
bool sock_note_events(struct sock *s, uint32_t events);

/* Unregister and close the fd, free the TLS session and return the input
 * buffer to bufs. Safe on a sock whose fd is already -1. */
void sock_close(struct sock *s, struct loop *l, struct buf_pool *bufs);

/* Drive the TLS handshake: 1 when done, 0 while it waits for the socket
 * (the flag it waits on is cleared), or -SSL_get_error()'s code with
 * OpenSSL's error queue and errno left for the caller to explain. */
int sock_handshake(struct sock *s);

/* read(2), through TLS when the socket has it: bytes, 0 at end of stream,
 * or -1 with errno (EAGAIN when it would block). */
ssize_t sock_recv(struct sock *s, void *p, size_t n);

/* writev(2), through TLS when the socket has it: bytes written, or -1
 * with errno (EAGAIN when it would block). After EAGAIN on TLS the same
 * bytes must come first in the next call. */
ssize_t sock_writev(struct sock *s, const struct iovec *iov, int n);

/* Read what is available into s->in (a small buffer taken from bufs when
 * NULL, and given back when the read would block, so s->in stays NULL on
 * an idle socket; when full and may_compact, moved to its start, or to a
 * large buffer when that frees nothing). Bytes read; 0 when it
 * would block (readable is cleared), when the buffer is full or when no
 * buffer is free; -1 at end of stream or on an error (eof is set). A short
 * read on a plain socket whose peer has not shut its side clears readable
 * too: the socket is empty until its next event. */
long sock_read(struct sock *s, struct buf_pool *bufs, bool may_compact);

/* Write p[*off..len) until done or blocked, advancing *off. clear: send
 * in the clear even on a TLS socket (bytes that precede the handshake).
 * 1: all written; 0: it would block (writable is cleared); -errno. */
int sock_write_rest(struct sock *s, const void *p, size_t len, size_t *off, bool clear);

/* sock_write_rest with MSG_MORE on a plain socket: bytes the caller writes
 * at once after these (a chunk-size line before the chunk's data) go out
 * in the same segment instead of a small one of their own. Only for bytes
 * that something written right after follows. */
int sock_write_rest_more(struct sock *s, const void *p, size_t len, size_t *off);

/* Whether bytes sock_writev has not counted as written are partly on the
 * wire already (TLS records in flight): the same bytes must follow, or
 * the connection be cut; nothing else may be written in their place. */
bool sock_output_pending(const struct sock *s);

/* Read and drop what the socket holds, raw (the input of a connection
 * that is closing). 0 when it would block (readable is cleared), -1 at
 * end of stream or on an error (eof is set). */
int sock_discard(struct sock *s);

/* No more bytes to the peer: a TLS close_notify first, if TLS. */
void sock_shutdown(struct sock *s);

/* Look into the socket without reading, whatever the events said: 1 when
 * bytes wait, 0 when nothing has come, -1 when the peer has closed its
 * side or the socket failed. Plain sockets only (TLS records cannot be
 * peeked for data). */
int sock_peek(const struct sock *s);

/* A pipe for moving bytes between two plain sockets with splice(2),
 * so they never enter user space. */
struct sock_pipe {
    int fd[2];     /* read end, write end; -1 when not open */
    size_t queued; /* bytes in the pipe */
    size_t cap;    /* its capacity */
};

/* Open p, asking the kernel for a capacity of want bytes (0: the default
 * size). 0, or -1 with errno. */
int sock_pipe_open(struct sock_pipe *p, size_t want);
void sock_pipe_close(struct sock_pipe *p);
static inline void sock_pipe_init(struct sock_pipe *p)
{
    p->fd[0] = p->fd[1] = -1;
    p->queued = p->cap = 0;
}

/* Move up to max bytes from src into the pipe: bytes moved, 0 at end of
 * stream, or -1 with errno. On EAGAIN src->readable is cleared when the
 * pipe is empty; with bytes queued the pipe itself may be what is full,
 * so the socket stays marked readable for the next try. */
ssize_t sock_splice_in(struct sock *src, struct sock_pipe *p, size_t max);

/* Move what the pipe holds, up to max bytes, to dst: bytes moved, or -1
 * with errno. On EAGAIN dst->writable is cleared. */
ssize_t sock_splice_out(struct sock_pipe *p, struct sock *dst, size_t max);

#endif
