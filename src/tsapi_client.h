/* tsapi_client.h - defining portico's services in the tailnet through the
 * Tailscale control API (tailscale.api in the configuration), so that no
 * admin-console click is needed.
 *
 * Blocking: each call connects (or reuses its kept-alive connection), over
 * TLS verified against tailscale.api.ca_file or the system's CAs with the
 * host name checked, and waits up to TIMEOUT_TSAPI_MS. `portico tailscale
 * apply` and `plan` use it as it is; the daemon must call it off its event
 * loops (a thread of its own), never from a worker. The process must
 * ignore SIGPIPE (both do): a kept-alive connection the API closed then
 * fails a write, and the request is tried once more on a new one.
 *
 * The OAuth access token comes from the client-credentials grant
 * (tsapi.h) and is kept until shortly before it expires, for every call
 * made with the same client; the secret is read from its file for each
 * token request and wiped after it, and never appears in a message. */
#ifndef PORTICO_TSAPI_CLIENT_H
#define PORTICO_TSAPI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "tsapi.h"

struct config_tailscale_api;
struct strbuf;
struct tsapi_client;

/* A client for api (copied: the configuration may go after this). NULL
 * with a sentence in err (the CA file cannot be loaded, out of memory). */
struct tsapi_client *tsapi_client_new(const struct config_tailscale_api *api, char *err,
                                      size_t errlen);
void tsapi_client_free(struct tsapi_client *c);

/* Tokens requested so far (for tests and logs). */
unsigned tsapi_client_tokens(const struct tsapi_client *c);

/* Give up any wait at once when fd becomes readable (the daemon stopping
 * while a request hangs); -1: none. The call then fails. */
void tsapi_client_set_cancel(struct tsapi_client *c, int fd);

/* The status of the last answer, 0 when the last request got none. */
int tsapi_client_last_status(const struct tsapi_client *c);

/* Requests by outcome, for portico_tailscale_api_calls_total. */
enum tsapi_call_result {
    TSAPI_CALL_OK,           /* 2xx */
    TSAPI_CALL_NOT_FOUND,    /* 404: a definition not made yet, or a wrong tailnet */
    TSAPI_CALL_UNAUTHORIZED, /* 401 */
    TSAPI_CALL_FORBIDDEN,    /* 403 */
    TSAPI_CALL_RATE_LIMITED, /* 429 */
    TSAPI_CALL_HTTP_ERROR,   /* any other status */
    TSAPI_CALL_FAILED,       /* no answer: unreachable, TLS, timed out */
    TSAPI_CALL_RESULTS
};

/* Add the requests counted since the last call to out, and start again. */
void tsapi_client_take_calls(struct tsapi_client *c, unsigned long out[TSAPI_CALL_RESULTS]);

struct tsapi_counts {
    size_t created, updated, unchanged;
};

/* Make each wanted definition exist with its ports and tags: GET it; absent
 * (404): PUT a new one; different: PUT it back with its addrs and every
 * other field as read; equal: nothing. dry_run: only GET. A line per
 * change goes to plan ("+ define svc:x  ports [tcp:443] tags [tag:a]",
 * "~ define svc:x  tags [tag:a] -> [tag:b]"); the counts say what was (or
 * would be) done. Definitions of services not in wants are never touched.
 * 0, or -1 with a sentence in err (at the first failure: the definitions
 * before it are done). */
int tsapi_define_services(struct tsapi_client *c, const struct tsapi_want *wants, size_t n,
                          bool dry_run, struct strbuf *plan, struct tsapi_counts *counts, char *err,
                          size_t errlen);

#endif
