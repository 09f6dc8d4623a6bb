/* tsdefine.c - the daemon's service definitions through the Tailscale
 * control API, on a thread of their own (see tsdefine.h). */
#include "tsdefine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "strbuf.h"
#include "tsapi_client.h"
#include "tsapply.h"
#include "tspublish.h"

_Static_assert(METRICS_TSAPI_CALL_RESULTS == TSAPI_CALL_RESULTS, "one series per call result");

/* What one run reports to the main loop. */
struct outcome {
    unsigned gen; /* the configuration it defined */
    enum metrics_define_result result;
    struct tsapi_counts counts;
    unsigned long calls[TSAPI_CALL_RESULTS];
    size_t n;
    char err[1024];
};

struct tsdefine {
    struct loop *loop;
    struct tspublish *publish;
    pthread_t thread;
    int cancel_fd; /* eventfd: written once, when stopping */

    pthread_mutex_t mu; /* guards the fields down to out_posted */
    pthread_cond_t work;
    bool stopping;
    bool drop;              /* forget the configuration being retried: no more definitions wanted */
    struct config *pending; /* the newest configuration not taken yet (a reference) */
    unsigned pending_gen;
    struct outcome out; /* the newest run's outcome, when out_ready */
    bool out_ready, out_posted;

    /* Main thread only. */
    struct config *want; /* published once its first run ends (a reference) */
    unsigned gen;        /* of want */
    bool published;      /* want was handed to the publisher */
    bool failing;        /* the last run failed: an outage was logged */
    struct metrics_define m;
};

/* ---- the thread ------------------------------------------------------------ */

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool api_same(const struct config_tailscale_api *a, const struct config_tailscale_api *b)
{
    return str_same(a->tailnet, b->tailnet) && str_same(a->client_id, b->client_id) &&
           str_same(a->secret_file, b->secret_file) && str_same(a->url, b->url) &&
           str_same(a->ca_file, b->ca_file);
}

/* One run for c: its outcome in o. *client is kept (with its token) for
 * the next run as long as tailscale.api stays the same. */
static void define_run(struct tsdefine *d, struct config *c, struct config **client_cfg,
                       struct tsapi_client **client, struct outcome *o)
{
    const struct config_tailscale *ts = &c->tailscale;
    struct servecfg_service *svcs = NULL;
    size_t n = 0;
    o->result = METRICS_DEFINE_FAILED;
    if (tsapply_collect(c, &svcs, &n, o->err, sizeof o->err) < 0)
        return;
    o->n = n;
    if (*client && !api_same(&(*client_cfg)->tailscale.api, &ts->api)) {
        tsapi_client_free(*client);
        *client = NULL;
    }
    if (!*client) {
        config_unref(*client_cfg);
        *client_cfg = config_ref(c);
        *client = tsapi_client_new(&ts->api, o->err, sizeof o->err);
        if (!*client) {
            free(svcs);
            return;
        }
        tsapi_client_set_cancel(*client, d->cancel_fd);
    }
    struct tsapi_want *w = calloc(n ? n : 1, sizeof *w);
    char(*ports)[16] = calloc(n ? n : 1, sizeof *ports);
    const char **port_of = calloc(n ? n : 1, sizeof *port_of);
    struct strbuf plan = {0};
    if (!w || !ports || !port_of) {
        snprintf(o->err, sizeof o->err, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            snprintf(ports[i], sizeof ports[i], "tcp:%u", (unsigned)svcs[i].port);
            port_of[i] = ports[i];
            w[i] = (struct tsapi_want){svcs[i].name, &port_of[i], 1,
                                       (const char *const *)ts->service_tags, ts->nservice_tags};
        }
        if (tsapi_define_services(*client, w, n, false, &plan, &o->counts, o->err, sizeof o->err) ==
            0) {
            o->result = METRICS_DEFINE_OK;
        } else {
            int st = tsapi_client_last_status(*client);
            if (st == 401 || st == 403)
                o->result = METRICS_DEFINE_REFUSED;
        }
    }
    tsapi_client_take_calls(*client, o->calls);
    free(plan.s);
    free(port_of);
    free(ports);
    free(w);
    free(svcs);
}

static void on_outcome(struct loop *l, void *arg);

static void *define_main(void *arg)
{
    struct tsdefine *d = arg;
    struct tsapi_client *client = NULL;
    struct config *client_cfg = NULL, *cur = NULL;
    unsigned gen = 0;
    uint64_t backoff_ms = TIMEOUT_TS_DEFINE_RETRY_MS;
    struct timespec retry_at = {0};
    pthread_mutex_lock(&d->mu);
    for (;;) {
        /* Wait for a newer configuration, or for the retry of a failed run. */
        while (!d->stopping && !d->pending) {
            if (d->drop) {
                d->drop = false;
                config_unref(cur);
                cur = NULL;
            }
            if (!cur) {
                pthread_cond_wait(&d->work, &d->mu);
                continue;
            }
            if (pthread_cond_timedwait(&d->work, &d->mu, &retry_at) == ETIMEDOUT)
                break;
        }
        if (d->stopping)
            break;
        if (d->pending) {
            config_unref(cur);
            cur = d->pending;
            gen = d->pending_gen;
            d->pending = NULL;
            backoff_ms = TIMEOUT_TS_DEFINE_RETRY_MS;
        }
        pthread_mutex_unlock(&d->mu);
        struct outcome o = {.gen = gen};
        define_run(d, cur, &client_cfg, &client, &o);
        pthread_mutex_lock(&d->mu);
        if (d->stopping)
            break;
        /* Calls of an outcome the main loop has not taken yet still count. */
        if (d->out_ready)
            for (int r = 0; r < TSAPI_CALL_RESULTS; r++)
                o.calls[r] += d->out.calls[r];
        d->out = o;
        d->out_ready = true;
        if (!d->out_posted && loop_post(d->loop, on_outcome, d) == 0)
            d->out_posted = true;
        if (o.result != METRICS_DEFINE_FAILED) {
            config_unref(cur);
            cur = NULL;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &retry_at);
        retry_at.tv_sec += (time_t)(backoff_ms / 1000);
        backoff_ms *= 2;
        if (backoff_ms > TIMEOUT_TS_DEFINE_RETRY_MAX_MS)
            backoff_ms = TIMEOUT_TS_DEFINE_RETRY_MAX_MS;
    }
    pthread_mutex_unlock(&d->mu);
    tsapi_client_free(client);
    config_unref(client_cfg);
    config_unref(cur);
    return NULL;
}

/* ---- the main thread ------------------------------------------------------- */

/* Whether c has services the daemon defines before publishing them. */
static bool wanted(const struct config *c)
{
    const struct config_tailscale *ts = &c->tailscale;
    return ts->enabled && ts->publish == TS_PUBLISH_AUTO && ts->services && ts->api.enabled;
}

static void on_outcome(struct loop *l, void *arg)
{
    struct tsdefine *d = arg;
    struct outcome o;
    pthread_mutex_lock(&d->mu);
    bool ready = d->out_ready;
    if (ready)
        o = d->out;
    d->out_ready = false;
    d->out_posted = false;
    pthread_mutex_unlock(&d->mu);
    if (!ready)
        return;
    for (int r = 0; r < TSAPI_CALL_RESULTS; r++)
        d->m.calls[r] += o.calls[r];
    d->m.runs[o.result]++;
    d->m.created += o.counts.created;
    d->m.updated += o.counts.updated;
    if (!d->want || o.gen != d->gen)
        return; /* a newer configuration is on its way to the thread */
    const char *tailnet = d->want->tailscale.api.tailnet;
    bool changed = o.counts.created || o.counts.updated;
    switch (o.result) {
    case METRICS_DEFINE_OK:
        log_msg(LOG_INFO,
                "tailscale: service definitions in tailnet %s%s: %zu created, %zu updated, %zu "
                "unchanged",
                tailnet, d->failing ? " (the control API answers again)" : "", o.counts.created,
                o.counts.updated, o.counts.unchanged);
        d->failing = false;
        break;
    case METRICS_DEFINE_FAILED:
        /* One line per outage: the retries count in the metrics instead. */
        if (!d->failing)
            log_msg(LOG_WARN,
                    "tailscale: cannot define %zu %s in tailnet %s yet: %s; publishing without "
                    "them and trying again every %u s at most until it works",
                    o.n, log_plural(o.n, "service", "services"), tailnet, o.err,
                    TIMEOUT_TS_DEFINE_RETRY_MAX_MS / 1000);
        d->failing = true;
        break;
    case METRICS_DEFINE_REFUSED:
        log_msg(LOG_ERROR,
                "tailscale: cannot define the services in tailnet %s: %s; not retried until "
                "the next reload",
                tailnet, o.err);
        d->failing = false;
        break;
    default:
        break;
    }
    /* The first run's end publishes; a later one that made definitions
     * publishes again, so the node advertises what control now knows. */
    if (!d->published || (o.result == METRICS_DEFINE_OK && changed)) {
        d->published = true;
        tspublish_set(d->publish, d->want);
    }
}

struct tsdefine *tsdefine_new(struct loop *l, struct tspublish *p, char *err, size_t errlen)
{
    struct tsdefine *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->loop = l;
    d->publish = p;
    d->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->cancel_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(d);
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->work, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&d->thread, NULL, define_main, d);
    if (rc) {
        snprintf(err, errlen, "cannot start the service-definition thread: %s", strerror(rc));
        pthread_cond_destroy(&d->work);
        pthread_mutex_destroy(&d->mu);
        close(d->cancel_fd);
        free(d);
        return NULL;
    }
    return d;
}

void tsdefine_free(struct tsdefine *d)
{
    if (!d)
        return;
    metrics_attach_define(NULL);
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
    uint64_t one = 1;
    if (write(d->cancel_fd, &one, sizeof one) < 0)
        log_msg(LOG_WARN, "tailscale: cannot interrupt the control API request: %s",
                strerror(errno));
    /* The request in flight sees the cancel descriptor at once; only a
     * host name lookup (getaddrinfo cannot be interrupted) could take
     * longer, and then the thread is left behind with its memory. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 2;
    if (pthread_timedjoin_np(d->thread, NULL, &ts) != 0) {
        log_msg(LOG_WARN, "tailscale: the control API request did not stop in time; leaving it");
        pthread_detach(d->thread);
        config_unref(d->want);
        return;
    }
    pthread_cond_destroy(&d->work);
    pthread_mutex_destroy(&d->mu);
    close(d->cancel_fd);
    config_unref(d->pending);
    config_unref(d->want);
    free(d);
}

void tsdefine_set(struct tsdefine *d, struct config *c)
{
    config_unref(d->want);
    d->want = NULL;
    if (!c || !wanted(c)) {
        metrics_attach_define(NULL);
        pthread_mutex_lock(&d->mu);
        config_unref(d->pending);
        d->pending = NULL;
        d->drop = true;
        pthread_cond_signal(&d->work);
        pthread_mutex_unlock(&d->mu);
        tspublish_set(d->publish, c);
        return;
    }
    metrics_attach_define(&d->m);
    d->want = config_ref(c);
    d->gen++;
    d->published = false;
    pthread_mutex_lock(&d->mu);
    config_unref(d->pending);
    d->pending = config_ref(c);
    d->drop = false;
    d->pending_gen = d->gen;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
}
