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
#include "proxyproto.h"

struct conn;
struct upconn;
struct config;
struct config_service;
struct config_upstream;
struct config_route;
struct config_auth;
struct buf;

enum exchange_phase {
    EX_CONNECTING, /* upstream connect in progress */
    EX_SENDING,    /* request going upstream; response may already be coming */
    EX_TUNNEL,     /* after 101: bytes both ways until both sides close */
    EX_LOCAL,      /* portico's own answer is being written */
    EX_AUTH,       /* asking the auth provider (ex->u is the provider connection) */
};

struct exchange {
    struct conn *c;
    struct upconn *u;
    struct config *cfg; /* reference held for the exchange's lifetime */
    const struct config_service *svc;
    const struct config_upstream *up;
    const struct config_route *route; /* the path route taken; NULL: the service's upstream */
    struct exchange *next_free;
    enum exchange_phase phase;
    struct buf *reqhead; /* serialised upstream request head, kept for a retry */
    size_t reqhead_len;
    struct flow rq, rs;   /* to upstream, to client */
    struct body rqb, rsb; /* request body, response body */
    bool req_sent;        /* head and whole body written upstream */
    bool resp_head_done;  /* final response head parsed */
    bool resp_started;    /* a response byte reached the client (no retry, no error page) */
    bool upstream_spoke;  /* a response byte arrived from the upstream */
    bool retried;
    bool upgrade; /* an allowed Upgrade went upstream: a 101 may open a tunnel */
    /* A Content-Length body to a plain client moves upstream -> pipe ->
     * client with splice(2); pipe[0] < 0 until then. */
    int pipe[2];
    size_t piped;                      /* bytes in the pipe */
    size_t pipe_cap;                   /* its capacity */
    bool close_client;                 /* the client connection closes after this response */
    bool tunnel_c_eof, tunnel_u_eof;   /* tunnel: each side's EOF seen */
    bool tunnel_c_shut, tunnel_u_shut; /* ... and passed on with shutdown() */
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
    size_t path_len;
    /* Forward auth. */
    const struct config_auth *auth; /* the provider asked; NULL when none */
    struct buf *authreq;            /* the subrequest head; owned */
    size_t authreq_len, authreq_off;
    size_t auth_scan, auth_head_len;
    bool auth_retried;
    uint64_t auth_start_us;
    /* Everything above is zeroed for each exchange; what follows is
     * written before it is read. */
    struct http_request req;
    struct http_response resp;
    char path[LIMIT_LOG_PATH_BYTES]; /* the target as logged (query redacted) */
    char host[LIMIT_HOST_LEN + 8];   /* the Host the client sent, for rewritten redirects */
    size_t host_len;
    char pp[PROXYPROTO_OUT_MAX]; /* PROXY header opening a fresh upstream connection */
    size_t pp_len;
    char auth_host[LIMIT_HOST_LEN + 8]; /* normalised Host, for the provider */
    int auth_port;                      /* port in the Host header, 0 if none */
    unsigned char auth_digest[32];      /* decision cache key */
    char user[128];                     /* who the provider said the client is; "" if none */
    /* portico's own one-line answer, copied: reason points here when the
     * sentence was built for this request (which rule refused it). */
    char reason_buf[LIMIT_LOG_REASON_BYTES];
};

/* A new exchange on c, holding a reference to the worker's configuration.
 * NULL when out of memory. */
struct exchange *proxy_new(struct conn *c);

/* Route and forward the request parsed into ex->req, whose head starts
 * c->in. */
void proxy_start(struct exchange *ex);

/* Readiness changed on either side: make all the progress possible. */
void proxy_run(struct exchange *ex);

/* The exchange's idle timer fired. */
void proxy_timeout(struct exchange *ex);

/* If ex is an upgraded tunnel, close both sides now, log it, and return
 * true (the connection is gone); else false. */
bool proxy_close_tunnel(struct exchange *ex);

/* Abort at once: close the upstream side; the caller closes the client. */
void proxy_abort(struct exchange *ex);

/* Return everything the exchange holds (upstream, buffers, configuration
 * reference) and detach it from its connection. */
void proxy_release(struct exchange *ex);

/* Answer from portico itself (404, 400, ...) with a one-line body. */
void proxy_respond_local(struct exchange *ex, int status, const char *body, bool close);

#endif
