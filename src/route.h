/* route.h - from a Host header and a path to a service and its upstream.
 *
 * Host lookup is one hash probe per label suffix: exact names first, then
 * "*.suffix" wildcards from the most specific suffix to the least, so its
 * cost depends on the length of the name, never on the number of services. */
#ifndef PORTICO_ROUTE_H
#define PORTICO_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "http1.h"
#include "limits.h"

struct config_service;
struct config_route;
struct config_upstream;
struct config_auth;
struct route_table;

struct route_table *route_table_new(size_t expected);
void route_table_free(struct route_table *t);

/* Add a normalised host name ("a.example.com" or "*.example.com").
 * Returns 0, -EEXIST if the name is already present (*prev set to its
 * value), or -ENOMEM. The table does not copy name: it must outlive t. */
int route_table_add(struct route_table *t, const char *name, void *value, void **prev);

/* Look up a normalised host name. Returns the value or NULL. */
void *route_table_lookup(const struct route_table *t, const char *host, size_t len);

/* The most slots any lookup in t compares: the longest run of occupied
 * slots, plus the empty one that ends a miss. A measure of the table's
 * worst case for tests and benchmarks; it stays small however many names
 * there are (open addressing, at most half full). */
size_t route_table_worst_probe(const struct route_table *t);

/* Normalise a Host header value (or the authority of an absolute URI):
 * lower-case, port removed, one trailing dot removed. IPv6 literals keep
 * their brackets. Returns the length written to out (NUL-terminated), or -1
 * if the value is not a valid host. out must hold cap >= 256 bytes. */
int route_host_normalize(const char *in, size_t len, char *out, size_t cap);

/* Validate a host name as written in the configuration (already lower-case,
 * optionally starting with "*."). */
bool route_host_valid(const char *name);

/* Normalise a request path (the part before '?') per RFC 3986 6.2.2:
 * decode percent-encoded unreserved characters, upper-case the remaining
 * percent-encodings, resolve "." and ".." segments and merge repeated
 * slashes. Returns the length written (NUL-terminated), or -1 if the path
 * is malformed (bad percent-encoding, a NUL or control byte, ".." above the
 * root, or does not start with '/'), or if it does not fit in cap. */
int route_path_normalize(const char *in, size_t len, char *out, size_t cap);

/* How an origin may read a path, beyond RFC 3986 normalisation (which
 * every reading does: unreserved characters decoded, dot-segments resolved,
 * empty segments merged). */
#define ROUTE_READ_DECODE     0x1 /* decode every %XX first: %2F is a '/' (Python, Go) */
#define ROUTE_READ_PARAMS     0x2 /* ";..." to the next '/' is dropped (Jetty, Spring) */
#define ROUTE_READ_PARAMS_RAW 0x4 /* the same, taken off before decoding (Tomcat) */
#define ROUTE_READ_BACKSLASH  0x8 /* '\' is a '/' (IIS, many Windows servers) */

/* Read a raw request path (before '?') the way how says, resolving
 * dot-segments; ".." at the root stays at the root, as such origins do.
 * Writes "/a/b" ("/a/b/" for a directory) and returns its length, or -1
 * for bad percent-encoding or when it does not fit in cap. */
int route_path_read(const char *in, size_t len, unsigned how, char *out, size_t cap);

/* True if some origin may read the path differently from
 * route_path_normalize: it has a ';', a '\\' or an encoded '/', '\\' or ';'. */
bool route_path_ambiguous(const char *in, size_t len);

/* Pick the route for a normalised path: the longest matching prefix among
 * the service's routes, or NULL when the service upstream ("/") applies. */
const struct config_route *route_match(const struct config_service *svc, const char *path,
                                       size_t len);

/* What routing needs from a request head. */
struct route_request {
    struct http_slice host;  /* the Host header as sent; len 0 when absent */
    struct http_slice path;  /* the path as sent, before '?' */
    struct http_slice query; /* after '?'; len 0 when none */
    /* The tailnet backend listener: a host no service names whose first
     * label is a service's name ("grafana.tail1234.ts.net", the name
     * tailscaled published) goes to that service; NULL elsewhere. */
    const struct route_table *by_name;
};

/* The first check a request failed in route_resolve, in the order they are
 * made; each later check needs the earlier ones to have passed. */
enum route_outcome {
    ROUTE_OK,
    ROUTE_BAD_HOST,   /* the Host header is not a valid host */
    ROUTE_NO_SERVICE, /* no HTTP service has this name (or no Host) */
    ROUTE_BAD_PATH,   /* the path cannot be normalised */
    ROUTE_AMBIGUOUS,  /* a server may read the path out of its auth_skip or route prefix */
};

/* Where a request goes and what it looks like there. Large (it holds the
 * normalised path and the rewritten target): keep one per thread. */
struct route_result {
    char host[LIMIT_HOST_LEN + 8];          /* normalised Host, NUL-terminated */
    int host_len;                           /* 0: no Host header; valid from ROUTE_NO_SERVICE on */
    const struct config_service *svc;       /* valid from ROUTE_BAD_PATH on */
    const struct config_route *route;       /* the path route; NULL: the service's upstream */
    const struct config_upstream *up;       /* valid from ROUTE_AMBIGUOUS on */
    const struct config_auth *auth;         /* the provider to ask; NULL: none, or auth_skip */
    char npath[LIMIT_HEADER_BYTES_MAX + 2]; /* normalised path */
    size_t npath_len;
    /* The target sent upstream when the route strips its prefix (len 0:
     * the client's target goes as it is), and the prefix taken off it,
     * without its trailing '/'. */
    char target_buf[LIMIT_HEADER_BYTES_MAX + 8];
    struct http_slice target, prefix;
};

/* Route a request head: normalise its Host, find the service (names that
 * are TLS passthrough only have none for HTTP), normalise the path, pick
 * the route, its upstream and whether forward auth applies, and build the
 * target without a stripped prefix. Reads only the configuration. */
enum route_outcome route_resolve(const struct route_table *t, const struct route_request *rq,
                                 struct route_result *res);

#endif
