/* arena.h - a bump allocator whose memory is released all at once.
 *
 * For data with one lifetime, such as a configuration snapshot: everything
 * it owns is allocated from its arena and freed by one arena_free, so no
 * field needs a free() of its own and none can be forgotten. Not
 * thread-safe: one thread allocates; any thread may free at the end. */
#ifndef PORTICO_ARENA_H
#define PORTICO_ARENA_H

#include <stddef.h>

struct arena;

/* A new, empty arena; NULL when out of memory. */
struct arena *arena_new(void);

/* size zeroed bytes aligned for any type; NULL when out of memory. A
 * zero-byte request returns a valid pointer, distinct from NULL. */
void *arena_alloc(struct arena *a, size_t size);

/* n elements of size bytes, zeroed; NULL on overflow or out of memory. */
void *arena_calloc(struct arena *a, size_t n, size_t size);

/* Copies of s (and of at most n bytes of s), NUL-terminated. */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);

/* Bytes handed out so far (for tests and accounting). */
size_t arena_used(const struct arena *a);

/* Release every allocation and the arena itself. NULL is allowed. */
void arena_free(struct arena *a);

#endif
