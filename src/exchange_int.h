/* exchange_int.h - what the files of the exchange share among themselves
 * (exchange.c, exstate.c, h1client.c, authreq.c, tunnel.c, respond.c);
 * proxy.h is what the rest of portico sees.
 *
 * Every call that may end the exchange says so in what it returns (enum
 * ex_result, or PUMP_GONE from a pump), and the compiler insists the
 * caller looks: after EX_ENDED ex is released, and debug and ASan builds
 * have poisoned it. */
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

/* A call whose result must be looked at: it may have ended the exchange. */
#define EX_MUST_USE __attribute__((warn_unused_result))

/* What a pump achieved: nothing to do; bytes moved; the exchange took
 * another course inside the call (portico's own answer, a retry on a new
 * connection), so the pumping stops and its caller returns; or the
 * exchange ended (ex is gone). */
enum pump { PUMP_IDLE, PUMP_PROGRESS, PUMP_STOP, PUMP_GONE };

static inline bool pump_stopped(enum pump p)
{
    return p == PUMP_STOP || p == PUMP_GONE;
}

/* A pump's result after a call that may end the exchange. */
static inline enum pump ex_pump_result(enum ex_result r)
{
    return r == EX_ENDED ? PUMP_GONE : PUMP_STOP;
}

/* The exchange's result after a pump that stopped. */
static inline enum ex_result pump_ex_result(enum pump p)
{
    return p == PUMP_GONE ? EX_ENDED : EX_CONTINUE;
}

/* Whether the final response head is in (parsed, or portico's own). */
static inline bool ex_resp_head_done(const struct exchange *ex)
{
    return ex->state == EX_STREAMING || ex->state == EX_RESPONDING || ex->state == EX_LOCAL ||
           ex->state == EX_TUNNEL;
}

/* Who the client is, for logs and X-Forwarded-For: the tailnet caller's
 * address on the tailnet backend (from tailscaled), else the connection's. */
static inline const char *ex_client(const struct exchange *ex)
{
    return ex->client[0] ? ex->client : conn_addr(ex->c);
}

static inline struct worker *ex_worker(const struct exchange *ex)
{
    return conn_worker(ex->c);
}

/* ---- exchange.c ---- */

uint64_t ex_now_us(void);

/* Bytes moved: the idle clock restarts. */
void ex_touch(struct exchange *ex);

/* Write what the flow holds to a socket (the client's or an upstream's).
 * 1: all written; 0: would block; -errno. */
int sink_write(struct sock *to, struct flow *f, uint64_t *wrote);

/* u becomes the exchange's upstream connection: its events run the
 * exchange. */
void ex_attach_upstream(struct exchange *ex, struct upconn *u);

void ex_log_and_count(struct exchange *ex);

/* The response is complete: pool the upstream, log, hand the client back.
 * Ends the exchange. */
EX_MUST_USE enum ex_result ex_finish(struct exchange *ex);

/* Cut the client connection (see exchange.c). Ends the exchange. */
EX_MUST_USE enum ex_result ex_fail_hard(struct exchange *ex, int status_if_unsent, const char *why);

/* Make all the progress possible (proxy_run for the exchange's own files). */
EX_MUST_USE enum ex_result ex_run(struct exchange *ex);

/* The request may go upstream (after forward auth, if any). */
EX_MUST_USE enum ex_result ex_proceed(struct exchange *ex);

/* Routing found the service (rt): the identity rules, the upstream
 * request head, then forward auth or the upstream. The head is still in
 * the client's buffer. May end the exchange. */
struct route_result;
EX_MUST_USE enum ex_result ex_routed(struct exchange *ex, const struct route_result *rt);

/* ---- tailnet.c: the tailnet identity step ---- */

/* Once routed: who the caller is. On the tailnet backend from tailscaled's
 * headers and, when needed, a whois answer; on an ordinary listener, for a
 * client at a tailnet address (conn_peer_tailnet) with a tailscale section,
 * from whois; nobody elsewhere. True: ex->id is final; false: the exchange
 * waits in EX_IDENTITY and goes on by itself (ex_routed). */
bool tailnet_identify(struct exchange *ex);

/* EX_IDENTITY timed out: go on without identity. May end the exchange. */
EX_MUST_USE enum ex_result tailnet_timeout(struct exchange *ex);

/* The identity headers for the upstream (tailscaled's, and tsnsrv's with
 * identity_headers): 0 or more entries in out. */
void tailnet_headers(const struct exchange *ex, struct identity_headers *out);

/* ---- exstate.c: states and timeouts ---- */

/* Move ex to state st and arm its timer for what st waits on (a state that
 * waits on nothing leaves the timer as it is). The only writer of
 * ex->state after proxy_new. */
void ex_set_state(struct exchange *ex, enum exchange_state st);

/* Arm the exchange's timer again for what it waits on now, within its
 * state (the client stopped reading, say). */
void ex_arm_timer(struct exchange *ex);

/* Waiting for request body bytes: fire by the time a body rule breaks. */
void ex_arm_body_timer(struct exchange *ex);

/* ---- h1client.c: the upstream side of HTTP/1 ---- */

/* Read from an upstream into its buffer. Bytes read, 0 on EAGAIN (or no
 * room), -1 on EOF or error. */
long h1client_read(struct upconn *u, bool may_compact);

/* Take an upstream connection (an idle pooled one if allow_idle) and send
 * the request once it is connected. May end the exchange. */
EX_MUST_USE enum ex_result h1client_connect(struct exchange *ex, bool allow_idle);

/* The upstream is connected: send the request head and body. */
EX_MUST_USE enum ex_result h1client_start(struct exchange *ex);

/* The upstream could not be reached (err: negative errno): 502. */
EX_MUST_USE enum ex_result h1client_connect_failed(struct exchange *ex, int err);

/* The TLS handshake with an https upstream failed: 502. */
EX_MUST_USE enum ex_result h1client_tls_failed(struct exchange *ex, const char *why);

/* The upstream broke its response body: 502 or a cut connection. */
EX_MUST_USE enum ex_result h1client_bad_body(struct exchange *ex, const char *what);

/* The upstream went away in the middle of a response body. */
EX_MUST_USE enum ex_result h1client_body_cut(struct exchange *ex);

EX_MUST_USE enum pump h1client_pump_request(struct exchange *ex);
EX_MUST_USE enum pump h1client_pump_response(struct exchange *ex);

/* ---- tunnel.c: the 101 tunnel ---- */

/* After a 101: bytes both ways until both sides close. May end the exchange. */
EX_MUST_USE enum ex_result tunnel_run(struct exchange *ex);

/* ---- authreq.c: the forward-auth subrequest ---- */

/* Build the subrequest while the client's head is still in its buffer. */
int authreq_prepare(struct exchange *ex, const struct config_auth *a, const char *host,
                    const struct http_request *req);

/* Ask the provider (or the decision cache). May end the exchange. */
EX_MUST_USE enum ex_result authreq_begin(struct exchange *ex);

/* Readiness on the provider connection. May end the exchange. */
EX_MUST_USE enum ex_result authreq_pump(struct exchange *ex);

/* The provider failed: fail closed. Ends the exchange's forwarding. */
EX_MUST_USE enum ex_result authreq_error(struct exchange *ex, int status, const char *why);

/* ---- respond.c: portico's own answers ---- */

/* portico's own answer: status, a one-line body, and extra header lines
 * ("Name: value\r\n"..., or NULL). May end the exchange. */
EX_MUST_USE enum ex_result respond_local(struct exchange *ex, int status, const char *body,
                                         bool close, const char *extra);

/* Send b (given to the exchange), len bytes of a whole response, as the
 * exchange's answer. */
EX_MUST_USE enum ex_result respond_send(struct exchange *ex, struct buf *b, size_t len);

/* respond_local without extra header lines. */
EX_MUST_USE enum ex_result ex_respond(struct exchange *ex, int status, const char *body,
                                      bool close);

/* A plain-HTTP listener with redirect_https: the same name and target over
 * https. May end the exchange. */
EX_MUST_USE enum ex_result respond_https_redirect(struct exchange *ex, const char *host,
                                                  size_t hlen);

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
