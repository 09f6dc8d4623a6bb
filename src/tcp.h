/* tcp.h - plain TCP forwarders ("tcp:" on a service).
 *
 * Bytes move both ways through a pipe per direction with splice(2), so they
 * never enter user space. A FIN in one direction is passed on with
 * shutdown(SHUT_WR) and does not cut the other direction; the forwarder
 * closes when both directions have ended, on an error, or when it has been
 * idle for limits.tunnel_timeout. */
#ifndef PORTICO_TCP_H
#define PORTICO_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct worker;
struct config_service;
struct tcp_fwd;

/* Take over a socket accepted on svc's tcp.listen (closed on failure).
 * 0, or -1 when it could not be set up. */
int tcp_accept(struct worker *w, int fd, const struct sockaddr_storage *sa, socklen_t salen,
               const struct config_service *svc);

/* Take over a client connection conn.c accepted for svc: on a TLS listener
 * whose ClientHello named svc, a passthrough service (the ClientHello must
 * still be unread in the socket: it goes to the upstream with everything
 * after it), or on svc's tcp.listen with proxy_protocol once its PROXY
 * header is read (to tcp.upstream). peer and addr are the client's address
 * (after any PROXY header) and local the address it connected to;
 * peer_tailnet: the peer may have a tailnet identity (conn_peer_tailnet). The
 * connection keeps the place it already has in the worker's connection
 * count. 0, or -1 (fd closed) on failure. */
int tcp_handoff(struct worker *w, int fd, const struct sockaddr_storage *peer, const char *addr,
                const struct sockaddr_storage *local, const struct config_service *svc,
                bool peer_tailnet);

/* The worker drains (w->draining is set): close the forwarders that have
 * been silent for LIMIT_DRAIN_TCP_QUIET_MS and return how many; the
 * others close once they are silent that long (or at shutdown_timeout). */
size_t tcp_drain(struct worker *w);

/* Close a forwarder now. */
void tcp_close(struct tcp_fwd *t);
/* Close every forwarder of w (shutdown timeout, worker exit). */
void tcp_close_all(struct worker *w);
/* Free the forwarders closed during this loop iteration. */
void tcp_free_dead(struct worker *w);

#endif
