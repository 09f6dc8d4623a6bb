/* metrics.h - counters kept per worker, rendered as Prometheus text.
 *
 * Each worker owns its counters and is their only writer, so counting is a
 * plain add, with no lock and no shared cache line. The main thread sums
 * the workers when /metrics is scraped. Services are identified by a slot
 * that stays the same across reloads, so counters survive a reload. */
#ifndef PORTICO_METRICS_H
#define PORTICO_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

#define METRICS_BUCKETS    12   /* request-duration histogram upper bounds, see metrics.c */
#define METRICS_CHUNK      1024 /* service slots per lazily allocated chunk */
#define METRICS_CHUNKS_MAX 1024 /* so at most 1,048,576 distinct service names */
#define METRICS_SLOT_NONE  0    /* requests that matched no service: service="-" */
#define METRICS_WINDOW_SEC 10   /* the status page's recent counts, in steps of this */
#define METRICS_WINDOWS    30   /* steps kept: the last 5 minutes */

/* The last upstream failure of a service (metrics_service.last_error). */
enum metrics_upstream_error { METRICS_ERR_NONE, METRICS_ERR_CONNECT, METRICS_ERR_TIMEOUT };

struct metrics_service {
    uint64_t requests[5]; /* by status class 1xx..5xx */
    uint64_t buckets[METRICS_BUCKETS];
    uint64_t count;
    uint64_t sum_us;
    uint64_t connect_errors;
    uint64_t timeouts;
    uint64_t access_denied; /* requests outside the service's allow list */
    uint64_t incomplete;    /* responses cut after they began, on the upstream's side */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t tls_handshakes[2]; /* failed, completed; by the SNI's service */
    uint64_t streams;           /* TCP forwarder and TLS passthrough connections */
    uint64_t auth[4];           /* forward-auth decisions, by enum auth_result */
    uint64_t auth_buckets[METRICS_BUCKETS];
    uint64_t auth_count, auth_sum_us; /* subrequests made (cache hits excluded) */
    uint64_t local_requests;          /* of requests: on a tailscale.hairpin listener */
    /* For the status page: the last response (its status, duration and
     * CLOCK_MONOTONIC time in ms), the last upstream failure since a
     * response below 500 (enum metrics_upstream_error), and requests and
     * 5xx responses per METRICS_WINDOW_SEC step: win_step[i] says which
     * step (monotonic seconds / METRICS_WINDOW_SEC + 1) slot i counts. */
    uint64_t last_status, last_us, last_at_ms, last_error;
    uint64_t win_step[METRICS_WINDOWS], win_req[METRICS_WINDOWS], win_err[METRICS_WINDOWS];
};

/* LocalAPI calls by endpoint and result (enum localapi_endpoint and enum
 * localapi_result: localapi.c checks the counts), and whois cache lookups
 * by outcome (enum whois_outcome in whois.h). */
#define METRICS_LOCALAPI_ENDPOINTS 6
#define METRICS_LOCALAPI_RESULTS   6
#define METRICS_WHOIS_OUTCOMES     5

struct metrics_worker {
    /* chunks[i] holds slots i*METRICS_CHUNK ...; allocated by the worker,
     * published with a release store, read by the main thread. */
    struct metrics_service *chunks[METRICS_CHUNKS_MAX];
    uint64_t connections_active;
    uint64_t connections_total;
    uint64_t tls_active;   /* client connections with TLS terminated here */
    uint64_t reclaimed[2]; /* closed at max_connections: [0] request-less, [1] idle */
    uint64_t refused_peer; /* closed at limits.max_connections_per_client */
    /* HTTP body data bytes (framing aside) by direction, [0] requests and
     * [1] responses, and path, [0] copied through user space and [1]
     * spliced through a pipe: so tests and benchmarks see the path taken. */
    uint64_t body_bytes[2][2];
    /* TLS sessions established by who writes their records: [0] OpenSSL,
     * [1] the kernel (kTLS). */
    uint64_t tls_records[2];
    uint64_t localapi[METRICS_LOCALAPI_ENDPOINTS][METRICS_LOCALAPI_RESULTS];
    uint64_t whois[METRICS_WHOIS_OUTCOMES];
};

/* The daemon publishing its Tailscale Services (tspublish.c). The main
 * thread writes it and renders it, so it needs no atomics. */
enum metrics_publish_result {
    METRICS_PUBLISH_WRITTEN,   /* the serve config or AdvertiseServices was written */
    METRICS_PUBLISH_UNCHANGED, /* everything was already as configured: nothing written */
    METRICS_PUBLISH_FAILED,    /* tailscaled missing, busy or failing: retried */
    METRICS_PUBLISH_REFUSED,   /* tailscaled refused the write (permissions): not retried */
    METRICS_PUBLISH_RESULTS
};
struct metrics_publish {
    uint64_t configured, advertised, approved; /* services at each stage, as last read */
    uint64_t runs[METRICS_PUBLISH_RESULTS];
    struct metrics_worker *calls; /* its LocalAPI calls; NULL when none */
};
/* Main thread: render p in every scrape from now on (NULL: stop). */
void metrics_attach_publish(const struct metrics_publish *p);

/* The daemon defining its services through the Tailscale control API
 * (tsdefine.c): requests by outcome (the order of tsapi_call_result in
 * tsapi_client.h), definitions created and updated, and define runs by
 * result. The main thread writes and renders it. */
#define METRICS_TSAPI_CALL_RESULTS 7
enum metrics_define_result {
    METRICS_DEFINE_OK,      /* every definition matches the configuration */
    METRICS_DEFINE_FAILED,  /* the API away, slow or failing: retried */
    METRICS_DEFINE_REFUSED, /* 401 or 403: not retried until the next reload */
    METRICS_DEFINE_RESULTS
};
struct metrics_define {
    uint64_t calls[METRICS_TSAPI_CALL_RESULTS];
    uint64_t created, updated;
    uint64_t runs[METRICS_DEFINE_RESULTS];
};
/* Main thread: render d in every scrape from now on (NULL: stop). */
void metrics_attach_define(const struct metrics_define *d);

struct strbuf;
/* A main-thread module that renders its own families into every scrape
 * (the DNS responder, dnsserver.c); fn NULL: none. */
typedef void (*metrics_render_fn)(struct strbuf *o, const void *arg);
void metrics_attach_dns(metrics_render_fn fn, const void *arg);

/* Main thread only: give every service of c its slot (registering new names). */
int metrics_assign_slots(struct config *c);

/* Worker side. A NULL return means out of memory: the event is not counted. */
struct metrics_service *metrics_service(struct metrics_worker *m, size_t slot);
void metrics_count_request(struct metrics_worker *m, size_t slot, int status, uint64_t usec,
                           uint64_t bytes_in, uint64_t bytes_out);
/* A request of the service in slot came in on a tailscale.hairpin listener
 * (counted by metrics_count_request as well). */
void metrics_count_local(struct metrics_worker *m, size_t slot);
void metrics_count_connect_error(struct metrics_worker *m, size_t slot);
void metrics_count_timeout(struct metrics_worker *m, size_t slot);
void metrics_count_access_denied(struct metrics_worker *m, size_t slot);
void metrics_count_incomplete(struct metrics_worker *m, size_t slot);
void metrics_conn_open(struct metrics_worker *m);
void metrics_conn_close(struct metrics_worker *m);
/* A connection closed to make room at max_connections (idle: a keep-alive
 * one between requests; else one that had sent no request yet). */
void metrics_count_reclaim(struct metrics_worker *m, bool idle);
/* A connection refused by limits.max_connections_per_client. */
void metrics_count_refused_peer(struct metrics_worker *m);
/* An exchange's body bytes: request and response, copied and spliced. */
void metrics_count_body(struct metrics_worker *m, uint64_t req_copied, uint64_t req_spliced,
                        uint64_t resp_copied, uint64_t resp_spliced);
/* A TLS handshake on a TLS listener ended; slot is the service its SNI
 * names (METRICS_SLOT_NONE when none). A completed one counts as active
 * until metrics_tls_close; kernel: the kernel writes its records (kTLS). */
void metrics_tls_handshake(struct metrics_worker *m, size_t slot, bool ok, bool kernel);
void metrics_tls_close(struct metrics_worker *m);
/* A forward-auth decision (result: enum auth_result) for the service in
 * slot; usec is the subrequest's duration, or -1 for a cached decision. */
void metrics_count_auth(struct metrics_worker *m, size_t slot, int result, int64_t usec);
/* A LocalAPI call ended (endpoint, result: the localapi.h enums). */
void metrics_count_localapi(struct metrics_worker *m, int endpoint, int result);
/* A whois cache lookup (outcome: enum whois_outcome). */
void metrics_count_whois(struct metrics_worker *m, int outcome);
/* A TCP forwarder or TLS passthrough connection of the service in slot. */
void metrics_count_stream(struct metrics_worker *m, size_t slot);
void metrics_worker_free(struct metrics_worker *m);

/* Render all workers' counters. Returns a malloc'd NUL-terminated text
 * (caller frees) or NULL when out of memory. */
char *metrics_render(struct metrics_worker *const *workers, size_t nworkers, size_t *len);

struct strbuf;
/* One counter family with a result label, NAME{result="LABEL"} for each of
 * n values: its HELP, TYPE and series (every one, zeros included). */
void metrics_render_results(struct strbuf *o, const char *name, const char *help,
                            const char *const *labels, const uint64_t *v, int n);

/* For the status page (main thread): every counter of the service in
 * slot summed over the workers, with last_* taken from the worker that saw
 * the newest response, and its requests and 5xx responses in the last
 * `steps` METRICS_WINDOW_SEC steps (the current one included). */
void metrics_sum_service(struct metrics_worker *const *workers, size_t nworkers, size_t slot,
                         struct metrics_service *t);
void metrics_sum_window(struct metrics_worker *const *workers, size_t nworkers, size_t slot,
                        unsigned steps, uint64_t *requests, uint64_t *errors);
/* The monotonic clock in ms, as the last_at_ms stamps use it. */
uint64_t metrics_now_ms(void);
/* The publishing attached with metrics_attach_publish, or NULL. */
const struct metrics_publish *metrics_publish_attached(void);

/* Free the name registry at exit. */
void metrics_registry_free(void);

#endif
