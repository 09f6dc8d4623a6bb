/* fuzz_tsapi.c - the Tailscale control API's answers: the OAuth token
 * answer, an error answer's text, and a service definition compared with
 * what portico wants.
 *
 * The first byte picks the reader (and, for a definition, which wanted
 * ports and tags to compare with); the rest is the answer.
 *
 * Beyond "no crash, no leak": a refused answer gives one line of message;
 * a token is 1 to TSAPI_TOKEN_MAX bytes of printable ASCII without blanks
 * (it goes into an Authorization header) with a lifetime of 1 s to a year;
 * an error text is one printable line of at most TSAPI_ERROR_SHOWN bytes;
 * a definition that differs gives a PUT body that is a JSON object named
 * svc:LABEL with exactly the wanted ports and tags and the addrs it held,
 * and comparing that body again finds nothing to change. */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "tsapi.h"

static void check_line(const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
    FUZZ_CHECK(n <= max);
}

static void fuzz_token(const char *buf, size_t len)
{
    char tok[TSAPI_TOKEN_MAX + 1], err[512] = "";
    long exp = 0;
    if (tsapi_parse_token(buf, len, tok, sizeof tok, &exp, err, sizeof err) < 0) {
        FUZZ_CHECK(err[0] != '\0');
        check_line(err, sizeof err);
        return;
    }
    size_t n = strlen(tok);
    FUZZ_CHECK(n >= 1 && n <= TSAPI_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)tok[i] > 0x20 && (unsigned char)tok[i] < 0x7f);
    FUZZ_CHECK(exp >= 1 && exp <= 366L * 86400);
}

static void fuzz_error(const char *buf, size_t len)
{
    char out[TSAPI_ERROR_SHOWN + 8];
    tsapi_error_text(buf, len, out, sizeof out);
    check_line(out, TSAPI_ERROR_SHOWN);
}

static bool array_is(const json_t *a, const char *const *v, size_t n)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(a, i)) ||
            strcmp(json_string_value(json_array_get(a, i)), v[i]) != 0)
            return false;
    return true;
}

static void fuzz_definition(unsigned sel, const char *buf, size_t len)
{
    static const char *const ports[] = {"tcp:443", "tcp:8443"};
    static const char *const tags[] = {"tag:portico-svc", "tag:apps"};
    const struct tsapi_want w = {sel & 1 ? "wiki" : "grafana", ports, sel & 2 ? 2 : 1, tags,
                                 sel & 4 ? 2 : (sel & 8 ? 0 : 1)};
    char *put = NULL, what[128], err[512] = "";
    int rc = tsapi_compare(buf, len, &w, &put, what, sizeof what, err, sizeof err);
    if (rc < 0) {
        FUZZ_CHECK(put == NULL);
        FUZZ_CHECK(err[0] != '\0');
        check_line(err, sizeof err);
        return;
    }
    if (rc == 0) {
        FUZZ_CHECK(put == NULL);
        return;
    }
    FUZZ_CHECK(put != NULL && what[0] != '\0');
    check_line(what, sizeof what);
    json_t *in = json_loadb(buf, len, 0, NULL), *out = json_loads(put, 0, NULL);
    FUZZ_CHECK(json_is_object(out));
    char name[80];
    snprintf(name, sizeof name, "svc:%s", w.label);
    FUZZ_CHECK(json_is_string(json_object_get(out, "name")) &&
               strcmp(json_string_value(json_object_get(out, "name")), name) == 0);
    FUZZ_CHECK(array_is(json_object_get(out, "ports"), w.ports, w.nports));
    FUZZ_CHECK(array_is(json_object_get(out, "tags"), w.tags, w.ntags));
    /* the addrs go back exactly as they came */
    const json_t *a = in ? json_object_get(in, "addrs") : NULL;
    const json_t *b = json_object_get(out, "addrs");
    FUZZ_CHECK((a == NULL && b == NULL) || json_equal(a, b));
    char *again = NULL;
    FUZZ_CHECK(tsapi_compare(put, strlen(put), &w, &again, what, sizeof what, err, sizeof err) ==
               0);
    FUZZ_CHECK(again == NULL);
    json_decref(in);
    json_decref(out);
    free(put);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        fuzz_token(buf, len);
        break;
    case 1:
        fuzz_error(buf, len);
        break;
    default:
        fuzz_definition(data[0] / 3u, buf, len);
        break;
    }
    return 0;
}
