/* body.h - message bodies moved between two sockets without copying.
 *
 * A flow is a batch of iovecs on its way to one socket: a head, framing
 * lines and body bytes that still sit in the sending side's input buffer.
 * A body says how the bytes are framed on the wire read and on the wire
 * written (Content-Length, chunked, until EOF). These functions only
 * compute over buffers; the exchange does the reading and the writing. */
#ifndef PORTICO_BODY_H
#define PORTICO_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "chunked.h"
#include "http1.h"
#include "limits.h"

struct buf;
struct buf_pool;

/* A batch of bytes on its way to one socket. */
struct flow {
    /* PROXY header, request head, chunk-size line, body segments, CRLF, last chunk */
    struct iovec iov[LIMIT_BODY_IOVS + 6];
    unsigned niov, idx; /* iov[idx..niov) is still to be written */
    size_t consumed;    /* source bytes to release once the batch is written */
    bool active;
    char pre[24];    /* chunk-size line */
    struct buf *own; /* a head buffer this batch carries; returned once written */
};

/* How a body is read from one side and written to the other. */
struct body {
    enum http_body in;  /* framing on the wire we read */
    enum http_body out; /* framing we write */
    uint64_t remaining; /* LENGTH: bytes still to come */
    struct chunked_decoder dec;
    bool done;       /* the whole body has been read */
    uint64_t copied; /* data bytes (framing aside) queued through user space */
};

/* Empty the flow (what it owns is kept: see flow_finish). */
void flow_reset(struct flow *f);

/* Append n bytes at p (not copied: they must stay put until written). */
void flow_push(struct flow *f, const void *p, size_t n);

/* n bytes of the flow were written: step past them. */
void flow_advance(struct flow *f, size_t n);

/* Release what a fully written flow held: the source bytes it claimed from
 * src (may be NULL) and the buffer it owns, given back to pool. */
void flow_finish(struct buf_pool *pool, struct flow *f, struct buf *src);

void body_init(struct body *b, enum http_body in, enum http_body out, uint64_t length);

/* Add the next batch of body bytes from src (after the bytes the flow has
 * already claimed) to f, framed for the receiver. Returns 1 if the flow
 * grew or the body ended, 0 if src had nothing usable, -1 on bad framing. */
int body_produce(struct body *b, struct buf *src, bool src_eof, struct flow *f);

/* Whether the chunked body bytes in `in` (those that came with the head)
 * are well framed so far. */
bool body_chunked_prefix_ok(const struct buf *in);

#endif
