/* exstate.c - the exchange's state machine (see enum exchange_state in
 * proxy.h): what each state waits on, the one function that changes state,
 * the timer armed for the wait, and what happens when it fires. */
#include <stddef.h>
#include <string.h>

#include "config.h"
#include "exchange_int.h"
#include "log.h"
#include "metrics.h"
#include "upstream.h"
#include "worker.h"

/* What an exchange can be waiting on, each with its own limit. */
enum wait_on {
    WAIT_NONE,          /* nothing: the timer is left as it is */
    WAIT_UPSTREAM,      /* for the response head: the service's timeout */
    WAIT_UPSTREAM_BODY, /* for more of the response body: its idle_timeout */
    WAIT_CLIENT_BODY,   /* for request body bytes: body_timeout and body_min_rate */
    WAIT_CLIENT_WRITE,  /* for the client to take bytes: send_timeout */
    WAIT_TUNNEL,
    WAIT_CONNECT,
    WAIT_AUTH,
    WAIT_IDENTITY,
};

/* Where each wait's limit (milliseconds, 0: none) is in the configuration:
 * the limits section, the exchange's service, or its auth provider. */
enum limit_in { IN_LIMITS, IN_SERVICE, IN_AUTH, IN_TAILSCALE };

static const struct wait_limit {
    enum limit_in in;
    size_t off; /* of a uint32_t */
} wait_limits[] = {
    [WAIT_UPSTREAM] = {IN_SERVICE, offsetof(struct config_service, timeout_ms)},
    [WAIT_UPSTREAM_BODY] = {IN_SERVICE, offsetof(struct config_service, idle_timeout_ms)},
    [WAIT_CLIENT_BODY] = {IN_LIMITS, offsetof(struct config_limits, body_timeout_ms)},
    [WAIT_CLIENT_WRITE] = {IN_LIMITS, offsetof(struct config_limits, send_timeout_ms)},
    [WAIT_TUNNEL] = {IN_LIMITS, offsetof(struct config_limits, tunnel_timeout_ms)},
    [WAIT_CONNECT] = {IN_SERVICE, offsetof(struct config_service, connect_timeout_ms)},
    [WAIT_AUTH] = {IN_AUTH, offsetof(struct config_auth, timeout_ms)},
    [WAIT_IDENTITY] = {IN_TAILSCALE, offsetof(struct config_tailscale, whois_wait_ms)},
};

/* What each state waits on. In the states where bytes stream both ways
 * (streams), a blocked socket takes precedence: a client that does not
 * read what is queued for it (send_timeout), or the request body portico
 * has run out of (the body rules). */
static const struct state_info {
    const char *name;
    enum wait_on wait;
    bool streams;
} states[] = {
    [EX_ROUTING] = {"routing", WAIT_NONE, false},
    [EX_IDENTITY] = {"identity", WAIT_IDENTITY, false},
    [EX_AUTH] = {"auth", WAIT_AUTH, false},
    [EX_CONNECTING] = {"connecting", WAIT_CONNECT, false},
    [EX_SENDING] = {"sending", WAIT_UPSTREAM, true},
    [EX_WAITING] = {"waiting", WAIT_UPSTREAM, true},
    [EX_STREAMING] = {"streaming", WAIT_UPSTREAM_BODY, true},
    [EX_RESPONDING] = {"responding", WAIT_UPSTREAM_BODY, true},
    [EX_LOCAL] = {"local", WAIT_CLIENT_WRITE, false},
    [EX_TUNNEL] = {"tunnel", WAIT_TUNNEL, false},
};

const char *proxy_state_name(enum exchange_state st)
{
    return (size_t)st < sizeof states / sizeof states[0] ? states[st].name : "?";
}

static enum wait_on waiting_on(const struct exchange *ex)
{
    const struct state_info *si = &states[ex->state];
    if (si->streams) {
        if ((ex->rs.active || body_splice_pending(&ex->sp_resp)) && !ex->c->s.writable)
            return WAIT_CLIENT_WRITE;
        if (!ex->rqb.done && !ex->rq.active)
            return WAIT_CLIENT_BODY;
    }
    return si->wait;
}

/* The limit of a wait, in ms; 0: none. An exchange without a service (a
 * local answer before routing) has send_timeout for everything. */
static uint32_t timeout_for(const struct exchange *ex, enum wait_on on)
{
    if (on == WAIT_NONE)
        return 0;
    const struct wait_limit *wl = &wait_limits[on];
    const void *in = wl->in == IN_LIMITS      ? (const void *)&ex->cfg->limits
                     : wl->in == IN_SERVICE   ? (const void *)ex->svc
                     : wl->in == IN_TAILSCALE ? (const void *)&ex->cfg->tailscale
                                              : (const void *)ex->auth;
    if (!in)
        return ex->cfg->limits.send_timeout_ms;
    uint32_t ms;
    memcpy(&ms, (const char *)in + wl->off, sizeof ms);
    return ms;
}

void ex_set_state(struct exchange *ex, enum exchange_state st)
{
    ex->state = st;
    if (states[st].wait != WAIT_NONE)
        ex_arm_timer(ex);
}

/* While the client's body is awaited, two rules hold: no pause longer than
 * limits.body_timeout, and, once limits.body_rate_grace has passed, an
 * average of at least limits.body_min_rate bytes per second since the body
 * began (as Apache's mod_reqtimeout MinRate: each byte buys 1/rate s). The
 * ms left before one breaks (0: broken), and which one. */
static uint64_t body_time_left(const struct exchange *ex, const char **rule)
{
    const struct config_limits *lim = &ex->cfg->limits;
    uint64_t now = loop_now_ms(ex_worker(ex)->loop);
    uint64_t idle = now - conn_last_activity(ex->c);
    uint64_t left = idle < lim->body_timeout_ms ? lim->body_timeout_ms - idle : 0;
    *rule = "body_timeout";
    if (left == 0 || lim->body_min_rate == 0)
        return left;
    uint64_t paused = ex->body_paused_ms + (ex->body_paused_at ? now - ex->body_paused_at : 0);
    uint64_t span = now - ex->body_start_ms;
    uint64_t elapsed = span > paused ? span - paused : 0;
    uint64_t allowed = lim->body_rate_grace_ms + ex->body_read * 1000 / lim->body_min_rate;
    uint64_t rate_left = allowed > elapsed ? allowed - elapsed : 0;
    if (rate_left < left) {
        left = rate_left;
        *rule = "body_min_rate";
    }
    return left;
}

/* Arm the exchange's timer for what it waits on; a limit of 0 ("off")
 * leaves it unarmed: a long-poll or an event stream may be silent for as
 * long as the upstream likes, and a client that leaves is noticed on its
 * own (see client_gone). */
void ex_arm_timer(struct exchange *ex)
{
    enum wait_on on = waiting_on(ex);
    if (on == WAIT_NONE)
        return;
    uint64_t ms = timeout_for(ex, on);
    if (on == WAIT_CLIENT_BODY) {
        const char *rule;
        ms = body_time_left(ex, &rule);
        ms = ms ? ms : 1;
    }
    conn_arm_timer(ex->c, ms); /* 0: disarmed */
}

/* Waiting for body bytes: make sure the timer fires by the time a body
 * rule would break (it may be armed for a later, upstream deadline). */
void ex_arm_body_timer(struct exchange *ex)
{
    const char *rule;
    uint64_t left = body_time_left(ex, &rule);
    conn_arm_timer_within(ex->c, left ? left : 1);
}

/* The client's request body broke a rule of body_time_left: 408. */
EX_MUST_USE static enum ex_result body_too_slow(struct exchange *ex, const char *rule)
{
    const struct config_limits *lim = &ex->cfg->limits;
    if (strcmp(rule, "body_timeout") == 0)
        log_msg(LOG_WARN,
                "service %s: client %s sent no request body bytes for %ums "
                "(limits.body_timeout); 408",
                ex->svc->name, ex_client(ex), lim->body_timeout_ms);
    else
        log_msg(LOG_WARN,
                "service %s: client %s sent its request body too slowly: %llu bytes "
                "in %llums, under limits.body_min_rate (%u bytes/s); 408",
                ex->svc->name, ex_client(ex), (unsigned long long)ex->body_read,
                (unsigned long long)(loop_now_ms(ex_worker(ex)->loop) - ex->body_start_ms),
                lim->body_min_rate);
    if (ex->resp_started)
        return ex_fail_hard(ex, 408, "client sent its request body too slowly");
    return ex_respond(ex, 408, "request timeout: the request body arrived too slowly", true);
}

enum ex_result proxy_timeout(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    enum wait_on on = waiting_on(ex);
    if (on == WAIT_NONE)
        return EX_CONTINUE;
    if (on == WAIT_CLIENT_BODY) {
        const char *rule;
        uint64_t left = body_time_left(ex, &rule);
        if (left == 0)
            return body_too_slow(ex, rule);
        conn_arm_timer(ex->c, left);
        return EX_CONTINUE;
    }
    uint64_t limit = timeout_for(ex, on);
    /* The provider gets timeout in total, not per byte. */
    uint64_t idle = on == WAIT_AUTH ? (ex_now_us() - ex->auth_start_us) / 1000
                                    : loop_now_ms(w->loop) - conn_last_activity(ex->c);
    if (limit == 0)
        return EX_CONTINUE; /* armed for an earlier wait; this one has no limit */
    if (idle < limit) {
        conn_arm_timer(ex->c, limit - idle);
        return EX_CONTINUE;
    }
    switch (on) {
    case WAIT_NONE: /* handled above */
        return EX_CONTINUE;
    case WAIT_AUTH:
        return authreq_error(ex, 504, "no answer in time");
    case WAIT_IDENTITY:
        return tailnet_timeout(ex);
    case WAIT_CONNECT:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN, "service %s: connect to %s timed out", ex->svc->name, ex->up->key);
        return ex_respond(ex, 504, "gateway timeout: upstream did not accept the connection",
                          false);
    case WAIT_UPSTREAM:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN, "service %s: upstream %s sent no response within %ums (timeout)",
                ex->svc->name, ex->up->key, ex->svc->timeout_ms);
        if (ex->resp_started)
            return ex_fail_hard(ex, 504, "upstream did not answer in time (timeout)");
        return ex_respond(ex, 504, "gateway timeout: upstream did not answer in time", false);
    case WAIT_UPSTREAM_BODY:
        metrics_count_timeout(&w->metrics, ex->svc->metrics_slot);
        log_msg(LOG_WARN,
                "service %s: upstream %s was silent for %ums in the middle of a response "
                "(idle_timeout); response cut",
                ex->svc->name, ex->up->key, ex->svc->idle_timeout_ms);
        return ex_fail_hard(ex, 504,
                            "upstream went silent in the middle of the response (idle_timeout)");
    case WAIT_CLIENT_BODY: /* handled above */
    case WAIT_CLIENT_WRITE:
    case WAIT_TUNNEL:
        return ex_fail_hard(ex, ex->status ? ex->status : 408,
                            on == WAIT_TUNNEL ? "tunnel idle (tunnel_timeout)"
                                              : "client not reading (send_timeout)");
    }
    return EX_CONTINUE;
}
