/* buf.h - fixed-size I/O buffers and the per-worker pool they come from.
 *
 * A connection holds a buffer only while bytes are in flight; an idle
 * keep-alive connection gives its buffer back, which is what lets 10,000
 * idle clients cost little memory. */
#ifndef PORTICO_BUF_H
#define PORTICO_BUF_H

#include <stddef.h>

#include "limits.h"

struct buf {
    size_t rpos; /* first unread byte */
    size_t wpos; /* end of data */
    struct buf *next_free;
    char data[BUF_SIZE];
};

struct buf_pool {
    struct buf *free;
    size_t nfree;
    size_t in_use;
    size_t released; /* bytes freed past BUF_FREELIST_MAX (the worker's trim clock reads it) */
};

/* Get an empty buffer; NULL when out of memory. */
struct buf *buf_get(struct buf_pool *p);
/* Return a buffer (NULL is ignored). */
void buf_put(struct buf_pool *p, struct buf *b);
void buf_pool_drain(struct buf_pool *p);

static inline size_t buf_len(const struct buf *b)
{
    return b->wpos - b->rpos;
}
static inline size_t buf_space(const struct buf *b)
{
    return BUF_SIZE - b->wpos;
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
