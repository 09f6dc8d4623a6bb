/* tls.c - TLS termination by SNI and client contexts (see tls.h). */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "limits.h"
#include "route.h"
#include "tls_int.h"

/* TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate",
 * without the finite-field DHE suites that need parameters). TLS 1.3 keeps
 * OpenSSL's defaults, which are all acceptable. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tls_store {
    atomic_uint refs;
    SSL_CTX *front; /* every session starts here; the ClientHello picks a cert's context */
    struct tls_cert *certs;
    size_t ncerts;
    struct route_table *names; /* name -> struct tls_cert */
    struct tls_cert *fallback; /* tls.default_cert, or NULL */
    size_t nnames;
    bool dynamic; /* names it lacks are looked up in the certificates from tailscaled */
};

/* ---- process-wide state ------------------------------------------------------- */

static int store_index = -1; /* SSL ex_data slot holding the session's store reference */
static int cert_index = -1;  /* SSL ex_data slot: the struct tls_cert chosen by the ClientHello */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Session-ticket keys: the newest seals, all of them open. They live for
 * the process, not a configuration, so a reload keeps resumption working.
 * Never written to disk: a restart simply costs one full handshake. */
struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t born; /* 0: slot unused */
};
static struct ticket_key ticket_keys[TLS_TICKET_KEYS]; /* [0] is the newest */
static pthread_mutex_t ticket_lock = PTHREAD_MUTEX_INITIALIZER;

static void store_ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr)
        tls_store_unref(ptr);
}

static void init_once(void)
{
    store_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, store_ref_free);
    cert_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Called with ticket_lock held. A failed RAND leaves the old key in use. */
static void ticket_rotate(time_t now)
{
    struct ticket_key k;
    if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
        RAND_bytes(k.hmac, sizeof k.hmac) != 1)
        return;
    k.born = now;
    OPENSSL_cleanse(&ticket_keys[TLS_TICKET_KEYS - 1], sizeof ticket_keys[0]);
    memmove(&ticket_keys[1], &ticket_keys[0], (TLS_TICKET_KEYS - 1) * sizeof ticket_keys[0]);
    ticket_keys[0] = k;
    OPENSSL_cleanse(&k, sizeof k);
}

static int ticket_cipher(const struct ticket_key *k, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                         EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(hctx, k->hmac, sizeof k->hmac, params) != 1)
        return -1;
    if (enc)
        return EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
    return EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 0 : -1;
}

/* OpenSSL's ticket hook: 1 = sealed/opened, 2 = opened with an old key
 * (issue a fresh ticket), 0 = unknown key (full handshake), -1 = error. */
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    (void)s;
    time_t now = time(NULL);
    int rc = -1;
    pthread_mutex_lock(&ticket_lock);
    if (enc) {
        if (ticket_keys[0].born == 0 || now - ticket_keys[0].born >= TLS_TICKET_ROTATE_S)
            ticket_rotate(now);
        const struct ticket_key *k = &ticket_keys[0];
        if (k->born && RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
            ticket_cipher(k, iv, cctx, hctx, 1) == 0) {
            memcpy(key_name, k->name, sizeof k->name);
            rc = 1;
        }
    } else {
        rc = 0;
        for (size_t i = 0; i < TLS_TICKET_KEYS; i++) {
            const struct ticket_key *k = &ticket_keys[i];
            if (!k->born || memcmp(key_name, k->name, sizeof k->name) != 0)
                continue;
            if (now - k->born >= (time_t)TLS_TICKET_ROTATE_S * TLS_TICKET_KEYS)
                break; /* too old to trust, whatever the ring holds */
            rc = ticket_cipher(k, iv, cctx, hctx, 0) < 0 ? -1 : i == 0 ? 1 : 2;
            break;
        }
    }
    pthread_mutex_unlock(&ticket_lock);
    return rc;
}

/* ---- errors -------------------------------------------------------------------- */

/* The first OpenSSL reason queued, which says what went wrong (the last
 * one is a summary such as "PEM lib" or "system lib"). Clears the queue. */
const char *tls_ssl_reason(void)
{
    unsigned long first = ERR_peek_error();
    const char *r = first ? ERR_reason_error_string(first) : NULL;
    if (first && ERR_GET_LIB(first) == ERR_LIB_SYS)
        r = strerror(ERR_GET_REASON(first)); /* an errno */
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* Does the start of the file at path contain s? (A certificate and a key
 * given the wrong way round is a common mistake worth naming.) */
static bool file_mentions(const char *path, const char *s)
{
    char buf[16384];
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return memmem(buf, n, s, strlen(s)) != NULL;
}

/* Why a PEM file (a certificate chain, or a private key when key) did not
 * load, in words a user can act on, from the file itself and the FIRST
 * error OpenSSL queued. Clears the error queue. */
static const char *load_error(const char *path, bool key, char *buf, size_t cap)
{
    unsigned long first = ERR_peek_error(), e;
    bool password = false;
    while ((e = ERR_get_error()) != 0)
        if (ERR_GET_LIB(e) == ERR_LIB_PEM && (ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ ||
                                              ERR_GET_REASON(e) == PEM_R_PROBLEMS_GETTING_PASSWORD))
            password = true;
    int lib = ERR_GET_LIB(first), reason = ERR_GET_REASON(first);
    if (key && file_mentions(path, "ENCRYPTED"))
        password = true; /* "BEGIN ENCRYPTED PRIVATE KEY", or "Proc-Type: 4,ENCRYPTED" */
    struct stat st;
    if (stat(path, &st) < 0)
        snprintf(buf, cap, "%s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        snprintf(buf, cap, "it is a directory, not a file");
    else if (st.st_size == 0)
        snprintf(buf, cap, "the file is empty");
    else if (password)
        snprintf(buf, cap,
                 "the key is protected by a passphrase; portico needs it unencrypted "
                 "(openssl pkey -in KEY -out NEWKEY)");
    else if (lib == ERR_LIB_SYS)
        snprintf(buf, cap, "%s", strerror(reason));
    else if (!key && lib == ERR_LIB_PEM && reason == PEM_R_NO_START_LINE)
        snprintf(buf, cap, "%s",
                 file_mentions(path, "PRIVATE KEY-----")
                     ? "it holds a private key, not a certificate (are cert and key swapped?)"
                     : "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)");
    else if (key &&
             (lib == ERR_LIB_OSSL_DECODER || (lib == ERR_LIB_PEM && reason == PEM_R_NO_START_LINE)))
        snprintf(buf, cap, "%s",
                 file_mentions(path, "-----BEGIN CERTIFICATE-----") &&
                         !file_mentions(path, "PRIVATE KEY-----")
                     ? "it holds a certificate, not a private key (are cert and key swapped?)"
                     : "no private key in it that OpenSSL can read (expected PEM: -----BEGIN "
                       "PRIVATE KEY-----)");
    else {
        const char *r = first ? ERR_reason_error_string(first) : NULL;
        snprintf(buf, cap, "%s%s", lib == ERR_LIB_PEM ? "damaged PEM data: " : "",
                 r ? r : "unknown error");
    }
    return buf;
}

/* A key is never asked for a passphrase on the terminal: load_error then
 * says the key is encrypted. */
int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* ---- server contexts ------------------------------------------------------------ */

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)s, (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned len = in[i];
        if (i + 1 + len > inlen)
            break;
        if (len == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK; /* e.g. only h2 offered: go on without ALPN, as HTTP/1.1 */
}

static const char *kernel_missing; /* why kTLS cannot be had; NULL when it can */
static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;

/* The kernel loads the tls upper-layer protocol on a TCP socket only once
 * it is connected: on a fresh socket a kernel with the module says
 * ENOTCONN, one without it ENOENT. */
static void kernel_probe(void)
{
#ifdef OPENSSL_NO_KTLS
    kernel_missing = "OpenSSL was built without it";
#else
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kernel_missing = "no socket to probe the kernel with";
        return;
    }
    int r = setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3);
    int err = r < 0 ? errno : 0;
    close(fd);
    if (r == 0 || err == ENOTCONN || err == EEXIST)
        kernel_missing = NULL;
    else if (err == ENOENT)
        kernel_missing = "the kernel has no tls module (load it with: modprobe tls)";
    else
        kernel_missing = "the kernel refused the tls upper-layer protocol";
#endif
}

bool tls_kernel_available(const char **why)
{
    pthread_once(&kernel_once, kernel_probe);
    if (why)
        *why = kernel_missing;
    return kernel_missing == NULL;
}

bool tls_kernel_send(const SSL *ssl)
{
#ifdef OPENSSL_NO_KTLS
    (void)ssl;
    return false;
#else
    return ssl && BIO_get_ktls_send(SSL_get_wbio(ssl));
#endif
}

SSL_CTX *tls_server_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (tls_kernel_available(NULL))
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read whole socket buffers, not a record header and then its body:
     * half the read(2) calls. Records OpenSSL holds are drained because
     * callers read until WANT_READ. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Resumption by tickets only: no per-process session cache to bound. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT_S);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
    return ctx;
}

/* Normalise a name from a certificate; NULL if it is not a usable DNS name. */
static char *cert_name(const unsigned char *p, int len)
{
    if (len <= 0 || len > LIMIT_HOST_LEN)
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    for (int i = 0; i < len; i++)
        s[i] = (char)tolower(p[i]);
    s[len] = '\0';
    if (len > 1 && s[len - 1] == '.')
        s[len - 1] = '\0';
    if (!route_host_valid(s)) {
        free(s);
        return NULL;
    }
    return s;
}

/* The DNS names in the leaf's subjectAltName. */
static int cert_names(struct tls_cert *tc, X509 *leaf)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    if (!gens)
        return 0;
    int n = sk_GENERAL_NAME_num(gens);
    tc->names = calloc(n > 0 ? (size_t)n : 1, sizeof *tc->names);
    if (!tc->names) {
        GENERAL_NAMES_free(gens);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        char *name =
            cert_name(ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName));
        if (name)
            tc->names[tc->nnames++] = name;
    }
    GENERAL_NAMES_free(gens);
    return 0;
}

static int load_cert(struct tls_cert *tc, const struct tls_cert_spec *sp, char *err, size_t errlen)
{
    ERR_clear_error();
    tc->ctx = tls_server_ctx_new();
    if (!tc->ctx) {
        snprintf(err, errlen, "tls.certs: cannot set up TLS: %s", tls_ssl_reason());
        return -1;
    }
    char why[256];
    if (SSL_CTX_use_certificate_chain_file(tc->ctx, sp->cert_path) != 1) {
        snprintf(err, errlen, "tls.certs: cannot load certificate %s: %s", sp->cert_path,
                 load_error(sp->cert_path, false, why, sizeof why));
        return -1;
    }
    /* OpenSSL reports a key that does not fit the certificate while loading it. */
    bool fits = SSL_CTX_use_PrivateKey_file(tc->ctx, sp->key_path, SSL_FILETYPE_PEM) == 1;
    if (!fits && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        snprintf(err, errlen, "tls.certs: cannot load private key %s: %s", sp->key_path,
                 load_error(sp->key_path, true, why, sizeof why));
        return -1;
    }
    ERR_clear_error();
    if (!fits || SSL_CTX_check_private_key(tc->ctx) != 1) {
        snprintf(err, errlen, "tls.certs: private key %s does not match certificate %s",
                 sp->key_path, sp->cert_path);
        return -1;
    }
    char what[4200];
    snprintf(what, sizeof what, "tls.certs: certificate %s", sp->cert_path);
    return tls_cert_finish(tc, what, err, errlen);
}

int tls_cert_finish(struct tls_cert *tc, const char *what, char *err, size_t errlen)
{
    X509 *leaf = SSL_CTX_get0_certificate(tc->ctx);
    if (cert_names(tc, leaf) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (tc->nnames == 0) {
        snprintf(err, errlen, "%s has no DNS names in its subjectAltName", what);
        return -1;
    }
    /* Sessions resume only under the certificate that created them. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(leaf, EVP_sha256(), md, &mdlen) != 1 ||
        SSL_CTX_set_session_id_context(
            tc->ctx, md, mdlen > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH : mdlen) != 1) {
        snprintf(err, errlen, "%s: %s", what, tls_ssl_reason());
        return -1;
    }
    return 0;
}

/* Pick the certificate by the SNI in the ClientHello, before OpenSSL
 * looks at certificates or session tickets. */
static int client_hello_cb(SSL *s, int *al, void *arg)
{
    struct tls_store *st = arg;
    const unsigned char *p;
    size_t len;
    struct tls_cert *tc = NULL;
    if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len) == 1) {
        /* server_name_list: u16 length, then entries of u8 type, u16 length, name */
        if (len < 5 || (size_t)((p[0] << 8) | p[1]) != len - 2 ||
            p[2] != TLSEXT_NAMETYPE_host_name) {
            *al = SSL_AD_DECODE_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        size_t nlen = (size_t)((p[3] << 8) | p[4]);
        if (nlen == 0 || nlen > len - 5) {
            *al = SSL_AD_DECODE_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        char host[LIMIT_HOST_LEN + 2];
        if (nlen <= LIMIT_HOST_LEN + 1) {
            size_t n = 0;
            bool ok = true;
            for (size_t i = 0; i < nlen; i++) {
                unsigned char ch = p[5 + i];
                if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_'))
                    ok = false;
                host[n++] = (char)tolower(ch);
            }
            if (n > 1 && host[n - 1] == '.')
                n--;
            host[n] = '\0';
            if (ok && n <= LIMIT_HOST_LEN) {
                tc = route_table_lookup(st->names, host, n);
                if (!tc && st->dynamic)
                    tc = tls_dyn_choose(s, host, n);
            }
        }
    }
    if (!tc)
        tc = st->fallback;
    if (!tc) {
        *al = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_set_SSL_CTX(s, tc->ctx) != tc->ctx || SSL_set_ex_data(s, cert_index, tc) != 1) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

bool tls_session_covers_host(const struct ssl_st *ssl, const char *host, size_t len)
{
    /* No SNI: the client named nothing in TLS, so there is nothing to tie
     * the Host to (nginx routes such requests by Host alone as well). */
    if (!SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name))
        return true;
    const struct tls_cert *tc = SSL_get_ex_data(ssl, cert_index);
    if (!tc)
        return false;
    const char *dot = memchr(host, '.', len);
    for (size_t i = 0; i < tc->nnames; i++) {
        const char *n = tc->names[i];
        size_t nl = strlen(n);
        if (nl == len && memcmp(n, host, len) == 0)
            return true;
        /* "*.b.c" covers "a.b.c": one whole label, as RFC 6125 6.4.3 allows. */
        if (nl > 2 && n[0] == '*' && dot && dot > host && (size_t)(host + len - dot) == nl - 1 &&
            memcmp(n + 1, dot, nl - 1) == 0)
            return true;
    }
    return false;
}

void tls_cert_release(struct tls_cert *tc)
{
    SSL_CTX_free(tc->ctx);
    for (size_t j = 0; j < tc->nnames; j++)
        free(tc->names[j]);
    free(tc->names);
}

static void store_free(struct tls_store *s)
{
    for (size_t i = 0; i < s->ncerts; i++)
        tls_cert_release(&s->certs[i]);
    free(s->certs);
    if (s->names)
        route_table_free(s->names);
    SSL_CTX_free(s->front);
    free(s);
}

struct tls_store *tls_store_new(const struct tls_cert_spec *specs, size_t n,
                                const char *default_name, size_t *bad, char *err, size_t errlen)
{
    *bad = n;
    pthread_once(&once, init_once);
    if (store_index < 0) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        return NULL;
    }
    struct tls_store *s = calloc(1, sizeof *s);
    if (!s || !(s->certs = calloc(n ? n : 1, sizeof *s->certs))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    for (; s->ncerts < n; s->ncerts++)
        if (load_cert(&s->certs[s->ncerts], &specs[s->ncerts], err, errlen) < 0) {
            *bad = s->ncerts;
            s->ncerts++; /* free what was half loaded */
            store_free(s);
            return NULL;
        }
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += s->certs[i].nnames;
    s->names = route_table_new(total);
    if (!s->names)
        goto oom;
    /* A name in two certificates is served by the first one listed. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < s->certs[i].nnames; j++) {
            void *prev;
            int rc = route_table_add(s->names, s->certs[i].names[j], &s->certs[i], &prev);
            if (rc == -ENOMEM)
                goto oom;
            if (rc == 0)
                s->nnames++;
        }
    if (default_name) {
        char host[LIMIT_HOST_LEN + 8];
        int hl = route_host_normalize(default_name, strlen(default_name), host, sizeof host);
        s->fallback = hl > 0 ? route_table_lookup(s->names, host, (size_t)hl) : NULL;
        if (!s->fallback) {
            snprintf(err, errlen, "tls.default_cert: no certificate in tls.certs names \"%s\"",
                     default_name);
            store_free(s);
            return NULL;
        }
    }
    ERR_clear_error();
    s->front = tls_server_ctx_new();
    if (!s->front ||
        SSL_CTX_set_session_id_context(s->front, (const unsigned char *)"portico", 7) != 1) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        store_free(s);
        return NULL;
    }
    SSL_CTX_set_client_hello_cb(s->front, client_hello_cb, s);
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    store_free(s);
    return NULL;
}

struct tls_store *tls_store_ref(struct tls_store *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void tls_store_unref(struct tls_store *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        store_free(s);
}

SSL *tls_store_new_ssl(struct tls_store *s)
{
    SSL *ssl = SSL_new(s->front);
    if (!ssl)
        return NULL;
    if (SSL_set_ex_data(ssl, store_index, tls_store_ref(s)) != 1) {
        tls_store_unref(s);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

size_t tls_store_names(const struct tls_store *s)
{
    return s->nnames;
}

void tls_store_use_tailscale(struct tls_store *s)
{
    s->dynamic = true;
}

/* ---- client contexts -------------------------------------------------------------- */

SSL_CTX *tls_client_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        snprintf(err, errlen, "cannot set up TLS: %s", tls_ssl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char why[256];
        snprintf(err, errlen, "cannot load CA certificates%s%s: %s", ca_file ? " from " : "",
                 ca_file ? ca_file : "",
                 ca_file ? load_error(ca_file, false, why, sizeof why) : tls_ssl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

void tls_client_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* ---- I/O -------------------------------------------------------------------------- */

ssize_t tls_read(SSL *ssl, void *p, size_t n)
{
    ERR_clear_error();
    int r = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = ECONNRESET;
    return -1;
}

void tls_shutdown_write(SSL *ssl)
{
    ERR_clear_error();
    SSL_shutdown(ssl);
}

const char *tls_version(const SSL *ssl)
{
    return ssl ? SSL_get_version(ssl) : "-";
}
