/* test_rfc2047.c - RFC 2047 encoded-words: Go's own vectors (src/mime/
 * encodedword_test.go) and tailscaled's encoding of identity headers. */
#include "unit.h"

#include <stdio.h>

#include "rfc2047.h"

static char out[65536];

static long dec(const char *s)
{
    return rfc2047_decode(s, strlen(s), out, sizeof out);
}

static long dec_ts(const char *s)
{
    return rfc2047_decode_tailscale(s, strlen(s), out, sizeof out);
}

static long enc(const char *s)
{
    return rfc2047_encode_q(s, strlen(s), out, sizeof out);
}

static void assert_decodes(const char *in, const char *want)
{
    long n = dec(in);
    if (n < 0)
        fail_msg("decode(\"%s\"): %s", in, rfc2047_strerror(n));
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

/* TestDecodeHeader and ExampleDecodeHeader in Go's encodedword_test.go. */
static void test_rfc2047_go_decode_header_vectors(void **state)
{
    static const char *const v[][2] = {
        {"=?UTF-8?Q?=C2=A1Hola,_se=C3=B1or!?=", "¡Hola, señor!"},
        {"=?UTF-8?Q?Fran=C3=A7ois-J=C3=A9r=C3=B4me?=", "François-Jérôme"},
        {"=?UTF-8?q?ascii?=", "ascii"},
        {"=?utf-8?B?QW5kcsOp?=", "André"},
        {"=?ISO-8859-1?Q?Rapha=EBl_Dupont?=", "Raphaël Dupont"},
        {"Jean", "Jean"},
        {"=?utf-8?b?IkFudG9uaW8gSm9zw6kiIDxqb3NlQGV4YW1wbGUub3JnPg==?=",
         "\"Antonio José\" <jose@example.org>"},
        {"=?UTF-8?A?Test?=", "=?UTF-8?A?Test?="},
        {"=?UTF-8?Q?A=B?=", "=?UTF-8?Q?A=B?="},
        {"=?UTF-8?Q?=A?=", "=?UTF-8?Q?=A?="},
        {"=?UTF-8?A?A?=", "=?UTF-8?A?A?="},
        /* incomplete words */
        {"=?", "=?"},
        {"=?UTF-8?", "=?UTF-8?"},
        {"=?UTF-8?=", "=?UTF-8?="},
        {"=?UTF-8?Q", "=?UTF-8?Q"},
        {"=?UTF-8?Q?", "=?UTF-8?Q?"},
        {"=?UTF-8?Q?=", "=?UTF-8?Q?="},
        {"=?UTF-8?Q?A", "=?UTF-8?Q?A"},
        {"=?UTF-8?Q?A?", "=?UTF-8?Q?A?"},
        /* from RFC 2047 */
        {"=?ISO-8859-1?Q?a?=", "a"},
        {"=?ISO-8859-1?Q?a?= b", "a b"},
        {"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"},
        {"=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=", "ab"},
        {"=?ISO-8859-1?Q?a?= \r\n\t =?ISO-8859-1?Q?b?=", "ab"},
        {"=?ISO-8859-1?Q?a_b?=", "a b"},
        /* ExampleDecodeHeader */
        {"=?utf-8?q?=C3=89ric?= <eric@example.org>, =?utf-8?q?Ana=C3=AFs?= <anais@example.org>",
         "Éric <eric@example.org>, Anaïs <anais@example.org>"},
        {"=?utf-8?q?=C2=A1Hola,?= =?utf-8?q?_se=C3=B1or!?=", "¡Hola, señor!"},
        /* TestCharsetDecoder, default charsets */
        {"=?utf-8?b?Q2Fmw6k=?=", "Café"},
        {"=?ISO-8859-1?Q?caf=E9?=", "café"},
        {"=?US-ASCII?Q?foo_bar?=", "foo bar"},
        {"=?utf-8?Q?=?=", "=?utf-8?Q?=?="},
        {"=?utf-8?Q?=A?=", "=?utf-8?Q?=A?="},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_decodes(v[i][0], v[i][1]);
}

/* Go returns an error for a charset it has no reader for; so do we. */
static void test_rfc2047_unknown_charset_refused(void **state)
{
    assert_int_equal(dec("=?ISO-8859-15?Q?f=F5=F6?="), RFC2047_ERR_CHARSET);
    assert_int_equal(dec("x =?windows-1252?Q?b=E0r?= y"), RFC2047_ERR_CHARSET);
    /* A word that does not decode is text, whatever its charset. */
    assert_decodes("=?windows-1252?Q?=ZZ?=", "=?windows-1252?Q?=ZZ?=");
}

/* strings.EqualFold folds U+017F (long s) to 's'. */
static void test_rfc2047_charset_compared_as_go_does(void **state)
{
    assert_decodes("=?uTf-8?q?a?=", "a");
    assert_decodes("=?u\xc5\xbf-ascii?q?a?=", "a");
    assert_decodes("=?US-ASCII?Q?a=E9b?=", "a\xef\xbf\xbd"
                                           "b"); /* U+FFFD */
    assert_int_equal(dec("=?utf8?q?a?="), RFC2047_ERR_CHARSET);
}

static void test_rfc2047_base64_padding_as_go(void **state)
{
    assert_decodes("=?utf-8?b?YQ==?=", "a");
    assert_decodes("=?utf-8?b?YWI=?=", "ab");
    assert_decodes("=?utf-8?b?"
                   "?=",
                   ""); /* split: no trigraph */
    /* Go's StdEncoding wants the padding and nothing after it. */
    assert_decodes("=?utf-8?b?YQ?=", "=?utf-8?b?YQ?=");
    assert_decodes("=?utf-8?b?YQ=?=", "=?utf-8?b?YQ=?=");
    assert_decodes("=?utf-8?b?Y===?=", "=?utf-8?b?Y===?=");
    assert_decodes("=?utf-8?b?Y=?=", "=?utf-8?b?Y=?=");
    assert_decodes("=?utf-8?b?YWJj\r\nZA==\r\n?=", "abcd"); /* Go skips CR and LF */
    assert_decodes("=?utf-8?b?YQ==YQ==?=", "=?utf-8?b?YQ==YQ==?=");
    assert_decodes("=?utf-8?b?Y*==?=", "=?utf-8?b?Y*==?=");
}

/* The result goes into a header or a log line: never CR, LF, NUL or other
 * controls, never bytes that are not UTF-8. */
static void test_rfc2047_decoded_controls_refused(void **state)
{
    assert_int_equal(dec("=?utf-8?q?a=0D=0Ab?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec("=?utf-8?q?a=0Ab?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec("=?utf-8?q?a=00b?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec("=?utf-8?b?YQ1i?="), RFC2047_ERR_CONTROL); /* a CR b */
    assert_int_equal(dec("=?utf-8?q?=7F?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec("=?utf-8?q?=C2=85?="), RFC2047_ERR_CONTROL);    /* U+0085 NEL */
    assert_int_equal(dec("=?iso-8859-1?q?=85?="), RFC2047_ERR_CONTROL);  /* the same */
    assert_int_equal(dec("=?utf-8?q?a=09b?="), RFC2047_ERR_CONTROL);     /* tab */
    assert_int_equal(dec("=?utf-8?q?=FF?="), RFC2047_ERR_UTF8);          /* not UTF-8 */
    assert_int_equal(dec("=?utf-8?q?=C0=AF?="), RFC2047_ERR_UTF8);       /* overlong */
    assert_int_equal(dec("=?utf-8?q?=ED=A0=80?="), RFC2047_ERR_UTF8);    /* surrogate */
    assert_int_equal(dec("=?utf-8?q?=F4=90=80=80?="), RFC2047_ERR_UTF8); /* > U+10FFFF */
    assert_int_equal(dec("=?utf-8?q?=E2=82?="), RFC2047_ERR_UTF8);       /* cut short */
    assert_int_equal(dec("plain\xc3"), RFC2047_ERR_UTF8);                /* raw text too */
    assert_decodes("=?utf-8?q?=F0=9F=90=88?=", "\xf0\x9f\x90\x88");      /* U+1F408 */
    assert_decodes("=?utf-8?q?=EF=BF=BD?=", "\xef\xbf\xbd");
}

static void test_rfc2047_small_output_refused(void **state)
{
    char small[4];
    assert_int_equal(rfc2047_decode("=?utf-8?q?abcd?=", 16, small, sizeof small),
                     RFC2047_ERR_SPACE);
    assert_int_equal(rfc2047_decode("=?utf-8?q?abc?=", 15, small, sizeof small), 3);
    assert_string_equal(small, "abc");
    assert_int_equal(rfc2047_encode_q("\xc3\xa9", 2, small, sizeof small), RFC2047_ERR_SPACE);
    assert_int_equal(rfc2047_decode("", 0, small, 0), RFC2047_ERR_SPACE);
}

/* Hostile input that makes Go rescan from every "=?": still correct here
 * (and linear, which the fuzz target's timeout watches). */
static void test_rfc2047_many_failed_words(void **state)
{
    static char in[49152];
    size_t n = 0;
    while (n + 8 < sizeof in - 4) {
        memcpy(in + n, "=?a?q?x", 7);
        n += 7;
    }
    memcpy(in + n, "=ZZ?=", 5);
    n += 5;
    long r = rfc2047_decode(in, n, out, sizeof out);
    assert_int_equal(r, n);
    assert_memory_equal(out, in, n);
}

/* TestEncodeWord and ExampleEncodeWord (Q, utf-8). */
static void test_rfc2047_go_encode_vectors(void **state)
{
    static const char *const v[][2] = {
        {"François-Jérôme", "=?utf-8?q?Fran=C3=A7ois-J=C3=A9r=C3=B4me?="},
        {"", ""},
        {"A", "A"},
        {"123 456", "123 456"},
        {"\t !\"#$%&'()*+,-./ :;<>?@[\\]^_`{|}~", "\t !\"#$%&'()*+,-./ :;<>?@[\\]^_`{|}~"},
        {"¡Hola, señor!", "=?utf-8?q?=C2=A1Hola,_se=C3=B1or!?="},
        {"Zoë Müller", "=?utf-8?q?Zo=C3=AB_M=C3=BCller?="},
        {"a=b?c_d é", "=?utf-8?q?a=3Db=3Fc=5Fd_=C3=A9?="},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        long n = enc(v[i][0]);
        assert_int_equal(n, strlen(v[i][1]));
        assert_string_equal(out, v[i][1]);
    }
}

/* Go's qEncode: at most 63 bytes of content a word, a character never
 * split; words joined by one space. Expected values follow the algorithm
 * (maxContentLen = 75 - len("=?UTF-8?q?") - len("?=")). */
static void test_rfc2047_encode_splits_words_as_go(void **state)
{
    char in[256], want[512];
    /* 63 ASCII bytes fill a word exactly; the next character opens one. */
    memset(in, 'a', 63);
    strcpy(in + 63, "é");
    snprintf(want, sizeof want, "=?utf-8?q?%.63s?= =?utf-8?q?=C3=A9?=", in);
    enc(in);
    assert_string_equal(out, want);
    /* The 64th byte of content opens a word. */
    memset(in, 'a', 64);
    strcpy(in + 64, "é");
    snprintf(want, sizeof want, "=?utf-8?q?%.63s?= =?utf-8?q?a=C3=A9?=", in);
    enc(in);
    assert_string_equal(out, want);
    /* 21 é: 10 (60 bytes) a word, the eleventh would make 66. */
    in[0] = '\0';
    for (int i = 0; i < 21; i++)
        strcat(in, "é");
    const char *ten = "=C3=A9=C3=A9=C3=A9=C3=A9=C3=A9=C3=A9=C3=A9=C3=A9=C3=A9=C3=A9";
    snprintf(want, sizeof want, "=?utf-8?q?%s?= =?utf-8?q?%s?= =?utf-8?q?=C3=A9?=", ten, ten);
    enc(in);
    assert_string_equal(out, want);
    /* Every word of the result is at most 75 bytes. */
    for (const char *w = out; *w;) {
        const char *sp = strchr(w, ' ');
        size_t wl = sp ? (size_t)(sp - w) : strlen(w);
        assert_true(wl <= 75);
        w += wl + (sp ? 1 : 0);
    }
}

/* The brief's example: a non-ASCII name as tailscaled sends it comes out
 * as raw UTF-8. */
static void test_rfc2047_tailscale_non_ascii_name(void **state)
{
    assert_int_equal(dec_ts("=?utf-8?q?Zo=C3=AB_M=C3=BCller?="), strlen("Zoë Müller"));
    assert_string_equal(out, "Zoë Müller");
    assert_int_equal(dec_ts("alice@example.com"), 17);
    assert_string_equal(out, "alice@example.com");
    /* A long name, split over words by the encoder, is joined again. */
    char in[256], want[256];
    want[0] = '\0';
    for (int i = 0; i < 30; i++)
        strcat(want, "ü");
    long n = rfc2047_encode_q(want, strlen(want), in, sizeof in);
    assert_true(n > 0 && strchr(in, ' '));
    assert_int_equal(dec_ts(in), strlen(want));
    assert_string_equal(out, want);
}

/* The encoder leaves printable ASCII alone, so such a value is the login
 * itself even when it looks encoded: decoding it would let the owner of
 * "=?utf-8?q?admin?=@example.com" pass for admin@example.com. */
static void test_rfc2047_tailscale_ascii_that_looks_encoded_is_literal(void **state)
{
    static const char *const lit[] = {
        "=?utf-8?q?admin?=@example.com",
        "=?utf-8?q?admin@example.com?=",
        "=?UTF-8?Q?Zo=C3=AB?=",             /* not the encoder's spelling */
        "=?utf-8?b?Wm/Dqw==?=",             /* B: never from tailscaled */
        "=?utf-8?q?Zo=C3=AB?=  x",          /* text after a word */
        "=?utf-8?q?Zo=c3=ab?=",             /* lower-case hex */
        "=?utf-8?q?Z?= =?utf-8?q?=C3=AB?=", /* split where the encoder does not */
        "=?iso-8859-1?q?=EB?=",
        "=?x?q?y?=",
        /* the encoder's output followed by an empty word, which decodes to
         * nothing: still not what the encoder writes */
        "=?utf-8?q?=C3=A9?= =?utf-8?q?"
        "?=",
    };
    for (size_t i = 0; i < sizeof lit / sizeof lit[0]; i++) {
        long n = dec_ts(lit[i]);
        if (n < 0)
            fail_msg("\"%s\": %s", lit[i], rfc2047_strerror(n));
        assert_string_equal(out, lit[i]);
    }
    /* Not printable ASCII: tailscaled would have encoded it. */
    assert_int_equal(dec_ts("Zo\xc3\xab"), RFC2047_ERR_ENCODING);
    assert_int_equal(dec_ts("a\tb"), RFC2047_ERR_CONTROL);
    assert_int_equal(dec_ts("a\x7f"), RFC2047_ERR_CONTROL);
}

/* The encoder's own output for a value with CR, LF or bytes that are not
 * UTF-8 (Go would encode them) is refused, not shown literally. */
static void test_rfc2047_tailscale_encoded_controls_refused(void **state)
{
    assert_int_equal(dec_ts("=?utf-8?q?a=0Ab?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec_ts("=?utf-8?q?a=0D=0Ab?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec_ts("=?utf-8?q?=00?="), RFC2047_ERR_CONTROL);
    assert_int_equal(dec_ts("=?utf-8?q?=FF?="), RFC2047_ERR_UTF8);
}

static void test_rfc2047_tailscale_round_trip(void **state)
{
    static const char *const v[] = {"Zoë Müller", "日本語の名前", "a_b=c?d é",
                                    "é ",         " é",           "\xf0\x9f\x90\x88 cat"};
    char e[512];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        long n = rfc2047_encode_q(v[i], strlen(v[i]), e, sizeof e);
        assert_true(n > 0);
        assert_int_equal(rfc2047_decode_tailscale(e, (size_t)n, out, sizeof out), strlen(v[i]));
        assert_string_equal(out, v[i]);
        /* and Go's DecodeHeader reads the same */
        assert_int_equal(rfc2047_decode(e, (size_t)n, out, sizeof out), strlen(v[i]));
        assert_string_equal(out, v[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc2047_go_decode_header_vectors),
        cmocka_unit_test(test_rfc2047_unknown_charset_refused),
        cmocka_unit_test(test_rfc2047_charset_compared_as_go_does),
        cmocka_unit_test(test_rfc2047_base64_padding_as_go),
        cmocka_unit_test(test_rfc2047_decoded_controls_refused),
        cmocka_unit_test(test_rfc2047_small_output_refused),
        cmocka_unit_test(test_rfc2047_many_failed_words),
        cmocka_unit_test(test_rfc2047_go_encode_vectors),
        cmocka_unit_test(test_rfc2047_encode_splits_words_as_go),
        cmocka_unit_test(test_rfc2047_tailscale_non_ascii_name),
        cmocka_unit_test(test_rfc2047_tailscale_ascii_that_looks_encoded_is_literal),
        cmocka_unit_test(test_rfc2047_tailscale_encoded_controls_refused),
        cmocka_unit_test(test_rfc2047_tailscale_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
