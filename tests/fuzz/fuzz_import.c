/* fuzz_import.c - `portico import tsnsrv`: the shell-word splitter, then
 * the whole conversion of the bytes read as command lines, the fork's
 * YAML, nix eval JSON or whatever the detection says (first byte).
 *
 * Beyond "no crash" and no leak: split words lie inside the buffer and
 * hold no NUL; a refusal is one "fuzz:..." line and leaves no output; an
 * accepted input gives a configuration that config_parse accepts (what
 * `portico check` runs), one stderr summary line per comment under a
 * service, and as many "not carried over" comments as ndropped says. Host
 * names resolve as numeric only (fuzz_numeric_dns.h). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_numeric_dns.h"
#include "tsimport.h"

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    char buf[8200], *words[64], err[1024];
    int n = tsimport_split_words(text, len < 8192 ? len : 8192, buf, sizeof buf, words, 64, err,
                                 sizeof err);
    if (n < 0 && getenv("FUZZ_DEBUG"))
        fprintf(stderr, "split: %s\n", err);
    if (n < 0)
        FUZZ_CHECK(strnlen(err, sizeof err) < sizeof err && !strchr(err, '\n'));
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(fuzz_within(words[i], strlen(words[i]) + 1, buf, sizeof buf));

    static const enum tsimport_from froms[] = {TSIMPORT_AUTO, TSIMPORT_CMDLINE, TSIMPORT_YAML,
                                               TSIMPORT_NIXJSON};
    enum tsimport_from from = froms[data[0] % 4];
    struct tsimport_result r = {0};
    memset(err, 0, sizeof err);
    if (tsimport_convert(text, len, from, "fuzz", &r, err, sizeof err) < 0) {
        FUZZ_CHECK(r.yaml == NULL && r.summary == NULL);
        FUZZ_CHECK(strncmp(err, "fuzz:", 5) == 0);
        FUZZ_CHECK(strnlen(err, sizeof err) < sizeof err && !strchr(err, '\n'));
        return 0;
    }
    FUZZ_CHECK(r.yaml && r.summary && r.nservices > 0);
    char cerr[1024];
    struct config *c = config_parse("out.yaml", r.yaml, strlen(r.yaml), cerr, sizeof cerr);
    if (!c) {
        fprintf(stderr, "portico refuses the output: %s\n%s\n", cerr, r.yaml);
        FUZZ_CHECK(!"output accepted by config_parse");
    }
    FUZZ_CHECK(c->nservices == r.nservices);
    config_unref(c);
    size_t service_notes = count(r.yaml, "\n    # not carried over: ") +
                           count(r.yaml, "\n    # not needed: ") + count(r.yaml, "\n    # note: ");
    size_t top_notes = count(r.yaml, "\n# not carried over: ");
    FUZZ_CHECK(count(r.summary, "\n") == service_notes + top_notes);
    FUZZ_CHECK(count(r.yaml, "# not carried over: ") == r.ndropped);
    tsimport_result_free(&r);
    return 0;
}
