/* buf.c - buffer pool (see buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

struct buf *buf_get(struct buf_pool *p)
{
    struct buf *b = p->free;
    if (b) {
        p->free = b->next_free;
        p->nfree--;
    } else {
        b = malloc(sizeof *b);
        if (!b)
            return NULL;
    }
    b->rpos = b->wpos = 0;
    b->next_free = NULL;
    p->in_use++;
    return b;
}

void buf_put(struct buf_pool *p, struct buf *b)
{
    if (!b)
        return;
    p->in_use--;
    if (p->nfree >= BUF_FREELIST_MAX) {
        free(b);
        p->released += sizeof *b;
        return;
    }
    b->next_free = p->free;
    p->free = b;
    p->nfree++;
}

void buf_pool_drain(struct buf_pool *p)
{
    while (p->free) {
        struct buf *b = p->free;
        p->free = b->next_free;
        free(b);
    }
    p->nfree = 0;
}

void buf_compact(struct buf *b)
{
    if (b->rpos == 0)
        return;
    size_t n = b->wpos - b->rpos;
    memmove(b->data, b->data + b->rpos, n);
    b->rpos = 0;
    b->wpos = n;
}
