/* tspublish.c - the daemon publishing its services on tailscaled (see
 * tspublish.h): one run at a time of tsapply's steps, each call through
 * the main thread's non-blocking LocalAPI client. */
#include "tspublish.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "limits.h"
#include "localapi.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "tsapply.h"

struct tspublish {
    struct loop *loop;
    struct localapi_client *client; /* for socket; NULL until the first run */
    char socket[PATH_MAX];
    struct config *want;           /* the configuration to publish (a reference); NULL: none */
    struct config *cur;            /* the run's configuration (a reference) */
    bool running;                  /* a call of the run is queued or in flight */
    bool again;                    /* want changed during the run: run again once it ends */
    struct servecfg_service *svcs; /* the run's services (strings in cur) */
    size_t n;
    struct tsapply x;
    bool x_live; /* x holds a run's state */
    char state[PATH_MAX];
    struct loop_timer retry;
    uint64_t backoff_ms;
    unsigned failures; /* runs failed in a row (the first is logged) */
    struct metrics_publish m;
    struct metrics_worker calls;
};

static void start(struct tspublish *p);

/* Whether c asks the daemon to publish at all. */
static bool wanted(const struct config *c)
{
    return c && c->tailscale.enabled && c->tailscale.publish == TS_PUBLISH_AUTO;
}

static void end_run(struct tspublish *p)
{
    if (p->x_live)
        tsapply_free(&p->x);
    memset(&p->x, 0, sizeof p->x);
    p->x_live = false;
    free(p->svcs);
    p->svcs = NULL;
    p->n = 0;
    config_unref(p->cur);
    p->cur = NULL;
    p->running = false;
    if (p->again) {
        p->again = false;
        loop_timer_disarm(p->loop, &p->retry);
        p->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
        start(p);
    }
}

/* "N services (M added, K removed)" from the plan's lines. */
static void summary(const struct tspublish *p, char *out, size_t cap)
{
    size_t added = 0, removed = 0;
    for (const char *l = p->x.result.plan; l && *l;) {
        added += l[0] == '+';
        removed += l[0] == '-';
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : "";
    }
    snprintf(out, cap, "%zu %s (%zu added, %zu removed)", p->n,
             log_plural(p->n, "service", "services"), added, removed);
}

/* The gauges from what the run read of the node. */
static void gauge(struct tspublish *p)
{
    p->m.configured = p->n;
    if (!p->x.node_read)
        return;
    p->m.advertised = tsapply_count_advertised(&p->x);
    p->m.approved = tsapply_count_approved(&p->x);
}

static void failed(struct tspublish *p, const char *why)
{
    gauge(p);
    if (p->x.refused) {
        p->m.runs[METRICS_PUBLISH_REFUSED]++;
        log_msg(LOG_ERROR,
                "tailscale: tailscaled refused to publish the services: %s; a portico that is "
                "neither root nor the tailscale operator allowed to run `sudo tailscale` cannot "
                "publish a unix: backend, so run `portico tailscale apply -c %s` with privileges "
                "from the unit (ExecStartPost= and ExecReload=) and set tailscale.publish: false; "
                "not retried until the next reload",
                why, p->cur->path);
        p->failures = 0;
        return end_run(p);
    }
    p->m.runs[METRICS_PUBLISH_FAILED]++;
    /* One line per outage: the retries count in the metrics instead. */
    if (p->failures++ == 0)
        log_msg(LOG_WARN,
                "tailscale: cannot publish %zu %s yet: %s; trying again every %u s at most "
                "until it works",
                p->n, log_plural(p->n, "service", "services"), why,
                TIMEOUT_TS_PUBLISH_RETRY_MAX_MS / 1000);
    if (!p->again)
        loop_timer_arm(p->loop, &p->retry, p->backoff_ms);
    p->backoff_ms *= 2;
    if (p->backoff_ms > TIMEOUT_TS_PUBLISH_RETRY_MAX_MS)
        p->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MAX_MS;
    end_run(p);
}

static void done(struct tspublish *p)
{
    char err[800], what[96];
    struct tsapply *x = &p->x;
    if (tsapply_save_state(x, p->cur->tailscale.state_dir, p->state, err, sizeof err) < 0)
        return failed(p, err);
    gauge(p);
    bool wrote = x->written || x->advertise_set;
    p->m.runs[wrote ? METRICS_PUBLISH_WRITTEN : METRICS_PUBLISH_UNCHANGED]++;
    summary(p, what, sizeof what);
    for (const char *w = x->tg.warnings ? x->tg.warnings : ""; *w;) {
        size_t len = strcspn(w, "\n");
        log_msg(LOG_WARN, "tailscale: %.*s", (int)len, w);
        w += len + (w[len] == '\n');
    }
    if (x->untagged_host)
        log_msg(LOG_WARN,
                "tailscale: this node does not carry %s (tailscale.host_tags); Tailscale "
                "Services need a tagged host, and auto-approval names that tag",
                p->cur->tailscale.host_tags[0]);
    if (wrote)
        log_msg(LOG_INFO, "tailscale: published %s:%s%s%s", what,
                x->written ? " serve config written" : "",
                x->written && x->advertise_set ? "," : "",
                x->advertise_set ? " AdvertiseServices set" : "");
    else
        log_msg(LOG_INFO, "tailscale: %zu %s already published as configured%s", p->n,
                log_plural(p->n, "service", "services"),
                p->failures ? " (tailscaled answers again)" : "");
    p->failures = 0;
    p->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    end_run(p);
}

static void on_answer(void *arg, const struct localapi_answer *a);

/* Make calls until one is queued, or the run ends. */
static void step(struct tspublish *p)
{
    char err[512];
    struct localapi_request req;
    for (;;) {
        switch (tsapply_next(&p->x, &req)) {
        case TSAPPLY_CALL:
            if (localapi_call(p->client, &req, on_answer, p, err, sizeof err) == 0)
                return;
            tsapply_unreachable(&p->x, err);
            break;
        case TSAPPLY_DONE:
            return done(p);
        case TSAPPLY_FAILED:
            return failed(p, p->x.err);
        }
    }
}

static void on_answer(void *arg, const struct localapi_answer *a)
{
    struct tspublish *p = arg;
    unsigned races = p->x.lost_races;
    if (a->result == LOCALAPI_OK || a->result == LOCALAPI_HTTP_ERROR) {
        char etag[LIMIT_LOCALAPI_ETAG_BYTES];
        bool has = a->head && localapi_etag(a->head, etag, sizeof etag);
        tsapply_answer(&p->x, a->status, a->body, a->body_len, has ? etag : NULL);
    } else {
        tsapply_unreachable(&p->x, a->error);
    }
    if (p->x.lost_races != races)
        log_msg(LOG_INFO, "tailscale: another client changed the serve config; reading it again");
    step(p);
}

/* The client for the run's socket (a new one when the socket changed). */
static int use_socket(struct tspublish *p, const char *path, char *err, size_t errlen)
{
    if (p->client && strcmp(p->socket, path) == 0)
        return 0;
    localapi_client_free(p->client);
    p->client = localapi_client_new(p->loop, path, TIMEOUT_LOCALAPI_CLI_MS, &p->calls, err, errlen);
    snprintf(p->socket, sizeof p->socket, "%s", path);
    return p->client ? 0 : -1;
}

static void start(struct tspublish *p)
{
    char err[800];
    if (!wanted(p->want) || p->running)
        return;
    p->cur = config_ref(p->want);
    p->running = true;
    const struct config_tailscale *ts = &p->cur->tailscale;
    if (tsapply_collect(p->cur, &p->svcs, &p->n, err, sizeof err) < 0)
        return failed(p, err);
    tsapply_init(&p->x, TSAPPLY_APPLY, p->svcs, p->n, ts->host_tags[0]);
    tsapply_use_config(&p->x, p->cur);
    p->x_live = true;
    p->m.configured = p->n;
    if (tsapply_state_path(p->cur, p->state, sizeof p->state) < 0)
        return failed(p, "tailscale.state_dir is too long");
    if (tsapply_read_owned(&p->x, p->state, err, sizeof err) < 0)
        return failed(p, err);
    /* services: false, no funnel and nothing published before: nothing to
     * do, and no reason to call tailscaled. */
    if (!ts->services && !ts->funnel.enabled && p->x.owned.n == 0 && p->x.funnel_owned.n == 0)
        return end_run(p);
    if (use_socket(p, ts->socket, err, sizeof err) < 0)
        return failed(p, err);
    step(p);
}

static void on_retry(struct loop *l, struct loop_timer *t)
{
    start(container_of(t, struct tspublish, retry));
}

struct tspublish *tspublish_new(struct loop *l)
{
    struct tspublish *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = l;
    p->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    p->m.calls = &p->calls;
    loop_timer_init(&p->retry, on_retry);
    return p;
}

void tspublish_free(struct tspublish *p)
{
    if (!p)
        return;
    metrics_attach_publish(NULL);
    loop_timer_disarm(p->loop, &p->retry);
    localapi_client_free(p->client);
    p->again = false;
    end_run(p);
    config_unref(p->want);
    metrics_worker_free(&p->calls);
    free(p);
}

void tspublish_set(struct tspublish *p, struct config *c)
{
    config_unref(p->want);
    p->want = wanted(c) ? config_ref(c) : NULL;
    metrics_attach_publish(p->want ? &p->m : NULL);
    loop_timer_disarm(p->loop, &p->retry);
    p->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    if (p->running)
        p->again = p->want != NULL;
    else
        start(p);
}
