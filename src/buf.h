/* buf.h - I/O buffers in two sizes and the per-worker pool they come from.
 *
 * A connection holds a buffer only while bytes are in flight; an idle
 * keep-alive connection gives its buffer back, which is what lets 10,000
 * idle clients cost little memory. A read starts in a small buffer (one
 * page, enough for a typical request or response head) and moves to a large
 * one only when that fills, so 10,000 busy connections with small requests
 * do not each hold 64 KiB buffers (nginx does the same with its 1 KiB
 * client_header_buffer_size and large_client_header_buffers). The limits on
 * heads are enforced by the parsers, whatever the buffer's size. */
#ifndef PORTICO_BUF_H
#define PORTICO_BUF_H

#include <stddef.h>

#include "limits.h"

struct buf {
    size_t rpos; /* first unread byte */
    size_t wpos; /* end of data */
    size_t cap;  /* bytes in data: BUF_SIZE, BUF_SMALL_SIZE, BUF_BULK_SIZE, or any (buf_fit) */
    struct buf *next_free;
    char data[];
};

struct buf_pool {
    struct buf *free, *free_small, *free_bulk;
    size_t nfree, nfree_small, nfree_bulk;
    size_t in_use;
    size_t
        released; /* bytes freed past the free lists' limits (the worker's trim clock reads it) */
};

/* Get an empty buffer of BUF_SIZE bytes; NULL when out of memory. */
struct buf *buf_get(struct buf_pool *p);
/* Get an empty buffer of BUF_SMALL_SIZE bytes; NULL when out of memory. */
struct buf *buf_get_small(struct buf_pool *p);
/* Get an empty buffer of BUF_BULK_SIZE bytes, for a large body read in
 * fewer calls; NULL when out of memory. */
struct buf *buf_get_bulk(struct buf_pool *p);
/* Return a buffer of any size (NULL is ignored). */
void buf_put(struct buf_pool *p, struct buf *b);
void buf_pool_drain(struct buf_pool *p);
/* Move *b's unread bytes to the start of a large buffer, which replaces it
 * (the small one goes back to the pool). 0, or -1 when out of memory (*b
 * is left as it was). A buffer already large is only compacted. Pointers
 * into the old buffer are stale afterwards, as after buf_compact. */
int buf_grow(struct buf_pool *p, struct buf **b);
/* Move the first len bytes of *b into a buffer of exactly len bytes, which
 * replaces it (for bytes kept a while and never added to in place: the
 * upstream request head). Out of memory, *b stays as it was. */
void buf_fit(struct buf_pool *p, struct buf **b, size_t len);

static inline size_t buf_len(const struct buf *b)
{
    return b->wpos - b->rpos;
}
static inline size_t buf_space(const struct buf *b)
{
    return b->cap - b->wpos;
}
static inline char *buf_rptr(struct buf *b)
{
    return b->data + b->rpos;
}
/* Mark n bytes read; an emptied buffer rewinds to its start. */
static inline void buf_consume(struct buf *b, size_t n)
{
    b->rpos += n;
    if (b->rpos == b->wpos)
        b->rpos = b->wpos = 0;
}
/* Move unread bytes to the start so a message head can grow contiguously. */
void buf_compact(struct buf *b);

#endif
