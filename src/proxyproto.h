/* proxyproto.h - the PROXY protocol (HAProxy), versions 1 and 2.
 *
 * A proxy in front of portico (tailscaled serve, a load balancer) can tell
 * it the real client address in a header sent before any other byte; a
 * service can ask portico to send one to its upstream. Pure functions over
 * a buffer, no I/O, no allocation. */
#ifndef PORTICO_PROXYPROTO_H
#define PORTICO_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "limits.h"

#define PROXYPROTO_V1_MAX  107                      /* longest v1 line, CRLF included */
#define PROXYPROTO_V2_MAX  LIMIT_PROXY_HEADER_BYTES /* longest v2 header portico accepts */
#define PROXYPROTO_OUT_MAX 108 /* longest header portico sends: v1 (v2 has no TLVs, 52) */

struct proxyproto_result {
    /* LOCAL command (v2) or UNKNOWN protocol (v1): the connection's own
     * addresses stay in force, src/dst are not set. */
    bool local;
    struct sockaddr_storage src, dst;
    socklen_t srclen, dstlen;
};

/* Parse a header at the start of buf. Returns its length when complete,
 * 0 when more bytes are needed, or -1 when buf cannot start a valid header
 * (decided as early as the bytes allow). */
int proxyproto_parse(const char *buf, size_t len, struct proxyproto_result *out);

/* Write a header for a connection from src to dst: TCP4/TCP6 when both are
 * of that family, else UNKNOWN (v1) or LOCAL (v2). Returns its length, or
 * 0 if it does not fit in cap. */
size_t proxyproto_build_v1(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                           char *out, size_t cap);
size_t proxyproto_build_v2(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                           char *out, size_t cap);

#endif
