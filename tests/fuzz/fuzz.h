/* fuzz.h - what every fuzz target includes: the libFuzzer entry point and
 * a check that stops the run with a message when an invariant breaks (a
 * crash is not the only failure a parser can have). */
#ifndef PORTICO_FUZZ_H
#define PORTICO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* True if [p, p+n) lies inside [base, base+len). */
static inline int fuzz_within(const void *p, size_t n, const void *base, size_t len)
{
    const char *q = p, *b = base;
    return q >= b && n <= len && (size_t)(q - b) <= len - n;
}

#endif
