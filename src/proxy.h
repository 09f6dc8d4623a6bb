/* proxy.h - an exchange: one request forwarded to an upstream and its
 * response streamed back, or a tunnel after a 101 upgrade.
 *
 * Bodies move through each side's input buffer and are written out with
 * writev under the framing the receiving side needs, without being copied
 * and without waiting for more than one buffer: a side that cannot take
 * more bytes stops the reading of the other side, which is the
 * backpressure that keeps memory flat for bodies of any size. */
#ifndef PORTICO_PROXY_H
#define PORTICO_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "body.h"
#include "http1.h"
#include "identity.h"
#include "proxyproto.h"
#include "relay.h"
#include "sock.h"
#include "splice.h"
#include "whois.h"

struct conn;
struct upconn;
struct config;
struct config_service;
struct config_upstream;
struct config_route;
struct config_auth;
struct buf;

/* The exchange's states. Each says which of its pointers and fields hold
 * something meaningful; ex_set_state (exchange.c) is the one place that
 * moves an exchange from one to the next, and arms its timer for what the
 * new state waits on. A released exchange has no state: it is on the
 * worker's free list, and debug and ASan builds poison it there.
 *
 *   ROUTING    -> IDENTITY, AUTH, CONNECTING or SENDING; LOCAL (refused, 404 ...)
 *   IDENTITY   -> ROUTING (answered, failed or timed out)
 *   AUTH       -> ROUTING (allowed); LOCAL (denied, redirected, failed)
 *   CONNECTING -> SENDING; LOCAL
 *   SENDING    -> WAITING (request sent), STREAMING (early response head);
 *                 CONNECTING or SENDING (a retry on a new connection); LOCAL
 *   WAITING    -> RESPONDING; CONNECTING or SENDING (retry); LOCAL
 *   STREAMING  -> RESPONDING; TUNNEL (101); LOCAL (only before the client
 *                 saw a byte; after it, the exchange ends cut)
 *   RESPONDING -> TUNNEL (101); LOCAL (likewise)
 * and from any state the exchange may end: finished, or cut. */
enum exchange_state {
    /* The head is parsed into req and being routed and checked, or forward
     * auth has just let it through. svc, route, up are set once routing
     * found them; u is NULL; nothing is in flight. Waits on nothing. */
    EX_ROUTING,
    /* The tailnet backend only: routed (svc, route, up set), waiting for the
     * whois answer on the caller (whois_wait attached); the head is still
     * unread in the client's buffer. Waits on tailscale.whois_wait_ms. */
    EX_IDENTITY,
    /* Asking the auth provider. u is the provider connection, authreq the
     * subrequest (authreq_off of it written), reqhead the request waiting
     * for the verdict; resp holds the provider's answer once parsed. Waits
     * on the provider: its timeout, counted from auth_start_us. */
    EX_AUTH,
    /* Connecting to the upstream (TCP, then TLS for https). u, reqhead; pp
     * if a PROXY header goes first. Waits on connect_timeout. */
    EX_CONNECTING,
    /* The request head and body go up, no final response head yet (1xx
     * may come and go). u, reqhead, rq, rqb; the upstream's bytes
     * collect in u->s.in. Waits on the client's body (body_timeout,
     * body_min_rate) when out of bytes to send, else the service timeout. */
    EX_SENDING,
    /* The whole request is upstream; waiting for the final response head.
     * u; rq is empty. Waits on the service timeout. */
    EX_WAITING,
    /* The final response head came while the request body still goes up
     * (an upstream that answers early, or streams). As EX_SENDING, plus
     * resp, rsb and rs. Waits on the client's body or the upstream's. */
    EX_STREAMING,
    /* The whole request is upstream and the response body comes down. u,
     * resp, rsb, rs; sp_resp when the body is spliced. Waits on idle_timeout,
     * or send_timeout while the client does not read. */
    EX_RESPONDING,
    /* portico's own answer, whole in rs (rs.own holds it); u is NULL. Waits
     * on the client to read it: send_timeout. */
    EX_LOCAL,
    /* After a 101: bytes both ways until both sides close. u; rs may still
     * hold the 101 head; tunnel_up and tunnel_down say what each side has
     * ended. Waits on tunnel_timeout. */
    EX_TUNNEL,
};

/* Bytes of a logged target kept in the exchange itself; a longer one (up
 * to LIMIT_LOG_PATH_BYTES) gets an allocation of its length. */
#define EX_PATH_INLINE 128

struct exchange {
    struct exchange *next_free; /* on the worker's free list; stays readable while released */
    struct conn *c;
    struct upconn *u;
    struct config *cfg; /* reference held for the exchange's lifetime */
    const struct config_service *svc;
    const struct config_upstream *up;
    const struct config_route *route; /* the path route taken; NULL: the service's upstream */
    enum exchange_state state;
    struct buf *reqhead; /* serialised upstream request head, kept for a retry */
    size_t reqhead_len;
    struct flow rq, rs;      /* to upstream, to client */
    struct body rqb, rsb;    /* request body, response body */
    bool resp_started;       /* a response byte reached the client (no retry, no error page) */
    bool upstream_spoke;     /* a response byte arrived from the upstream */
    uint8_t resp_full_reads; /* response reads that filled the upstream's buffer (to 2) */
    bool retried;
    bool upgrade; /* an allowed Upgrade went upstream: a 101 may open a tunnel */
    /* A large body between two plain sockets moves through a pipe with
     * splice(2): request (client -> upstream) and response. */
    struct body_splice sp_req, sp_resp;
    bool close_client; /* the client connection closes after this response */
    /* EX_TUNNEL only: client -> upstream and upstream -> client. */
    struct relay tunnel_up, tunnel_down;
    size_t resp_scan;
    unsigned ninterim;  /* 1xx responses seen from the upstream */
    int status;         /* as logged */
    const char *reason; /* a fixed sentence for the access log: why portico answered or cut */
    uint64_t start_us;
    /* The request body's clock for limits.body_min_rate (loop ms): time
     * the upstream was not taking bytes is not the client's. */
    uint64_t body_start_ms, body_paused_ms, body_paused_at;
    uint64_t body_read; /* bytes read from the client since body_start_ms */
    uint64_t bytes_in, bytes_out;
    char method[24];
    /* The target as logged (query redacted, cut at LIMIT_LOG_PATH_BYTES):
     * path_inline, or an allocation of its length for a longer one. */
    char *path;
    size_t path_len;
    /* Forward auth. */
    const struct config_auth *auth; /* the provider asked; NULL when none */
    struct buf *authreq;            /* the subrequest head; owned */
    size_t authreq_len, authreq_off;
    size_t auth_scan, auth_head_len;
    bool auth_retried;
    uint64_t auth_start_us;
    /* The tailnet backend only: the caller's tailnet address tailscaled
     * forwarded; "" elsewhere (see ex_client). */
    char client[48];
    struct whois_waiter whois_wait; /* EX_IDENTITY: on the worker's whois cache */
    /* Everything above is zeroed for each exchange; what follows is
     * written before it is read. */
    struct http_request req;
    struct http_response resp;
    char path_inline[EX_PATH_INLINE];
    char host[LIMIT_HOST_LEN + 8]; /* the Host the client sent, for rewritten redirects */
    size_t host_len;
    char pp[PROXYPROTO_OUT_MAX]; /* PROXY header opening a fresh upstream connection */
    size_t pp_len;
    int auth_port;  /* port in the Host header, 0 if none */
    char user[128]; /* who the provider said the client is; "" if none */
    /* Who the tailnet caller is (tailnet.c): IDENTITY_NONE off the tailnet
     * backend, for a failed whois, or for an unknown caller. Near the end,
     * as its 9 KiB store and lists are written only for a tailnet caller:
     * the pages of an exchange that a plain request never touches stay out
     * of RSS. */
    struct identity id;
    /* Written only by forward auth and portico's own answers: after the
     * identity's untouched store, so a plain request leaves them out of RSS
     * with it. */
    char auth_host[LIMIT_HOST_LEN + 8]; /* normalised Host, for the provider */
    unsigned char auth_digest[32];      /* decision cache key */
    /* portico's own one-line answer, copied: reason points here when the
     * sentence was built for this request (which rule refused it). */
    char reason_buf[LIMIT_LOG_REASON_BYTES];
};

/* What a call that may end the exchange did. EX_ENDED: the exchange is
 * released (logged, its upstream pooled or closed, c->ex cleared; the
 * client connection may be closed too) and ex must not be touched again. */
enum ex_result { EX_CONTINUE, EX_ENDED };

/* A new exchange on c, holding a reference to the worker's configuration
 * (the connection records it as its c->ex). NULL when out of memory. */
struct exchange *proxy_new(struct conn *c);

/* Route and forward the request parsed into ex->req, whose head starts
 * c->s.in. */
enum ex_result proxy_start(struct exchange *ex);

/* Readiness changed on either side: make all the progress possible. */
enum ex_result proxy_run(struct exchange *ex);

/* The exchange's idle timer fired. */
enum ex_result proxy_timeout(struct exchange *ex);

/* If ex is an upgraded tunnel, close both sides now, log it, and return
 * true (the exchange and the connection are gone); else false. */
bool proxy_close_tunnel(struct exchange *ex);

/* Abort at once: close the upstream side; the caller closes the client. */
void proxy_abort(struct exchange *ex);

/* Return everything the exchange holds (upstream, buffers, configuration
 * reference). Ends the exchange; the connection forgets it in the
 * conn_exchange_done or conn_close that follows (conn_close releases an
 * exchange still on it itself). */
void proxy_release(struct exchange *ex);

/* Let go of a worker's LocalAPI client and whois cache (tailnet.c), once
 * its connections are closed. */
struct worker;
void tailnet_worker_free(struct worker *w);
/* The worker's whois cache for the snapshot's LocalAPI socket, made on
 * first use (a reload that names another socket starts a new one); NULL
 * when it cannot be made (logged). Shared by HTTP exchanges on the backend
 * listener and the TCP forwarders with an allow list (tcp.c). */
struct config_tailscale;
struct whois_cache *tailnet_whois_cache(struct worker *w, const struct config_tailscale *ts);

/* The name of a state, for logs and tests. */
const char *proxy_state_name(enum exchange_state st);

/* Whether this build poisons released exchanges (ASan builds, and builds
 * with -DPORTICO_DEBUG). */
bool proxy_poisons_released(void);

/* Answer from portico itself (404, 400, ...) with a one-line body. */
enum ex_result proxy_respond_local(struct exchange *ex, int status, const char *body, bool close);

#endif
