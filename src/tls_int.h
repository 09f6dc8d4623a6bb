/* tls_int.h - what tls.c and tls_dyn.c share. Not a public header: the
 * rest of portico uses tls.h. */
#ifndef PORTICO_TLS_INT_H
#define PORTICO_TLS_INT_H

#include <stddef.h>

#include <openssl/ssl.h>

/* One certificate a session can be given: its context and the DNS names of
 * its subjectAltName (lower case, no trailing dot). */
struct tls_cert {
    SSL_CTX *ctx;
    char **names; /* owned; the name tables point into them */
    size_t nnames;
};

/* A server context with portico's protocol settings, session tickets and
 * ALPN; NULL when OpenSSL fails. */
SSL_CTX *tls_server_ctx_new(void);
/* Once tc->ctx holds its certificate and key: read the names and tie
 * session resumption to this certificate. what names the certificate in a
 * message ("tls.certs: certificate FILE"). 0, or -1 with a sentence. */
int tls_cert_finish(struct tls_cert *tc, const char *what, char *err, size_t errlen);
void tls_cert_release(struct tls_cert *tc);
/* The first OpenSSL reason queued; clears the queue. */
const char *tls_ssl_reason(void);
int tls_no_passphrase(char *buf, int size, int rwflag, void *u);

/* The certificate from tailscaled for host (normalised, len bytes), or
 * NULL. The session keeps the set it came from alive until SSL_free.
 * Called from the ClientHello callback on any worker. */
struct tls_cert *tls_dyn_choose(SSL *s, const char *host, size_t len);

#endif
