/* splice.h - an HTTP message body moved between two plain sockets through
 * a pipe with splice(2), so its data bytes never enter user space.
 *
 * The framing stays in user space: a Content-Length body is counted down,
 * a chunked body is decoded by the body's chunked decoder (the size lines
 * and the CRLFs are read into the source's input buffer and go through
 * body_produce; only the data of a chunk already open on the wire is
 * spliced), and a body written chunked (to an HTTP/1.1 client) gets a
 * chunk-size line for each batch the pipe holds and its CRLF, written
 * with ordinary writes around the spliced data (the CRLF together with
 * the next size line, with MSG_MORE, so both leave in the data's first
 * segment; alone only when nothing more can be spliced). Once a whole chunk went
 * through the pipe, the framing that follows it (CRLF, the next size line,
 * or the last chunk and its trailers) is read here byte-exact (looked at
 * with MSG_PEEK, then read as far as the decoder took it), so the next
 * chunk's data stays in the socket for the pipe too; a chunk smaller
 * than LIMIT_SPLICE_MIN_CHUNK goes back to the copy path. */
#ifndef PORTICO_SPLICE_H
#define PORTICO_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "body.h"
#include "sock.h"

struct body_splice {
    struct sock_pipe pipe; /* open while the body is spliced; fd[0] < 0 before */
    uint64_t chunk_left;   /* written chunked: data of the open chunk still in the pipe */
    bool chunk_open;       /* written chunked: a chunk's CRLF is still owed */
    char frame[32];        /* framing bytes to write before anything else */
    size_t frame_len, frame_off;
    uint64_t data;  /* body bytes that went through the pipe, for the metrics */
    bool src_ended; /* the source has ended (end of stream, or the last chunk read here) */
    bool last_sent; /* written chunked: the last chunk is queued in frame */
    bool no_pipe;   /* no pipe could be opened: the body is copied */
    bool in_chunk;  /* chunked in: this chunk's data is being spliced */
    bool framing;   /* chunked in: the framing after a spliced chunk is read here */
};

enum splice_result {
    SPLICE_IDLE,        /* waiting on one of the sockets */
    SPLICE_PROGRESS,    /* bytes moved */
    SPLICE_DONE,        /* the whole body is written (the last chunk too) */
    SPLICE_HANDOFF,     /* the pipe is drained; the framing that follows needs body_produce */
    SPLICE_SRC_CUT,     /* the source ended or failed in the middle of the body */
    SPLICE_DST_FAIL,    /* writing to the destination failed */
    SPLICE_NO_PIPE,     /* no pipe could be opened (descriptors run out): copy instead */
    SPLICE_BAD_FRAMING, /* the chunked framing read here is malformed */
};

void body_splice_init(struct body_splice *s);
void body_splice_close(struct body_splice *s);

/* Whether the body may go (or goes on) through the pipe now: a framing
 * the pipe can carry, and enough data coming to be worth a pipe. The
 * caller checks the rest: plain sockets, nothing in the source's input
 * buffer, the flow written. */
bool body_splice_wanted(const struct body_splice *s, const struct body *b);

/* Whether bytes wait in the pipe or framing waits to be written. */
static inline bool body_splice_pending(const struct body_splice *s)
{
    return s->pipe.queued > 0 || s->frame_off < s->frame_len || s->chunk_open;
}

/* Whether the body is in the pipe's hands: bytes or framing pending, or
 * a chunk or the framing after one half read. */
static inline bool body_splice_busy(const struct body_splice *s)
{
    return body_splice_pending(s) || s->in_chunk || s->framing;
}

/* Move what can be moved from src through the pipe to dst under b's
 * framing; b->done once the whole body is written. *read_bytes and
 * *wrote_bytes grow by the bytes taken from src and written to dst
 * (framing included). The pipe is opened on the first call. */
enum splice_result body_splice_pump(struct body_splice *s, struct body *b, struct sock *src,
                                    struct sock *dst, uint64_t *read_bytes, uint64_t *wrote_bytes);

#endif
