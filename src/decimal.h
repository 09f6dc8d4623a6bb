/* decimal.h - an unsigned number in decimal, without printf: for the
 * response head and the log line, written for every request, and for the
 * upgrade's child after fork, where only async-signal-safe code may run. */
#ifndef PORTICO_DECIMAL_H
#define PORTICO_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define DECIMAL_U64_DIGITS 20 /* UINT64_MAX has 20 digits */

/* v in decimal into out, as "%llu" writes it (no NUL): the number of
 * digits, at most DECIMAL_U64_DIGITS. */
static inline size_t decimal_format_u64(char *out, uint64_t v)
{
    char rev[DECIMAL_U64_DIGITS];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

#endif
