/* conn.h - a client connection: reading request heads, keep-alive,
 * pipelining, answers portico gives itself, and closing politely.
 *
 * A connection runs at most one exchange (request and response) at a time;
 * pipelined requests wait in its input buffer until the exchange before
 * them has answered. */
#ifndef PORTICO_CONN_H
#define PORTICO_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "loop.h"
#include "sock.h"

struct worker;
struct listener;
struct exchange;
struct config_listen;
struct config_service;
struct config;

/* A connection's states. conn_set_state (conn.c) is the only writer of
 * state after conn_accept, and arms timer for the state it enters (see
 * state_clock there). In every state: w, s.io, tls, strict_sni_host, https,
 * redirect_https, https_port; peer_counted once counted. */
enum conn_state {
    /* Waiting for the PROXY protocol header; nothing read yet. addr, peer
     * and local are the socket's until the header replaces them; peer is
     * not counted yet. s.in and ex are NULL. Waits on header_timeout from
     * accept. */
    CONN_PROXY,
    /* TLS listener with passthrough services: the ClientHello is peeked at,
     * still unread. addr, peer, local final; s.ssl, s.in and ex are NULL.
     * Waits on header_timeout from accept. */
    CONN_SNI,
    /* TLS handshake in progress: s.ssl set, tls_active false; s.in and ex
     * NULL. Waits on header_timeout from accept. */
    CONN_TLS,
    /* Waiting for (the rest of) a request head: s.in holds its bytes (NULL
     * while idle), head_scan how far the end was looked for; ex is NULL.
     * Waits on header_timeout (from accept, or from the head's first
     * byte), or keepalive_timeout between requests. */
    CONN_HEAD,
    /* An exchange owns the connection: ex set; s.in is the request (its
     * body, then any pipelined request); timer is the exchange's
     * (ex_set_state arms it); last_activity moves with every byte. */
    CONN_EXCHANGE,
    /* Write side shut after the last response; input is discarded until
     * EOF. s.in and ex are NULL. Waits on LINGER_MS. */
    CONN_LINGER,
};

/* 10,000 idle keep-alive connections cost 10,000 of these and nothing else
 * (no buffer: see s.in), so fields are ordered to leave no holes and
 * nothing is kept that can be looked up again when needed. */
struct conn {
    /* The client socket: its TLS session on a TLS listener, and client ->
     * portico bytes in s.in (NULL while idle). */
    struct sock s;
    struct worker *w;
    struct conn *prev, *next; /* worker's list */
    /* Reclaiming at max_connections: its neighbours in the worker queue it
     * is in (reclaim, an enum conn_reclaim). */
    struct conn *rprev, *rnext;
    struct exchange *ex;
    uint64_t nrequests;
    uint64_t last_activity; /* loop time of the last byte moved */
    size_t head_scan;
    struct loop_timer timer; /* header, keep-alive, linger, or the exchange's idle timeout */
    struct loop_task task;   /* resume parsing (pipelining) outside the current call */
    /* Accepted on the tcp.listen of this service (proxy_protocol): once the
     * PROXY header is read, the socket goes to its forwarder. forward
     * lives in forward_cfg, a reference held until the connection closes. */
    const struct config_service *forward;
    struct config *forward_cfg;
    /* The address the client connected to as its PROXY header gave it;
     * owned. NULL: the socket's own (conn_local asks the socket). */
    struct sockaddr_storage *proxied_local;
    /* The client's address: from the socket, or from its PROXY header. */
    struct sockaddr_storage peer;
    enum conn_state state;
    int reclaim;
    uint16_t https_port; /* clients use https on this port (0: 443) */
    bool dead;
    bool peer_counted;    /* counted in the server's peer table (key: peer_key_of(peer)) */
    bool closing;         /* close once the current response is written */
    bool tls;             /* accepted on a TLS listener */
    bool strict_sni_host; /* the listener's strict_sni_host: Host must be in the certificate */
    bool https;           /* clients use https here (TLS, or a TLS frontend: listen.scheme) */
    bool handed_off;      /* the socket now belongs to a forwarder (passthrough or tcp:) */
    bool tls_active;      /* handshake done: counted in portico_tls_connections_active */
    bool redirect_https;  /* the listener's redirect_https: every request goes to https:// */
    bool tailnet;         /* the tailscale.backend listener: tailscaled is the peer */
    bool hairpin;         /* a tailscale.hairpin listener: a process on this host */
    bool peer_tailnet;    /* peer may have a tailnet identity (access_peer_tailnet) */
    char addr[INET6_ADDRSTRLEN]; /* client address for logs and X-Forwarded-For */
};

/* Take over an accepted socket (closed on failure), accepted on listener
 * l. l->tls: its ClientHello either names a passthrough service (the
 * socket goes to a forwarder) or starts a TLS session with the
 * certificate for its name. l->proxy_protocol: a PROXY v1/v2 header must come
 * first, and its source address becomes the client's. 0, or -1 when out of
 * memory. */
int conn_accept(struct worker *w, int fd, const struct sockaddr_storage *sa, socklen_t salen,
                const struct config_listen *l);

/* Take over a socket accepted on svc's tcp.listen when it has
 * proxy_protocol: the PROXY header is read as on a listener (CONN_PROXY,
 * header_timeout), then the socket goes to svc's TCP forwarder with the
 * header's addresses. 0, or -1 when out of memory (fd closed). */
int conn_accept_forwarder(struct worker *w, int fd, const struct sockaddr_storage *sa,
                          socklen_t salen, const struct config_service *svc);

/* Called by the exchange when it is done with the connection (it has
 * released itself). keep_alive false closes it (politely if input may be
 * pending). */
void conn_exchange_done(struct conn *c, bool keep_alive);

/* Close now (errors, client gone); an exchange still on it is released. */
void conn_close(struct conn *c);

/* Read what is available into c->s.in. Returns bytes read, 0 on EAGAIN or a
 * full buffer, -1 on EOF or error (c->s.eof is set). */
long conn_read(struct conn *c);

/* Give c->s.in back to the pool if it holds no bytes. */
void conn_release_input(struct conn *c);

/* What draining did to a connection. */
enum conn_drain_result {
    CONN_DRAIN_KEPT,   /* a request is in flight or on its way: answered, then closed */
    CONN_DRAIN_IDLE,   /* an idle keep-alive connection: closed now */
    CONN_DRAIN_TUNNEL, /* an upgraded tunnel (WebSocket, ...): closed now */
};

/* The process is shutting down: no new request on this connection after
 * the current one. Tunnels and idle keep-alive connections close now (a
 * browser reconnects at once, to the process that takes over); a
 * connection that has not sent its first request yet gets
 * LIMIT_DRAIN_FIRST_REQUEST_MS to send it. */
enum conn_drain_result conn_drain(struct conn *c);

/* At max_connections: close the connection of w that costs least to drop
 * (the oldest idle keep-alive one, else the oldest still without a
 * request). false when every connection of w is busy. */
bool conn_reclaim(struct worker *w);
bool conn_reclaimable(const struct worker *w);

/* ---- what an exchange may use of its connection ----
 * The exchange reads the per-connection facts below and moves the
 * connection's clock only through these calls; it never writes a field of
 * struct conn (c->s, the socket, is shared on purpose). */

/* A byte moved: the idle timeouts count from now. */
void conn_touch(struct conn *c);

/* Arm the connection's timer to fire in ms (0: disarm, the limit is off). */
void conn_arm_timer(struct conn *c, uint64_t ms);

/* Make sure the timer fires within ms: arm it unless it is armed to fire
 * sooner already. */
void conn_arm_timer_within(struct conn *c, uint64_t ms);

static inline struct worker *conn_worker(const struct conn *c)
{
    return c->w;
}

/* Loop time of the last byte moved (conn_touch). */
static inline uint64_t conn_last_activity(const struct conn *c)
{
    return c->last_activity;
}

/* Close once the current response is written (the process drains). */
static inline bool conn_closing(const struct conn *c)
{
    return c->closing;
}

/* The client's address as logged and sent in X-Forwarded-For. */
static inline const char *conn_addr(const struct conn *c)
{
    return c->addr;
}

/* The client's address (from the socket, or its PROXY header). */
static inline const struct sockaddr_storage *conn_peer(const struct conn *c)
{
    return &c->peer;
}

/* The address the client connected to, into *out (from its PROXY header,
 * or the socket's; all zero when the socket cannot say). */
void conn_local(const struct conn *c, struct sockaddr_storage *out);

/* Clients use https here (TLS, or a TLS frontend: listen.scheme). */
static inline bool conn_https(const struct conn *c)
{
    return c->https;
}

/* The listener's strict_sni_host: Host must be in the certificate. */
static inline bool conn_strict_sni_host(const struct conn *c)
{
    return c->strict_sni_host;
}

/* The listener's redirect_https: every request goes to https://, on
 * conn_https_port (0: 443). */
static inline bool conn_redirect_https(const struct conn *c)
{
    return c->redirect_https;
}

/* Accepted on the tailscale.backend listener: tailscaled's identity
 * headers and X-Forwarded-Host are trusted here and nowhere else. */
static inline bool conn_tailnet(const struct conn *c)
{
    return c->tailnet;
}

/* An ordinary listener's client at a tailnet address, from the socket
 * (and not this host's own) or from the PROXY header of a listener that
 * expects one: whois may say who it is. Never on the backend or hairpin
 * listeners, whose callers come through tailscaled or this host. */
static inline bool conn_peer_tailnet(const struct conn *c)
{
    return c->peer_tailnet;
}

/* Accepted on a tailscale.hairpin listener: the caller is "local", with
 * no tailnet identity whatever it sends. */
static inline bool conn_hairpin(const struct conn *c)
{
    return c->hairpin;
}

static inline uint16_t conn_https_port(const struct conn *c)
{
    return c->https_port;
}

#endif
