/* tscert.h - certificates from tailscaled for the TLS portico terminates
 * ("tls.tailscale: true").
 *
 * Every exact host name of an HTTP service that tailscaled lists in its
 * CertDomains (the node's own name, and each Service name once control
 * approved this node as its host) gets its certificate from
 * GET /localapi/v0/cert/NAME?type=pair. The pair is cached in
 * tailscale.state_dir/certs/NAME.pem (mode 0600, replaced atomically) and
 * read from there on start, so a restart serves without tailscaled; it is
 * served by SNI after the configured tls.certs (tls_dyn_install), and
 * renewed in the background at two thirds of its lifetime, the point at
 * which tailscaled itself renews (feature/acme/cert.go
 * domainRenewalTimeByExpiry, tailscale v1.103.0). A failed fetch keeps the
 * certificate in use, is logged and counted, and is retried with back-off.
 *
 * Everything runs on the main thread's loop, the fetches over their own
 * non-blocking LocalAPI client (a fetch can take as long as an ACME
 * order), the status through the read shared with hairpin and the DNS
 * responder (tsstatus.c): no worker
 * ever waits for tailscaled, and a handshake never does either — a name
 * with no certificate yet fails its handshake at once (unrecognized_name,
 * or tls.default_cert when set), and the log says why. */
#ifndef PORTICO_TSCERT_H
#define PORTICO_TSCERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct loop;
struct strbuf;
struct tscert;

/* The cache file name under state_dir. */
#define TSCERT_DIR "certs"

/* ---- pure parts ---------------------------------------------------------- */

/* Split tailscaled's ?type=pair answer, as its Go client does
 * (client/local/cert.go CertPairWithValidity): the key PEM ends at the
 * first "--\n--" (the key's last line, then the chain's first); the rest
 * is the chain and must hold no private key. *key_len is the key's length
 * (the chain follows it). 0, or -1 with a sentence in err. */
int tscert_split_pair(const char *buf, size_t len, size_t *key_len, char *err, size_t errlen);

/* When to renew a certificate valid from not_before to not_after (Unix
 * seconds): two thirds into its lifetime. */
int64_t tscert_renew_at(int64_t not_before, int64_t not_after);

/* The min_validity query value that makes tailscaled renew a certificate
 * that expires at not_after (one that stays valid longer satisfies it at
 * once): "<seconds>s", at least "1s". */
void tscert_min_validity(int64_t not_after, int64_t now, char *out, size_t cap);

/* Retry-After in seconds (delta-seconds only, as tailscaled sends it):
 * the value, or -1 when it is not a number up to a day. */
long tscert_retry_after(const char *v, size_t len);

/* ---- the fetcher on the main loop ----------------------------------------- */

/* NULL when out of memory. */
struct tscert *tscert_new(struct loop *l);
/* Serve what c asks for: after start (before the workers accept) and
 * after every accepted reload. Names kept across a reload keep their
 * certificate; new ones are read from the cache, then fetched. */
void tscert_set(struct tscert *t, const struct config *c);
void tscert_free(struct tscert *t);

/* The fetch counters and expiry gauges for /metrics (main thread); nothing
 * when no fetcher ever ran. */
void tscert_render_metrics(struct strbuf *o);

/* The i-th name the fetcher serves (main thread): false past the last;
 * *not_after is 0 while it has no certificate for the name. */
bool tscert_cert_at(size_t i, const char **name, int64_t *not_after);

#endif
