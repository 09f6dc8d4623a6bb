/* splice.c - a message body through a pipe (see splice.h). */
#include "splice.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "limits.h"

void body_splice_init(struct body_splice *s)
{
    memset(s, 0, sizeof *s);
    sock_pipe_init(&s->pipe);
}

void body_splice_close(struct body_splice *s)
{
    sock_pipe_close(&s->pipe);
}

bool body_splice_wanted(const struct body_splice *s, const struct body *b)
{
    if (b->done || s->no_pipe)
        return false;
    bool open = s->pipe.fd[0] >= 0;
    switch (b->in) {
    case HTTP_BODY_LENGTH:
        return b->out == HTTP_BODY_LENGTH && b->remaining >= (open ? 1 : LIMIT_SPLICE_MIN_BODY);
    case HTTP_BODY_EOF:
        return !s->src_ended && (open || b->copied >= LIMIT_SPLICE_EOF_AFTER);
    case HTTP_BODY_CHUNKED:
        /* A chunk once begun through the pipe stays there (body_splice_busy). */
        return !s->src_ended && chunked_data_left(&b->dec) >= LIMIT_SPLICE_MIN_CHUNK;
    case HTTP_BODY_NONE:
        break;
    }
    return false;
}

/* Framing to write next: the CRLF closing the open chunk (if any), then
 * a size line for the n bytes the pipe holds (n > 0), or the last chunk. */
static void frame_next(struct body_splice *s, uint64_t n, bool last)
{
    s->frame_len = s->frame_off = 0;
    if (s->chunk_open) {
        memcpy(s->frame, "\r\n", 2);
        s->frame_len = 2;
        s->chunk_open = false;
    }
    if (n) {
        s->frame_len += chunked_size_line(n, s->frame + s->frame_len);
        s->chunk_left = n;
        s->chunk_open = true;
    } else if (last) {
        memcpy(s->frame + s->frame_len, CHUNKED_LAST, sizeof CHUNKED_LAST - 1);
        s->frame_len += sizeof CHUNKED_LAST - 1;
    }
}

/* Nothing more can be spliced now: queue the CRLF that closes the open
 * chunk (its data is all written), so that the framing on the wire is
 * whole while portico waits. false when no chunk is open. Written any
 * earlier, the CRLF would leave in a small segment of its own before each
 * next size line. */
static bool close_chunk(struct body_splice *s)
{
    if (!s->chunk_open)
        return false;
    frame_next(s, 0, false);
    return true;
}

/* Read the chunked framing that follows a spliced chunk, and no byte
 * more: look at what the socket holds, decode it, then read what the
 * decoder took (the bytes looked at are there to be read: only this
 * thread reads the socket). 1: framing taken (the next chunk's data, the
 * end of the body, or part of a line); 0: nothing there yet; -1:
 * malformed; -2: the source ended or failed. */
static int read_framing(struct body_splice *s, struct body *b, struct sock *src,
                        uint64_t *read_bytes)
{
    char peek[LIMIT_SPLICE_FRAMING_PEEK];
    ssize_t n;
    do
        n = recv(src->io.fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
        src->readable = false;
        return 0;
    }
    if (n <= 0) {
        src->eof = true;
        return -2;
    }
    struct iovec seg;
    size_t nsegs = 0, used = 0;
    int r = chunked_decode(&b->dec, peek, (size_t)n, &used, &seg, &nsegs, 0);
    if (r == CHUNKED_ERROR || used == 0)
        return -1; /* used == 0: no framing where framing must be */
    ssize_t m;
    do
        m = recv(src->io.fd, peek, used, MSG_DONTWAIT);
    while (m < 0 && errno == EINTR);
    if (m != (ssize_t)used) {
        src->eof = true;
        return -2;
    }
    *read_bytes += used;
    if (r == CHUNKED_DONE) {
        s->src_ended = true;
        s->framing = false;
    }
    return 1;
}

/* Bytes that may be taken from the source now (0: none under this framing). */
static uint64_t src_limit(const struct body_splice *s, const struct body *b)
{
    switch (b->in) {
    case HTTP_BODY_LENGTH:
        return b->remaining;
    case HTTP_BODY_CHUNKED: {
        /* A small chunk not begun through the pipe is copied (handed off). */
        uint64_t left = chunked_data_left(&b->dec);
        return s->in_chunk || s->framing || left >= LIMIT_SPLICE_MIN_CHUNK ? left : 0;
    }
    case HTTP_BODY_EOF:
        return s->src_ended ? 0 : UINT64_MAX;
    case HTTP_BODY_NONE:
        break;
    }
    return 0;
}

enum splice_result body_splice_pump(struct body_splice *s, struct body *b, struct sock *src,
                                    struct sock *dst, uint64_t *read_bytes, uint64_t *wrote_bytes)
{
    if (s->pipe.fd[0] < 0 && sock_pipe_open(&s->pipe, LIMIT_SPLICE_PIPE_BYTES) < 0) {
        s->no_pipe = true; /* out of descriptors: this body is copied */
        return SPLICE_NO_PIPE;
    }
    bool chunked_out = b->out == HTTP_BODY_CHUNKED;
    enum splice_result progress = SPLICE_IDLE;
    for (;;) {
        if (s->frame_off < s->frame_len) {
            if (!dst->writable)
                return progress;
            size_t before = s->frame_off;
            /* A size line goes out with the start of its data, which the
             * pipe holds and which is spliced right after it. */
            int r = s->chunk_open && s->chunk_left
                        ? sock_write_rest_more(dst, s->frame, s->frame_len, &s->frame_off)
                        : sock_write_rest(dst, s->frame, s->frame_len, &s->frame_off, false);
            *wrote_bytes += s->frame_off - before;
            if (r < 0)
                return SPLICE_DST_FAIL;
            if (r == 0)
                return progress;
            progress = SPLICE_PROGRESS;
            continue;
        }
        if (chunked_out && s->pipe.queued && (!s->chunk_open || s->chunk_left == 0)) {
            frame_next(s, s->pipe.queued, false);
            continue;
        }
        if (s->pipe.queued && dst->writable) {
            size_t max = chunked_out ? (size_t)s->chunk_left : s->pipe.queued;
            ssize_t n = sock_splice_out(&s->pipe, dst, max);
            if (n > 0) {
                *wrote_bytes += (uint64_t)n;
                s->data += (uint64_t)n;
                if (chunked_out)
                    s->chunk_left -= (uint64_t)n;
                progress = SPLICE_PROGRESS;
                continue;
            }
            if (n == 0 || errno != EAGAIN)
                return SPLICE_DST_FAIL;
        }
        uint64_t limit = src_limit(s, b);
        if (limit && src->readable && s->pipe.queued < s->pipe.cap) {
            size_t want = s->pipe.cap - s->pipe.queued;
            if (want > limit)
                want = (size_t)limit;
            ssize_t n = sock_splice_in(src, &s->pipe, want);
            if (n > 0) {
                *read_bytes += (uint64_t)n;
                if (b->in == HTTP_BODY_LENGTH)
                    b->remaining -= (uint64_t)n;
                else if (b->in == HTTP_BODY_CHUNKED) {
                    chunked_data_taken(&b->dec, (uint64_t)n);
                    s->in_chunk = chunked_data_left(&b->dec) > 0;
                    s->framing = !s->in_chunk; /* a whole chunk came through */
                }
                progress = SPLICE_PROGRESS;
                continue;
            }
            if (n == 0) {
                src->eof = true;
                if (b->in != HTTP_BODY_EOF)
                    return SPLICE_SRC_CUT;
                s->src_ended = true;
                progress = SPLICE_PROGRESS;
                continue;
            }
            if (errno != EAGAIN) {
                src->eof = true;
                return SPLICE_SRC_CUT;
            }
        }
        if (s->pipe.queued || s->frame_off < s->frame_len)
            return progress; /* waiting on dst */
        /* Everything taken so far is written, framing included, but for
         * the CRLF of a chunk whose data is all written: that goes out
         * with the next size line or the last chunk, or alone once
         * nothing more can be spliced now (close_chunk). */
        bool ended = (b->in == HTTP_BODY_LENGTH && b->remaining == 0) ||
                     (b->in != HTTP_BODY_LENGTH && s->src_ended);
        if (ended) {
            if (chunked_out && !s->last_sent) {
                s->last_sent = true;
                frame_next(s, 0, true);
                continue;
            }
            b->done = true;
            return SPLICE_DONE;
        }
        if (b->in == HTTP_BODY_CHUNKED && src_limit(s, b) == 0) {
            /* framing: a whole chunk came through and what follows it is
             * read here; else a small chunk is next: copied. */
            if (!s->framing) {
                if (close_chunk(s))
                    continue;
                return SPLICE_HANDOFF;
            }
            if (!src->readable) {
                if (close_chunk(s))
                    continue;
                return progress;
            }
            int r = read_framing(s, b, src, read_bytes);
            if (r < 0)
                return r == -1 ? SPLICE_BAD_FRAMING : SPLICE_SRC_CUT;
            if (r == 0)
                continue; /* src is marked not readable now */
            uint64_t left = chunked_data_left(&b->dec);
            if (left && left < LIMIT_SPLICE_MIN_CHUNK)
                s->framing = false; /* a small chunk: copied, with what follows it */
            progress = SPLICE_PROGRESS;
            continue;
        }
        if (close_chunk(s))
            continue;
        return progress;
    }
}
