/* fuzz_sni.c - the ClientHello reader used for SNI passthrough.
 *
 * Beyond "no crash": a name found is what sni.h promises (1 to 253 bytes of
 * lower-case letters, digits, '-', '_' and '.', no leading or trailing
 * dot), and the answer is monotonic in the bytes received: a prefix that is
 * refused stays refused with more bytes, and a prefix of a complete hello
 * asks for more or already gives the same answer. */
#include "fuzz.h"

#include <string.h>

#include "sni.h"

static void check_name(const char *name)
{
    size_t len = strnlen(name, 256);
    if (len == 0 || name[0] == '.' || name[len - 1] == '.')
        fprintf(stderr, "server name: \"%.*s\"\n", (int)len, name);
    FUZZ_CHECK(len >= 1 && len <= 253);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                   c == '.');
    }
    FUZZ_CHECK(name[0] != '.' && name[len - 1] != '.');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256], pname[256];
    enum sni_result full = sni_parse(data, size, name, sizeof name);
    FUZZ_CHECK(full >= SNI_BAD && full <= SNI_FOUND);
    if (full == SNI_FOUND)
        check_name(name);
    if (full == SNI_MORE)
        FUZZ_CHECK(size < sni_peek_max());
    /* A few prefixes, chosen from the size so that a run sees many. */
    size_t cuts[] = {size / 2, size - size / 7, size ? size - 1 : 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= size)
            continue;
        enum sni_result pre = sni_parse(data, cuts[i], pname, sizeof pname);
        if (pre == SNI_BAD)
            FUZZ_CHECK(full == SNI_BAD);
        if (full == SNI_FOUND || full == SNI_NONE)
            FUZZ_CHECK(pre == SNI_MORE || pre == full);
        if (pre == SNI_FOUND || pre == SNI_NONE)
            FUZZ_CHECK(full == pre); /* bytes after a complete hello change nothing */
        if (pre == SNI_FOUND && full == SNI_FOUND)
            FUZZ_CHECK(strcmp(pname, name) == 0);
    }
    return 0;
}
