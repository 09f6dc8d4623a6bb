/* fuzz_rfc2047.c - RFC 2047 decoding of tailscaled's identity headers, and
 * what portico builds from the result.
 *
 * Beyond "no crash": a decoded value is valid UTF-8 without control
 * characters (checked here by code independent of rfc2047.c) and no longer
 * than RFC2047_DECODED_MAX; the tailscaled reading is either the value
 * itself or exactly what the encoder turns back into the value; encoding
 * any text gives printable ASCII in words of at most 75 bytes that both
 * decoders turn back into the text; identity headers built from a decoded
 * login and name never hold CR, LF or NUL; an allow entry made of the
 * bytes is checked and matched without harm. */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "access.h"
#include "identity.h"
#include "rfc2047.h"

static char dec[3 * 8192 + 64], ts[3 * 8192 + 64], enc[4 * 8192 + 64], back[4 * 8192 + 64];
static struct identity id;
static struct identity_headers hs;

/* Valid UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) with no C0, DEL or C1 control. */
static bool text_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned long cp;
        size_t len;
        if (s[i] < 0x80) {
            cp = s[i];
            len = 1;
        } else if ((s[i] & 0xe0) == 0xc0) {
            cp = s[i] & 0x1f;
            len = 2;
        } else if ((s[i] & 0xf0) == 0xe0) {
            cp = s[i] & 0x0f;
            len = 3;
        } else if ((s[i] & 0xf8) == 0xf0) {
            cp = s[i] & 0x07;
            len = 4;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const unsigned long min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += len;
    }
    return true;
}

static bool printable_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < ' ' || s[i] > '~')
            return false;
    return true;
}

static bool has_high_byte(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

static void check_encoding_of(const char *s, size_t n)
{
    long e = rfc2047_encode_q(s, n, enc, sizeof enc);
    FUZZ_CHECK(e >= 0 && (size_t)e < RFC2047_ENCODED_MAX(n));
    FUZZ_CHECK(printable_ascii(enc, (size_t)e));
    if (!has_high_byte(s, n)) {
        FUZZ_CHECK((size_t)e == n && memcmp(enc, s, n) == 0);
        return;
    }
    for (const char *w = enc, *end = enc + e; w < end;) {
        const char *sp = memchr(w, ' ', (size_t)(end - w));
        size_t wl = sp ? (size_t)(sp - w) : (size_t)(end - w);
        FUZZ_CHECK(wl <= 75);
        w += wl + 1;
    }
    long d = rfc2047_decode(enc, (size_t)e, back, sizeof back);
    FUZZ_CHECK(d == (long)n && memcmp(back, s, n) == 0);
    d = rfc2047_decode_tailscale(enc, (size_t)e, back, sizeof back);
    FUZZ_CHECK(d == (long)n && memcmp(back, s, n) == 0);
}

static void check_headers(const char *login, size_t nl, const char *name, size_t nn, bool tag)
{
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    id.has_user_id = id.has_node_id = true;
    if (identity_set(&id, IDENTITY_LOGIN, login, nl) != 0 ||
        identity_set(&id, IDENTITY_DISPLAY_NAME, name, nn) != 0 ||
        identity_set(&id, IDENTITY_APP_CAPS, name, nn) != 0 ||
        (tag && identity_add(&id, IDENTITY_TAGS, name, nn) != 0))
        return;
    int n = identity_build_headers(&id, IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED, &hs);
    FUZZ_CHECK(n > 0 && (size_t)n <= IDENTITY_HEADERS_MAX);
    for (int i = 0; i < n; i++) {
        const char *v = hs.h[i].value;
        FUZZ_CHECK(fuzz_within(v, strlen(v) + 1, hs.store, sizeof hs.store));
        FUZZ_CHECK(text_ok((const unsigned char *)v, strlen(v)));
        FUZZ_CHECK(!strpbrk(v, "\r\n"));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    const char *in = (const char *)data;

    long d = rfc2047_decode(in, size, dec, sizeof dec);
    FUZZ_CHECK(d >= 0 || d == RFC2047_ERR_CHARSET || d == RFC2047_ERR_UTF8 ||
               d == RFC2047_ERR_CONTROL);
    if (d >= 0) {
        FUZZ_CHECK((size_t)d < RFC2047_DECODED_MAX(size));
        FUZZ_CHECK(text_ok((const unsigned char *)dec, (size_t)d) && dec[d] == '\0');
    }

    long t = rfc2047_decode_tailscale(in, size, ts, sizeof ts);
    if (t >= 0) {
        FUZZ_CHECK(text_ok((const unsigned char *)ts, (size_t)t) && ts[t] == '\0');
        bool literal = (size_t)t == size && memcmp(ts, in, size) == 0;
        if (!literal) {
            /* Decoded: only the encoder's exact output of a non-ASCII value. */
            FUZZ_CHECK(has_high_byte(ts, (size_t)t));
            long e = rfc2047_encode_q(ts, (size_t)t, enc, sizeof enc);
            FUZZ_CHECK(e == (long)size && memcmp(enc, in, size) == 0);
        }
    } else if (printable_ascii(in, size)) {
        /* Printable ASCII is refused only as the encoding of a bad value. */
        FUZZ_CHECK(t == RFC2047_ERR_CONTROL || t == RFC2047_ERR_UTF8);
        FUZZ_CHECK(memmem(in, size, "=?", 2) != NULL);
    }

    if (text_ok(data, size))
        check_encoding_of(in, size);

    /* The login and the name from the two halves, as tailscaled sends them. */
    size_t half = size / 2;
    char login[4200], name[4200];
    long nl = rfc2047_decode_tailscale(in, half, login, sizeof login);
    long nn = rfc2047_decode_tailscale(in + half, size - half, name, sizeof name);
    if (nl >= 0 && nn >= 0)
        check_headers(login, (size_t)nl, name, (size_t)nn, size & 1);

    /* The bytes as an allow entry. */
    char entry[8193];
    memcpy(entry, in, size);
    entry[size] = '\0';
    char err[256];
    struct access_list l = {0};
    if (access_list_add(&l, entry, err, sizeof err) == 0) {
        FUZZ_CHECK(access_entry_check(entry, err, sizeof err) == 0);
        if (nl >= 0) {
            identity_init(&id);
            id.source = IDENTITY_HEADERS;
            if (identity_set(&id, IDENTITY_LOGIN, login, (size_t)nl) == 0)
                (void)access_list_allows(&l, &id);
        }
    } else {
        FUZZ_CHECK(strncmp(err, "allow entry \"", 13) == 0 && !strpbrk(err, "\r\n"));
    }
    access_list_free(&l);
    return 0;
}
