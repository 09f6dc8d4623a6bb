/* test_chunked.c - the strict chunked decoder, whole and byte by byte. */
#include "unit.h"

#include <stdio.h>

#include "chunked.h"
#include "limits.h"

/* Decode all of in, feeding step bytes at a time (0: all at once), and
 * gather the data into out. Returns the status of the last call and sets
 * *used to the input bytes consumed. */
static int decode(const char *in, size_t len, size_t step, char *out, size_t *outlen, size_t *used)
{
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    size_t pos = 0, o = 0;
    int r = CHUNKED_MORE;
    /* Bytes handed to the decoder but not consumed are offered again, as
     * the proxy does with its buffer. */
    size_t avail = 0;
    while (pos < len) {
        avail = step ? (avail + step > len - pos ? len - pos : avail + step) : len - pos;
        struct iovec segs[4];
        size_t nsegs = 0, c = 0;
        r = chunked_decode(&d, in + pos, avail, &c, segs, &nsegs, 4);
        for (size_t i = 0; i < nsegs; i++) {
            memcpy(out + o, segs[i].iov_base, segs[i].iov_len);
            o += segs[i].iov_len;
        }
        pos += c;
        avail -= c;
        if (r != CHUNKED_MORE)
            break;
        if (c == 0 && avail == len - pos)
            break;
    }
    *outlen = o;
    *used = pos;
    return r;
}

static const char MSG[] = "5\r\nhello\r\n1;ext=1;q=\"a b\"\r\n,\r\n10\r\n0123456789abcdef\r\n"
                          "0\r\nTrailer-A: x\r\n\r\nNEXT";

static void test_chunked_whole_message_decodes(void **state)
{
    char out[64];
    size_t olen, used;
    assert_int_equal(decode(MSG, sizeof MSG - 1, 0, out, &olen, &used), CHUNKED_DONE);
    assert_int_equal(olen, 22);
    assert_memory_equal(out, "hello,0123456789abcdef", 22);
    assert_int_equal(used, sizeof MSG - 1 - 4); /* "NEXT" is not consumed */
}

static void test_chunked_byte_by_byte_gives_same_data(void **state)
{
    for (size_t step = 1; step < 8; step++) {
        char out[64];
        size_t olen, used;
        assert_int_equal(decode(MSG, sizeof MSG - 1, step, out, &olen, &used), CHUNKED_DONE);
        assert_int_equal(olen, 22);
        assert_memory_equal(out, "hello,0123456789abcdef", 22);
        assert_int_equal(used, sizeof MSG - 1 - 4);
    }
}

static void test_chunked_bad_sizes_rejected(void **state)
{
    const char *bad[] = {"-1\r\n",
                         "0x10\r\n",
                         " 5\r\n",
                         "5 \r\n",
                         "\r\n",
                         "z\r\n",
                         "11111111111111111\r\n",
                         "8000000000000000\r\n",
                         "5\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[64];
        size_t olen, used;
        assert_int_equal(decode(bad[i], strlen(bad[i]), 0, out, &olen, &used), CHUNKED_ERROR);
    }
}

static void test_chunked_largest_size_accepted(void **state)
{
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    struct iovec segs[1];
    size_t nsegs = 0, used = 0;
    assert_int_equal(chunked_decode(&d, "7fffffffffffffff\r\n", 18, &used, segs, &nsegs, 1),
                     CHUNKED_MORE);
    assert_int_equal(used, 18);
    assert_true(d.remaining == UINT64_C(0x7fffffffffffffff));
}

static void test_chunked_data_must_end_in_crlf(void **state)
{
    char out[64];
    size_t olen, used;
    assert_int_equal(decode("5\r\nhelloXX0\r\n\r\n", 15, 0, out, &olen, &used), CHUNKED_ERROR);
    assert_int_equal(decode("5\r\nhello\n0\r\n\r\n", 14, 0, out, &olen, &used), CHUNKED_ERROR);
}

static void test_chunked_bad_trailers_rejected(void **state)
{
    char out[64];
    size_t olen, used;
    const char *a = "0\r\nBad Name: x\r\n\r\n";
    assert_int_equal(decode(a, strlen(a), 0, out, &olen, &used), CHUNKED_ERROR);
    const char *b = "0\r\nX: y\n\r\n";
    assert_int_equal(decode(b, strlen(b), 0, out, &olen, &used), CHUNKED_ERROR);
    const char *c = "0\r\n folded\r\n\r\n";
    assert_int_equal(decode(c, strlen(c), 0, out, &olen, &used), CHUNKED_ERROR);
}

static void test_chunked_oversized_size_line_rejected(void **state)
{
    static char line[LIMIT_CHUNK_LINE_BYTES + 64];
    memset(line, 'a', sizeof line);
    memcpy(line, "1;x=", 4);
    char out[8];
    size_t olen, used;
    assert_int_equal(decode(line, sizeof line, 0, out, &olen, &used), CHUNKED_ERROR);
}

static void test_chunked_segments_limit_respected(void **state)
{
    /* Many one-byte chunks and room for two segments: the decoder stops and
     * resumes where it left off. */
    const char *m = "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n";
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    struct iovec segs[2];
    size_t nsegs = 0, used = 0;
    assert_int_equal(chunked_decode(&d, m, strlen(m), &used, segs, &nsegs, 2), CHUNKED_MORE);
    assert_int_equal(nsegs, 2);
    size_t used2 = 0;
    nsegs = 0;
    assert_int_equal(chunked_decode(&d, m + used, strlen(m) - used, &used2, segs, &nsegs, 2),
                     CHUNKED_DONE);
    assert_int_equal(nsegs, 1);
    assert_memory_equal(segs[0].iov_base, "c", 1);
}

static void test_chunked_size_line_is_lower_hex(void **state)
{
    char out[24];
    assert_int_equal(chunked_size_line(0x1a2b, out), 6);
    assert_memory_equal(out, "1a2b\r\n", 6);
    assert_int_equal(chunked_size_line(1, out), 3);
    assert_memory_equal(out, "1\r\n", 3);
}

/* Every valid message here must decode to its data whatever the split. */
static const struct {
    const char *msg;
    const char *data;
} VALID[] = {
    {"0\r\n\r\n", ""},
    {"000\r\n\r\n", ""},
    {"1\r\na\r\n0\r\n\r\n", "a"},
    {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
    {"a;x\r\n0123456789\r\n0;y=z\r\n\r\n", "0123456789"},
    {"3 ;a=b ; c\r\nxyz\r\n0\r\n\r\n", "xyz"},
    {"3;a = \"q \\\" ;\"\r\nxyz\r\n0\r\n\r\n", "xyz"},
    {"3;a=\"\"\r\nxyz\r\n0\r\n\r\n", "xyz"},
    {"2\r\n\r\n\r\n0\r\nX-T: 1\r\nY:\r\nZ: a b \t\r\n\r\n", "\r\n"},
    {"0000000000000003\r\nabc\r\n0\r\n\r\n", "abc"},
};

static void test_chunked_every_valid_message_same_byte_by_byte(void **state)
{
    for (size_t k = 0; k < sizeof VALID / sizeof VALID[0]; k++) {
        const char *m = VALID[k].msg;
        size_t dlen = strlen(VALID[k].data);
        for (size_t step = 0; step < 4; step++) {
            char out[64];
            size_t olen, used;
            assert_int_equal(decode(m, strlen(m), step, out, &olen, &used), CHUNKED_DONE);
            assert_int_equal(olen, dlen);
            assert_memory_equal(out, VALID[k].data, dlen);
            assert_int_equal(used, strlen(m));
        }
    }
}

static void test_chunked_single_call_fed_one_byte_at_a_time(void **state)
{
    /* The proxy's way: each call sees only the new byte, data comes out in
     * one-byte segments. */
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    char out[64];
    size_t o = 0;
    int r = CHUNKED_MORE;
    size_t i;
    for (i = 0; i < sizeof MSG - 1 && r == CHUNKED_MORE; i++) {
        struct iovec seg[1];
        size_t nsegs = 0, used = 0;
        r = chunked_decode(&d, MSG + i, 1, &used, seg, &nsegs, 1);
        assert_int_equal(used, 1);
        if (nsegs) {
            memcpy(out + o, seg[0].iov_base, seg[0].iov_len);
            o += seg[0].iov_len;
        }
    }
    assert_int_equal(r, CHUNKED_DONE);
    assert_int_equal(i, sizeof MSG - 1 - 4);
    assert_int_equal(o, 22);
    assert_memory_equal(out, "hello,0123456789abcdef", 22);
}

static void test_chunked_done_consumes_nothing_more(void **state)
{
    const char *m = "0\r\n\r\nGET / HTTP/1.1\r\n";
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    struct iovec segs[1];
    size_t nsegs = 0, used = 0;
    assert_int_equal(chunked_decode(&d, m, strlen(m), &used, segs, &nsegs, 1), CHUNKED_DONE);
    assert_int_equal(used, 5);
    assert_int_equal(chunked_decode(&d, m + 5, strlen(m) - 5, &used, segs, &nsegs, 1),
                     CHUNKED_DONE);
    assert_int_equal(used, 0);
    assert_int_equal(nsegs, 0);
}

static void test_chunked_seventeen_digits_rejected_even_if_small(void **state)
{
    char out[8];
    size_t olen, used;
    const char *m = "00000000000000001\r\na\r\n0\r\n\r\n";
    assert_int_equal(decode(m, strlen(m), 0, out, &olen, &used), CHUNKED_ERROR);
}

static void test_chunked_bad_extensions_rejected(void **state)
{
    const char *bad[] = {
        "1;\r\n",           /* no name */
        "1;=v\r\n",         /* no name */
        "1;a=\r\n",         /* no value */
        "1;a=\"x\r\n",      /* unterminated quote */
        "1;a b\r\n",        /* two names */
        "1;a \r\n",         /* whitespace before CRLF */
        "1;a=b \r\n",       /* whitespace before CRLF */
        "1;a=b c\r\n",      /* value then garbage */
        "1;a=\"x\"y\r\n",   /* garbage after quoted value */
        "1;a(b)\r\n",       /* not a token */
        "1;a=\"\x01\"\r\n", /* control in a quoted string */
        "1;a\n",            /* bare LF */
        "1 x\r\n",          /* whitespace then not ';' */
        "1;a=b\r\r\n",      /* CR CR */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[8];
        size_t olen, used;
        assert_int_equal(decode(bad[i], strlen(bad[i]), 0, out, &olen, &used), CHUNKED_ERROR);
    }
}

static void test_chunked_extensions_on_last_chunk_accepted(void **state)
{
    char out[8];
    size_t olen, used;
    const char *m = "0;sig=\"abc\";n=1\r\n\r\n";
    assert_int_equal(decode(m, strlen(m), 1, out, &olen, &used), CHUNKED_DONE);
    assert_int_equal(olen, 0);
}

static void test_chunked_more_trailer_shapes_rejected(void **state)
{
    const char *bad[] = {
        "0\r\n: v\r\n\r\n",      /* empty name */
        "0\r\nX : v\r\n\r\n",    /* space before colon */
        "0\r\nNoColon\r\n\r\n",  /* no colon */
        "0\r\nX: a\x01\r\n\r\n", /* control byte */
        "0\r\nX: a\r\n\n",       /* bare LF at the end */
        "0\r\n\n",               /* bare LF as the empty line */
        "0\r\n\r\r",             /* CR not followed by LF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[8];
        size_t olen, used;
        assert_int_equal(decode(bad[i], strlen(bad[i]), 0, out, &olen, &used), CHUNKED_ERROR);
    }
}

static void test_chunked_oversized_trailers_rejected(void **state)
{
    static char m[LIMIT_TRAILER_BYTES + 64];
    size_t n = (size_t)sprintf(m, "0\r\nX: ");
    memset(m + n, 'v', LIMIT_TRAILER_BYTES);
    n += LIMIT_TRAILER_BYTES;
    memcpy(m + n, "\r\n\r\n", 4);
    n += 4;
    char out[8];
    size_t olen, used;
    assert_int_equal(decode(m, n, 0, out, &olen, &used), CHUNKED_ERROR);
}

static void test_chunked_size_line_at_limit_accepted(void **state)
{
    static char m[LIMIT_CHUNK_LINE_BYTES + 64];
    /* "1;x=" then token bytes up to the limit, then CRLF. */
    memset(m, 'a', LIMIT_CHUNK_LINE_BYTES);
    memcpy(m, "1;x=", 4);
    size_t n = LIMIT_CHUNK_LINE_BYTES;
    memcpy(m + n, "\r\nz\r\n0\r\n\r\n", 10);
    n += 10;
    char out[8];
    size_t olen, used;
    assert_int_equal(decode(m, n, 0, out, &olen, &used), CHUNKED_DONE);
    assert_int_equal(olen, 1);
}

static void test_chunked_truncated_message_wants_more(void **state)
{
    char out[64];
    size_t olen, used;
    const char *m = "5\r\nhel";
    assert_int_equal(decode(m, strlen(m), 0, out, &olen, &used), CHUNKED_MORE);
    assert_int_equal(olen, 3);
    assert_int_equal(used, strlen(m));
}

static void test_chunked_size_line_large_values(void **state)
{
    char out[24];
    assert_int_equal(chunked_size_line(UINT64_C(0x7fffffffffffffff), out), 18);
    assert_memory_equal(out, "7fffffffffffffff\r\n", 18);
    assert_int_equal(chunked_size_line(UINT64_MAX, out), 18);
    assert_memory_equal(out, "ffffffffffffffff\r\n", 18);
    assert_int_equal(chunked_size_line(0xABCDEF, out), 8);
    assert_memory_equal(out, "abcdef\r\n", 8);
}

/* Data taken straight from the wire (spliced) in the middle of a chunk:
 * the decoder goes on with the chunk's CRLF and the next chunk, and still
 * rejects a chunk whose data runs over its size. */
static void test_chunked_data_taken_from_the_wire(void **state)
{
    struct chunked_decoder d;
    chunked_decoder_init(&d);
    struct iovec segs[4];
    size_t nsegs = 0, used = 0;
    assert_int_equal(chunked_data_left(&d), 0);
    const char *head = "10\r\n0123";
    assert_int_equal(chunked_decode(&d, head, strlen(head), &used, segs, &nsegs, 4), CHUNKED_MORE);
    assert_int_equal(used, strlen(head));
    assert_int_equal(chunked_data_left(&d), 12);
    chunked_data_taken(&d, 5);
    assert_int_equal(chunked_data_left(&d), 7);
    chunked_data_taken(&d, 8); /* more than is left: ignored */
    assert_int_equal(chunked_data_left(&d), 7);
    chunked_data_taken(&d, 7);
    assert_int_equal(chunked_data_left(&d), 0); /* now the CRLF is due */
    const char *rest = "\r\n3\r\nabc\r\n0\r\n\r\n";
    nsegs = 0;
    assert_int_equal(chunked_decode(&d, rest, strlen(rest), &used, segs, &nsegs, 4), CHUNKED_DONE);
    assert_int_equal(nsegs, 1);
    assert_int_equal(segs[0].iov_len, 3);

    chunked_decoder_init(&d);
    nsegs = 0;
    assert_int_equal(chunked_decode(&d, "2\r\n", 3, &used, segs, &nsegs, 4), CHUNKED_MORE);
    chunked_data_taken(&d, 2);
    nsegs = 0;
    assert_int_equal(chunked_decode(&d, "x\r\n", 3, &used, segs, &nsegs, 4), CHUNKED_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_whole_message_decodes),
        cmocka_unit_test(test_chunked_byte_by_byte_gives_same_data),
        cmocka_unit_test(test_chunked_bad_sizes_rejected),
        cmocka_unit_test(test_chunked_largest_size_accepted),
        cmocka_unit_test(test_chunked_data_must_end_in_crlf),
        cmocka_unit_test(test_chunked_bad_trailers_rejected),
        cmocka_unit_test(test_chunked_oversized_size_line_rejected),
        cmocka_unit_test(test_chunked_segments_limit_respected),
        cmocka_unit_test(test_chunked_size_line_is_lower_hex),
        cmocka_unit_test(test_chunked_every_valid_message_same_byte_by_byte),
        cmocka_unit_test(test_chunked_single_call_fed_one_byte_at_a_time),
        cmocka_unit_test(test_chunked_done_consumes_nothing_more),
        cmocka_unit_test(test_chunked_seventeen_digits_rejected_even_if_small),
        cmocka_unit_test(test_chunked_bad_extensions_rejected),
        cmocka_unit_test(test_chunked_extensions_on_last_chunk_accepted),
        cmocka_unit_test(test_chunked_more_trailer_shapes_rejected),
        cmocka_unit_test(test_chunked_oversized_trailers_rejected),
        cmocka_unit_test(test_chunked_size_line_at_limit_accepted),
        cmocka_unit_test(test_chunked_truncated_message_wants_more),
        cmocka_unit_test(test_chunked_size_line_large_values),
        cmocka_unit_test(test_chunked_data_taken_from_the_wire),
    };
    return cmocka_run_group_tests_name("chunked", tests, NULL, NULL);
}
