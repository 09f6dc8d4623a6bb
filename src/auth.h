/* auth.h - forward auth: what portico asks an auth provider (Authelia and
 * compatible servers) and what it makes of the answer.
 *
 * The pure half of forward auth: building the subrequest head, judging
 * the provider's response, and the opt-in decision cache. The exchange
 * (authreq.c) does the I/O on a pooled provider connection in its event
 * loop. Fail closed: only a clear 2xx lets a request through. */
#ifndef PORTICO_AUTH_H
#define PORTICO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"
#include "limits.h"

struct config_auth;
struct config_service;

/* What the subrequest says about the client's request. */
struct auth_target {
    const char *method;    /* the client's method */
    const char *proto;     /* "https" or "http": the scheme the client really used */
    const char *host;      /* normalised host (lower-case, no port, no trailing dot) */
    int port;              /* the client-facing port, 0 when unknown */
    struct http_slice uri; /* path and query, exactly as they go upstream */
    const char *client;    /* the client address (after any PROXY header) */
};

/* Build the subrequest head for provider a into out. Returns its length,
 * or -1 if it does not fit. */
long auth_build_request(const struct config_auth *a, const struct http_request *req,
                        const struct auth_target *t, char *out, size_t cap);

/* True if the normalised path is under one of svc's auth_skip prefixes:
 * "/health" covers "/health" and "/health/...", not "/healthz"; "/hooks/"
 * covers "/hooks/..." only. */
bool auth_skipped(const struct config_service *svc, const char *npath, size_t len);

/* The index of the first auth_skip prefix covering npath, or -1. */
int auth_skip_match(const struct config_service *svc, const char *npath, size_t len);

/* True if the auth_skip prefix pre covers npath (as auth_skipped). */
bool auth_skip_covers(const char *pre, const char *npath, size_t len);

enum auth_result {
    AUTH_ALLOWED,    /* 2xx: forward, with the copied headers */
    AUTH_REDIRECTED, /* the client is sent to log in (3xx, or 401 with Location) */
    AUTH_DENIED,     /* 401 or 403 answered to the client */
    AUTH_ERROR,      /* the provider failed: 502 or 504, nothing reaches the upstream */
};

struct auth_header {
    char name[65];
    char value[LIMIT_AUTH_VALUE_BYTES];
    size_t len;
};

struct auth_verdict {
    enum auth_result result;
    int status; /* for the client when not ALLOWED */
    /* ALLOWED: the copy_headers values the provider returned (valid ones). */
    struct auth_header copy[LIMIT_AUTH_COPY_HEADERS];
    size_t ncopy;
    const char *user;  /* points into copy[]: the Remote-User value, or NULL */
    const char *error; /* AUTH_ERROR: what went wrong, for the log */
};

/* Judge a complete provider response (head parsed into resp; body of blen
 * bytes). For REDIRECTED and DENIED the response for the client is written
 * to out (at most cap bytes) and *outlen set; head_only: the client asked
 * with HEAD (no body); close: the client connection closes after it. */
void auth_judge(const struct config_auth *a, const struct http_response *resp, const char *body,
                size_t blen, const struct auth_target *t, bool head_only, bool close,
                struct auth_verdict *v, char *out, size_t cap, size_t *outlen);

/* ---- decision cache (opt-in; one per provider per worker, not shared) ---- */

struct auth_cache;

struct auth_cache *auth_cache_new(void);
void auth_cache_free(struct auth_cache *c);

/* A digest of every input the provider's decision can depend on
 * (credentials, method, scheme, host, URI, client address). */
#define AUTH_DIGEST_BYTES 32
void auth_cache_digest(const struct config_auth *a, const struct http_request *req,
                       const struct auth_target *t, unsigned char d[AUTH_DIGEST_BYTES]);

/* A cached ALLOWED verdict for this digest that has not expired: copied to
 * v, true. */
bool auth_cache_get(struct auth_cache *c, const unsigned char d[AUTH_DIGEST_BYTES], uint64_t now_ms,
                    struct auth_verdict *v);
/* Remember an ALLOWED verdict until expires_ms (a verdict whose headers
 * are larger than an entry holds is not cached). */
void auth_cache_put(struct auth_cache *c, const unsigned char d[AUTH_DIGEST_BYTES],
                    uint64_t expires_ms, const struct auth_verdict *v);

#endif
