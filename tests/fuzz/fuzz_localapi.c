/* fuzz_localapi.c - reading a LocalAPI answer (localapi_sync.h), the bytes
 * of which come from a local daemon but are checked like any input.
 *
 * First byte: the size of the pieces the rest arrives in (0: all at once).
 * The rest is the answer, followed by the peer closing the connection.
 * Besides "no crash, no leak": the outcome (complete or refused, status,
 * body, Etag) is the same whole and in pieces; the body never exceeds the
 * input and is NUL-terminated; the Etag has no CR or LF; the message shown
 * for an error answer is one line within LOCALAPI_ERROR_SHOWN bytes. */
#include "fuzz.h"

#include <string.h>

#include "localapi_sync.h"

/* Feed in[0..len) in pieces of piece bytes (0: one), then the close. */
static int read_answer(const uint8_t *in, size_t len, size_t piece, struct localapi_answer *a)
{
    struct localapi_reader r;
    char err[256];
    localapi_reader_init(&r, a);
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < len) {
        size_t n = piece && len - off > piece ? piece : len - off;
        char *space = localapi_reader_space(&r, n);
        FUZZ_CHECK(space != NULL);
        memcpy(space, in + off, n);
        off += n;
        rc = localapi_reader_feed(&r, n, err, sizeof err);
    }
    if (rc == 0)
        rc = localapi_reader_feed(&r, 0, err, sizeof err);
    FUZZ_CHECK(rc == 1 || rc == -1);
    if (rc < 0)
        FUZZ_CHECK(err[0] && !strchr(err, '\n'));
    localapi_reader_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = data[0] % 65;
    struct localapi_answer whole, split;
    int rc = read_answer(data + 1, size - 1, 0, &whole);
    int rc2 = read_answer(data + 1, size - 1, piece, &split);
    FUZZ_CHECK(rc == rc2);
    if (rc == 1) {
        FUZZ_CHECK(whole.status == split.status && whole.status >= 100 && whole.status <= 999);
        FUZZ_CHECK(whole.len == split.len && whole.len <= size - 1);
        FUZZ_CHECK(memcmp(whole.body, split.body, whole.len) == 0 && whole.body[whole.len] == 0);
        FUZZ_CHECK(strcmp(whole.etag, split.etag) == 0 && !strpbrk(whole.etag, "\r\n"));
        char msg[LOCALAPI_ERROR_SHOWN + 8];
        localapi_error_text(&whole, msg, sizeof msg);
        FUZZ_CHECK(strlen(msg) <= LOCALAPI_ERROR_SHOWN);
        for (const char *p = msg; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 32 && *p != 127);
    }
    localapi_answer_free(&whole);
    localapi_answer_free(&split);
    return 0;
}
