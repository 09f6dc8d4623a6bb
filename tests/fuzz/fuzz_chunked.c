/* fuzz_chunked.c - the chunked decoder, both on hostile input and on its
 * own encoder's output.
 *
 * Mode byte (first byte) even: the rest is a chunked body from a client or
 * an upstream, decoded in pieces whose sizes the data chooses and with a
 * segment array that fills up; the result must not depend on how the bytes
 * were split, data segments lie inside the consumed input, and the data
 * never exceeds the input. Odd: the rest is a payload, chunked with
 * chunked_size_line into chunks of sizes the data chooses, decoded again,
 * and must come back byte for byte. */
#include "fuzz.h"

#include <string.h>

#include "chunked.h"

#define SEGS 4 /* small, so that "segments full" is exercised */

struct result {
    int status;
    size_t consumed; /* input bytes used in total */
    char *data;      /* decoded bytes */
    size_t dlen;
};

/* Decode in[0..len) in pieces of at most `piece` bytes (0: all at once). */
static void decode(const char *in, size_t len, size_t piece, size_t maxsegs, struct result *res)
{
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    res->status = CHUNKED_MORE;
    res->consumed = 0;
    res->dlen = 0;
    size_t avail = piece ? (piece < len ? piece : len) : len; /* bytes received so far */
    for (;;) {
        struct iovec segs[SEGS];
        size_t nsegs = 0, used = 0;
        const char *p = in + res->consumed;
        size_t n = avail - res->consumed;
        int st = chunked_decode(&d, p, n, &used, segs, &nsegs, maxsegs);
        FUZZ_CHECK(st == CHUNKED_ERROR || st == CHUNKED_MORE || st == CHUNKED_DONE);
        FUZZ_CHECK(used <= n && nsegs <= maxsegs);
        res->status = st;
        if (st == CHUNKED_ERROR)
            return; /* segments and count mean nothing after an error */
        size_t seg_total = 0;
        for (size_t i = 0; i < nsegs; i++) {
            FUZZ_CHECK(segs[i].iov_len > 0);
            FUZZ_CHECK(fuzz_within(segs[i].iov_base, segs[i].iov_len, p, used));
            memcpy(res->data + res->dlen, segs[i].iov_base, segs[i].iov_len);
            res->dlen += segs[i].iov_len;
            seg_total += segs[i].iov_len;
        }
        FUZZ_CHECK(seg_total <= used);
        res->consumed += used;
        FUZZ_CHECK(res->dlen <= res->consumed);
        if (st != CHUNKED_MORE)
            return;
        if (res->consumed < avail) {
            /* More was offered than used: only a full segment array excuses it. */
            FUZZ_CHECK(nsegs == maxsegs);
            continue;
        }
        if (avail == len)
            return; /* input exhausted, message incomplete */
        avail = piece && len - avail > piece ? avail + piece : len;
    }
}

static void check_same(const struct result *a, const struct result *b)
{
    FUZZ_CHECK(a->status == b->status);
    if (a->status == CHUNKED_ERROR)
        return; /* where exactly an error is noticed may depend on the split */
    FUZZ_CHECK(a->consumed == b->consumed);
    FUZZ_CHECK(a->dlen == b->dlen && memcmp(a->data, b->data, a->dlen) == 0);
}

static void fuzz_decode(const char *in, size_t len, size_t piece)
{
    struct result whole = {.data = malloc(len + 1)}, split = {.data = malloc(len + 1)};
    FUZZ_CHECK(whole.data && split.data);
    decode(in, len, 0, SEGS, &whole);
    decode(in, len, piece, 1 + piece % SEGS, &split);
    check_same(&whole, &split);
    free(whole.data);
    free(split.data);
}

static void fuzz_round_trip(const uint8_t *data, size_t size)
{
    /* data: [nsizes][sizes...][payload] */
    size_t nsizes = size ? 1 + data[0] % 8 : 0;
    if (size < 1 + nsizes)
        return;
    const uint8_t *sizes = data + 1;
    const char *payload = (const char *)data + 1 + nsizes;
    size_t plen = size - 1 - nsizes;
    char *enc = malloc(plen * 2 + 32 * (plen + 1) + sizeof CHUNKED_LAST);
    FUZZ_CHECK(enc);
    size_t e = 0, off = 0, k = 0;
    while (off < plen) {
        size_t n = 1 + sizes[k++ % nsizes];
        if (n > plen - off)
            n = plen - off;
        char line[32];
        size_t ll = chunked_size_line(n, line);
        FUZZ_CHECK(ll >= 3 && ll <= 20 && line[ll - 2] == '\r' && line[ll - 1] == '\n');
        memcpy(enc + e, line, ll);
        e += ll;
        memcpy(enc + e, payload + off, n);
        e += n;
        memcpy(enc + e, "\r\n", 2);
        e += 2;
        off += n;
    }
    memcpy(enc + e, CHUNKED_LAST, sizeof CHUNKED_LAST - 1);
    e += sizeof CHUNKED_LAST - 1;
    struct result r = {.data = malloc(e + 1)};
    FUZZ_CHECK(r.data);
    decode(enc, e, 1 + (size_t)sizes[0] % 7, SEGS, &r);
    FUZZ_CHECK(r.status == CHUNKED_DONE && r.consumed == e);
    FUZZ_CHECK(r.dlen == plen && memcmp(r.data, payload, plen) == 0);
    free(r.data);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (data[0] & 1)
        fuzz_round_trip(data + 1, size - 1);
    else
        fuzz_decode((const char *)data + 2, size - 2, 1 + data[1] % 64);
    return 0;
}
