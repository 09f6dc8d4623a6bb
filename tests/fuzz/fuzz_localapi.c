/* fuzz_localapi.c - the LocalAPI answer reader tailscaled's bytes meet.
 *
 * The first byte is the size of the pieces the answer arrives in (1 to
 * 256); the rest is the answer, followed by the end of the stream. Beyond
 * "no crash": the outcome and the body do not depend on how the bytes were
 * split (each is read once whole and once in pieces); a body is
 * NUL-terminated, within LIMIT_TS_JSON_BYTES, inside the buffer and after
 * the head; a status is a final one (2xx to 5xx); the Etag is the same
 * both ways and has no CR or LF; a refusal gives one line, and so does the
 * error text shown for the answer (printable, at most LOCALAPI_ERROR_SHOWN
 * bytes). */
#include "fuzz.h"

#include <string.h>

#include "localapi.h"

/* Read data in pieces of step bytes, then the end of the stream. */
static int read_all(struct localapi_reader *r, const uint8_t *data, size_t size, size_t step,
                    char *err, size_t errlen)
{
    localapi_reader_init(r, METHOD_GET);
    size_t off = 0;
    for (;;) {
        size_t avail;
        char *p = localapi_reader_space(r, &avail, err, errlen);
        if (!p)
            return -1;
        size_t n = size - off < step ? size - off : step;
        if (n > avail)
            n = avail;
        memcpy(p, data + off, n);
        off += n;
        int rc = localapi_reader_feed(r, n, n == 0, err, errlen);
        if (rc != 0 || n == 0)
            return rc;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] + 1;
    data++;
    size--;
    struct localapi_reader whole = {0}, split = {0};
    char err1[256] = "", err2[256] = "";
    int a = read_all(&whole, data, size, size + 1, err1, sizeof err1);
    int b = read_all(&split, data, size, step, err2, sizeof err2);
    FUZZ_CHECK(a == b);
    if (a < 0) {
        FUZZ_CHECK(strchr(err1, '\n') == NULL && err1[0] != '\0');
    } else {
        FUZZ_CHECK(a == 1);
        size_t l1, l2;
        const char *b1 = localapi_reader_body(&whole, &l1);
        const char *b2 = localapi_reader_body(&split, &l2);
        FUZZ_CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
        FUZZ_CHECK(l1 <= LIMIT_TS_JSON_BYTES && b1[l1] == '\0');
        FUZZ_CHECK(fuzz_within(b1, l1 + 1, whole.buf, whole.cap));
        FUZZ_CHECK(whole.head_len > 0 && b1 == whole.buf + whole.head_len);
        FUZZ_CHECK(whole.resp.status >= 200 && whole.resp.status <= 599);
        FUZZ_CHECK(whole.resp.status == split.resp.status);
        char e1[LIMIT_LOCALAPI_ETAG_BYTES], e2[LIMIT_LOCALAPI_ETAG_BYTES];
        bool h1 = localapi_reader_etag(&whole, e1, sizeof e1);
        FUZZ_CHECK(h1 == localapi_reader_etag(&split, e2, sizeof e2));
        FUZZ_CHECK(!h1 || (strcmp(e1, e2) == 0 && !strpbrk(e1, "\r\n")));
        char msg[LOCALAPI_ERROR_SHOWN + 8];
        localapi_error_text(&whole, msg, sizeof msg);
        FUZZ_CHECK(strlen(msg) <= LOCALAPI_ERROR_SHOWN);
        for (const char *p = msg; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 32 && *p != 127);
    }
    localapi_reader_free(&whole);
    localapi_reader_free(&split);
    return 0;
}
