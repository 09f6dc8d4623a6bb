/* hex.h - the value of one hexadecimal digit, shared by the decoders that
 * read chunk sizes (chunked.c), percent-escapes in paths (route.c) and
 * RFC 2047 Q-encoding (rfc2047.c). */
#ifndef PORTICO_HEX_H
#define PORTICO_HEX_H

/* 0..15, or -1 when c is not a hexadecimal digit (either case). */
static inline int hex_digit_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
