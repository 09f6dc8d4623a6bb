/* tls.h - TLS termination: certificates chosen by SNI, and client
 * contexts for https:// upstreams.
 *
 * A tls_store holds one OpenSSL context per configured certificate and a
 * table from every name in the certificates' subjectAltNames to its
 * context, so choosing a certificate is one hash probe per label of the
 * name, whatever the number of certificates. A store is built once per
 * configuration snapshot and never changed; each TLS session holds a
 * reference to the store it started with, so a reload never pulls a
 * certificate out from under a handshake. Session tickets are sealed with
 * keys that live for the whole process (rotated in memory), so a reload
 * does not cost clients their resumption. */
#ifndef PORTICO_TLS_H
#define PORTICO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct asn1_string_st;
struct ssl_st;
struct ssl_ctx_st;
struct tls_store;

struct tls_cert_spec {
    const char *cert_path; /* PEM: leaf first, then intermediates */
    const char *key_path;  /* PEM private key */
};

/* Load the certificates. default_name, if not NULL, is a name one of them
 * serves; clients without SNI or with an unknown SNI get that certificate
 * instead of an unrecognized_name alert. Returns NULL with a message in err
 * on any unreadable file, key mismatch or certificate without DNS names;
 * *bad is then the index of the spec at fault, or n when none is. */
struct tls_store *tls_store_new(const struct tls_cert_spec *specs, size_t n,
                                const char *default_name, size_t *bad, char *err, size_t errlen);
struct tls_store *tls_store_ref(struct tls_store *s);
void tls_store_unref(struct tls_store *s);

/* Let the store serve the certificates from tailscaled (tls_dyn_install)
 * for names its own certificates do not have. Call before first use. */
void tls_store_use_tailscale(struct tls_store *s);

/* ---- certificates from tailscaled --------------------------------------- */

/* What a key and certificate chain hold, for logs, renewal and metrics. */
struct tls_pair_info {
    int64_t not_before, not_after; /* the leaf's validity, Unix seconds */
    char serial[80];               /* the leaf's serial number, hex */
};

/* An ASN1_TIME as Unix seconds; 0 when t is NULL or unreadable. */
int64_t tls_asn1_seconds(const struct asn1_string_st *t);

/* Load a private key and a certificate chain (PEM, leaf first) from
 * memory and check that they fit together, that the chain holds one
 * certificate or more, and that the leaf's subjectAltName covers name
 * exactly or by a one-label wildcard. 0 with *info filled, or -1 with a
 * sentence in err. */
int tls_pair_check(const char *key, size_t key_len, const char *chain, size_t chain_len,
                   const char *name, struct tls_pair_info *info, char *err, size_t errlen);

/* A set of such pairs, ready to serve; each pair should have passed
 * tls_pair_check. NULL with a sentence in err (naming the pair's name). */
struct tls_pem_pair {
    const char *name;
    const char *key, *chain;
    size_t key_len, chain_len;
};
struct tls_dyn;
struct tls_dyn *tls_dyn_new(const struct tls_pem_pair *pairs, size_t n, char *err, size_t errlen);
/* Make d the process-wide set every store marked with
 * tls_store_use_tailscale consults (NULL: none). Takes d; the set it
 * replaces is freed once no session uses it any more. Any thread. */
void tls_dyn_install(struct tls_dyn *d);

/* A server-side session for one accepted connection; NULL when out of
 * memory. The session holds a reference to s until SSL_free. */
struct ssl_st *tls_store_new_ssl(struct tls_store *s);

/* True if the certificate a session presented covers host (normalised:
 * lower case, no port, no trailing dot) by an exact or a one-label "*."
 * name in its subjectAltName; also true when the client sent no SNI. */
bool tls_session_covers_host(const struct ssl_st *ssl, const char *host, size_t len);

/* The number of names the store serves (for the startup line). */
size_t tls_store_names(const struct tls_store *s);

/* A client context for an https:// upstream: verifies the peer against
 * ca_file (or the system store when ca_file is NULL) unless insecure.
 * Returns NULL with a message in err. Free with tls_client_ctx_free. */
struct ssl_ctx_st *tls_client_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen);
void tls_client_ctx_free(struct ssl_ctx_st *ctx);

/* I/O on a TLS session, with the errno conventions of read(2) and
 * writev(2): -1 with EAGAIN when it would block (in either direction),
 * 0 from tls_read at close_notify, -1 with ECONNRESET / EPIPE on errors.
 * tls_writev gathers small pieces into one record (tls_out.c); the bytes
 * it did not count as written (after EAGAIN or a short count) must come
 * first in the next call (more may follow them). */
ssize_t tls_read(struct ssl_st *ssl, void *p, size_t n);
ssize_t tls_writev(struct ssl_st *ssl, const struct iovec *iov, int n);

/* Whether records of bytes tls_writev has not counted as written yet are
 * on their way: the same bytes must follow, or the connection be cut. */
bool tls_out_pending(const struct ssl_st *ssl);
/* Send close_notify (the peer's is not awaited). */
void tls_shutdown_write(struct ssl_st *ssl);

/* Kernel TLS (kTLS): once the handshake is done, OpenSSL hands the
 * session's keys to the kernel, which then writes the records itself, so
 * a response body can be spliced into the socket like a plain one. It
 * needs OpenSSL built with it and the kernel's tls module. Whether this
 * host has both (probed once, on a socket of its own): true, or false
 * with *why saying what is missing. Server contexts ask for kTLS only
 * when it is there, so a host without it costs no failed call per
 * handshake. */
bool tls_kernel_available(const char **why);

/* Whether the kernel writes this session's records (kTLS for sending). */
bool tls_kernel_send(const struct ssl_st *ssl);

/* The TLS protocol version of an established session, for the access log
 * ("TLSv1.3"); "-" for NULL. */
const char *tls_version(const struct ssl_st *ssl);

#endif
