/* whois.c - the per-worker whois cache (see whois.h): a fixed array of
 * entries, a hash table over them by address, a least-recently-used list
 * of the answered ones, and each in-flight entry's list of waiters. */
#include "whois.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "list.h"
#include "localapi.h"
#include "loop.h"
#include "metrics.h"
#include "tsjson.h"

_Static_assert(WHOIS_NOUTCOMES == METRICS_WHOIS_OUTCOMES, "metrics whois outcome count");

#define NBUCKETS (2 * LIMIT_WHOIS_ENTRIES)
#define KEY_LEN  17 /* address family, then 16 bytes */

enum entry_state { E_FREE, E_PENDING, E_OK, E_FAILED };

struct whois_entry {
    struct whois_cache *cache;
    struct whois_entry *hnext;       /* hash chain, or the free list */
    struct whois_entry *prev, *next; /* LRU list (answered entries only) */
    struct whois_waiter *waiters;    /* while the call is in flight */
    unsigned char key[KEY_LEN];
    enum entry_state state;
    bool settling; /* its waiters are being called: not to be evicted */
    uint64_t expires;
    struct identity *id; /* E_OK: a copy cut after id->used bytes of store; owned */
    char *error;         /* E_FAILED: the sentence; owned */
};

struct whois_cache {
    struct whois_backend be;
    uint64_t (*clock)(const void *);
    const void *clock_ctx;
    struct metrics_worker *metrics;
    struct whois_entry *buckets[NBUCKETS];
    struct whois_entry *free;
    struct whois_entry *lru_head, *lru_tail; /* most recently used first */
    size_t used;
    struct identity scratch; /* the identity handed to waiters */
    struct whois_entry entries[LIMIT_WHOIS_ENTRIES];
};

static const char *const outcome_names[WHOIS_NOUTCOMES] = {
    "hit", "negative", "miss", "joined", "failed",
};

const char *whois_outcome_name(enum whois_outcome o)
{
    return o < WHOIS_NOUTCOMES ? outcome_names[o] : "?";
}

static void count(struct whois_cache *c, enum whois_outcome o)
{
    if (c->metrics)
        metrics_count_whois(c->metrics, (int)o);
}

/* The key of an address, and its text as whois is asked for it. */
static bool parse_addr(const char *addr, unsigned char key[KEY_LEN], char *text, size_t cap)
{
    unsigned char a[16];
    memset(key, 0, KEY_LEN);
    if (inet_pton(AF_INET, addr, a) == 1) {
        key[0] = 4;
        memcpy(key + 1, a, 4);
    } else if (inet_pton(AF_INET6, addr, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        bool v4 = memcmp(a, mapped, 12) == 0;
        key[0] = v4 ? 4 : 6;
        memcpy(key + 1, v4 ? a + 12 : a, v4 ? 4 : 16);
    } else {
        return false;
    }
    return inet_ntop(key[0] == 4 ? AF_INET : AF_INET6, key + 1, text, (socklen_t)cap) != NULL;
}

static size_t hash_key(const unsigned char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < KEY_LEN; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return (size_t)(h % NBUCKETS);
}

static struct whois_entry *find(struct whois_cache *c, const unsigned char *key)
{
    for (struct whois_entry *e = c->buckets[hash_key(key)]; e; e = e->hnext)
        if (memcmp(e->key, key, KEY_LEN) == 0)
            return e;
    return NULL;
}

static void clear_value(struct whois_entry *e)
{
    free(e->id);
    free(e->error);
    e->id = NULL;
    e->error = NULL;
}

static void evict(struct whois_cache *c, struct whois_entry *e)
{
    struct whois_entry **pp = &c->buckets[hash_key(e->key)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->state != E_PENDING) /* only answered entries are on the LRU list */
        LIST_UNLINK_QUEUE(c->lru_head, c->lru_tail, e, prev, next);
    clear_value(e);
    e->state = E_FREE;
    e->hnext = c->free;
    c->free = e;
    c->used--;
}

/* A free entry for key, evicting the least recently used answered entry
 * without waiters when none is free; NULL when every entry is busy. */
static struct whois_entry *take(struct whois_cache *c, const unsigned char *key)
{
    if (!c->free) {
        struct whois_entry *v = c->lru_tail;
        while (v && (v->waiters || v->settling))
            v = v->prev;
        if (!v)
            return NULL;
        evict(c, v);
    }
    struct whois_entry *e = c->free;
    c->free = e->hnext;
    memcpy(e->key, key, KEY_LEN);
    size_t b = hash_key(key);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    e->prev = e->next = NULL;
    e->waiters = NULL;
    c->used++;
    return e;
}

static void wait_on(struct whois_entry *e, struct whois_waiter *w)
{
    w->entry = e;
    w->prev = NULL;
    w->next = e->waiters;
    if (w->next)
        w->next->prev = w;
    e->waiters = w;
}

void whois_detach(struct whois_waiter *w)
{
    if (!w->entry)
        return;
    LIST_UNLINK(w->entry->waiters, w, prev, next);
    w->entry = NULL;
}

/* The entry's answer is in (state and value set): it becomes the most
 * recently used, then every waiter hears it. A waiter's callback may look
 * up, detach other waiters or start new lookups: each waiter is taken off
 * the list before its call, and entries with waiters are never evicted. */
static void settle(struct whois_cache *c, struct whois_entry *e, const struct identity *id)
{
    LIST_PUSH(c->lru_head, e, prev, next);
    if (!c->lru_tail)
        c->lru_tail = e;
    const char *err = e->error ? e->error : "";
    struct whois_waiter *w;
    e->settling = true;
    while ((w = e->waiters) != NULL) {
        whois_detach(w);
        w->fn(w, id, err);
    }
    e->settling = false;
}

/* Mark e failed with a sentence and tell its waiters. */
static void fail_entry(struct whois_cache *c, struct whois_entry *e, const char *addr,
                       const char *why)
{
    char msg[512];
    snprintf(msg, sizeof msg, "whois %s: %s", addr, why);
    clear_value(e);
    e->error = strdup(msg);
    e->state = E_FAILED;
    e->expires = c->clock(c->clock_ctx) + TIMEOUT_WHOIS_FAIL_TTL_MS;
    count(c, WHOIS_OUT_FAILED);
    settle(c, e, NULL);
}

static const char *failure_text(const struct whois_entry *e)
{
    return e->error ? e->error : "whois failed (out of memory keeping why)";
}

static void copy_identity(struct identity *out, const struct identity *compact)
{
    memcpy(out, compact, offsetof(struct identity, store) + compact->used);
}

enum whois_status whois_lookup(struct whois_cache *c, const char *addr, struct whois_waiter *w,
                               struct identity *out, char *err, size_t errlen)
{
    unsigned char key[KEY_LEN];
    char text[INET6_ADDRSTRLEN];
    w->entry = NULL;
    if (!parse_addr(addr, key, text, sizeof text)) {
        snprintf(err, errlen, "whois: %.64s is not an IP address", addr);
        return WHOIS_UNKNOWN;
    }
    uint64_t now = c->clock(c->clock_ctx);
    struct whois_entry *e = find(c, key);
    if (e && e->state == E_PENDING) {
        count(c, WHOIS_OUT_JOINED);
        wait_on(e, w);
        return WHOIS_PENDING;
    }
    if (e && now < e->expires) {
        LIST_UNLINK_QUEUE(c->lru_head, c->lru_tail, e, prev, next);
        LIST_PUSH(c->lru_head, e, prev, next);
        if (!c->lru_tail)
            c->lru_tail = e;
        if (e->state == E_OK) {
            count(c, WHOIS_OUT_HIT);
            copy_identity(out, e->id);
            return WHOIS_FOUND;
        }
        count(c, WHOIS_OUT_NEGATIVE);
        snprintf(err, errlen, "%s", failure_text(e));
        return WHOIS_UNKNOWN;
    }
    if (e) { /* expired: ask again in the same entry */
        LIST_UNLINK_QUEUE(c->lru_head, c->lru_tail, e, prev, next);
        clear_value(e);
    } else if (!(e = take(c, key))) {
        count(c, WHOIS_OUT_FAILED);
        snprintf(err, errlen, "whois %s: all %d cache entries are waiting for tailscaled", text,
                 LIMIT_WHOIS_ENTRIES);
        return WHOIS_UNKNOWN;
    }
    e->state = E_PENDING;
    char why[400];
    if (c->be.ask(c->be.ctx, e, text, why, sizeof why) < 0) {
        /* The call could not even be queued (the client's queue is full):
         * a matter of this moment, not an answer about the address, so
         * nothing is cached and the next request asks again. */
        evict(c, e);
        count(c, WHOIS_OUT_FAILED);
        snprintf(err, errlen, "whois %s: %s", text, why);
        return WHOIS_UNKNOWN;
    }
    count(c, WHOIS_OUT_MISS);
    wait_on(e, w);
    return WHOIS_PENDING;
}

int whois_to_identity(const struct tsjson_whois *w, struct identity *id, char *err, size_t errlen)
{
    const struct tsjson_strlist *lists[IDENTITY_NLISTS] = {
        [IDENTITY_TAGS] = &w->tags,
        [IDENTITY_NODE_CAPS] = &w->node_caps,
        [IDENTITY_PEER_CAPS] = &w->caps,
    };
    static const char *const list_names[IDENTITY_NLISTS] = {"tags", "node capabilities",
                                                            "capabilities"};
    identity_init(id);
    for (int l = 0; l < IDENTITY_NLISTS; l++)
        if (lists[l]->n > LIMIT_IDENTITY_LIST) {
            snprintf(err, errlen, "the caller has %zu %s; portico keeps at most %d", lists[l]->n,
                     list_names[l], LIMIT_IDENTITY_LIST);
            return -1;
        }
    const char *fields[IDENTITY_NFIELDS] = {
        [IDENTITY_LOGIN] = w->login_name,
        [IDENTITY_DISPLAY_NAME] = w->display_name,
        [IDENTITY_PROFILE_PIC] = w->profile_pic_url,
        [IDENTITY_NODE_NAME] = w->node_computed_name,
    };
    int rc = 0;
    for (int f = 0; f < IDENTITY_NFIELDS && rc == 0; f++)
        if (fields[f] && fields[f][0])
            rc = identity_set(id, (enum identity_field)f, fields[f], strlen(fields[f]));
    for (int l = 0; l < IDENTITY_NLISTS && rc == 0; l++)
        for (size_t i = 0; i < lists[l]->n && rc == 0; i++)
            rc = identity_add(id, (enum identity_list)l, lists[l]->v[i], strlen(lists[l]->v[i]));
    if (rc < 0) {
        snprintf(err, errlen, "the answer cannot be kept: %s", identity_strerror(rc));
        identity_init(id);
        return -1;
    }
    id->source = IDENTITY_WHOIS;
    id->has_user_id = id->has_node_id = true;
    id->user_id = w->user_id;
    id->node_id = w->node_id;
    return 0;
}

void whois_cache_answer(struct whois_cache *c, void *token, const char *body, size_t len,
                        const char *err)
{
    struct whois_entry *e = token;
    if (e->state != E_PENDING)
        return;
    char text[INET6_ADDRSTRLEN] = "?";
    inet_ntop(e->key[0] == 4 ? AF_INET : AF_INET6, e->key + 1, text, sizeof text);
    if (err) {
        fail_entry(c, e, text, err);
        return;
    }
    struct tsjson_whois w = {0};
    char why[300];
    int rc = tsjson_parse_whois(body, len, &w, why, sizeof why);
    if (rc == 0)
        rc = whois_to_identity(&w, &c->scratch, why, sizeof why);
    tsjson_whois_free(&w);
    size_t size = offsetof(struct identity, store) + c->scratch.used;
    if (rc == 0 && !(e->id = malloc(size))) {
        snprintf(why, sizeof why, "out of memory");
        rc = -1;
    }
    if (rc < 0) {
        fail_entry(c, e, text, why);
        return;
    }
    memcpy(e->id, &c->scratch, size);
    e->state = E_OK;
    e->expires = c->clock(c->clock_ctx) + TIMEOUT_WHOIS_TTL_MS;
    settle(c, e, &c->scratch);
}

struct whois_cache *whois_cache_new(const struct whois_backend *b,
                                    uint64_t (*clock)(const void *clock_ctx), const void *clock_ctx,
                                    struct metrics_worker *metrics)
{
    struct whois_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->be = *b;
    c->clock = clock;
    c->clock_ctx = clock_ctx;
    c->metrics = metrics;
    for (size_t i = LIMIT_WHOIS_ENTRIES; i-- > 0;) {
        c->entries[i].cache = c;
        c->entries[i].hnext = c->free;
        c->free = &c->entries[i];
    }
    return c;
}

void whois_cache_free(struct whois_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < LIMIT_WHOIS_ENTRIES; i++) {
        struct whois_entry *e = &c->entries[i];
        if (e->state == E_PENDING && c->be.cancel)
            c->be.cancel(c->be.ctx, e);
        while (e->waiters)
            whois_detach(e->waiters);
        clear_value(e);
    }
    free(c);
}

size_t whois_cache_size(const struct whois_cache *c)
{
    return c->used;
}

/* ---- the LocalAPI backend --------------------------------------------------- */

static void on_whois_answer(void *arg, const struct localapi_answer *a)
{
    struct whois_entry *e = arg;
    whois_cache_answer(e->cache, e, a->body, a->body_len,
                       a->result == LOCALAPI_OK ? NULL : a->error);
}

static int localapi_ask(void *ctx, void *token, const char *addr, char *err, size_t errlen)
{
    char path[LIMIT_LOCALAPI_PATH_BYTES] = LOCALAPI_PREFIX "whois?addr=";
    size_t n = strlen(path);
    if (localapi_query_escape(addr, path + n, sizeof path - n) < 0) {
        snprintf(err, errlen, "address too long");
        return -1;
    }
    struct localapi_request r = {.method = METHOD_GET, .path = path};
    return localapi_call(ctx, &r, on_whois_answer, token, err, errlen);
}

static void localapi_cancel_token(void *ctx, void *token)
{
    localapi_cancel(ctx, on_whois_answer, token);
}

static uint64_t loop_clock(const void *l)
{
    return loop_now_ms(l);
}

struct whois_cache *whois_cache_new_localapi(struct localapi_client *la, struct loop *l,
                                             struct metrics_worker *metrics)
{
    struct whois_backend b = {localapi_ask, localapi_cancel_token, la};
    return whois_cache_new(&b, loop_clock, l, metrics);
}
