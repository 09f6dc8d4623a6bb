/* tls_out.c - how OpenSSL's records reach the socket when the kernel does
 * not write them (no kTLS): several records per send(2).
 *
 * OpenSSL writes one record (at most 16 KiB of data) per call of its
 * socket BIO, so a body copied through TLS cost one system call, and one
 * packet through the TCP stack, per 16 KiB. The first time tls_writev is
 * given more than a record's worth, the session gets a write BIO of its
 * own: from then on tls_writev encrypts the records for up to one input
 * buffer's worth of data into a per-thread batch and sends the batch with
 * one call.
 *
 * The bytes a caller is told were written are those whose records the
 * kernel has taken, as with OpenSSL's own BIO. What a full socket did not
 * take is held by the session (the only allocation, freed once sent)
 * with the number of the caller's bytes it carries; those bytes are not
 * counted yet, so the caller offers them again first, and they are
 * counted, not encrypted again, once the held records are out. Records
 * OpenSSL writes by itself (alerts, a KeyUpdate) go through the same BIO
 * behind the held ones, so records always leave in the order they were
 * made. */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "limits.h"

/* A record as written to the socket is at most this long, header included. */
#define RECORD_MAX SSL3_RT_MAX_PACKET_SIZE

_Static_assert(TLS_SEND_BATCH_BYTES >= 2 * RECORD_MAX, "a batch holds two records or more");

struct tls_out {
    int fd;
    bool gathering; /* within tls_writev: records go into the batch */
    char *batch;    /* the calling thread's batch while gathering */
    size_t blen;
    char *held; /* records the socket did not take: held[off..len); owned, NULL when none */
    size_t off, len;
    size_t held_plain; /* the caller's bytes in those records, not counted as written yet */
};

static BIO_METHOD *out_method;
static int out_type; /* out_method's BIO type */
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

/* Small pieces (a response head, a chunk header, a short body) are
 * gathered into one record: a record per piece would cost a MAC each, and
 * without a batch a write(2) each. */
#define GATHER_BYTES 16384

/* Per thread, taken on its first write through TLS (threads that never
 * write TLS never touch it), freed when the thread ends. */
struct scratch {
    char gather[GATHER_BYTES];
    char batch[TLS_SEND_BATCH_BYTES];
};
static pthread_key_t scratch_key;
static bool scratch_key_ok;
static __thread struct scratch *scratch;

/* Send p[*off..len) until done or the socket is full. 1: all sent; 0: it
 * would block; -1 with errno. */
static int send_rest(int fd, const char *p, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(fd, p + *off, len - *off, MSG_NOSIGNAL);
        if (n > 0)
            *off += (size_t)n;
        else if (n < 0 && errno == EAGAIN)
            return 0;
        else if (n < 0 && errno != EINTR)
            return -1;
    }
    return 1;
}

/* Send what is held. 1: nothing is held any more; 0: it would block; -1
 * with errno. */
static int held_send(struct tls_out *o)
{
    if (!o->held)
        return 1;
    int r = send_rest(o->fd, o->held, o->len, &o->off);
    if (r == 1) {
        free(o->held);
        o->held = NULL;
        o->off = o->len = 0;
    }
    return r;
}

/* Send the batch, holding what the socket does not take. 1: all sent; 0:
 * the rest is held; -1 with errno (ENOMEM when it could not be held). */
static int batch_send(struct tls_out *o, size_t plain)
{
    size_t off = 0;
    int r = send_rest(o->fd, o->batch, o->blen, &off);
    if (r != 0)
        return r;
    o->len = o->blen - off;
    o->held = malloc(o->len);
    if (!o->held) {
        o->len = 0;
        errno = ENOMEM;
        return -1;
    }
    memcpy(o->held, o->batch + off, o->len);
    o->off = 0;
    o->held_plain = plain;
    return 0;
}

static int out_write(BIO *b, const char *p, size_t n, size_t *written)
{
    struct tls_out *o = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (o->gathering && TLS_SEND_BATCH_BYTES - o->blen >= n) {
        memcpy(o->batch + o->blen, p, n);
        o->blen += n;
        *written = n;
        return 1;
    }
    /* A record that does not fit the batch waits for the next call, sent
     * after the batch. Outside tls_writev, records go straight out once
     * nothing is held. */
    int r = o->gathering ? 0 : held_send(o);
    if (r == 1) {
        size_t off = 0;
        r = send_rest(o->fd, p, n, &off);
        if (off) {
            *written = off;
            return 1;
        }
    }
    if (r == 0)
        BIO_set_retry_write(b);
    return 0;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    struct tls_out *o = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: {
        BIO_clear_retry_flags(b);
        int r = o->gathering ? 1 : held_send(o);
        if (r == 0)
            BIO_set_retry_write(b);
        return r == 1;
    }
    case BIO_CTRL_WPENDING:
        return (long)(o->len - o->off);
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = o->fd;
        return o->fd;
    case BIO_CTRL_DUP:
        return 1;
    default:
        return 0; /* no kTLS, nothing to read, nothing else to set */
    }
}

static int out_destroy(BIO *b)
{
    struct tls_out *o = BIO_get_data(b);
    if (o) {
        free(o->held);
        free(o);
        BIO_set_data(b, NULL);
    }
    return 1;
}

static void out_method_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, free) == 0;
    int type = BIO_get_new_index();
    if (type < 0)
        return;
    BIO_METHOD *m =
        BIO_meth_new(type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "portico tls out");
    if (m && BIO_meth_set_write_ex(m, out_write) == 1 && BIO_meth_set_ctrl(m, out_ctrl) == 1 &&
        BIO_meth_set_destroy(m, out_destroy) == 1) {
        out_method = m;
        out_type = type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
    } else
        BIO_meth_free(m);
}

static struct tls_out *out_of(const SSL *ssl)
{
    BIO *b = SSL_get_wbio(ssl);
    return b && out_method && BIO_method_type(b) == out_type ? BIO_get_data(b) : NULL;
}

bool tls_out_pending(const SSL *ssl)
{
    const struct tls_out *o = out_of(ssl);
    return (o && o->held) || SSL_want_write(ssl);
}

/* ---- tls_writev ------------------------------------------------------------------ */

/* Give the session the batching BIO, for a body larger than a record: a
 * connection that only ever sends small answers never pays for it. Not
 * when the kernel writes the records, nor while OpenSSL still owes part of
 * a record to its own BIO (it finishes it first). NULL: the session keeps
 * OpenSSL's BIO, which works as before, a write per record. */
static struct tls_out *out_attach(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    if (fd < 0 || SSL_want_write(ssl) || tls_kernel_send(ssl))
        return NULL;
    pthread_once(&out_once, out_method_init);
    if (!out_method)
        return NULL;
    struct tls_out *o = calloc(1, sizeof *o);
    BIO *b = o ? BIO_new(out_method) : NULL;
    if (!b) {
        free(o);
        return NULL;
    }
    o->fd = fd;
    BIO_set_data(b, o);
    BIO_set_init(b, 1);
    SSL_set0_wbio(ssl, b); /* the socket BIO stays the session's rbio */
    return o;
}

/* A position in the caller's pieces. */
struct cursor {
    const struct iovec *iov;
    int n, i;
    size_t off; /* into iov[i] */
};

static bool cursor_left(struct cursor *c)
{
    while (c->i < c->n && c->off == c->iov[c->i].iov_len) {
        c->i++;
        c->off = 0;
    }
    return c->i < c->n;
}

/* Move on by up to k bytes; how many there were. */
static size_t cursor_skip(struct cursor *c, size_t k)
{
    size_t done = 0;
    while (done < k && cursor_left(c)) {
        size_t take = c->iov[c->i].iov_len - c->off;
        if (take > k - done)
            take = k - done;
        c->off += take;
        done += take;
    }
    return done;
}

/* The bytes for the next SSL_write, from the cursor on (cursor_left must
 * be true). Small pieces are copied together into gather, whole pieces
 * only, so that a retry after WANT_WRITE offers the same bytes first
 * (OpenSSL requires it). */
static const void *cursor_piece(const struct cursor *c, char *gather, size_t *len)
{
    const char *p = (const char *)c->iov[c->i].iov_base + c->off;
    size_t first = c->iov[c->i].iov_len - c->off;
    int next = c->i + 1;
    if (first >= GATHER_BYTES || next >= c->n || first + c->iov[next].iov_len > GATHER_BYTES) {
        *len = first;
        return p;
    }
    memcpy(gather, p, first);
    size_t n = first;
    for (; next < c->n && n + c->iov[next].iov_len <= GATHER_BYTES; next++) {
        memcpy(gather + n, c->iov[next].iov_base, c->iov[next].iov_len);
        n += c->iov[next].iov_len;
    }
    *len = n;
    return gather;
}

static ssize_t fail(size_t total, int err)
{
    if (total)
        return (ssize_t)total;
    errno = err;
    return -1;
}

static struct scratch *scratch_get(void)
{
    if (scratch)
        return scratch;
    pthread_once(&out_once, out_method_init);
    struct scratch *sc = scratch_key_ok ? malloc(sizeof *sc) : NULL;
    if (sc && pthread_setspecific(scratch_key, sc) != 0) {
        free(sc);
        sc = NULL;
    }
    return scratch = sc;
}

ssize_t tls_writev(SSL *ssl, const struct iovec *iov, int n)
{
    struct scratch *sc = scratch_get();
    if (!sc)
        return fail(0, ENOMEM);
    struct tls_out *o = out_of(ssl);
    struct cursor c = {iov, n, 0, 0};
    size_t total = 0;
    if (!o) {
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        o = total > GATHER_BYTES ? out_attach(ssl) : NULL;
        total = 0;
    }
    if (o && o->held) {
        int r = held_send(o);
        if (r <= 0)
            return fail(0, r == 0 ? EAGAIN : errno);
        /* Those records carried the first bytes offered now. */
        total = cursor_skip(&c, o->held_plain);
        o->held_plain -= total;
        if (o->held_plain)
            return (ssize_t)total; /* more was in flight than offered: counted next time */
    }
    while (cursor_left(&c)) {
        if (o) {
            o->gathering = true;
            o->batch = sc->batch;
            o->blen = 0;
        }
        size_t plain = 0;
        int err = SSL_ERROR_NONE;
        /* Without a batch, records go out one by one as OpenSSL writes them. */
        while (cursor_left(&c) && (!o || TLS_SEND_BATCH_BYTES - o->blen >= RECORD_MAX)) {
            size_t len;
            const void *p = cursor_piece(&c, sc->gather, &len);
            ERR_clear_error();
            int r = SSL_write(ssl, p, len > INT_MAX ? INT_MAX : (int)len);
            if (r <= 0) {
                err = SSL_get_error(ssl, r);
                break;
            }
            cursor_skip(&c, (size_t)r);
            plain += (size_t)r;
        }
        if (!o) {
            total += plain;
            if (err == SSL_ERROR_NONE)
                continue;
        } else {
            o->gathering = false;
            int r = o->blen ? batch_send(o, plain) : 1;
            o->batch = NULL;
            if (r < 0)
                return fail(total, errno);
            if (r == 0)
                return fail(total, EAGAIN);
            total += plain;
            /* A record that did not fit the batch is retried into the next. */
            if (err == SSL_ERROR_NONE || (err == SSL_ERROR_WANT_WRITE && o->blen))
                continue;
        }
        return fail(total,
                    err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ ? EAGAIN : EPIPE);
    }
    return (ssize_t)total;
}
