/* rfc2047.c - RFC 2047 encoded-words (see rfc2047.h).
 *
 * The decoder follows Go's mime.WordDecoder.DecodeHeader step by step
 * (src/mime/encodedword.go at golang/go 07fc52e4216c): where a word ends,
 * which errors keep a word as text, which white space disappears. Go scans
 * again from each failed "=?", which is quadratic on hostile input; here the
 * searches for '?' and "?=" remember their last answer, so the whole value
 * is read a bounded number of times. */
#include "rfc2047.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hex.h"

/* Where bytes go: a buffer, or nowhere (a dry run), and optionally compared
 * with an expected string on the way (rfc2047_decode_tailscale). */
struct sink {
    char *p;    /* NULL: count only */
    size_t cap; /* bytes p can take, the NUL not included */
    size_t len;
    bool over;
    const char *expect; /* non-NULL: compare with these bytes */
    size_t nexpect;
    bool differs;
};

static void emit(struct sink *o, const char *b, size_t n)
{
    if (o->expect && !o->differs &&
        (o->nexpect - o->len < n || memcmp(o->expect + o->len, b, n) != 0))
        o->differs = true;
    if (o->p) {
        if (o->over || o->cap - o->len < n) {
            o->over = true;
            return;
        }
        memcpy(o->p + o->len, b, n);
    }
    o->len += n;
}

static void emit_byte(struct sink *o, unsigned char c)
{
    char b = (char)c;
    emit(o, &b, 1);
}

/* ---- UTF-8 ------------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s (n bytes available) as Go's
 * utf8.DecodeRune accepts it, storing the code point; 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0fu;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07u;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3fu);
    }
    return len;
}

int rfc2047_check_text(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_seq(u + i, len - i, &cp);
        if (n == 0)
            return RFC2047_ERR_UTF8;
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
            return RFC2047_ERR_CONTROL;
        i += n;
    }
    return 0;
}

/* ---- decoding ---------------------------------------------------------------- */

enum charset { CS_UNKNOWN, CS_UTF8, CS_LATIN1, CS_ASCII };

/* Go compares charset names with strings.EqualFold, simple Unicode case
 * folding: besides ASCII case, U+017F (long s) equals 's'. The three names
 * have no 'k', the only other letter with a non-ASCII fold. */
static bool charset_is(const char *s, size_t n, const char *name)
{
    size_t i = 0;
    for (; *name; name++) {
        if (i < n && (s[i] | 0x20) == *name && (*name >= 'a' && *name <= 'z')) {
            i++;
        } else if (i < n && s[i] == *name) {
            i++;
        } else if (*name == 's' && n - i >= 2 && (unsigned char)s[i] == 0xc5 &&
                   (unsigned char)s[i + 1] == 0xbf) {
            i += 2;
        } else {
            return false;
        }
    }
    return i == n;
}

static enum charset charset_of(const char *s, size_t n)
{
    if (charset_is(s, n, "utf-8"))
        return CS_UTF8;
    if (charset_is(s, n, "iso-8859-1"))
        return CS_LATIN1;
    if (charset_is(s, n, "us-ascii"))
        return CS_ASCII;
    return CS_UNKNOWN;
}

/* One decoded byte, converted to UTF-8 as Go's WordDecoder.convert does. */
static void put_converted(struct sink *o, enum charset cs, unsigned char c)
{
    if (c < 0x80 || cs == CS_UTF8) {
        emit_byte(o, c);
    } else if (cs == CS_LATIN1) {
        emit_byte(o, (unsigned char)(0xc0 | (c >> 6)));
        emit_byte(o, (unsigned char)(0x80 | (c & 0x3f)));
    } else {
        emit(o, "\xef\xbf\xbd", 3); /* us-ascii: U+FFFD for a byte above 0x7f */
    }
}

/* Go's qDecode. o NULL: only check. Stops at the first bad byte. */
static int q_decode(const char *t, size_t n, struct sink *o, enum charset cs)
{
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        unsigned char b;
        if (c == '_') {
            b = ' ';
        } else if (c == '=') {
            if (i + 2 >= n)
                return -1;
            int h = hex_digit_value((unsigned char)t[i + 1]),
                l = hex_digit_value((unsigned char)t[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            b = (unsigned char)(h << 4 | l);
            i += 2;
        } else if ((c >= ' ' && c <= '~') || c == '\n' || c == '\r' || c == '\t') {
            b = (unsigned char)c;
        } else {
            return -1;
        }
        if (o)
            put_converted(o, cs, b);
    }
    return 0;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static size_t skip_newlines(const char *t, size_t n, size_t i)
{
    while (i < n && (t[i] == '\r' || t[i] == '\n'))
        i++;
    return i;
}

/* Go's base64.StdEncoding.DecodeString: padding required, CR and LF
 * ignored, only newlines after the padding, trailing bits not checked. */
static int b_decode(const char *t, size_t n, struct sink *o, enum charset cs)
{
    size_t i = 0;
    for (;;) {
        uint32_t v = 0;
        int j = 0;
        bool padded = false;
        while (j < 4) {
            i = skip_newlines(t, n, i);
            if (i == n) {
                if (j == 0)
                    return 0;
                return -1;
            }
            char c = t[i++];
            if (c == '=') {
                if (j < 2)
                    return -1;
                if (j == 2) {
                    i = skip_newlines(t, n, i);
                    if (i == n || t[i] != '=')
                        return -1;
                    i++;
                }
                if (skip_newlines(t, n, i) != n)
                    return -1;
                padded = true;
                break;
            }
            int d = b64_val(c);
            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
            j++;
        }
        v <<= 6 * (4 - j);
        if (o)
            for (int k = 0; k < j - 1; k++)
                put_converted(o, cs, (unsigned char)(v >> (16 - 8 * k)));
        if (padded)
            return 0;
    }
}

static int word_decode(char enc, const char *t, size_t n, struct sink *o, enum charset cs)
{
    if (enc == 'Q' || enc == 'q')
        return q_decode(t, n, o, cs);
    if (enc == 'B' || enc == 'b')
        return b_decode(t, n, o, cs);
    return -1;
}

static bool has_non_whitespace(const char *s, const char *end)
{
    for (; s < end; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return true;
    return false;
}

/* First "=?" (or "?=" with a = '?') in [p, end), or NULL. */
static const char *find_pair(const char *p, const char *end, char a, char b)
{
    for (; end - p >= 2; p++) {
        p = memchr(p, a, (size_t)(end - p - 1));
        if (!p)
            return NULL;
        if (p[1] == b)
            return p;
    }
    return NULL;
}

/* The first match at or after `from`, remembered: the positions asked for
 * only grow, so the last answer stays right while it is not behind. */
struct memo {
    const char *from; /* where the last search started */
    const char *at;   /* its answer (NULL: none up to the end) */
};

static const char *memo_qmark(struct memo *m, const char *from, const char *end)
{
    if (!(m->from && from >= m->from && (!m->at || from <= m->at))) {
        m->from = from;
        m->at = memchr(from, '?', (size_t)(end - from));
    }
    return m->at;
}

static const char *memo_close(struct memo *m, const char *from, const char *end)
{
    if (!(m->from && from >= m->from && (!m->at || from <= m->at))) {
        m->from = from;
        m->at = find_pair(from, end, '?', '=');
    }
    return m->at;
}

/* DecodeHeader without the final check of the result (which may then hold
 * any bytes): the length, RFC2047_ERR_SPACE or _CHARSET. */
static long decode_raw(const char *in, size_t len, char *out, size_t cap)
{
    if (cap == 0)
        return RFC2047_ERR_SPACE;
    struct sink o = {.p = out, .cap = cap - 1};
    const char *p = in, *end = in + len;
    struct memo qmark = {0}, close = {0};
    bool between = false;
    for (;;) {
        const char *start = find_pair(p, end, '=', '?');
        if (!start)
            break;
        const char *cur = start + 2;
        const char *q = memo_qmark(&qmark, cur, end);
        if (!q)
            break;
        const char *cs_name = cur;
        size_t cs_len = (size_t)(q - cur);
        cur = q + 1;
        if (end - cur < 4) /* Go: len(header) < cur+len("Q??=") */
            break;
        char enc = *cur++;
        if (*cur != '?')
            break;
        cur++;
        const char *text_end = memo_close(&close, cur, end);
        if (!text_end)
            break;
        size_t text_len = (size_t)(text_end - cur);
        if (word_decode(enc, cur, text_len, NULL, CS_UTF8) < 0) {
            /* Not a word: its "=?" stays as text and the search goes on. */
            between = false;
            emit(&o, p, (size_t)(start + 2 - p));
            p = start + 2;
            continue;
        }
        /* White space between two encoded words is dropped. */
        if (start > p && (!between || has_non_whitespace(p, start)))
            emit(&o, p, (size_t)(start - p));
        enum charset cs = charset_of(cs_name, cs_len);
        if (cs == CS_UNKNOWN)
            return RFC2047_ERR_CHARSET; /* Go: "mime: unhandled charset" */
        word_decode(enc, cur, text_len, &o, cs);
        p = text_end + 2;
        between = true;
    }
    emit(&o, p, (size_t)(end - p));
    if (o.over)
        return RFC2047_ERR_SPACE;
    out[o.len] = '\0';
    return (long)o.len;
}

long rfc2047_decode(const char *in, size_t len, char *out, size_t cap)
{
    long n = decode_raw(in, len, out, cap);
    if (n < 0)
        return n;
    int e = rfc2047_check_text(out, (size_t)n);
    return e < 0 ? e : n;
}

/* ---- encoding ---------------------------------------------------------------- */

/* Go's writeQString for one character's bytes. */
static void q_put(struct sink *o, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char b = s[i];
        if (b == ' ') {
            emit(o, "_", 1);
        } else if (b >= '!' && b <= '~' && b != '=' && b != '?' && b != '_') {
            emit_byte(o, b);
        } else {
            char e[3] = {'=', hex[b >> 4], hex[b & 0x0f]};
            emit(o, e, 3);
        }
    }
}

/* Go's needsEncoding: a rune outside ' '..'~' other than tab (a byte that
 * is not UTF-8 decodes as U+FFFD, which needs encoding too). */
static bool needs_encoding(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] < ' ' || s[i] > '~') && s[i] != '\t')
            return true;
    return false;
}

#define MAX_CONTENT_LEN (75 - 10 - 2) /* Go: 75 - len("=?UTF-8?q?") - len("?=") */

static void encode_q(struct sink *o, const char *in, size_t len)
{
    const unsigned char *s = (const unsigned char *)in;
    if (!needs_encoding(s, len)) {
        emit(o, in, len);
        return;
    }
    emit(o, "=?utf-8?q?", 10);
    size_t cur = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = s[i];
        size_t rune_len, enc_len;
        if (b >= ' ' && b <= '~' && b != '=' && b != '?' && b != '_') {
            rune_len = enc_len = 1;
        } else {
            /* A character is never split across words (RFC 2047 5.3). */
            uint32_t cp;
            rune_len = utf8_seq(s + i, len - i, &cp);
            if (rune_len == 0)
                rune_len = 1;
            enc_len = 3 * rune_len;
        }
        if (cur + enc_len > MAX_CONTENT_LEN) {
            emit(o, "?= =?utf-8?q?", 13);
            cur = 0;
        }
        q_put(o, s + i, rune_len);
        cur += enc_len;
        i += rune_len;
    }
    emit(o, "?=", 2);
}

long rfc2047_encode_q(const char *in, size_t len, char *out, size_t cap)
{
    if (cap == 0)
        return RFC2047_ERR_SPACE;
    struct sink o = {.p = out, .cap = cap - 1};
    encode_q(&o, in, len);
    if (o.over)
        return RFC2047_ERR_SPACE;
    out[o.len] = '\0';
    return (long)o.len;
}

long rfc2047_decode_tailscale(const char *in, size_t len, char *out, size_t cap)
{
    /* The encoder writes printable ASCII only, except that it leaves a tab
     * in an otherwise printable value alone. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < ' ' || c == 0x7f)
            return RFC2047_ERR_CONTROL;
        if (c > 0x7f)
            return RFC2047_ERR_ENCODING;
    }
    if (cap == 0)
        return RFC2047_ERR_SPACE;
    if (find_pair(in, in + len, '=', '?')) {
        long n = decode_raw(in, len, out, cap);
        /* Only a value that needed encoding was encoded, and only the
         * encoder's exact output is taken as encoded; then what it encodes
         * must be text (a login with a line feed is no login). */
        if (n >= 0 && needs_encoding((const unsigned char *)out, (size_t)n)) {
            struct sink cmp = {.expect = in, .nexpect = len};
            encode_q(&cmp, out, (size_t)n);
            if (!cmp.differs && cmp.len == len) {
                int e = rfc2047_check_text(out, (size_t)n);
                return e < 0 ? e : n;
            }
        }
        if (n == RFC2047_ERR_SPACE && cap <= len)
            return RFC2047_ERR_SPACE;
    }
    /* Printable ASCII that the encoder leaves alone: the value itself. */
    if (cap <= len)
        return RFC2047_ERR_SPACE;
    memmove(out, in, len);
    out[len] = '\0';
    return (long)len;
}

const char *rfc2047_strerror(long err)
{
    switch (err) {
    case RFC2047_ERR_SPACE:
        return "value too long";
    case RFC2047_ERR_CHARSET:
        return "encoded word in a charset other than utf-8, iso-8859-1 or us-ascii";
    case RFC2047_ERR_UTF8:
        return "value is not valid UTF-8";
    case RFC2047_ERR_CONTROL:
        return "value contains a control character";
    case RFC2047_ERR_ENCODING:
        return "value is not encoded as tailscaled encodes it";
    default:
        return "invalid value";
    }
}
