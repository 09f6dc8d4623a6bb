/* rfc2047.h - RFC 2047 encoded-words, as tailscaled writes them in its
 * identity headers and as Go's mime package reads them.
 *
 * tailscaled (ipn/ipnlocal/serve.go, encTailscaleHeaderValue, read at
 * tailscale/tailscale de9ec7ee2562, v1.103.0; present since v1.64.0) sends
 * Tailscale-User-Login, Tailscale-User-Name and Tailscale-App-Capabilities
 * as mime.QEncoding.Encode("utf-8", v): printable ASCII unchanged, anything
 * else as "=?utf-8?q?...?=" words of at most 75 bytes separated by one
 * space. Go's mime package (src/mime/encodedword.go, read at golang/go
 * 07fc52e4216c) is the reference for both directions here.
 *
 * Pure functions over a buffer, no allocation. Every output is
 * NUL-terminated (cap counts the NUL) and, when a function succeeds, is
 * valid UTF-8 without control characters (C0, DEL, C1): a decoded value can
 * go into a header line or a log line as it is. */
#ifndef PORTICO_RFC2047_H
#define PORTICO_RFC2047_H

#include <stddef.h>

#define RFC2047_ERR_SPACE    (-1) /* out is too small */
#define RFC2047_ERR_CHARSET  (-2) /* a word in a charset other than utf-8, iso-8859-1, us-ascii */
#define RFC2047_ERR_UTF8     (-3) /* the result is not valid UTF-8 */
#define RFC2047_ERR_CONTROL  (-4) /* the result has a control character (CR, LF, NUL, ...) */
#define RFC2047_ERR_ENCODING (-5) /* not a value mime.QEncoding.Encode("utf-8", v) produces */

/* Room that rfc2047_decode needs for len input bytes (NUL included): a
 * us-ascii byte above 0x7f becomes U+FFFD, 3 bytes for 4/3 of a B byte. */
#define RFC2047_DECODED_MAX(len) (3 * (size_t)(len) + 1)
/* Room that rfc2047_encode_q needs (NUL included): 3 bytes a byte plus 13
 * bytes of "=?utf-8?q?", "?=" and a space for every 52 or more bytes. */
#define RFC2047_ENCODED_MAX(len) (4 * (size_t)(len) + 16)

/* Go's (*mime.WordDecoder).DecodeHeader with its default charsets: every
 * encoded-word (=?charset?Q|B?text?=) is decoded; white space between two
 * decoded words is dropped; a word that does not decode is kept as it is;
 * utf-8, iso-8859-1 and us-ascii (compared as Go's strings.EqualFold does)
 * are known and any other charset is an error, as in Go. Unlike Go, the
 * result must be valid UTF-8 without control characters. Returns the
 * length written to out, or a negative RFC2047_ERR_*. Linear in len. */
long rfc2047_decode(const char *in, size_t len, char *out, size_t cap);

/* mime.QEncoding.Encode("utf-8", s) byte for byte (bytes that are not
 * UTF-8 are encoded one by one, as Go does). Returns the length written, or
 * RFC2047_ERR_SPACE. */
long rfc2047_encode_q(const char *in, size_t len, char *out, size_t cap);

/* Read a header value that tailscaled wrote with encTailscaleHeaderValue:
 * the exact inverse of rfc2047_encode_q. Encoded words are decoded only
 * when the value is exactly what the encoder gives for the result (lower
 * case "utf-8?q", words split where it splits them, and a result that
 * needed encoding); any other printable ASCII value is what the encoder
 * leaves alone, so it is taken literally: a login that merely contains
 * "=?" cannot turn into another login by decoding. A raw byte above 0x7f
 * is RFC2047_ERR_ENCODING (tailscaled encodes those), a control character,
 * raw or encoded, RFC2047_ERR_CONTROL, and encoded bytes that are not
 * UTF-8 RFC2047_ERR_UTF8. */
long rfc2047_decode_tailscale(const char *in, size_t len, char *out, size_t cap);

/* 0 if s is valid UTF-8 (as Go's utf8.Valid: no overlong forms, surrogates
 * or code points above U+10FFFF) without control characters (U+0000 to
 * U+001F, U+007F, U+0080 to U+009F); else RFC2047_ERR_UTF8 or _CONTROL. */
int rfc2047_check_text(const char *s, size_t len);

/* A sentence for a negative result of the functions above. */
const char *rfc2047_strerror(long err);

#endif
