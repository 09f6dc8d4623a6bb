/* fuzz_tscert.c - tailscaled's answer to GET /localapi/v0/cert/NAME?type=pair
 * (and the same bytes read back from the cache): tscert_split_pair, then
 * tls_pair_check on the two halves for the name alpha.tail1234.ts.net,
 * then a servable set built from an accepted pair.
 *
 * Beyond "no crash, no leak": a refusal gives one line of message; an
 * accepted split has the key part ending in "--\n" right before the
 * chain's "--", no private key in the chain and a certificate in it; an
 * accepted pair has a readable validity (not_before < not_after) and a
 * serial without control characters, and always builds into a set. */
#include "fuzz.h"

#include <string.h>

#include "tls.h"
#include "tscert.h"

#define NAME "alpha.tail1234.ts.net"

static void check_err(const char *err)
{
    FUZZ_CHECK(err[0] != '\0');
    FUZZ_CHECK(strchr(err, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t k = 0;
    char err[700] = "";
    if (tscert_split_pair(buf, size, &k, err, sizeof err) < 0) {
        check_err(err);
        return 0;
    }
    FUZZ_CHECK(k >= 3 && k + 2 <= size);
    FUZZ_CHECK(memcmp(buf + k - 3, "--\n--", 5) == 0);
    FUZZ_CHECK(!memmem(buf + k, size - k, " PRIVATE KEY-----", 17));
    FUZZ_CHECK(memmem(buf + k, size - k, "-----BEGIN CERTIFICATE-----", 27));
    struct tls_pair_info info;
    err[0] = '\0';
    if (tls_pair_check(buf, k, buf + k, size - k, NAME, &info, err, sizeof err) < 0) {
        check_err(err);
        return 0;
    }
    FUZZ_CHECK(info.not_before < info.not_after);
    for (const char *p = info.serial; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    struct tls_pem_pair pair = {NAME, buf, buf + k, k, size - k};
    struct tls_dyn *d = tls_dyn_new(&pair, 1, err, sizeof err);
    FUZZ_CHECK(d != NULL);
    tls_dyn_install(d);
    tls_dyn_install(NULL);
    return 0;
}
