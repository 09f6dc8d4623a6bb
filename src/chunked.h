/* chunked.h - the chunked transfer coding (RFC 9112 section 7.1), strictly.
 *
 * The decoder is incremental and copies nothing: it reports where the data
 * bytes are inside the caller's buffer, so the proxy can forward them with
 * writev under a framing of its own (re-chunked, or plain for HTTP/1.0
 * clients). Chunk-size lines must end in CRLF, sizes are hexadecimal
 * without sign or whitespace and may not overflow 63 bits, extensions are
 * syntax-checked and dropped, trailers are syntax-checked and dropped. */
#ifndef PORTICO_CHUNKED_H
#define PORTICO_CHUNKED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct chunked_decoder {
    int state;          /* private */
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t line_len;    /* bytes of the current size/trailer line (bounded) */
    size_t trailer_len; /* bytes of the trailer section so far (bounded) */
    unsigned digits;    /* hex digits in the current size */
};

enum chunked_status {
    CHUNKED_ERROR = -1, /* malformed: 400 from a client, 502 from an upstream */
    CHUNKED_MORE = 0,   /* all input consumed (or segs full); feed more */
    CHUNKED_DONE = 1,   /* the last chunk and the trailers are complete */
};

void chunked_decoder_init(struct chunked_decoder *d);

/* Decode from in[0..len). Data segments are appended to segs (pointers into
 * in) until *nsegs reaches maxsegs. *consumed receives the input bytes used.
 * Returns CHUNKED_DONE when the message ended (bytes after it in `in` belong
 * to the next message and are not consumed), CHUNKED_MORE when the input or
 * segs ran out, or CHUNKED_ERROR. */
int chunked_decode(struct chunked_decoder *d, const char *in, size_t len, size_t *consumed,
                   struct iovec *segs, size_t *nsegs, size_t maxsegs);

/* Data bytes of the current chunk that may be taken straight from the
 * wire (with splice(2)) without passing through chunked_decode: the rest
 * of the chunk while the decoder is inside chunk data, else 0. */
uint64_t chunked_data_left(const struct chunked_decoder *d);

/* n (<= chunked_data_left) data bytes were taken from the wire: the
 * decoder expects the chunk's CRLF once the chunk is whole. */
void chunked_data_taken(struct chunked_decoder *d, uint64_t n);

/* Write a chunk-size line ("1a2b\r\n") for n > 0 into out (>= 20 bytes).
 * Returns its length. */
size_t chunked_size_line(uint64_t n, char *out);

/* The last chunk with no trailers. */
#define CHUNKED_LAST "0\r\n\r\n"

#endif
