/* strbuf.h - a NUL-terminated string that grows as printf output is
 * appended to it, for text built off the hot path (the /metrics page,
 * Tailscale plans). An allocation failure is sticky: the caller checks oom
 * once, at the end, instead of after every append. */
#ifndef PORTICO_STRBUF_H
#define PORTICO_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *s; /* owned by the caller: free(s) when done; NULL until the first append */
    size_t len, cap;
    bool oom; /* an append failed; s holds what came before it */
};

/* Append printf output. A caller may preallocate s (cap bytes, s[0] = '\0')
 * to start with a size it expects. */
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
