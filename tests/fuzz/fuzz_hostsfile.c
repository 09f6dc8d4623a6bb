/* fuzz_hostsfile.c - the portico block in a hosts file.
 *
 * Beyond "no crash": a refusal names a line; in a file without a block,
 * adding one and removing it gives the file back byte for byte, adding
 * it twice equals adding it once, and the block is then found; in a file
 * with a block, a rewrite keeps every byte before and after it, and a
 * removal leaves exactly those bytes (less the line break a block without
 * its own took). */
#include "fuzz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hostsfile.h"

static const char *const lines[] = {"127.0.0.1 alpha.tail1.ts.net", "::1 alpha.tail1.ts.net"};

static char *rewrite(const char *buf, size_t len, bool remove, size_t *outlen)
{
    char *out = NULL, err[256];
    int r = hostsfile_rewrite(buf, len, lines, 2, remove, &out, outlen, err, sizeof err);
    FUZZ_CHECK(r == 0 && out && out[*outlen] == '\0');
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct hostsfile_block b;
    char err[256];
    int found = hostsfile_find(in, size, &b, err, sizeof err);
    if (found < 0) {
        FUZZ_CHECK(strncmp(err, "line ", 5) == 0);
        char *out = NULL;
        size_t n;
        FUZZ_CHECK(hostsfile_rewrite(in, size, lines, 2, false, &out, &n, err, sizeof err) < 0);
        FUZZ_CHECK(out == NULL);
        return 0;
    }
    size_t alen, blen, rlen;
    char *added = rewrite(in, size, false, &alen);
    struct hostsfile_block a;
    FUZZ_CHECK(hostsfile_find(added, alen, &a, err, sizeof err) == 1);
    FUZZ_CHECK(a.nlines == 4);
    char *again = rewrite(added, alen, false, &blen);
    FUZZ_CHECK(blen == alen && memcmp(again, added, alen) == 0);
    char *removed = rewrite(added, alen, true, &rlen);
    if (found == 0) {
        FUZZ_CHECK(rlen == size && memcmp(removed, in, size) == 0);
        FUZZ_CHECK(alen > size && memcmp(added, in, size) == 0);
    } else {
        /* bytes before and after the block are kept */
        FUZZ_CHECK(a.begin == b.begin && memcmp(added, in, b.begin) == 0);
        FUZZ_CHECK(alen - a.end == size - b.end &&
                   memcmp(added + a.end, in + b.end, size - b.end) == 0);
        FUZZ_CHECK(a.terminated == b.terminated);
        size_t head = b.begin;
        if (!b.terminated && head > 0)
            head -= (b.crlf && head > 1 && in[head - 2] == '\r') ? 2 : 1;
        FUZZ_CHECK(rlen == head + (size - b.end));
        FUZZ_CHECK(memcmp(removed, in, head) == 0 &&
                   memcmp(removed + head, in + b.end, size - b.end) == 0);
    }
    free(added);
    free(again);
    free(removed);
    return 0;
}
