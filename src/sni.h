/* sni.h - read the server name from a TLS ClientHello without terminating
 * TLS (for SNI passthrough).
 *
 * A pure parser over the bytes received so far: the caller peeks at the
 * socket, calls sni_parse on everything it has, and calls again with more
 * bytes while the answer is SNI_MORE. The ClientHello may be split across
 * several TLS records and any number of TCP segments. Anything that is not
 * a well-formed ClientHello of at most LIMIT_CLIENT_HELLO_BYTES is refused. */
#ifndef PORTICO_SNI_H
#define PORTICO_SNI_H

#include <stddef.h>
#include <stdint.h>

enum sni_result {
    SNI_BAD = -1, /* not TLS, malformed, or larger than the limit */
    SNI_MORE = 0, /* a valid beginning: more bytes are needed */
    SNI_NONE = 1, /* a complete ClientHello without a server name */
    SNI_FOUND = 2 /* name holds the server name, lower-case, without a trailing dot */
};

/* The bytes needed at most to see a whole ClientHello of the maximum size
 * (its records' headers included); more than this still SNI_MORE is SNI_BAD. */
size_t sni_peek_max(void);

/* name must hold at least 256 bytes. */
enum sni_result sni_parse(const uint8_t *p, size_t n, char *name, size_t cap);

#endif
