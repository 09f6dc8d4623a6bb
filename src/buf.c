/* buf.c - buffer pool (see buf.h). */
#include "buf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static struct buf *take(struct buf_pool *p, struct buf **list, size_t *n, size_t cap)
{
    struct buf *b = *list;
    if (b) {
        *list = b->next_free;
        (*n)--;
    } else {
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
    }
    b->rpos = b->wpos = 0;
    b->next_free = NULL;
    p->in_use++;
    return b;
}

struct buf *buf_get(struct buf_pool *p)
{
    return take(p, &p->free, &p->nfree, BUF_SIZE);
}

struct buf *buf_get_small(struct buf_pool *p)
{
    return take(p, &p->free_small, &p->nfree_small, BUF_SMALL_SIZE);
}

struct buf *buf_get_bulk(struct buf_pool *p)
{
    return take(p, &p->free_bulk, &p->nfree_bulk, BUF_BULK_SIZE);
}

void buf_put(struct buf_pool *p, struct buf *b)
{
    if (!b)
        return;
    p->in_use--;
    if (b->cap != BUF_SIZE && b->cap != BUF_SMALL_SIZE && b->cap != BUF_BULK_SIZE) {
        free(b); /* a fitted buffer: cached by neither list */
        return;
    }
    bool small = b->cap == BUF_SMALL_SIZE, bulk = b->cap == BUF_BULK_SIZE;
    struct buf **list = small ? &p->free_small : bulk ? &p->free_bulk : &p->free;
    size_t *n = small ? &p->nfree_small : bulk ? &p->nfree_bulk : &p->nfree;
    if (*n >= (bulk ? BUF_BULK_FREELIST_MAX : BUF_FREELIST_MAX)) {
        p->released += sizeof *b + b->cap;
        free(b);
        return;
    }
    b->next_free = *list;
    *list = b;
    (*n)++;
}

static void drain_list(struct buf **list, size_t *n)
{
    while (*list) {
        struct buf *b = *list;
        *list = b->next_free;
        free(b);
    }
    *n = 0;
}

void buf_pool_drain(struct buf_pool *p)
{
    drain_list(&p->free, &p->nfree);
    drain_list(&p->free_small, &p->nfree_small);
    drain_list(&p->free_bulk, &p->nfree_bulk);
}

int buf_grow(struct buf_pool *p, struct buf **b)
{
    if ((*b)->cap >= BUF_SIZE) {
        buf_compact(*b);
        return 0;
    }
    struct buf *big = buf_get(p);
    if (!big)
        return -1;
    size_t n = buf_len(*b);
    memcpy(big->data, buf_rptr(*b), n);
    big->wpos = n;
    buf_put(p, *b);
    *b = big;
    return 0;
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

void buf_fit(struct buf_pool *p, struct buf **b, size_t len)
{
    if (len >= (*b)->cap)
        return;
    struct buf *f = malloc(sizeof *f + (len ? len : 1));
    if (!f)
        return;
    f->cap = len ? len : 1;
    f->rpos = 0;
    f->wpos = 0;
    f->next_free = NULL;
    memcpy(f->data, (*b)->data, len);
    p->in_use++;
    buf_put(p, *b);
    *b = f;
}
