/* test_body.c - flows and body framing: what body_produce queues for each
 * pair of wire framings, and how a flow steps over what was written. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "body.h"
#include "buf.h"

/* The bytes a flow holds from iov[idx] on, joined. */
static size_t flow_bytes(const struct flow *f, char *out, size_t cap)
{
    size_t n = 0;
    for (unsigned i = f->idx; i < f->niov; i++) {
        assert_true(n + f->iov[i].iov_len <= cap);
        memcpy(out + n, f->iov[i].iov_base, f->iov[i].iov_len);
        n += f->iov[i].iov_len;
    }
    out[n] = '\0';
    return n;
}

/* A buffer of the size reads start with, one for the whole binary. */
static struct buf *test_buf(void)
{
    static struct buf_pool pool;
    static struct buf *b;
    if (!b)
        b = buf_get_small(&pool);
    assert_non_null(b);
    b->rpos = b->wpos = 0;
    return b;
}

static void buf_set(struct buf *b, const char *s)
{
    assert_true(strlen(s) <= b->cap);
    b->rpos = 0;
    b->wpos = strlen(s);
    memcpy(b->data, s, b->wpos);
}

static void test_body_length_stops_at_content_length(void **state)
{
    struct buf *src = test_buf();
    static struct flow f;
    struct body b;
    char out[256];
    flow_reset(&f);
    body_init(&b, HTTP_BODY_LENGTH, HTTP_BODY_LENGTH, 5);
    assert_false(b.done);
    /* "hello" is the body; "GET /next" is a pipelined request, not taken. */
    buf_set(src, "helloGET /next");
    assert_int_equal(body_produce(&b, src, false, &f), 1);
    assert_true(b.done);
    assert_int_equal(f.consumed, 5);
    assert_int_equal(flow_bytes(&f, out, sizeof out), 5);
    assert_string_equal(out, "hello");
    /* Done: nothing more is produced. */
    assert_int_equal(body_produce(&b, src, false, &f), 0);
    /* Once written, the claimed bytes leave the buffer. */
    flow_advance(&f, 5);
    flow_finish(NULL, &f, src);
    assert_int_equal(buf_len(src), 9);
    assert_false(f.active);
}

static void test_body_length_zero_and_none_are_done(void **state)
{
    struct body b;
    body_init(&b, HTTP_BODY_LENGTH, HTTP_BODY_LENGTH, 0);
    assert_true(b.done);
    body_init(&b, HTTP_BODY_NONE, HTTP_BODY_NONE, 0);
    assert_true(b.done);
    body_init(&b, HTTP_BODY_CHUNKED, HTTP_BODY_CHUNKED, 0);
    assert_false(b.done);
}

static void test_body_eof_to_chunked(void **state)
{
    struct buf *src = test_buf();
    static struct flow f;
    struct body b;
    char out[256];
    flow_reset(&f);
    body_init(&b, HTTP_BODY_EOF, HTTP_BODY_CHUNKED, 0);
    buf_set(src, "abc");
    assert_int_equal(body_produce(&b, src, false, &f), 1);
    assert_int_equal(flow_bytes(&f, out, sizeof out), 8);
    assert_string_equal(out, "3\r\nabc\r\n");
    flow_finish(NULL, &f, src);
    assert_int_equal(buf_len(src), 0);
    /* Nothing yet, no EOF: nothing to do. At EOF: the last chunk. */
    assert_int_equal(body_produce(&b, src, false, &f), 0);
    assert_int_equal(body_produce(&b, src, true, &f), 1);
    assert_true(b.done);
    flow_bytes(&f, out, sizeof out);
    assert_string_equal(out, "0\r\n\r\n");
}

static void test_body_chunked_to_length_framing_removed(void **state)
{
    struct buf *src = test_buf();
    static struct flow f;
    struct body b;
    char out[256];
    flow_reset(&f);
    /* An HTTP/1.0 client gets the decoded bytes, read until close. */
    body_init(&b, HTTP_BODY_CHUNKED, HTTP_BODY_EOF, 0);
    buf_set(src, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT");
    assert_int_equal(body_produce(&b, src, false, &f), 1);
    assert_true(b.done);
    flow_bytes(&f, out, sizeof out);
    assert_string_equal(out, "abcde");
    assert_int_equal(f.consumed, strlen("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
}

static void test_body_chunked_rechunked_in_parts(void **state)
{
    struct buf *src = test_buf();
    static struct flow f;
    struct body b;
    char out[256];
    flow_reset(&f);
    body_init(&b, HTTP_BODY_CHUNKED, HTTP_BODY_CHUNKED, 0);
    /* The first chunk split across two reads: each batch is re-framed on
     * its own, and bytes not yet decodable stay unclaimed. */
    buf_set(src, "5\r\nab");
    assert_int_equal(body_produce(&b, src, false, &f), 1);
    flow_bytes(&f, out, sizeof out);
    assert_string_equal(out, "2\r\nab\r\n");
    flow_finish(NULL, &f, src);
    buf_set(src, "cde\r\n0\r\n\r\n");
    assert_int_equal(body_produce(&b, src, false, &f), 1);
    assert_true(b.done);
    flow_bytes(&f, out, sizeof out);
    assert_string_equal(out, "3\r\ncde\r\n0\r\n\r\n");
}

static void test_body_chunked_malformed(void **state)
{
    struct buf *src = test_buf();
    static struct flow f;
    struct body b;
    flow_reset(&f);
    body_init(&b, HTTP_BODY_CHUNKED, HTTP_BODY_CHUNKED, 0);
    buf_set(src, "zz\r\nabc\r\n");
    assert_int_equal(body_produce(&b, src, false, &f), -1);
    buf_set(src, "zz\r\n");
    assert_false(body_chunked_prefix_ok(src));
    buf_set(src, "3\r\nab");
    assert_true(body_chunked_prefix_ok(src));
    buf_set(src, "3\r\nabc\r\n0\r\n\r\n");
    assert_true(body_chunked_prefix_ok(src));
    /* Framing broken after the first chunk is caught too. */
    buf_set(src, "3\r\nabcX\r\n");
    assert_false(body_chunked_prefix_ok(src));
}

static void test_flow_advance_partial_writes(void **state)
{
    static struct flow f;
    char out[64];
    flow_reset(&f);
    flow_push(&f, "head", 4);
    flow_push(&f, "", 0); /* nothing pushed */
    flow_push(&f, "body", 4);
    assert_int_equal(f.niov, 2);
    assert_true(f.active);
    flow_advance(&f, 2);
    flow_bytes(&f, out, sizeof out);
    assert_string_equal(out, "adbody");
    flow_advance(&f, 3);
    assert_int_equal(f.idx, 1);
    flow_bytes(&f, out, sizeof out);
    assert_string_equal(out, "ody");
    flow_advance(&f, 3);
    assert_int_equal(f.idx, f.niov);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_length_stops_at_content_length),
        cmocka_unit_test(test_body_length_zero_and_none_are_done),
        cmocka_unit_test(test_body_eof_to_chunked),
        cmocka_unit_test(test_body_chunked_to_length_framing_removed),
        cmocka_unit_test(test_body_chunked_rechunked_in_parts),
        cmocka_unit_test(test_body_chunked_malformed),
        cmocka_unit_test(test_flow_advance_partial_writes),
    };
    return cmocka_run_group_tests_name("body", tests, NULL, NULL);
}
