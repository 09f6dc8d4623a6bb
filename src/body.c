/* body.c - flows and body framing (see body.h). */
#include "body.h"

#include "buf.h"

void flow_reset(struct flow *f)
{
    f->niov = f->idx = 0;
    f->consumed = 0;
    f->active = false;
}

void flow_push(struct flow *f, const void *p, size_t n)
{
    if (n == 0)
        return;
    f->iov[f->niov].iov_base = (void *)p;
    f->iov[f->niov].iov_len = n;
    f->niov++;
    f->active = true;
}

void flow_advance(struct flow *f, size_t n)
{
    while (n > 0) {
        struct iovec *v = &f->iov[f->idx];
        if (n >= v->iov_len) {
            n -= v->iov_len;
            f->idx++;
        } else {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= n;
            n = 0;
        }
    }
}

void flow_finish(struct buf_pool *pool, struct flow *f, struct buf *src)
{
    if (src && f->consumed)
        buf_consume(src, f->consumed);
    if (f->own) {
        buf_put(pool, f->own);
        f->own = NULL;
    }
    flow_reset(f);
}

void body_init(struct body *b, enum http_body in, enum http_body out, uint64_t length)
{
    b->in = in;
    b->out = out;
    b->remaining = length;
    b->copied = 0;
    chunked_decoder_init(&b->dec);
    b->done = in == HTTP_BODY_NONE || (in == HTTP_BODY_LENGTH && length == 0);
}

int body_produce(struct body *b, struct buf *src, bool src_eof, struct flow *f)
{
    if (b->done)
        return 0;
    const char *p = src ? buf_rptr(src) + f->consumed : NULL;
    size_t len = src ? buf_len(src) - f->consumed : 0;
    switch (b->in) {
    case HTTP_BODY_NONE:
        return 0;
    case HTTP_BODY_LENGTH: {
        size_t n = len < b->remaining ? len : (size_t)b->remaining;
        if (n == 0)
            return 0;
        flow_push(f, p, n);
        f->consumed += n;
        b->copied += n;
        b->remaining -= n;
        b->done = b->remaining == 0;
        return 1;
    }
    case HTTP_BODY_EOF:
        if (len == 0) {
            if (!src_eof)
                return 0;
            b->done = true;
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, CHUNKED_LAST, sizeof CHUNKED_LAST - 1);
            return 1;
        }
        if (b->out == HTTP_BODY_CHUNKED) {
            flow_push(f, f->pre, chunked_size_line(len, f->pre));
            flow_push(f, p, len);
            flow_push(f, "\r\n", 2);
        } else {
            flow_push(f, p, len);
        }
        f->consumed += len;
        b->copied += len;
        return 1;
    case HTTP_BODY_CHUNKED: {
        if (len == 0)
            return 0;
        struct iovec segs[LIMIT_BODY_IOVS];
        size_t nsegs = 0, used = 0, total = 0;
        int r = chunked_decode(&b->dec, p, len, &used, segs, &nsegs, LIMIT_BODY_IOVS);
        if (r == CHUNKED_ERROR)
            return -1;
        for (size_t i = 0; i < nsegs; i++)
            total += segs[i].iov_len;
        if (total) {
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, f->pre, chunked_size_line(total, f->pre));
            for (size_t i = 0; i < nsegs; i++)
                flow_push(f, segs[i].iov_base, segs[i].iov_len);
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, "\r\n", 2);
        }
        f->consumed += used;
        b->copied += total;
        if (r == CHUNKED_DONE) {
            b->done = true;
            if (b->out == HTTP_BODY_CHUNKED)
                flow_push(f, CHUNKED_LAST, sizeof CHUNKED_LAST - 1);
        }
        return used > 0 || b->done;
    }
    }
    return 0;
}

/* A chunked body that arrived with its head is checked before anything is
 * sent upstream, so a smuggling attempt in one packet never reaches it.
 * (What arrives later is checked as it streams; a framing error then cuts
 * the upstream connection mid-body, which no server takes as a request.) */
bool body_chunked_prefix_ok(const struct buf *in)
{
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    const char *p = in->data + in->rpos;
    size_t len = buf_len(in);
    while (len > 0) {
        struct iovec segs[LIMIT_BODY_IOVS];
        size_t nsegs = 0, used = 0;
        int r = chunked_decode(&d, p, len, &used, segs, &nsegs, LIMIT_BODY_IOVS);
        if (r == CHUNKED_ERROR)
            return false;
        if (r == CHUNKED_DONE || used == 0)
            return true;
        p += used;
        len -= used;
    }
    return true;
}
