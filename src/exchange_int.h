/* exchange_int.h - what the files of the exchange share among themselves
 * (exchange.c, h1client.c, authreq.c, tunnel.c, respond.c); proxy.h is
 * what the rest of portico sees.
 *
 * A call that may end the exchange (answer, fail, finish) leaves ex freed
 * or recycled: its caller returns at once and touches ex no more. */
#ifndef PORTICO_EXCHANGE_INT_H
#define PORTICO_EXCHANGE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "limits.h"
#include "proxy.h"

struct upconn;
struct redirect_rewrite;

/* What a pump achieved: nothing to do, bytes moved, or the exchange ended
 * (ex is gone). */
enum pump { PUMP_IDLE, PUMP_PROGRESS, PUMP_GONE };

static inline struct worker *ex_worker(const struct exchange *ex)
{
    return ex->c->w;
}

/* ---- exchange.c ---- */

uint64_t ex_now_us(void);

/* Bytes moved: the idle clock restarts. */
void ex_touch(struct exchange *ex);

/* A peer a flow is written to: the client or an upstream connection. */
struct sink {
    struct conn *c;
    struct upconn *u;
};

/* Write what the flow holds. 1: all written; 0: would block; -errno. */
int sink_write(struct sink to, struct flow *f, uint64_t *wrote);

void ex_log_and_count(struct exchange *ex);

/* The response is complete: pool the upstream, log, hand the client back.
 * Ends the exchange. */
void ex_finish(struct exchange *ex);

/* Cut the client connection (see exchange.c). Ends the exchange. */
void ex_fail_hard(struct exchange *ex, int status_if_unsent, const char *why);

/* The request may go upstream (after forward auth, if any). */
void ex_proceed(struct exchange *ex);

/* Arm the exchange's timer for what it waits on now. */
void ex_arm_timer(struct exchange *ex);

/* Waiting for request body bytes: fire by the time a body rule breaks. */
void ex_arm_body_timer(struct exchange *ex);

/* ---- h1client.c: the upstream side of HTTP/1 ---- */

/* Read from an upstream into its buffer. Bytes read, 0 on EAGAIN (or no
 * room), -1 on EOF or error. */
long h1client_read(struct upconn *u, bool may_compact);

/* Take an upstream connection (an idle pooled one if allow_idle) and send
 * the request once it is connected. May end the exchange. */
void h1client_connect(struct exchange *ex, bool allow_idle);

/* The upstream is connected: send the request head and body. */
void h1client_start(struct exchange *ex);

/* The upstream could not be reached (err: negative errno): 502. */
void h1client_connect_failed(struct exchange *ex, int err);

/* The TLS handshake with an https upstream failed: 502. */
void h1client_tls_failed(struct exchange *ex, const char *why);

/* The upstream broke its response body: 502 or a cut connection. */
void h1client_bad_body(struct exchange *ex, const char *what);

/* The upstream went away in the middle of a response body. */
void h1client_body_cut(struct exchange *ex);

enum pump h1client_pump_request(struct exchange *ex);
enum pump h1client_pump_response(struct exchange *ex);

/* ---- tunnel.c: splice and the 101 tunnel ---- */

/* Whether the rest of the response body can bypass user space. */
bool tunnel_splice_eligible(const struct exchange *ex);

/* Move body bytes upstream -> pipe -> client. */
enum pump tunnel_splice_body(struct exchange *ex);

/* After a 101: bytes both ways until both sides close. May end the exchange. */
void tunnel_run(struct exchange *ex);

/* ---- authreq.c: the forward-auth subrequest ---- */

/* Build the subrequest while the client's head is still in its buffer. */
int authreq_prepare(struct exchange *ex, const struct config_auth *a, const char *host,
                    const struct http_request *req);

/* Ask the provider (or the decision cache). May end the exchange. */
void authreq_begin(struct exchange *ex);

/* Readiness on the provider connection. May end the exchange. */
void authreq_pump(struct exchange *ex);

/* The provider failed: fail closed. Ends the exchange's forwarding. */
void authreq_error(struct exchange *ex, int status, const char *why);

/* ---- respond.c: portico's own answers ---- */

/* portico's own answer: status, a one-line body, and extra header lines
 * ("Name: value\r\n"..., or NULL). May end the exchange. */
void respond_local(struct exchange *ex, int status, const char *body, bool close,
                   const char *extra);

/* A plain-HTTP listener with redirect_https: the same name and target over
 * https. May end the exchange. */
void respond_https_redirect(struct exchange *ex, const char *host, size_t hlen);

/* The addresses an app may put in an absolute redirect that the client
 * cannot reach: its upstream's own origin (with and without a default
 * port) and the Host portico sent it in place of the client's. */
struct redirect_origins {
    char buf[4][LIMIT_HOST_LEN + 24];
    const char *from[4];
};

void respond_redirect_origins(const struct exchange *ex, struct redirect_origins *ro,
                              struct redirect_rewrite *rr);

#endif
