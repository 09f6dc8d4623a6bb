/* resolve.c - background resolution of upstream host names (see resolve.h).
 *
 * The registry of names, their schedules and the list of replaced
 * addresses waiting to be freed are guarded by one mutex, taken by the
 * main thread (binding a snapshot, /metrics) and the resolver threads
 * only. Workers read a name's address and last error with atomic loads. */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "limits.h"
#include "log.h"
#include "loop.h"

struct resolve_name {
    /* atomic: one for the registry while the name is in use, one per
     * snapshot that names it, one per lookup in flight */
    int refs;
    struct resolve_name *next; /* in R.names while in use */
    char host[sizeof((struct config_addr *)0)->host];
    uint16_t port;
    struct resolve_addr *cur; /* atomic; NULL until the first success */
    const char *error;        /* atomic; static text of the last failure, or NULL */
    /* Under R.mu: */
    bool busy;        /* a lookup is in flight */
    bool answered;    /* a lookup has finished */
    bool quiet_first; /* resolve_bind reports the first answer (it names the service) */
    unsigned failures;
    uint64_t due_ms; /* next lookup, monotonic */
    uint64_t serial; /* the last resolve_bind that used it */
};

/* A replaced address, freed once every worker has passed a quiescent point. */
struct retired {
    struct retired *next;
    struct resolve_addr *addr;
    size_t pending; /* atomic: workers that have not run the posted no-op yet */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a name is due sooner, or stop */
    pthread_cond_t answer; /* a lookup finished */
    bool started, stopping;
    pthread_t threads[LIMIT_RESOLVE_THREADS];
    size_t nthreads;
    struct resolve_name *names; /* in use by the running configuration */
    uint32_t interval_ms;
    uint64_t serial;
    uint64_t next_gen;
    struct loop **loops;
    size_t nloops;
    bool workers_run; /* set_loops was called with workers (even if its copy failed) */
    struct retired *retired;
    uint64_t ok, failed, changes; /* atomic */
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .interval_ms = TIMEOUT_RESOLVE_MS_DEFAULT};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint32_t resolve_next_delay_ms(unsigned failures, uint32_t interval_ms)
{
    if (failures == 0)
        return interval_ms;
    uint64_t d = TIMEOUT_RESOLVE_RETRY_MS;
    for (unsigned i = 1; i < failures && d < interval_ms; i++)
        d *= 2;
    return d < interval_ms ? (uint32_t)d : interval_ms;
}

void resolve_name_unref(struct resolve_name *n)
{
    if (__atomic_sub_fetch(&n->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* Nothing names it any more, so no worker can be reading its address. */
    free(n->cur);
    free(n);
}

static void name_ref(struct resolve_name *n)
{
    __atomic_add_fetch(&n->refs, 1, __ATOMIC_RELAXED);
}

static void format_addr(const struct resolve_addr *a, char *out, size_t cap)
{
    if (!a || getnameinfo((const struct sockaddr *)&a->sa, a->salen, out, (socklen_t)cap, NULL, 0,
                          NI_NUMERICHOST) != 0)
        snprintf(out, cap, "?");
}

/* ---- freeing replaced addresses ---------------------------------------------- */

static void on_quiescent(struct loop *l, void *arg)
{
    struct retired *r = arg;
    __atomic_sub_fetch(&r->pending, 1, __ATOMIC_RELEASE);
}

/* Under R.mu. all: free every record (the workers have stopped). */
static void sweep(bool all)
{
    for (struct retired **pp = &R.retired; *pp;) {
        struct retired *r = *pp;
        if (all || __atomic_load_n(&r->pending, __ATOMIC_ACQUIRE) == 0) {
            *pp = r->next;
            free(r->addr);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

/* Under R.mu: old is no longer published; free it once no worker can hold it. */
static void retire(struct resolve_addr *old)
{
    sweep(false);
    if (!R.workers_run) {
        free(old); /* no worker runs */
        return;
    }
    struct retired *r = R.nloops ? malloc(sizeof *r) : NULL;
    if (!r)
        return; /* out of memory: keeping the old address is the safe choice */
    r->addr = old;
    r->pending = R.nloops;
    r->next = R.retired;
    R.retired = r;
    for (size_t i = 0; i < R.nloops; i++)
        if (loop_post(R.loops[i], on_quiescent, r) < 0)
            log_msg(LOG_WARN, "resolver: out of memory; an old upstream address stays allocated");
}

void resolve_set_loops(struct loop *const *loops, size_t n)
{
    struct loop **copy = n ? calloc(n, sizeof *copy) : NULL;
    if (n && !copy)
        log_msg(LOG_ERROR, "resolver: out of memory; addresses replaced by a re-resolution will "
                           "not be freed");
    if (copy)
        memcpy(copy, loops, n * sizeof *copy);
    pthread_mutex_lock(&R.mu);
    free(R.loops);
    R.loops = copy;
    R.nloops = copy ? n : 0;
    R.workers_run = n > 0;
    pthread_mutex_unlock(&R.mu);
}

/* ---- lookups ------------------------------------------------------------------ */

const char *resolve_lookup(const char *host, uint16_t portnum, struct sockaddr_storage *out,
                           socklen_t *outlen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", portnum);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rc == EAI_SYSTEM ? strerrordesc_np(errno) : gai_strerror(rc);
    const char *why = "no IPv4 or IPv6 address";
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof *out)
            continue;
        memset(out, 0, sizeof *out);
        memcpy(out, ai->ai_addr, ai->ai_addrlen);
        *outlen = ai->ai_addrlen;
        why = NULL;
        break;
    }
    freeaddrinfo(res);
    return why;
}

/* Under R.mu: record the answer of a lookup of n (why: NULL on success). */
static void publish(struct resolve_name *n, const char *why, const struct sockaddr_storage *sa,
                    socklen_t salen)
{
    struct resolve_addr *cur = n->cur; /* only writers, under R.mu, change it */
    char was[64], now[64];
    if (!why) {
        __atomic_add_fetch(&R.ok, 1, __ATOMIC_RELAXED);
        if (!cur || cur->salen != salen || memcmp(&cur->sa, sa, salen) != 0) {
            struct resolve_addr *na = malloc(sizeof *na);
            if (!na) {
                why = "out of memory";
                goto failed;
            }
            memcpy(&na->sa, sa, sizeof na->sa);
            na->salen = salen;
            na->gen = ++R.next_gen;
            __atomic_store_n(&n->cur, na, __ATOMIC_RELEASE);
            format_addr(na, now, sizeof now);
            if (cur) {
                format_addr(cur, was, sizeof was);
                __atomic_add_fetch(&R.changes, 1, __ATOMIC_RELAXED);
                log_msg(LOG_INFO, "upstream host \"%s\" now resolves to %s (was %s)", n->host, now,
                        was);
                retire(cur);
            } else if (n->failures || !n->quiet_first) {
                log_msg(LOG_INFO, "upstream host \"%s\" resolves now, to %s", n->host, now);
            }
        } else if (n->failures) {
            format_addr(cur, now, sizeof now);
            log_msg(LOG_INFO, "upstream host \"%s\" resolves again, to %s", n->host, now);
        }
        n->failures = 0;
        __atomic_store_n(&n->error, NULL, __ATOMIC_RELEASE);
    } else {
    failed:
        __atomic_add_fetch(&R.failed, 1, __ATOMIC_RELAXED);
        n->failures++;
        __atomic_store_n(&n->error, why, __ATOMIC_RELEASE);
        unsigned retry_s = (resolve_next_delay_ms(n->failures, R.interval_ms) + 999) / 1000;
        if (n->failures == 1 && !n->quiet_first) {
            if (cur) {
                format_addr(cur, was, sizeof was);
                log_msg(LOG_WARN,
                        "cannot resolve upstream host \"%s\": %s; keeping its last address %s, "
                        "retrying in %us",
                        n->host, why, was, retry_s);
            } else {
                log_msg(LOG_WARN,
                        "upstream host \"%s\" does not resolve: %s; traffic to it fails until "
                        "it does, retrying in %us",
                        n->host, why, retry_s);
            }
        }
    }
    n->quiet_first = false;
    n->answered = true;
    n->due_ms = mono_ms() + resolve_next_delay_ms(n->failures, R.interval_ms);
}

static void *resolver_main(void *arg)
{
    pthread_mutex_lock(&R.mu);
    while (!R.stopping) {
        uint64_t now = mono_ms(), next = UINT64_MAX;
        struct resolve_name *n = NULL;
        for (struct resolve_name *e = R.names; e && !n; e = e->next) {
            if (e->busy)
                continue;
            if (e->due_ms <= now)
                n = e;
            else if (e->due_ms < next)
                next = e->due_ms;
        }
        if (!n) {
            if (next == UINT64_MAX) {
                pthread_cond_wait(&R.work, &R.mu);
            } else {
                struct timespec ts = {.tv_sec = (time_t)(next / 1000),
                                      .tv_nsec = (long)(next % 1000) * 1000000};
                pthread_cond_timedwait(&R.work, &R.mu, &ts);
            }
            continue;
        }
        n->busy = true;
        name_ref(n);
        pthread_mutex_unlock(&R.mu);
        struct sockaddr_storage sa;
        socklen_t salen = 0;
        const char *why = resolve_lookup(n->host, n->port, &sa, &salen);
        pthread_mutex_lock(&R.mu);
        n->busy = false;
        if (!R.stopping)
            publish(n, why, &sa, salen);
        pthread_cond_broadcast(&R.answer);
        resolve_name_unref(n);
    }
    pthread_mutex_unlock(&R.mu);
    return NULL;
}

int resolve_start(char *err, size_t errlen)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&R.work, &ca);
    pthread_cond_init(&R.answer, &ca);
    pthread_condattr_destroy(&ca);
    R.started = true;
    for (size_t i = 0; i < LIMIT_RESOLVE_THREADS; i++) {
        int rc = pthread_create(&R.threads[i], NULL, resolver_main, NULL);
        if (rc) {
            snprintf(err, errlen, "cannot start a resolver thread: %s", strerror(rc));
            return -1;
        }
        R.nthreads++;
    }
    return 0;
}

void resolve_stop(void)
{
    if (!R.started)
        return;
    pthread_mutex_lock(&R.mu);
    R.stopping = true;
    pthread_cond_broadcast(&R.work);
    pthread_mutex_unlock(&R.mu);
    /* A lookup stuck on an unreachable DNS server must not hold up the exit:
     * such a thread is left behind (it only drops its reference). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    for (size_t i = 0; i < R.nthreads; i++)
        if (pthread_timedjoin_np(R.threads[i], NULL, &ts) != 0)
            pthread_detach(R.threads[i]);
    R.nthreads = 0;
}

void resolve_free(void)
{
    pthread_mutex_lock(&R.mu);
    sweep(true);
    free(R.loops);
    R.loops = NULL;
    R.nloops = 0;
    R.workers_run = false;
    while (R.names) {
        struct resolve_name *n = R.names;
        R.names = n->next;
        resolve_name_unref(n);
    }
    pthread_mutex_unlock(&R.mu);
}

/* ---- binding a snapshot ------------------------------------------------------- */

struct bind_ctx {
    int rc;
    uint64_t deadline;
};

static void bind_one(struct config_addr *a, void *arg)
{
    struct bind_ctx *ctx = arg;
    struct resolve_name *n = R.names;
    while (n && (n->port != a->port || strcmp(n->host, a->host) != 0))
        n = n->next;
    if (!n) {
        n = calloc(1, sizeof *n);
        if (!n) {
            ctx->rc = -1;
            return;
        }
        memcpy(n->host, a->host, sizeof n->host);
        n->port = a->port;
        n->refs = 1; /* the registry's */
        n->quiet_first = true;
        n->next = R.names;
        R.names = n;
    }
    n->serial = R.serial;
    if (!a->name) {
        name_ref(n);
        a->name = n;
    }
}

static bool all_answered(void)
{
    for (const struct resolve_name *n = R.names; n; n = n->next)
        if (n->serial == R.serial && !n->answered)
            return false;
    return true;
}

static void warn_one(struct config_addr *a, void *arg)
{
    const struct resolve_name *n = a->name;
    if (!n || n->cur)
        return;
    if (n->answered)
        log_msg(LOG_WARN,
                "%s %s: upstream host \"%s\" does not resolve: %s; traffic to it fails until it "
                "does (502 for HTTP), retrying in the background",
                a->owner_kind, a->owner, a->host, n->error ? n->error : "no address");
    else
        log_msg(LOG_WARN,
                "%s %s: upstream host \"%s\" is not resolved yet after %ums; traffic to it fails "
                "until it is (502 for HTTP)",
                a->owner_kind, a->owner, a->host, *(const uint32_t *)arg);
}

int resolve_bind(struct config *c, uint32_t wait_ms)
{
    struct bind_ctx ctx = {.rc = 0, .deadline = mono_ms() + wait_ms};
    pthread_mutex_lock(&R.mu);
    R.serial++;
    R.interval_ms = c->limits.resolve_interval_ms;
    config_each_named(c, bind_one, &ctx);
    /* Names the new snapshot does not use stop being refreshed; snapshots
     * still running keep their last address. */
    for (struct resolve_name **pp = &R.names; *pp;) {
        struct resolve_name *n = *pp;
        if (n->serial != R.serial) {
            *pp = n->next;
            resolve_name_unref(n);
        } else {
            pp = &n->next;
        }
    }
    pthread_cond_broadcast(&R.work);
    while (R.nthreads && !all_answered()) {
        uint64_t now = mono_ms();
        if (now >= ctx.deadline)
            break;
        struct timespec ts = {.tv_sec = (time_t)(ctx.deadline / 1000),
                              .tv_nsec = (long)(ctx.deadline % 1000) * 1000000};
        pthread_cond_timedwait(&R.answer, &R.mu, &ts);
    }
    for (struct resolve_name *n = R.names; n; n = n->next)
        n->quiet_first = false; /* answers from now on are reported by the resolver */
    config_each_named(c, warn_one, &wait_ms);
    pthread_mutex_unlock(&R.mu);
    return ctx.rc;
}

/* ---- worker side ---------------------------------------------------------------- */

int resolve_target(const struct config_addr *a, const struct sockaddr **sa, socklen_t *len,
                   uint64_t *gen)
{
    if (!a->host[0]) {
        *sa = (const struct sockaddr *)&a->sa;
        *len = a->salen;
        *gen = 0;
        return 0;
    }
    const struct resolve_addr *r =
        a->name ? __atomic_load_n(&a->name->cur, __ATOMIC_ACQUIRE) : NULL;
    if (!r)
        return -EDESTADDRREQ;
    *sa = (const struct sockaddr *)&r->sa;
    *len = r->salen;
    *gen = r->gen;
    return 0;
}

const char *resolve_error(const struct config_addr *a)
{
    const char *e = a->name ? __atomic_load_n(&a->name->error, __ATOMIC_ACQUIRE) : NULL;
    return e ? e : "no answer yet";
}

void resolve_get_stats(struct resolve_stats *s)
{
    s->ok = __atomic_load_n(&R.ok, __ATOMIC_RELAXED);
    s->failed = __atomic_load_n(&R.failed, __ATOMIC_RELAXED);
    s->changes = __atomic_load_n(&R.changes, __ATOMIC_RELAXED);
    s->unresolved = 0;
    pthread_mutex_lock(&R.mu);
    for (const struct resolve_name *n = R.names; n; n = n->next)
        if (!n->cur)
            s->unresolved++;
    pthread_mutex_unlock(&R.mu);
}
