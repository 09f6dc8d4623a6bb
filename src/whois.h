/* whois.h - a worker's cache of who tailnet callers are.
 *
 * Key: the caller's IP address (an IPv4-mapped IPv6 address is the IPv4
 * one, as tailscaled unmaps it). Value: the identity a LocalAPI whois
 * answered, for TIMEOUT_WHOIS_TTL_MS, or the failure (unknown address,
 * tailscaled down, an answer portico refuses), for
 * TIMEOUT_WHOIS_FAIL_TTL_MS; see limits.h for why those lengths. At most
 * LIMIT_WHOIS_ENTRIES entries, the least recently used answered one goes
 * first.
 *
 * Concurrent lookups for one address share one call: each waits with a
 * struct whois_waiter that its owner (an exchange) embeds. The cache entry,
 * not the waiter, owns the call in flight: an owner that ends before the
 * answer detaches its waiter (whois_detach, O(1)) and the answer still
 * fills the cache for the next request. An entry is never evicted while a
 * call is in flight for it or a waiter is on it. */
#ifndef PORTICO_WHOIS_H
#define PORTICO_WHOIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"

struct whois_cache;
struct whois_entry;
struct localapi_client;
struct loop;
struct metrics_worker;
struct tsjson_whois;

/* For portico_whois_lookups_total; METRICS_WHOIS_OUTCOMES counts them. */
enum whois_outcome {
    WHOIS_OUT_HIT,      /* an identity from the cache */
    WHOIS_OUT_NEGATIVE, /* a failure from the cache */
    WHOIS_OUT_MISS,     /* a call started */
    WHOIS_OUT_JOINED,   /* waited on a call another lookup started */
    WHOIS_OUT_FAILED,   /* a call (or its start) that gave no identity */
    WHOIS_NOUTCOMES
};
const char *whois_outcome_name(enum whois_outcome o);

struct whois_waiter;
/* The lookup ended: id (valid during the call only: copy it) or NULL with
 * a sentence in err. w is already detached. */
typedef void (*whois_done_fn)(struct whois_waiter *w, const struct identity *id, const char *err);

struct whois_waiter {
    whois_done_fn fn;          /* set by the owner */
    struct whois_entry *entry; /* the entry it waits on; NULL when not waiting */
    struct whois_waiter *prev; /* in the entry's list of waiters */
    struct whois_waiter *next;
};

/* What answers the cache's misses: ask starts a lookup of addr (an IP in
 * text) and later calls whois_cache_answer(cache, token, ...) once, never
 * from inside ask; 0, or -1 with a sentence in err. cancel drops the
 * answer of a lookup still in flight (the cache is going away). */
struct whois_backend {
    int (*ask)(void *ctx, void *token, const char *addr, char *err, size_t errlen);
    void (*cancel)(void *ctx, void *token);
    void *ctx;
};

/* A cache; clock(clock_ctx) gives the time in milliseconds. metrics may
 * be NULL. NULL when out of memory. */
struct whois_cache *whois_cache_new(const struct whois_backend *b,
                                    uint64_t (*clock)(const void *clock_ctx), const void *clock_ctx,
                                    struct metrics_worker *metrics);
/* The cache a worker uses: LocalAPI whois calls through la, loop l's clock. */
struct whois_cache *whois_cache_new_localapi(struct localapi_client *la, struct loop *l,
                                             struct metrics_worker *metrics);
/* Cancel the calls in flight and free everything. Waiters still attached
 * are detached without a call. */
void whois_cache_free(struct whois_cache *c);

enum whois_status {
    WHOIS_FOUND,   /* *out holds the identity */
    WHOIS_UNKNOWN, /* no identity: the sentence in err says why */
    WHOIS_PENDING, /* w->fn runs later, once, unless whois_detach(w) comes first */
};

/* Who is addr (an IP address in text)? w must not be waiting already. */
enum whois_status whois_lookup(struct whois_cache *c, const char *addr, struct whois_waiter *w,
                               struct identity *out, char *err, size_t errlen);

/* Stop waiting (safe when w is not waiting). */
void whois_detach(struct whois_waiter *w);

/* The backend's answer for token: the whois JSON (err NULL), or a failure
 * sentence in err. */
void whois_cache_answer(struct whois_cache *c, void *token, const char *body, size_t len,
                        const char *err);

/* Entries in use (answered or in flight), for tests. */
size_t whois_cache_size(const struct whois_cache *c);

/* A whois answer as an identity (IDENTITY_WHOIS): 0, or -1 with a
 * sentence in err and id left IDENTITY_NONE. tsjson keeps up to
 * LIMIT_TS_CAPS capability names per list, an identity LIMIT_IDENTITY_LIST:
 * a caller with more is refused whole rather than cut, as identity.h
 * wants (a cut list could drop the capability an upstream checks). */
int whois_to_identity(const struct tsjson_whois *w, struct identity *id, char *err, size_t errlen);

#endif
