/* fuzz_config.c - the configuration loader, from memory (config_parse, the
 * same code `portico check` and a reload run on a file's bytes).
 *
 * Beyond "no crash" and no leak (LeakSanitizer checks every input): a
 * refused file has one message naming it, on one line; an accepted one is
 * internally consistent. Host names in addresses are resolved as numeric
 * only (fuzz_numeric_dns.h), so a run neither depends on DNS nor sends
 * queries for the names the fuzzer invents. */
#include "fuzz.h"

#include <string.h>

#include "config.h"
#include "fuzz_numeric_dns.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    memset(err, 0, sizeof err);
    struct config *c = config_parse(NAME, (const char *)data, size, err, sizeof err);
    if (!c) {
        FUZZ_CHECK(strnlen(err, sizeof err) < sizeof err);
        FUZZ_CHECK(strncmp(err, NAME ":", sizeof NAME) == 0);
        FUZZ_CHECK(!strchr(err, '\n'));
        return 0;
    }
    FUZZ_CHECK(err[0] == '\0');
    FUZZ_CHECK(c->workers >= 1);
    FUZZ_CHECK(c->routes != NULL);
    for (size_t i = 0; i < c->nservices; i++) {
        const struct config_service *s = &c->services[i];
        FUZZ_CHECK(s->name && s->name[0]);
        for (size_t k = 0; k < s->nhosts; k++) {
            for (const char *q = s->hosts[k]; *q; q++)
                FUZZ_CHECK(!(*q >= 'A' && *q <= 'Z'));
            size_t hl = strlen(s->hosts[k]);
            FUZZ_CHECK(hl > 0 && s->hosts[k][hl - 1] != '.');
        }
        for (size_t k = 0; k < s->nroutes; k++) {
            FUZZ_CHECK(s->routes[k].prefix[0] == '/');
            FUZZ_CHECK(strlen(s->routes[k].prefix) == s->routes[k].prefix_len);
            if (k)
                FUZZ_CHECK(s->routes[k - 1].prefix_len >= s->routes[k].prefix_len);
        }
        if (s->upstream)
            FUZZ_CHECK(s->upstream >= c->upstreams && s->upstream < c->upstreams + c->nupstreams);
    }
    for (size_t i = 0; i < c->nupstreams; i++)
        FUZZ_CHECK(c->upstreams[i].idx == i);
    config_unref(c);
    return 0;
}
