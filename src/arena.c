/* arena.c - a bump allocator over a list of chunks (see arena.h). */
#include "arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

struct chunk {
    struct chunk *next;
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct chunk *head; /* the chunk being filled; large blocks sit behind it */
    size_t used;
};

#define ALIGN alignof(max_align_t)

struct arena *arena_new(void)
{
    return calloc(1, sizeof(struct arena));
}

static struct chunk *chunk_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(struct chunk))
        return NULL;
    struct chunk *ch = malloc(sizeof *ch + cap);
    if (!ch)
        return NULL;
    ch->next = NULL;
    ch->cap = cap;
    ch->used = 0;
    return ch;
}

void *arena_alloc(struct arena *a, size_t size)
{
    if (size > SIZE_MAX - ALIGN)
        return NULL;
    size_t want = (size + ALIGN - 1) & ~(ALIGN - 1);
    if (want == 0)
        want = ALIGN; /* distinct pointers for zero-byte requests */
    struct chunk *ch = a->head;
    if (!ch || ch->cap - ch->used < want) {
        /* A block larger than a quarter chunk gets a chunk of its own, kept
         * behind the current one so the space left there is still used. */
        bool own = want > LIMIT_ARENA_CHUNK / 4;
        ch = chunk_new(own ? want : LIMIT_ARENA_CHUNK);
        if (!ch)
            return NULL;
        if (own && a->head) {
            ch->next = a->head->next;
            a->head->next = ch;
        } else {
            ch->next = a->head;
            a->head = ch;
        }
    }
    void *p = ch->data + ch->used;
    ch->used += want;
    a->used += want;
    memset(p, 0, size);
    return p;
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return arena_alloc(a, n * size);
}

static char *copy(struct arena *a, const char *s, size_t len)
{
    char *d = arena_alloc(a, len + 1);
    if (d)
        memcpy(d, s, len); /* the terminator is there: arena_alloc zeroes */
    return d;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    return copy(a, s, strnlen(s, n));
}

char *arena_strdup(struct arena *a, const char *s)
{
    return copy(a, s, strlen(s));
}

size_t arena_used(const struct arena *a)
{
    return a->used;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    for (struct chunk *ch = a->head, *next; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    free(a);
}
