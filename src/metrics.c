/* metrics.c - per-worker counters and their Prometheus rendering. */
#include "metrics.h"
#include "resolve.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "localapi.h"
#include "tscert.h"
#include "strbuf.h"
#include "whois.h"

static const uint64_t bucket_us[METRICS_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[METRICS_BUCKETS] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};

/* Registry of service names by slot; main thread only. Slot 0 is "-".
 * providers[slot] names the service's auth provider in the newest
 * configuration (NULL: none). */
static char **names, **providers;
static size_t nnames, capnames;

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static long registry_add(const char *name)
{
    if (nnames == 0) {
        names = calloc(16, sizeof *names);
        providers = calloc(16, sizeof *providers);
        if (!names || !providers)
            return -1;
        capnames = 16;
        names[0] = strdup("-");
        if (!names[0])
            return -1;
        nnames = 1;
    }
    if (nnames >= (size_t)METRICS_CHUNK * METRICS_CHUNKS_MAX)
        return -1;
    if (nnames == capnames) {
        char **n = realloc(names, capnames * 2 * sizeof *n);
        if (!n)
            return -1;
        names = n;
        char **pv = realloc(providers, capnames * 2 * sizeof *pv);
        if (!pv)
            return -1;
        memset(pv + capnames, 0, capnames * sizeof *pv);
        providers = pv;
        capnames *= 2;
    }
    names[nnames] = strdup(name);
    if (!names[nnames])
        return -1;
    return (long)nnames++;
}

int metrics_assign_slots(struct config *c)
{
    /* A linear search per name would make a 10,000-service reload
     * quadratic; index the registry through a temporary table instead. */
    size_t cap = 16;
    while (cap < (nnames + c->nservices) * 2)
        cap *= 2;
    long *table = malloc(cap * sizeof *table);
    if (!table)
        return -1;
    for (size_t i = 0; i < cap; i++)
        table[i] = -1;
    for (size_t i = 1; i < nnames; i++) {
        size_t j = name_hash(names[i]) & (cap - 1);
        while (table[j] >= 0)
            j = (j + 1) & (cap - 1);
        table[j] = (long)i;
    }
    int rc = 0;
    for (size_t s = 0; s < c->nservices; s++) {
        const char *name = c->services[s].name;
        size_t j = name_hash(name) & (cap - 1);
        long slot = -1;
        while (table[j] >= 0) {
            if (strcmp(names[table[j]], name) == 0) {
                slot = table[j];
                break;
            }
            j = (j + 1) & (cap - 1);
        }
        if (slot < 0) {
            slot = registry_add(name);
            if (slot < 0) {
                rc = -1;
                break;
            }
            table[j] = slot;
        }
        c->services[s].metrics_slot = (size_t)slot;
        const struct config_auth *a = c->services[s].auth;
        if (!a && !providers[slot])
            continue;
        if (a && providers[slot] && strcmp(providers[slot], a->name) == 0)
            continue;
        free(providers[slot]);
        providers[slot] = a ? strdup(a->name) : NULL;
    }
    free(table);
    return rc;
}

void metrics_registry_free(void)
{
    for (size_t i = 0; i < nnames; i++) {
        free(names[i]);
        free(providers[i]);
    }
    free(names);
    free(providers);
    names = providers = NULL;
    nnames = capnames = 0;
}

/* Single writer per counter: a relaxed load and store pair is enough and
 * lets the scraping thread read without tearing. */
static inline void bump(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

struct metrics_service *metrics_service(struct metrics_worker *m, size_t slot)
{
    size_t ci = slot / METRICS_CHUNK;
    if (ci >= METRICS_CHUNKS_MAX)
        return NULL;
    struct metrics_service *chunk = m->chunks[ci];
    if (!chunk) {
        chunk = calloc(METRICS_CHUNK, sizeof *chunk);
        if (!chunk)
            return NULL;
        __atomic_store_n(&m->chunks[ci], chunk, __ATOMIC_RELEASE);
    }
    return &chunk[slot % METRICS_CHUNK];
}

void metrics_count_request(struct metrics_worker *m, size_t slot, int status, uint64_t usec,
                           uint64_t bytes_in, uint64_t bytes_out)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (!s)
        return;
    int cls = status / 100 - 1;
    if (cls >= 0 && cls < 5)
        bump(&s->requests[cls], 1);
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        if (usec <= bucket_us[i]) {
            bump(&s->buckets[i], 1);
            break;
        }
    }
    bump(&s->count, 1);
    bump(&s->sum_us, usec);
    uint64_t now = metrics_now_ms();
    __atomic_store_n(&s->last_status, (uint64_t)status, __ATOMIC_RELAXED);
    __atomic_store_n(&s->last_us, usec, __ATOMIC_RELAXED);
    __atomic_store_n(&s->last_at_ms, now, __ATOMIC_RELAXED);
    if (status < 500)
        __atomic_store_n(&s->last_error, METRICS_ERR_NONE, __ATOMIC_RELAXED);
    /* Reset a slot when its step comes round again: the reader skips
     * slots whose step is out of its window, so a half-reset one costs at
     * most one request's worth of accuracy, never a lock. */
    uint64_t step = now / 1000 / METRICS_WINDOW_SEC + 1;
    size_t i = step % METRICS_WINDOWS;
    if (get(&s->win_step[i]) != step) {
        __atomic_store_n(&s->win_req[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->win_err[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->win_step[i], step, __ATOMIC_RELEASE);
    }
    bump(&s->win_req[i], 1);
    if (status >= 500)
        bump(&s->win_err[i], 1);
    bump(&s->bytes_in, bytes_in);
    bump(&s->bytes_out, bytes_out);
}

void metrics_count_local(struct metrics_worker *m, size_t slot)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (s)
        bump(&s->local_requests, 1);
}

void metrics_count_connect_error(struct metrics_worker *m, size_t slot)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (!s)
        return;
    bump(&s->connect_errors, 1);
    __atomic_store_n(&s->last_error, METRICS_ERR_CONNECT, __ATOMIC_RELAXED);
}

void metrics_count_timeout(struct metrics_worker *m, size_t slot)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (!s)
        return;
    bump(&s->timeouts, 1);
    __atomic_store_n(&s->last_error, METRICS_ERR_TIMEOUT, __ATOMIC_RELAXED);
}

void metrics_count_access_denied(struct metrics_worker *m, size_t slot)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (s)
        bump(&s->access_denied, 1);
}

void metrics_count_incomplete(struct metrics_worker *m, size_t slot)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (s)
        bump(&s->incomplete, 1);
}

void metrics_conn_open(struct metrics_worker *m)
{
    bump(&m->connections_active, 1);
    bump(&m->connections_total, 1);
}

void metrics_conn_close(struct metrics_worker *m)
{
    __atomic_store_n(&m->connections_active, get(&m->connections_active) - 1, __ATOMIC_RELAXED);
}

void metrics_count_reclaim(struct metrics_worker *m, bool idle)
{
    bump(&m->reclaimed[idle], 1);
}

void metrics_count_refused_peer(struct metrics_worker *m)
{
    bump(&m->refused_peer, 1);
}

void metrics_count_body(struct metrics_worker *m, uint64_t req_copied, uint64_t req_spliced,
                        uint64_t resp_copied, uint64_t resp_spliced)
{
    bump(&m->body_bytes[0][0], req_copied);
    bump(&m->body_bytes[0][1], req_spliced);
    bump(&m->body_bytes[1][0], resp_copied);
    bump(&m->body_bytes[1][1], resp_spliced);
}

void metrics_count_localapi(struct metrics_worker *m, int endpoint, int result)
{
    if (endpoint >= 0 && endpoint < METRICS_LOCALAPI_ENDPOINTS && result >= 0 &&
        result < METRICS_LOCALAPI_RESULTS)
        bump(&m->localapi[endpoint][result], 1);
}

void metrics_count_whois(struct metrics_worker *m, int outcome)
{
    if (outcome >= 0 && outcome < METRICS_WHOIS_OUTCOMES)
        bump(&m->whois[outcome], 1);
}

void metrics_tls_handshake(struct metrics_worker *m, size_t slot, bool ok, bool kernel)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (s)
        bump(&s->tls_handshakes[ok], 1);
    if (ok) {
        bump(&m->tls_active, 1);
        bump(&m->tls_records[kernel], 1);
    }
}

void metrics_tls_close(struct metrics_worker *m)
{
    __atomic_store_n(&m->tls_active, get(&m->tls_active) - 1, __ATOMIC_RELAXED);
}

void metrics_count_auth(struct metrics_worker *m, size_t slot, int result, int64_t usec)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (!s || result < 0 || result > 3)
        return;
    bump(&s->auth[result], 1);
    if (usec < 0)
        return;
    int b = 0;
    while (b < METRICS_BUCKETS && (uint64_t)usec > bucket_us[b])
        b++;
    if (b < METRICS_BUCKETS)
        bump(&s->auth_buckets[b], 1);
    bump(&s->auth_count, 1);
    bump(&s->auth_sum_us, (uint64_t)usec);
}

void metrics_count_stream(struct metrics_worker *m, size_t slot)
{
    struct metrics_service *s = metrics_service(m, slot);
    if (s)
        bump(&s->streams, 1);
}

void metrics_worker_free(struct metrics_worker *m)
{
    for (size_t i = 0; i < METRICS_CHUNKS_MAX; i++)
        free(m->chunks[i]);
}

/* ---- rendering --------------------------------------------------------------- */

/* A worker's counters for slot as the main thread sees them; NULL while
 * the worker has counted nothing in its chunk. */
static const struct metrics_service *worker_slot(const struct metrics_worker *m, size_t slot)
{
    struct metrics_service *chunk =
        __atomic_load_n(&m->chunks[slot / METRICS_CHUNK], __ATOMIC_ACQUIRE);
    return chunk ? &chunk[slot % METRICS_CHUNK] : NULL;
}

static void sum_service(struct metrics_worker *const *workers, size_t nworkers, size_t slot,
                        struct metrics_service *t)
{
    memset(t, 0, sizeof *t);
    for (size_t w = 0; w < nworkers; w++) {
        const struct metrics_service *s = worker_slot(workers[w], slot);
        if (!s)
            continue;
        for (int i = 0; i < 5; i++)
            t->requests[i] += get(&s->requests[i]);
        for (int i = 0; i < METRICS_BUCKETS; i++)
            t->buckets[i] += get(&s->buckets[i]);
        t->count += get(&s->count);
        t->sum_us += get(&s->sum_us);
        t->connect_errors += get(&s->connect_errors);
        t->timeouts += get(&s->timeouts);
        t->access_denied += get(&s->access_denied);
        t->incomplete += get(&s->incomplete);
        t->bytes_in += get(&s->bytes_in);
        t->bytes_out += get(&s->bytes_out);
        t->tls_handshakes[0] += get(&s->tls_handshakes[0]);
        t->tls_handshakes[1] += get(&s->tls_handshakes[1]);
        t->streams += get(&s->streams);
        for (int i = 0; i < 4; i++)
            t->auth[i] += get(&s->auth[i]);
        for (int i = 0; i < METRICS_BUCKETS; i++)
            t->auth_buckets[i] += get(&s->auth_buckets[i]);
        t->auth_count += get(&s->auth_count);
        t->auth_sum_us += get(&s->auth_sum_us);
        t->local_requests += get(&s->local_requests);
        uint64_t at = get(&s->last_at_ms);
        uint64_t err = get(&s->last_error);
        if (at && at >= t->last_at_ms) {
            t->last_at_ms = at;
            t->last_status = get(&s->last_status);
            t->last_us = get(&s->last_us);
        }
        if (err != METRICS_ERR_NONE)
            t->last_error = err;
    }
}

void metrics_sum_service(struct metrics_worker *const *workers, size_t nworkers, size_t slot,
                         struct metrics_service *t)
{
    sum_service(workers, nworkers, slot, t);
}

uint64_t metrics_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void metrics_sum_window(struct metrics_worker *const *workers, size_t nworkers, size_t slot,
                        unsigned steps, uint64_t *requests, uint64_t *errors)
{
    uint64_t now = metrics_now_ms() / 1000 / METRICS_WINDOW_SEC + 1;
    *requests = *errors = 0;
    for (size_t w = 0; w < nworkers; w++) {
        const struct metrics_service *s = worker_slot(workers[w], slot);
        if (!s)
            continue;
        for (size_t i = 0; i < METRICS_WINDOWS; i++) {
            uint64_t step = __atomic_load_n(&s->win_step[i], __ATOMIC_ACQUIRE);
            if (step == 0 || step > now || now - step >= steps)
                continue;
            *requests += get(&s->win_req[i]);
            *errors += get(&s->win_err[i]);
        }
    }
}

static bool seen_any(const struct metrics_service *t)
{
    return t->count || t->access_denied || t->local_requests || t->connect_errors || t->timeouts ||
           t->incomplete || t->bytes_in || t->bytes_out || t->auth[0] || t->auth[1] || t->auth[2] ||
           t->auth[3] || t->streams || t->tls_handshakes[0] || t->tls_handshakes[1];
}

static const struct metrics_publish *publish; /* main thread only */

void metrics_attach_publish(const struct metrics_publish *p)
{
    publish = p;
}

const struct metrics_publish *metrics_publish_attached(void)
{
    return publish;
}

static const char *const publish_results[METRICS_PUBLISH_RESULTS] = {"written", "unchanged",
                                                                     "failed", "refused"};

/* The daemon's publishing: the services at each stage, and its runs. */
static void render_publish(struct strbuf *o, const struct metrics_publish *p)
{
    strbuf_printf(o,
                  "# HELP portico_tailscale_services Tailscale Services: configured here, "
                  "advertised by this node, approved by the tailnet (service-host), as last "
                  "read.\n"
                  "# TYPE portico_tailscale_services gauge\n"
                  "portico_tailscale_services{state=\"configured\"} %llu\n"
                  "portico_tailscale_services{state=\"advertised\"} %llu\n"
                  "portico_tailscale_services{state=\"approved\"} %llu\n",
                  (unsigned long long)p->configured, (unsigned long long)p->advertised,
                  (unsigned long long)p->approved);
    metrics_render_results(o, "portico_tailscale_publish_total",
                           "Runs of the daemon's publishing, by result.", publish_results, p->runs,
                           METRICS_PUBLISH_RESULTS);
}

static const struct metrics_define *define; /* main thread only */

static metrics_render_fn dns_render; /* main thread only */
static const void *dns_arg;

void metrics_attach_dns(metrics_render_fn fn, const void *arg)
{
    dns_render = fn;
    dns_arg = arg;
}

void metrics_attach_define(const struct metrics_define *d)
{
    define = d;
}

static const char *const api_results[METRICS_TSAPI_CALL_RESULTS] = {
    "ok", "not_found", "unauthorized", "forbidden", "rate_limited", "http_error", "failed"};
static const char *const define_results[METRICS_DEFINE_RESULTS] = {"ok", "failed", "refused"};

void metrics_render_results(struct strbuf *o, const char *name, const char *help,
                            const char *const *labels, const uint64_t *v, int n)
{
    strbuf_printf(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int r = 0; r < n; r++)
        strbuf_printf(o, "%s{result=\"%s\"} %llu\n", name, labels[r], (unsigned long long)v[r]);
}

/* The daemon's service definitions through the control API. */
static void render_define(struct strbuf *o, const struct metrics_define *d)
{
    metrics_render_results(
        o, "portico_tailscale_api_calls_total",
        "Requests to the Tailscale control API (tokens and service definitions), by "
        "result.",
        api_results, d->calls, METRICS_TSAPI_CALL_RESULTS);
    strbuf_printf(o,
                  "# HELP portico_tailscale_definitions_total Tailscale service definitions the "
                  "daemon created or updated through the control API.\n"
                  "# TYPE portico_tailscale_definitions_total counter\n"
                  "portico_tailscale_definitions_total{change=\"created\"} %llu\n"
                  "portico_tailscale_definitions_total{change=\"updated\"} %llu\n",
                  (unsigned long long)d->created, (unsigned long long)d->updated);
    metrics_render_results(
        o, "portico_tailscale_define_total",
        "Runs of the daemon's service definitions through the control API, by result.",
        define_results, d->runs, METRICS_DEFINE_RESULTS);
}

/* LocalAPI calls and whois lookups, summed over the workers; series that
 * stayed at zero are left out, and both families until a call was made. */
static void render_tailscale(struct strbuf *o, struct metrics_worker *const *workers,
                             size_t nworkers)
{
    uint64_t calls[METRICS_LOCALAPI_ENDPOINTS][METRICS_LOCALAPI_RESULTS] = {{0}};
    uint64_t whois[METRICS_WHOIS_OUTCOMES] = {0};
    for (size_t w = 0; w < nworkers; w++) {
        for (int e = 0; e < METRICS_LOCALAPI_ENDPOINTS; e++)
            for (int r = 0; r < METRICS_LOCALAPI_RESULTS; r++)
                calls[e][r] += get(&workers[w]->localapi[e][r]);
        for (int k = 0; k < METRICS_WHOIS_OUTCOMES; k++)
            whois[k] += get(&workers[w]->whois[k]);
    }
    if (define)
        render_define(o, define);
    if (publish) {
        render_publish(o, publish);
        for (int e = 0; publish->calls && e < METRICS_LOCALAPI_ENDPOINTS; e++)
            for (int r = 0; r < METRICS_LOCALAPI_RESULTS; r++)
                calls[e][r] += get(&publish->calls->localapi[e][r]);
    }
    uint64_t any = 0;
    for (int e = 0; e < METRICS_LOCALAPI_ENDPOINTS; e++)
        for (int r = 0; r < METRICS_LOCALAPI_RESULTS; r++)
            any |= calls[e][r];
    if (!any) /* no tailnet configured: the scrape stays as it was */
        return;
    strbuf_printf(o,
                  "# HELP portico_localapi_calls_total Calls to tailscaled's LocalAPI, by endpoint "
                  "and result.\n"
                  "# TYPE portico_localapi_calls_total counter\n");
    for (int e = 0; e < METRICS_LOCALAPI_ENDPOINTS; e++)
        for (int r = 0; r < METRICS_LOCALAPI_RESULTS; r++)
            if (calls[e][r])
                strbuf_printf(
                    o, "portico_localapi_calls_total{endpoint=\"%s\",result=\"%s\"} %llu\n",
                    localapi_endpoint_name((enum localapi_endpoint)e),
                    localapi_result_name((enum localapi_result)r), (unsigned long long)calls[e][r]);
    strbuf_printf(o,
                  "# HELP portico_whois_lookups_total Tailnet caller lookups, by outcome (failed: "
                  "a whois call that gave no identity).\n"
                  "# TYPE portico_whois_lookups_total counter\n");
    for (int k = 0; k < METRICS_WHOIS_OUTCOMES; k++)
        if (whois[k])
            strbuf_printf(o, "portico_whois_lookups_total{outcome=\"%s\"} %llu\n",
                          whois_outcome_name((enum whois_outcome)k), (unsigned long long)whois[k]);
}

char *metrics_render(struct metrics_worker *const *workers, size_t nworkers, size_t *len)
{
    struct strbuf o = {.cap = 16384};
    o.s = malloc(o.cap);
    if (!o.s)
        return NULL;
    o.s[0] = '\0';
    uint64_t active = 0, total = 0, tls_active = 0, reclaimed[2] = {0, 0}, refused = 0;
    uint64_t body[2][2] = {{0, 0}, {0, 0}}, records[2] = {0, 0};
    for (size_t w = 0; w < nworkers; w++) {
        active += get(&workers[w]->connections_active);
        total += get(&workers[w]->connections_total);
        tls_active += get(&workers[w]->tls_active);
        reclaimed[0] += get(&workers[w]->reclaimed[0]);
        reclaimed[1] += get(&workers[w]->reclaimed[1]);
        refused += get(&workers[w]->refused_peer);
        for (int k = 0; k < 4; k++) /* body_bytes[direction][path] */
            body[k / 2][k % 2] += get(&workers[w]->body_bytes[k / 2][k % 2]);
        for (int k = 0; k < 2; k++)
            records[k] += get(&workers[w]->tls_records[k]);
    }
    strbuf_printf(&o,
                  "# HELP portico_connections_active Client connections open now.\n"
                  "# TYPE portico_connections_active gauge\n"
                  "portico_connections_active %llu\n",
                  (unsigned long long)active);
    strbuf_printf(&o,
                  "# HELP portico_connections_total Client connections accepted.\n"
                  "# TYPE portico_connections_total counter\n"
                  "portico_connections_total %llu\n",
                  (unsigned long long)total);
    strbuf_printf(
        &o,
        "# HELP portico_tls_connections_active Client connections with TLS terminated here.\n"
        "# TYPE portico_tls_connections_active gauge\n"
        "portico_tls_connections_active %llu\n",
        (unsigned long long)tls_active);
    strbuf_printf(&o,
                  "# HELP portico_connections_reclaimed_total Client connections closed at "
                  "max_connections to make room, by what they were doing.\n"
                  "# TYPE portico_connections_reclaimed_total counter\n"
                  "portico_connections_reclaimed_total{state=\"idle\"} %llu\n"
                  "portico_connections_reclaimed_total{state=\"waiting\"} %llu\n",
                  (unsigned long long)reclaimed[1], (unsigned long long)reclaimed[0]);
    strbuf_printf(&o,
                  "# HELP portico_connections_refused_total Client connections closed at once, by "
                  "reason.\n"
                  "# TYPE portico_connections_refused_total counter\n"
                  "portico_connections_refused_total{reason=\"per_client_limit\"} %llu\n",
                  (unsigned long long)refused);
    strbuf_printf(&o,
                  "# HELP portico_body_bytes_total HTTP body bytes (framing aside) proxied, by "
                  "direction and by path: copied through portico's buffers, or spliced from "
                  "socket to socket through a pipe.\n"
                  "# TYPE portico_body_bytes_total counter\n"
                  "portico_body_bytes_total{direction=\"request\",path=\"copied\"} %llu\n"
                  "portico_body_bytes_total{direction=\"request\",path=\"spliced\"} %llu\n"
                  "portico_body_bytes_total{direction=\"response\",path=\"copied\"} %llu\n"
                  "portico_body_bytes_total{direction=\"response\",path=\"spliced\"} %llu\n",
                  (unsigned long long)body[0][0], (unsigned long long)body[0][1],
                  (unsigned long long)body[1][0], (unsigned long long)body[1][1]);
    strbuf_printf(&o,
                  "# HELP portico_tls_sessions_total TLS sessions established with clients, by "
                  "who writes their records: OpenSSL, or the kernel (kTLS, which lets response "
                  "bodies be spliced).\n"
                  "# TYPE portico_tls_sessions_total counter\n"
                  "portico_tls_sessions_total{records=\"openssl\"} %llu\n"
                  "portico_tls_sessions_total{records=\"kernel\"} %llu\n",
                  (unsigned long long)records[0], (unsigned long long)records[1]);
    render_tailscale(&o, workers, nworkers);
    if (dns_render)
        dns_render(&o, dns_arg);
    tscert_render_metrics(&o);

    /* Services that never saw traffic are left out: 10,000 idle services
     * should not make every scrape 10,000 series long. */
    struct metrics_service *sums = nnames ? calloc(nnames, sizeof *sums) : NULL;
    if (nnames && !sums) {
        free(o.s);
        return NULL;
    }
    for (size_t s = 0; s < nnames; s++)
        sum_service(workers, nworkers, s, &sums[s]);

    static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    strbuf_printf(&o,
                  "# HELP portico_requests_total Requests answered, by service and status class.\n"
                  "# TYPE portico_requests_total counter\n");
    for (size_t s = 0; s < nnames; s++) {
        if (!seen_any(&sums[s]))
            continue;
        for (int i = 0; i < 5; i++)
            strbuf_printf(&o, "portico_requests_total{service=\"%s\",code=\"%s\"} %llu\n", names[s],
                          classes[i], (unsigned long long)sums[s].requests[i]);
    }
    /* Only once a hairpin listener has served: other scrapes stay as they were. */
    bool any_local = false;
    for (size_t s = 0; s < nnames; s++)
        any_local = any_local || sums[s].local_requests;
    if (any_local)
        strbuf_printf(&o, "# HELP portico_local_requests_total Requests from processes on this "
                          "host through a tailscale.hairpin listener, by service.\n"
                          "# TYPE portico_local_requests_total counter\n");
    for (size_t s = 0; s < nnames && any_local; s++)
        if (sums[s].local_requests)
            strbuf_printf(&o, "portico_local_requests_total{service=\"%s\"} %llu\n", names[s],
                          (unsigned long long)sums[s].local_requests);
    strbuf_printf(
        &o, "# HELP portico_request_duration_seconds Time from request head to the end of the "
            "response.\n"
            "# TYPE portico_request_duration_seconds histogram\n");
    for (size_t s = 0; s < nnames; s++) {
        if (!seen_any(&sums[s]))
            continue;
        uint64_t cum = 0;
        for (int i = 0; i < METRICS_BUCKETS; i++) {
            cum += sums[s].buckets[i];
            strbuf_printf(
                &o, "portico_request_duration_seconds_bucket{service=\"%s\",le=\"%s\"} %llu\n",
                names[s], bucket_le[i], (unsigned long long)cum);
        }
        strbuf_printf(&o,
                      "portico_request_duration_seconds_bucket{service=\"%s\",le=\"+Inf\"} %llu\n"
                      "portico_request_duration_seconds_sum{service=\"%s\"} %llu.%06llu\n"
                      "portico_request_duration_seconds_count{service=\"%s\"} %llu\n",
                      names[s], (unsigned long long)sums[s].count, names[s],
                      (unsigned long long)(sums[s].sum_us / 1000000),
                      (unsigned long long)(sums[s].sum_us % 1000000), names[s],
                      (unsigned long long)sums[s].count);
    }
    struct {
        const char *name, *help;
        size_t off;
    } simple[] = {
        {"portico_upstream_connect_errors_total", "Upstream connections that failed.",
         offsetof(struct metrics_service, connect_errors)},
        {"portico_upstream_timeouts_total", "Upstream connects or responses that timed out.",
         offsetof(struct metrics_service, timeouts)},
        {"portico_access_denied_total",
         "Requests refused (403) because the caller is not in the service's allow list.",
         offsetof(struct metrics_service, access_denied)},
        {"portico_responses_incomplete_total",
         "Responses cut after they began because the upstream failed or went silent.",
         offsetof(struct metrics_service, incomplete)},
        {"portico_bytes_received_total", "Bytes received from clients.",
         offsetof(struct metrics_service, bytes_in)},
        {"portico_bytes_sent_total", "Bytes sent to clients.",
         offsetof(struct metrics_service, bytes_out)},
    };
    for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++) {
        strbuf_printf(&o, "# HELP %s %s\n# TYPE %s counter\n", simple[k].name, simple[k].help,
                      simple[k].name);
        for (size_t s = 0; s < nnames; s++) {
            if (!seen_any(&sums[s]))
                continue;
            const uint64_t *v = (const uint64_t *)((const char *)&sums[s] + simple[k].off);
            strbuf_printf(&o, "%s{service=\"%s\"} %llu\n", simple[k].name, names[s],
                          (unsigned long long)*v);
        }
    }
    strbuf_printf(
        &o, "# HELP portico_tls_handshakes_total TLS handshakes on TLS listeners, by the service "
            "their SNI names and result.\n"
            "# TYPE portico_tls_handshakes_total counter\n");
    for (size_t s = 0; s < nnames; s++) {
        if (!sums[s].tls_handshakes[0] && !sums[s].tls_handshakes[1])
            continue;
        strbuf_printf(&o,
                      "portico_tls_handshakes_total{service=\"%s\",result=\"ok\"} %llu\n"
                      "portico_tls_handshakes_total{service=\"%s\",result=\"failed\"} %llu\n",
                      names[s], (unsigned long long)sums[s].tls_handshakes[1], names[s],
                      (unsigned long long)sums[s].tls_handshakes[0]);
    }
    strbuf_printf(&o, "# HELP portico_stream_connections_total TCP forwarder and TLS passthrough "
                      "connections.\n"
                      "# TYPE portico_stream_connections_total counter\n");
    for (size_t s = 0; s < nnames; s++)
        if (sums[s].streams)
            strbuf_printf(&o, "portico_stream_connections_total{service=\"%s\"} %llu\n", names[s],
                          (unsigned long long)sums[s].streams);
    static const char *const auth_results[4] = {"allowed", "redirected", "denied", "error"};
    strbuf_printf(
        &o, "# HELP portico_auth_decisions_total Forward-auth decisions, by provider, service "
            "and result.\n"
            "# TYPE portico_auth_decisions_total counter\n");
    for (size_t s = 0; s < nnames; s++) {
        uint64_t any = sums[s].auth[0] + sums[s].auth[1] + sums[s].auth[2] + sums[s].auth[3];
        if (!any || !providers[s])
            continue;
        for (int i = 0; i < 4; i++)
            strbuf_printf(
                &o,
                "portico_auth_decisions_total{provider=\"%s\",service=\"%s\",result=\"%s\"} "
                "%llu\n",
                providers[s], names[s], auth_results[i], (unsigned long long)sums[s].auth[i]);
    }
    strbuf_printf(&o,
                  "# HELP portico_auth_duration_seconds Time to get the auth provider's answer.\n"
                  "# TYPE portico_auth_duration_seconds histogram\n");
    for (size_t s = 0; s < nnames; s++) {
        if (!sums[s].auth_count || !providers[s])
            continue;
        uint64_t cum = 0;
        for (int i = 0; i < METRICS_BUCKETS; i++) {
            cum += sums[s].auth_buckets[i];
            strbuf_printf(
                &o,
                "portico_auth_duration_seconds_bucket{provider=\"%s\",service=\"%s\",le=\"%s\"} "
                "%llu\n",
                providers[s], names[s], bucket_le[i], (unsigned long long)cum);
        }
        strbuf_printf(
            &o,
            "portico_auth_duration_seconds_bucket{provider=\"%s\",service=\"%s\",le=\"+Inf\"} "
            "%llu\n"
            "portico_auth_duration_seconds_sum{provider=\"%s\",service=\"%s\"} %llu.%06llu\n"
            "portico_auth_duration_seconds_count{provider=\"%s\",service=\"%s\"} %llu\n",
            providers[s], names[s], (unsigned long long)sums[s].auth_count, providers[s], names[s],
            (unsigned long long)(sums[s].auth_sum_us / 1000000),
            (unsigned long long)(sums[s].auth_sum_us % 1000000), providers[s], names[s],
            (unsigned long long)sums[s].auth_count);
    }
    free(sums);
    struct resolve_stats rs;
    resolve_get_stats(&rs);
    strbuf_printf(
        &o,
        "# HELP portico_resolutions_total Lookups of upstream host names, by result.\n"
        "# TYPE portico_resolutions_total counter\n"
        "portico_resolutions_total{result=\"ok\"} %llu\n"
        "portico_resolutions_total{result=\"error\"} %llu\n"
        "# HELP portico_resolution_changes_total Upstream host names that moved to a new "
        "address.\n"
        "# TYPE portico_resolution_changes_total counter\n"
        "portico_resolution_changes_total %llu\n"
        "# HELP portico_upstreams_unresolved Upstream host names in use that have no address "
        "(their traffic fails).\n"
        "# TYPE portico_upstreams_unresolved gauge\n"
        "portico_upstreams_unresolved %llu\n",
        (unsigned long long)rs.ok, (unsigned long long)rs.failed, (unsigned long long)rs.changes,
        (unsigned long long)rs.unresolved);
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    *len = o.len;
    return o.s;
}
