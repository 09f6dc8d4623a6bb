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
#include <sys/types.h>
#include <sys/uio.h>

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
 * tls_writev gathers small pieces into one record; after EAGAIN it must be
 * called again with the same bytes first (more may follow them). */
ssize_t tls_read(struct ssl_st *ssl, void *p, size_t n);
ssize_t tls_writev(struct ssl_st *ssl, const struct iovec *iov, int n);
/* Send close_notify (the peer's is not awaited). */
void tls_shutdown_write(struct ssl_st *ssl);

/* The TLS protocol version of an established session, for the access log
 * ("TLSv1.3"); "-" for NULL. */
const char *tls_version(const struct ssl_st *ssl);

#endif
