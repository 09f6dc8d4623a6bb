/* tls_dyn.c - the certificates fetched from tailscaled, served by SNI
 * beside the configured ones (see tls.h).
 *
 * They change while the process runs (fetched, renewed), unlike a
 * configuration snapshot's certificates, so they live in a set of their
 * own: immutable once built, reference-counted, and swapped as a whole
 * under a mutex. A ClientHello whose name the snapshot's store lacks takes
 * a reference to the current set for its session (released at SSL_free),
 * so a renewal never pulls a certificate out from under a handshake, and
 * reloads need not fetch anything again. */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "route.h"
#include "tls_int.h"

struct tls_dyn {
    atomic_uint refs;
    struct tls_cert *certs;
    size_t ncerts;
    struct route_table *names; /* name -> struct tls_cert */
};

static pthread_mutex_t dyn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_dyn *dyn_current; /* under dyn_lock */
static int dyn_index = -1;          /* SSL ex_data slot: the set a session's certificate is in */
static pthread_once_t dyn_once = PTHREAD_ONCE_INIT;

static void dyn_free(struct tls_dyn *d)
{
    for (size_t i = 0; i < d->ncerts; i++)
        tls_cert_release(&d->certs[i]);
    free(d->certs);
    route_table_free(d->names);
    free(d);
}

static void dyn_unref(struct tls_dyn *d)
{
    if (d && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
        dyn_free(d);
}

static void dyn_ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    dyn_unref(ptr);
}

static void dyn_init(void)
{
    dyn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, dyn_ref_free);
}

/* ---- loading a pair from memory ----------------------------------------------- */

/* Put the key and chain into a fresh context in tc. */
static int pair_load(struct tls_cert *tc, const char *key, size_t key_len, const char *chain,
                     size_t chain_len, const char *name, char *err, size_t errlen)
{
    ERR_clear_error();
    memset(tc, 0, sizeof *tc);
    if (key_len > INT32_MAX || chain_len > INT32_MAX) {
        snprintf(err, errlen, "certificate for %s: too large", name);
        return -1;
    }
    tc->ctx = tls_server_ctx_new();
    if (!tc->ctx) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        return -1;
    }
    BIO *b = BIO_new_mem_buf(key, (int)key_len);
    EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, NULL) : NULL;
    BIO_free(b);
    if (!pk) {
        snprintf(err, errlen, "certificate for %s: no private key that OpenSSL can read (%s)", name,
                 tls_ssl_reason());
        return -1;
    }
    b = BIO_new_mem_buf(chain, (int)chain_len);
    X509 *leaf = b ? PEM_read_bio_X509(b, NULL, tls_no_passphrase, NULL) : NULL;
    bool ok = leaf && SSL_CTX_use_certificate(tc->ctx, leaf) == 1;
    X509_free(leaf);
    if (!ok) {
        BIO_free(b);
        EVP_PKEY_free(pk);
        snprintf(err, errlen, "certificate for %s: no certificate that OpenSSL can read (%s)", name,
                 tls_ssl_reason());
        return -1;
    }
    X509 *x;
    while (ok && (x = PEM_read_bio_X509(b, NULL, tls_no_passphrase, NULL)) != NULL)
        if (SSL_CTX_add0_chain_cert(tc->ctx, x) != 1) {
            X509_free(x);
            ok = false;
        }
    BIO_free(b);
    unsigned long e = ERR_peek_last_error();
    /* The end of the PEM data is "no start line", anything else is damage. */
    if (ok && e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
        ok = false;
    ERR_clear_error();
    if (!ok) {
        EVP_PKEY_free(pk);
        snprintf(err, errlen, "certificate for %s: damaged certificate chain", name);
        return -1;
    }
    ok = SSL_CTX_use_PrivateKey(tc->ctx, pk) == 1 && SSL_CTX_check_private_key(tc->ctx) == 1;
    EVP_PKEY_free(pk);
    if (!ok) {
        ERR_clear_error();
        snprintf(err, errlen, "certificate for %s: the private key does not match it", name);
        return -1;
    }
    char what[LIMIT_HOST_LEN + 32];
    snprintf(what, sizeof what, "certificate for %s", name);
    return tls_cert_finish(tc, what, err, errlen);
}

static bool covers(const struct tls_cert *tc, const char *name)
{
    const char *dot = strchr(name, '.');
    for (size_t i = 0; i < tc->nnames; i++) {
        const char *n = tc->names[i];
        if (strcmp(n, name) == 0 || (n[0] == '*' && n[1] == '.' && dot && strcmp(n + 1, dot) == 0))
            return true;
    }
    return false;
}

int64_t tls_asn1_seconds(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

int tls_pair_check(const char *key, size_t key_len, const char *chain, size_t chain_len,
                   const char *name, struct tls_pair_info *info, char *err, size_t errlen)
{
    struct tls_cert tc;
    memset(info, 0, sizeof *info);
    if (pair_load(&tc, key, key_len, chain, chain_len, name, err, errlen) < 0) {
        tls_cert_release(&tc);
        return -1;
    }
    int rc = 0;
    const X509 *leaf = SSL_CTX_get0_certificate(tc.ctx);
    info->not_before = tls_asn1_seconds(X509_get0_notBefore(leaf));
    info->not_after = tls_asn1_seconds(X509_get0_notAfter(leaf));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(info->serial, sizeof info->serial, "%s", hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    if (!covers(&tc, name)) {
        snprintf(err, errlen, "the certificate offered for %s is for %s%s", name, tc.names[0],
                 tc.nnames > 1 ? " and other names" : "");
        rc = -1;
    } else if (info->not_before == 0 || info->not_after <= info->not_before) {
        snprintf(err, errlen, "certificate for %s: unreadable validity dates", name);
        rc = -1;
    }
    tls_cert_release(&tc);
    return rc;
}

/* ---- the set -------------------------------------------------------------------- */

struct tls_dyn *tls_dyn_new(const struct tls_pem_pair *pairs, size_t n, char *err, size_t errlen)
{
    struct tls_dyn *d = calloc(1, sizeof *d);
    if (!d || !(d->certs = calloc(n ? n : 1, sizeof *d->certs)) ||
        !(d->names = route_table_new(2 * n))) {
        if (d)
            free(d->certs);
        free(d);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&d->refs, 1);
    for (size_t i = 0; i < n; i++) {
        const struct tls_pem_pair *p = &pairs[i];
        struct tls_cert *tc = &d->certs[d->ncerts];
        if (pair_load(tc, p->key, p->key_len, p->chain, p->chain_len, p->name, err, errlen) < 0) {
            tls_cert_release(tc);
            dyn_free(d);
            return NULL;
        }
        d->ncerts++;
        for (size_t j = 0; j < tc->nnames; j++) {
            void *prev; /* a name in two pairs is served by the first */
            if (route_table_add(d->names, tc->names[j], tc, &prev) == -ENOMEM) {
                dyn_free(d);
                snprintf(err, errlen, "out of memory");
                return NULL;
            }
        }
    }
    return d;
}

void tls_dyn_install(struct tls_dyn *d)
{
    pthread_mutex_lock(&dyn_lock);
    struct tls_dyn *old = dyn_current;
    dyn_current = d;
    pthread_mutex_unlock(&dyn_lock);
    dyn_unref(old);
}

struct tls_cert *tls_dyn_choose(SSL *s, const char *host, size_t len)
{
    pthread_once(&dyn_once, dyn_init);
    if (dyn_index < 0)
        return NULL;
    pthread_mutex_lock(&dyn_lock);
    struct tls_dyn *d = dyn_current;
    struct tls_cert *tc = d ? route_table_lookup(d->names, host, len) : NULL;
    if (tc)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&dyn_lock);
    if (!tc)
        return NULL;
    /* A session whose hello callback runs again (a HelloRetryRequest) drops
     * the reference it took the first time. */
    dyn_unref(SSL_get_ex_data(s, dyn_index));
    if (SSL_set_ex_data(s, dyn_index, d) != 1) {
        dyn_unref(d);
        return NULL;
    }
    return tc;
}
