/* tailnet.c - the tailnet identity step of an exchange, between routing
 * and forward auth: on the backend listener (tailscale.backend), and on
 * an ordinary listener for a client at a tailnet address (split DNS:
 * callers connect to portico's own listeners, directly or through a
 * proxy that sends a PROXY header).
 *
 * On the backend, tailscaled's Tailscale-User-* headers say who a user is;
 * a whois answer adds the node, its tags and capabilities, and is the only
 * source for a tagged caller. Whois is asked there when the upstream gets
 * tsnsrv's headers (tailscale.identity_headers, on by default: they need
 * the node), never for Funnel (anonymous) or a caller without an address.
 * On an ordinary listener nobody vouches for any header, so whois by the
 * peer's address is the only source, asked for every such caller. What
 * follows is the same for both: the answer comes
 * from the worker's whois cache (whois.c over localapi.c); while it is
 * pending the exchange waits in EX_IDENTITY with its head still unread,
 * and routing runs again (pure, same snapshot) when it comes. A failed
 * whois leaves the caller without identity, even when headers named a
 * user: whatever then needs identity refuses, never trusts half of it. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "exchange_int.h"
#include "localapi.h"
#include "log.h"
#include "route.h"
#include "whois.h"
#include "worker.h"

struct whois_cache *tailnet_whois_cache(struct worker *w, const struct config_tailscale *ts)
{
    if (w->whois && strcmp(w->ts_socket, ts->socket) == 0)
        return w->whois;
    tailnet_worker_free(w);
    char err[256];
    w->localapi =
        localapi_client_new(w->loop, ts->socket, TIMEOUT_LOCALAPI_MS, &w->metrics, err, sizeof err);
    if (!w->localapi) {
        log_msg(LOG_ERROR, "worker %u: no LocalAPI client for whois: %s", w->id, err);
        return NULL;
    }
    w->whois = whois_cache_new_localapi(w->localapi, w->loop, &w->metrics);
    if (!w->whois) {
        log_msg(LOG_ERROR, "worker %u: no whois cache: out of memory", w->id);
        localapi_client_free(w->localapi);
        w->localapi = NULL;
        return NULL;
    }
    snprintf(w->ts_socket, sizeof w->ts_socket, "%s", ts->socket);
    return w->whois;
}

void tailnet_worker_free(struct worker *w)
{
    whois_cache_free(w->whois); /* detaches waiters; cancels its calls first */
    w->whois = NULL;
    localapi_client_free(w->localapi);
    w->localapi = NULL;
    w->ts_socket[0] = '\0';
}

/* Does this request need what only whois knows? tsnsrv's headers do; an
 * allow list does when the headers named nobody (a tagged node, whose
 * tags only whois has; a user's headers already say who may pass). */
static bool needs_whois(const struct exchange *ex)
{
    return ex->cfg->tailscale.identity_headers ||
           (ex->svc->allow.n && ex->id.source == IDENTITY_NONE);
}

/* A whois answer replaces what the headers said, keeping the app
 * capabilities tailscaled computed for this handler (whois has no such
 * field). */
static void take_whois(struct exchange *ex, const struct identity *answer)
{
    static __thread char caps[LIMIT_IDENTITY_BYTES];
    const char *c = identity_get(&ex->id, IDENTITY_APP_CAPS);
    size_t clen = strlen(c);
    memcpy(caps, c, clen + 1);
    ex->id = *answer;
    if (clen && identity_set(&ex->id, IDENTITY_APP_CAPS, caps, clen) < 0)
        identity_init(&ex->id); /* no room: no identity rather than a cut one */
}

/* Routing again, after the wait (the route_result of the first pass is
 * per thread and has been reused since), then on. */
static enum ex_result resume(struct exchange *ex)
{
    static __thread struct route_result rt;
    const struct http_request *req = &ex->req;
    struct route_request rq = {.host = req->host,
                               .path = req->path,
                               .query = req->query,
                               .by_name = conn_tailnet(ex->c) ? ex->cfg->tailnet_names : NULL};
    ex_set_state(ex, EX_ROUTING);
    if (route_resolve(ex->cfg->routes, &rq, &rt) != ROUTE_OK || rt.svc != ex->svc) {
        /* The snapshot is the same, so this cannot happen; never guess. */
        buf_consume(ex->c->s.in, req->head_len);
        return ex_respond(ex, 500, "internal error: the request could not be routed again", true);
    }
    return ex_routed(ex, &rt);
}

static void on_whois(struct whois_waiter *w, const struct identity *id, const char *err)
{
    struct exchange *ex = container_of(w, struct exchange, whois_wait);
    if (id) {
        take_whois(ex, id);
    } else {
        /* Failures are cached per address for a few seconds, so this line
         * comes once per caller and worker in that time, not per request. */
        log_msg(LOG_WARN,
                "tailnet caller %s: whois failed: %s; it has no identity, so allow lists "
                "refuse it and auth_bypass_tailnet does not apply",
                ex_client(ex), err);
        identity_init(&ex->id);
    }
    (void)resume(ex);
}

bool tailnet_identify(struct exchange *ex)
{
    struct identity *id = &ex->id;
    const char *addr;
    if (conn_tailnet(ex->c)) {
        int e = identity_from_headers(id, &ex->req);
        if (e < 0)
            log_msg(LOG_WARN, "tailnet caller %s: identity headers refused (%s); no identity",
                    ex->client[0] ? ex->client : "-", identity_strerror(e));
        if (id->funnel || !ex->client[0] || !needs_whois(ex))
            return true;
        addr = ex->client;
    } else if (conn_peer_tailnet(ex->c) && ex->cfg->tailscale.enabled) {
        addr = conn_addr(ex->c); /* the IP alone: whois finds a tailnet node by it */
    } else {
        return true;
    }
    struct whois_cache *wc = tailnet_whois_cache(ex_worker(ex), &ex->cfg->tailscale);
    if (!wc) {
        identity_init(id);
        return true;
    }
    static __thread struct identity found;
    char err[256];
    ex->whois_wait.fn = on_whois;
    switch (whois_lookup(wc, addr, &ex->whois_wait, &found, err, sizeof err)) {
    case WHOIS_FOUND:
        take_whois(ex, &found);
        return true;
    case WHOIS_UNKNOWN:
        identity_init(id);
        return true;
    case WHOIS_PENDING:
        break;
    }
    ex_set_state(ex, EX_IDENTITY);
    return false;
}

enum ex_result tailnet_timeout(struct exchange *ex)
{
    whois_detach(&ex->whois_wait);
    log_msg(LOG_WARN, "tailnet caller %s: no whois answer within %ums; it has no identity",
            ex_client(ex), ex->cfg->tailscale.whois_wait_ms);
    identity_init(&ex->id);
    return resume(ex);
}

void tailnet_headers(const struct exchange *ex, struct identity_headers *out)
{
    unsigned what = IDENTITY_SEND_TAILSCALED;
    if (ex->cfg->tailscale.identity_headers)
        what |= IDENTITY_SEND_TSNSRV;
    if (identity_build_headers(&ex->id, what, out) < 0)
        out->n = 0; /* cannot happen: IDENTITY_HEADERS_BYTES holds the largest identity */
}
