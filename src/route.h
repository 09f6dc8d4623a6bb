/* route.h - from a Host header and a path to a service and its upstream.
 *
 * Host lookup is one hash probe per label suffix: exact names first, then
 * "*.suffix" wildcards from the most specific suffix to the least, so its
 * cost depends on the length of the name, never on the number of services. */
#ifndef PORTICO_ROUTE_H
#define PORTICO_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

struct config_service;
struct config_route;
struct config_upstream;
struct route_table;

struct route_table *route_table_new(size_t expected);
void route_table_free(struct route_table *t);

/* Add a normalised host name ("a.example.com" or "*.example.com").
 * Returns 0, -EEXIST if the name is already present (*prev set to its
 * value), or -ENOMEM. The table does not copy name: it must outlive t. */
int route_table_add(struct route_table *t, const char *name, void *value, void **prev);

/* Look up a normalised host name. Returns the value or NULL. */
void *route_table_lookup(const struct route_table *t, const char *host, size_t len);

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

#endif
