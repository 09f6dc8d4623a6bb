/* http1_lines.c - storage for a parsed head's header lines, sized to the
 * head: its struct's inline lines, or one allocation of the count for a
 * head with more (the count itself is limited by the parser). */
#include "http1.h"

#include <stdlib.h>

struct http_header *http1_header_room(struct http_header *inl, struct http_header **heap,
                                      size_t *cap, size_t n)
{
    if (n <= HTTP1_HEADERS_INLINE)
        return inl;
    if (*cap < n) {
        struct http_header *h = realloc(*heap, n * sizeof *h);
        if (!h)
            return NULL;
        *heap = h;
        *cap = n;
    }
    return *heap;
}

static void release_lines(struct http_header **heap, size_t *cap)
{
    free(*heap);
    *heap = NULL;
    *cap = 0;
}

void http1_request_release(struct http_request *req)
{
    release_lines(&req->headers_heap, &req->headers_cap);
    req->headers = req->headers_inline;
    req->nheaders = 0;
}

void http1_response_release(struct http_response *resp)
{
    release_lines(&resp->headers_heap, &resp->headers_cap);
    resp->headers = resp->headers_inline;
    resp->nheaders = 0;
}
