/* headers.h - rewriting message heads as they cross the proxy.
 *
 * Pure functions: a parsed head plus the proxy's decisions in, serialised
 * bytes out. This is where hop-by-hop headers die, where client-sent
 * identity headers are removed before portico adds its own, and where the
 * X-Forwarded-* family is set. Connection tokens sent by a client are
 * applied to the client's own headers only; they can never remove a header
 * portico sets. */
#ifndef PORTICO_HEADERS_H
#define PORTICO_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct config_header;

/* A header portico sets, name and value NUL-terminated. */
struct header_set {
    const char *name;
    const char *value;
};

struct request_rewrite {
    const char *client_addr; /* for X-Forwarded-For and X-Real-IP ("unix:" for Unix peers) */
    /* The client's X-Forwarded-For already ends with client_addr (tailscaled
     * wrote it there, on the tailnet backend): it is not added again. */
    bool forwarded_for_ends_with_client;
    const char *proto; /* "http" or "https": X-Forwarded-Proto */
    /* Host sent to the upstream in place of the client's (a service's
     * "host_header"); len 0: the client's. X-Forwarded-Host, Forwarded and
     * X-Forwarded-Port always describe what the client sent. */
    struct http_slice host;
    /* With a Host override: an Origin that names the origin the client is
     * at (proto://its Host) is sent as this ("scheme://host", the address
     * the app now sees), so an app that checks Origin against Host (Jupyter,
     * Tornado) accepts its own pages' requests and WebSockets. Any other
     * Origin, a cross-site one above all, is sent as it came. len 0: off. */
    struct http_slice origin;
    /* The path prefix a route's strip_prefix removed (no trailing '/'):
     * sent as X-Forwarded-Prefix; len 0: none. */
    struct http_slice prefix;
    /* Request-target to send (origin-form, with query). When len is 0 the
     * client's target is sent, converted to origin-form if absolute. */
    struct http_slice target;
    /* Service "headers:" map: set, replacing any client header of that name. */
    const struct config_header *service_headers;
    size_t nservice_headers;
    /* Further names whose client-sent copies must be removed (for example an
     * auth provider's copy_headers), matched like identity headers. */
    const char *const *strip_names;
    size_t nstrip_names;
    /* Headers portico sets after all removals (identity headers, auth results). */
    const struct header_set *add;
    size_t nadd;
    enum http_body body; /* framing toward the upstream: NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    /* Non-empty: send this Upgrade value (the protocols the service allows
     * among those the client offered) with "Connection: upgrade". */
    struct http_slice upgrade;
    /* Field lines the head may have, counting the ones portico adds, so an
     * upstream with portico's own limits never refuses it; 0 means
     * LIMIT_HEADERS_COUNT. */
    size_t max_fields;
};

#define HEADERS_TOO_LONG (-1) /* the head does not fit in cap */
#define HEADERS_TOO_MANY (-2) /* more field lines than rw->max_fields */

/* Build the request head for the upstream. Returns its length, or
 * HEADERS_TOO_LONG / HEADERS_TOO_MANY. */
long headers_build_request(const struct http_request *req, const struct request_rewrite *rw,
                           char *out, size_t cap);

/* Absolute redirects to an upstream's own address, rewritten to the name
 * and scheme the client used (nginx's "proxy_redirect default"). */
struct redirect_rewrite {
    /* Origins the upstream may redirect to, "scheme://authority" as the app
     * would write them (e.g. "http://127.0.0.1:3000"); compared
     * case-insensitively. */
    const char *const *from;
    size_t nfrom;
    const char *scheme;       /* "http" or "https": what the client used */
    struct http_slice host;   /* the Host the client sent */
    struct http_slice prefix; /* strip_prefix's prefix, put back in front of the path */
};

/* Rewrite one Location value (or the URL of a Refresh value when refresh
 * is true) into out. Returns the new length, 0 when the value does not
 * point at one of rr->from (leave it as it is), or -1 if out is too small. */
long headers_rewrite_redirect(struct http_slice value, bool refresh,
                              const struct redirect_rewrite *rr, char *out, size_t cap);

struct response_rewrite {
    bool close;          /* portico closes the client connection after this response */
    int client_minor;    /* 0 for HTTP/1.0 clients: keep-alive must then be explicit */
    enum http_body body; /* framing toward the client: NONE, LENGTH, CHUNKED or EOF */
    bool upgrade;        /* a 101 to an upgrade: keep Upgrade, send "Connection: upgrade" */
    const struct redirect_rewrite *redirect; /* NULL: Location and Refresh as sent */
};

/* Build the response head for the client: status line "HTTP/1.1 ...",
 * upstream headers minus hop-by-hop ones and minus its framing headers,
 * then portico's framing (Content-Length is kept when body is LENGTH or the
 * response has no body by definition, e.g. HEAD or 304). Returns its
 * length, or -1 if it does not fit. */
long headers_build_response(const struct http_response *resp, const struct response_rewrite *rw,
                            char *out, size_t cap);

/* True if a client-sent header of this name must never reach an upstream
 * as sent: X-Tailscale-*, Tailscale-User-*, Remote-*, compared
 * case-insensitively with '_' and '-' treated as the same character. */
bool headers_is_identity(struct http_slice name);

/* Compare header names case-insensitively with '_' equal to '-'. */
bool headers_name_alias_eq(struct http_slice a, const char *b);

/* Keep, from a client's Upgrade value, the protocols whose name (before
 * any "/version") is in allow, case-insensitively. Writes them to out as
 * "a, b" and returns the length; 0 when none is allowed. */
size_t headers_filter_upgrade(struct http_slice offered, const char *const *allow, size_t nallow,
                              char *out, size_t cap);

/* True if an upstream's 101 Upgrade value names at least one protocol and
 * only protocols in allow. */
bool headers_upgrade_allowed(struct http_slice chosen, const char *const *allow, size_t nallow);

/* True for hop-by-hop header names (Connection, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-Connection). */
bool headers_is_hop_by_hop(struct http_slice name);

/* The reason phrase portico writes in the status lines it composes. */
const char *http_status_reason(int status);

#endif
