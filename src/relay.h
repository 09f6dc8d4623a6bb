/* relay.h - one direction of a byte stream between two sockets, as TCP
 * forwarders and upgraded HTTP tunnels (WebSocket, ...) both need it:
 * bytes from src to dst as they come, then src's end of stream passed on
 * with a shutdown of dst's write side, which does not end the other
 * direction. Bytes move through a pipe with splice(2) when the relay has
 * one (plain sockets only: they never enter user space), else through
 * src's input buffer (either side may be TLS). Nothing is read while dst
 * cannot take what was read before: a slow reader holds back its writer,
 * with at most a pipe or a buffer in flight per direction. */
#ifndef PORTICO_RELAY_H
#define PORTICO_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sock.h"

struct buf_pool;

/* The state of one direction; the two sockets are passed to each call. */
struct relay {
    struct sock_pipe pipe; /* splice mode when open (pipe.fd[0] >= 0) */
    bool src_eof;          /* src's stream has ended (or failed) */
    bool shut;             /* ... and dst's write side has been shut */
    uint64_t bytes;        /* bytes written to dst */
};

enum relay_result {
    RELAY_IDLE,     /* nothing could move: waiting for a socket */
    RELAY_PROGRESS, /* bytes moved, or the end of stream was passed on */
    RELAY_ERROR,    /* a socket failed (dst no longer takes bytes, ...) */
};

/* A relay copying through src->in; call relay_use_pipe after it for
 * splice mode. */
void relay_init(struct relay *r);

/* Move bytes through a pipe of about want bytes from now on (both sockets
 * plain, src->in empty). 0, or -1 with errno when no pipe could be made. */
int relay_use_pipe(struct relay *r, size_t want);

/* Move what can move from src to dst without blocking; bufs lends src its
 * input buffer in copy mode. */
enum relay_result relay_pump(struct relay *r, struct sock *src, struct sock *dst,
                             struct buf_pool *bufs);

/* Close the pipe, if any. */
void relay_close(struct relay *r);

#endif
