/* test_identity.c - a tailnet caller's identity: tailscaled's headers in,
 * tsnsrv's and tailscaled's headers out, the auth_bypass_tailnet predicate. */
#include "unit.h"

#include <stdio.h>

#include "headers.h"
#include "http1.h"
#include "identity.h"

static struct identity id;
static struct identity_headers hs;
static struct http_request req;

static void set(enum identity_field f, const char *s)
{
    assert_int_equal(identity_set(&id, f, s, strlen(s)), 0);
}

static void add(enum identity_list l, const char *s)
{
    assert_int_equal(identity_add(&id, l, s, strlen(s)), 0);
}

/* A whois answer: the IDs, the login, the display name, the node name. */
static void whois(int64_t user_id, int64_t node_id, const char *login, const char *name,
                  const char *node)
{
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    id.has_user_id = id.has_node_id = true;
    id.user_id = user_id;
    id.node_id = node_id;
    set(IDENTITY_LOGIN, login);
    set(IDENTITY_DISPLAY_NAME, name);
    set(IDENTITY_NODE_NAME, node);
}

/* A person's laptop. */
static void whois_user(void)
{
    whois(6789012345678, 42, "zoe@example.com", "Zoë Müller", "zoes-laptop");
    set(IDENTITY_PROFILE_PIC, "https://lh3.example.com/a/zoe.png");
    add(IDENTITY_PEER_CAPS, "example.com/cap/grafana");
    add(IDENTITY_PEER_CAPS, "https://tailscale.com/cap/file-sharing");
    add(IDENTITY_NODE_CAPS, "https://tailscale.com/cap/ssh");
}

/* A tagged server: control's pseudo-user. */
static void whois_tagged(void)
{
    whois(123, 7, "tagged-devices", "Tagged Devices", "ci-runner");
    add(IDENTITY_TAGS, "tag:ci");
    add(IDENTITY_TAGS, "tag:monitoring");
}

/* The headers built, as "Name: value" lines joined by '\n'. */
static const char *built(unsigned what)
{
    static char text[65536];
    int n = identity_build_headers(&id, what, &hs);
    assert_true(n >= 0);
    size_t at = 0;
    text[0] = '\0';
    for (int i = 0; i < n; i++) {
        /* No value can split a header line. */
        assert_null(strpbrk(hs.h[i].value, "\r\n"));
        at += (size_t)snprintf(text + at, sizeof text - at, "%s%s: %s", i ? "\n" : "", hs.h[i].name,
                               hs.h[i].value);
    }
    return text;
}

/* tsnsrv's setWhoisHeaders for a user node: all 11 names, userid:/nodeid:
 * in decimal, caps joined by ", ", raw UTF-8, in Go's (sorted) order. */
static void test_identity_tsnsrv_headers_for_user_node(void **state)
{
    whois_user();
    assert_string_equal(built(IDENTITY_SEND_TSNSRV),
                        "X-Tailscale-Caps: example.com/cap/grafana, "
                        "https://tailscale.com/cap/file-sharing\n"
                        "X-Tailscale-Node: nodeid:42\n"
                        "X-Tailscale-Node-Caps: https://tailscale.com/cap/ssh\n"
                        "X-Tailscale-Node-Name: zoes-laptop\n"
                        "X-Tailscale-User: userid:6789012345678\n"
                        "X-Tailscale-User-Displayname: Zoë Müller\n"
                        "X-Tailscale-User-Loginname: zoe@example.com\n"
                        "X-Tailscale-User-Loginname-Domain: example.com\n"
                        "X-Tailscale-User-Loginname-Localpart: zoe\n"
                        "X-Tailscale-User-Profilepicurl: https://lh3.example.com/a/zoe.png");
    add(IDENTITY_TAGS, "tag:x"); /* a node with tags: the eleventh */
    assert_non_null(strstr(built(IDENTITY_SEND_TSNSRV), "\nX-Tailscale-Node-Tags: tag:x\n"));
    assert_int_equal(hs.n, 11);
}

/* And tailscaled's own headers, as `tailscale serve` sends them: the name
 * RFC 2047-encoded, the picture URL raw. */
static void test_identity_tailscaled_headers_for_user_node(void **state)
{
    whois_user();
    assert_string_equal(built(IDENTITY_SEND_TAILSCALED),
                        "Tailscale-Headers-Info: https://tailscale.com/s/serve-headers\n"
                        "Tailscale-User-Login: zoe@example.com\n"
                        "Tailscale-User-Name: =?utf-8?q?Zo=C3=AB_M=C3=BCller?=\n"
                        "Tailscale-User-Profile-Pic: https://lh3.example.com/a/zoe.png");
    built(IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED);
    assert_int_equal(hs.n, 14);
}

/* tsnsrv does not skip tagged nodes: pseudo-user login, no Localpart or
 * Domain, the tags. tailscaled sends nothing for them. */
static void test_identity_tsnsrv_headers_for_tagged_node(void **state)
{
    whois_tagged();
    assert_string_equal(built(IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED),
                        "X-Tailscale-Node: nodeid:7\n"
                        "X-Tailscale-Node-Name: ci-runner\n"
                        "X-Tailscale-Node-Tags: tag:ci, tag:monitoring\n"
                        "X-Tailscale-User: userid:123\n"
                        "X-Tailscale-User-Displayname: Tagged Devices\n"
                        "X-Tailscale-User-Loginname: tagged-devices");
}

/* strings.Cut finds no '@': no Localpart and no Domain. */
static void test_identity_login_without_at(void **state)
{
    whois_user();
    set(IDENTITY_LOGIN, "zoe");
    const char *t = built(IDENTITY_SEND_TSNSRV);
    assert_non_null(strstr(t, "X-Tailscale-User-Loginname: zoe\n"));
    assert_null(strstr(t, "Localpart"));
    assert_null(strstr(t, "Domain"));
    assert_int_equal(hs.n, 8);
    /* Several '@': cut at the first, as strings.Cut does. */
    set(IDENTITY_LOGIN, "a@b@c");
    t = built(IDENTITY_SEND_TSNSRV);
    assert_non_null(strstr(t, "Domain: b@c\nX-Tailscale-User-Loginname-Localpart: a\n"));
}

/* ProfilePicURL only when not empty for tsnsrv; tailscaled sends it empty. */
static void test_identity_empty_profile_pic(void **state)
{
    whois_user();
    set(IDENTITY_PROFILE_PIC, "");
    const char *t = built(IDENTITY_SEND_TSNSRV);
    assert_null(strstr(t, "Profilepicurl"));
    assert_int_equal(hs.n, 9);
    t = built(IDENTITY_SEND_TAILSCALED);
    assert_non_null(strstr(t, "\nTailscale-User-Profile-Pic: "));
    assert_string_equal(hs.h[hs.n - 1].value, "");
}

/* Empty lists: no Caps, Node-Caps or Node-Tags headers at all. */
static void test_identity_no_caps_no_caps_headers(void **state)
{
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    id.has_user_id = id.has_node_id = true;
    set(IDENTITY_LOGIN, "bob@example.com");
    assert_string_equal(built(IDENTITY_SEND_TSNSRV), "X-Tailscale-Node: nodeid:0\n"
                                                     "X-Tailscale-Node-Name: \n"
                                                     "X-Tailscale-User: userid:0\n"
                                                     "X-Tailscale-User-Displayname: \n"
                                                     "X-Tailscale-User-Loginname: bob@example.com\n"
                                                     "X-Tailscale-User-Loginname-Domain: "
                                                     "example.com\n"
                                                     "X-Tailscale-User-Loginname-Localpart: bob");
}

/* Go's Header.writeSubset trims values. */
static void test_identity_values_trimmed_as_go_writes_them(void **state)
{
    whois_user();
    set(IDENTITY_DISPLAY_NAME, "  Zoë ");
    built(IDENTITY_SEND_TSNSRV);
    assert_string_equal(hs.h[5].name, "X-Tailscale-User-Displayname");
    assert_string_equal(hs.h[5].value, "Zoë");
}

/* tsnsrv's headers come from whois only (they need the user and node IDs);
 * from tailscaled's headers alone only tailscaled's own are passed on. */
static void test_identity_headers_only_identity_gets_no_tsnsrv_headers(void **state)
{
    whois_user();
    id.source = IDENTITY_HEADERS;
    built(IDENTITY_SEND_TSNSRV);
    assert_int_equal(hs.n, 0);
    built(IDENTITY_SEND_TAILSCALED);
    assert_int_equal(hs.n, 4);
}

/* Funnel callers are anonymous: only Tailscale-Funnel-Request. */
static void test_identity_funnel_anonymous(void **state)
{
    whois_user();
    id.funnel = true;
    assert_string_equal(built(IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED),
                        "Tailscale-Funnel-Request: ?1");
    identity_init(&id);
    built(IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED);
    assert_int_equal(hs.n, 0);
}

/* ---- tailscaled's headers in ------------------------------------------------- */

static int from_head(const char *fields)
{
    static char head[8192];
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: grafana.tail1234.ts.net\r\n%s\r\n",
             fields);
    long n = http1_parse_request(head, strlen(head), &req);
    assert_true(n > 0);
    return identity_from_headers(&id, &req);
}

static void test_identity_from_tailscaled_headers(void **state)
{
    assert_int_equal(from_head("Tailscale-User-Login: zoe@example.com\r\n"
                               "Tailscale-User-Name: =?utf-8?q?Zo=C3=AB_M=C3=BCller?=\r\n"
                               "Tailscale-User-Profile-Pic: https://x.example/p.png\r\n"
                               "Tailscale-Headers-Info: https://tailscale.com/s/serve-headers\r\n"),
                     0);
    assert_int_equal(id.source, IDENTITY_HEADERS);
    assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "zoe@example.com");
    assert_string_equal(identity_get(&id, IDENTITY_DISPLAY_NAME), "Zoë Müller");
    assert_string_equal(identity_get(&id, IDENTITY_PROFILE_PIC), "https://x.example/p.png");
    assert_true(identity_is_user(&id));
    assert_false(id.funnel);
    /* Passed on byte for byte as tailscaled sent them. */
    assert_string_equal(built(IDENTITY_SEND_TAILSCALED),
                        "Tailscale-Headers-Info: https://tailscale.com/s/serve-headers\n"
                        "Tailscale-User-Login: zoe@example.com\n"
                        "Tailscale-User-Name: =?utf-8?q?Zo=C3=AB_M=C3=BCller?=\n"
                        "Tailscale-User-Profile-Pic: https://x.example/p.png");
    /* Names are case-insensitive. */
    assert_int_equal(from_head("tailscale-user-login: =?utf-8?q?zo=C3=AB?=@example.com\r\n"), 0);
    assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "=?utf-8?q?zo=C3=AB?=@example.com");
    assert_int_equal(from_head("tailscale-user-login: =?utf-8?q?zo=C3=AB@example.com?=\r\n"), 0);
    assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "zoë@example.com");
}

/* No identity headers: a tagged node, a local or unknown source (tailscaled
 * sends none), or no tailscaled at all: ask whois. */
static void test_identity_no_headers_no_identity(void **state)
{
    assert_int_equal(from_head("Accept: */*\r\n"), 0);
    assert_int_equal(id.source, IDENTITY_NONE);
    assert_false(identity_is_user(&id));
    /* An empty login is what tailscaled sends for one that is not UTF-8. */
    assert_int_equal(from_head("Tailscale-User-Login: \r\nTailscale-User-Name: x\r\n"), 0);
    assert_int_equal(id.source, IDENTITY_NONE);
}

static void test_identity_funnel_header(void **state)
{
    assert_int_equal(from_head("Tailscale-Funnel-Request: ?1\r\n"
                               "Tailscale-User-Login: alice@example.com\r\n"),
                     0);
    assert_int_equal(id.source, IDENTITY_HEADERS);
    assert_true(id.funnel);
    assert_false(identity_is_user(&id));
    assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "");
    assert_int_equal(from_head("Tailscale-Funnel-Request: 1\r\n"), IDENTITY_ERR_ENCODING);
    assert_int_equal(id.source, IDENTITY_NONE);
    assert_false(id.funnel);
}

/* Values tailscaled cannot have sent leave no identity at all. */
static void test_identity_bad_headers_leave_no_identity(void **state)
{
    static const struct {
        const char *fields;
        int err;
    } v[] = {
        {"Tailscale-User-Login: a@example.com\r\nTailscale-User-Login: b@example.com\r\n",
         IDENTITY_ERR_DUPLICATE},
        {"Tailscale_User_Login: a@example.com\r\n", IDENTITY_ERR_DUPLICATE},
        {"Tailscale-User-Login: a@example.com\r\nTailscale-User_Name: A\r\n",
         IDENTITY_ERR_DUPLICATE},
        {"Tailscale-User-Login: zo\xc3\xab@example.com\r\n", IDENTITY_ERR_ENCODING},
        {"Tailscale-User-Login: =?utf-8?q?a=0D=0Ab?=\r\n", IDENTITY_ERR_TEXT},
        {"Tailscale-User-Login: a@example.com\r\nTailscale-User-Name: =?utf-8?q?=00=C3=AB?=\r\n",
         IDENTITY_ERR_TEXT},
        /* raw in the picture URL: bytes that are not UTF-8, a C1 control */
        {"Tailscale-User-Login: a@example.com\r\nTailscale-User-Profile-Pic: \xff\r\n",
         IDENTITY_ERR_TEXT},
        {"Tailscale-User-Login: a@example.com\r\nTailscale-User-Profile-Pic: a\xc2\x85\r\n",
         IDENTITY_ERR_TEXT},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int e = from_head(v[i].fields);
        if (e != v[i].err)
            fail_msg("case %zu: %d (%s), want %d", i, e, identity_strerror(e), v[i].err);
        assert_int_equal(id.source, IDENTITY_NONE);
        assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "");
        assert_false(identity_is_user(&id));
    }
}

/* Tailscale-App-Capabilities (JSON, encoded when not ASCII) is kept and
 * passed on as it came, for tagged nodes too (tailscaled does not skip them). */
static void test_identity_app_capabilities_passed_on(void **state)
{
    assert_int_equal(from_head("Tailscale-App-Capabilities: "
                               "=?utf-8?q?{\"example.com/cap/x\":[{\"n\":\"=C3=A9\"}]}?=\r\n"),
                     0);
    assert_string_equal(identity_get(&id, IDENTITY_APP_CAPS),
                        "{\"example.com/cap/x\":[{\"n\":\"é\"}]}");
    assert_false(identity_is_user(&id));
    assert_string_equal(built(IDENTITY_SEND_TAILSCALED),
                        "Tailscale-App-Capabilities: "
                        "=?utf-8?q?{\"example.com/cap/x\":[{\"n\":\"=C3=A9\"}]}?=");
}

/* ---- storing values ---------------------------------------------------------- */

static void test_identity_values_with_controls_refused(void **state)
{
    identity_init(&id);
    assert_int_equal(identity_set(&id, IDENTITY_LOGIN, "a\r\nX-Evil: 1", 12), IDENTITY_ERR_TEXT);
    assert_int_equal(identity_set(&id, IDENTITY_LOGIN, "a\nb", 3), IDENTITY_ERR_TEXT);
    assert_int_equal(identity_set(&id, IDENTITY_LOGIN, "a\0b", 3), IDENTITY_ERR_TEXT);
    assert_int_equal(identity_set(&id, IDENTITY_DISPLAY_NAME, "\xff", 1), IDENTITY_ERR_TEXT);
    assert_int_equal(identity_add(&id, IDENTITY_TAGS, "tag:a\r", 6), IDENTITY_ERR_TEXT);
    assert_int_equal(identity_add(&id, IDENTITY_TAGS, "", 0), IDENTITY_ERR_EMPTY);
    assert_int_equal(identity_count(&id, IDENTITY_TAGS), 0);
    assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "");
}

static void test_identity_limits(void **state)
{
    identity_init(&id);
    char tag[16];
    for (int i = 0; i < LIMIT_IDENTITY_LIST; i++) {
        int n = snprintf(tag, sizeof tag, "tag:t%d", i);
        assert_int_equal(identity_add(&id, IDENTITY_TAGS, tag, (size_t)n), 0);
    }
    assert_int_equal(identity_add(&id, IDENTITY_TAGS, "tag:x", 5), IDENTITY_ERR_TOO_MANY);
    assert_string_equal(identity_item(&id, IDENTITY_TAGS, 63), "tag:t63");
    static char big[LIMIT_IDENTITY_BYTES];
    memset(big, 'a', sizeof big);
    assert_int_equal(identity_set(&id, IDENTITY_DISPLAY_NAME, big, sizeof big),
                     IDENTITY_ERR_TOO_LONG);
}

/* The largest identity, every value needing encoding, still fits the
 * header store (identity_build_headers never fails in practice). */
static void test_identity_largest_identity_builds(void **state)
{
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    id.has_user_id = id.has_node_id = true;
    id.user_id = INT64_MIN;
    id.node_id = INT64_MAX;
    static char v[LIMIT_IDENTITY_BYTES];
    for (int i = 0; i < LIMIT_IDENTITY_LIST; i++)
        add(IDENTITY_PEER_CAPS, "c");
    /* "é" is 2 bytes and 6 encoded: the login, name and app caps share the rest. */
    size_t room = LIMIT_IDENTITY_BYTES - id.used - 4;
    for (int f = 0; f < 3; f++) {
        size_t n = (room / 3) & ~(size_t)1;
        for (size_t i = 0; i < n; i += 2)
            memcpy(v + i, "\xc3\xa9", 2);
        if (f == 0)
            memcpy(v + (n / 2 & ~(size_t)1), "@a", 2);
        enum identity_field which[] = {IDENTITY_LOGIN, IDENTITY_DISPLAY_NAME, IDENTITY_APP_CAPS};
        assert_int_equal(identity_set(&id, which[f], v, n), 0);
    }
    id.source = IDENTITY_WHOIS;
    int n = identity_build_headers(&id, IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED, &hs);
    assert_int_equal(n, 13);
    assert_true(hs.used <= sizeof hs.store);
}

/* ---- predicates ---------------------------------------------------------------- */

/* auth_bypass_tailnet: a person only. */
static void test_identity_bypass_only_for_users(void **state)
{
    whois_user();
    assert_true(identity_is_user(&id));
    id.source = IDENTITY_HEADERS;
    assert_true(identity_is_user(&id));
    id.funnel = true;
    assert_false(identity_is_user(&id)); /* Funnel */
    whois_tagged();
    assert_false(identity_is_user(&id)); /* tagged node */
    assert_true(identity_is_tagged(&id));
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    set(IDENTITY_LOGIN, "tagged-devices"); /* the pseudo-user even without tags */
    assert_false(identity_is_user(&id));
    identity_init(&id); /* a failed whois: nothing */
    assert_false(identity_is_user(&id));
    set(IDENTITY_LOGIN, "zoe@example.com"); /* values without a source are not trusted */
    assert_false(identity_is_user(&id));
    id.source = IDENTITY_HEADERS;
    set(IDENTITY_LOGIN, "");
    assert_false(identity_is_user(&id));
}

static void test_identity_reserved_header_names(void **state)
{
    static const char *const yes[] = {
        "X-Tailscale-User",           "x-tailscale-user-loginname", "X_Tailscale_Caps",
        "Tailscale-User-Login",       "tailscale_user_name",        "Tailscale-Headers-Info",
        "Tailscale-App-Capabilities", "TAILSCALE-FUNNEL-REQUEST",   "Tailscale-Whatever-Next",
    };
    static const char *const no[] = {"X-Tailscaled", "Tailscale",       "XTailscale-User",
                                     "Remote-User",  "X-Forwarded-For", "tailscalefoo"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(identity_header_reserved((struct http_slice){yes[i], strlen(yes[i])}));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(identity_header_reserved((struct http_slice){no[i], strlen(no[i])}));
}

/* The headers plug into headers_build_request: a client's forged copy is
 * gone, portico's are there, and the head parses back. */
static void test_identity_headers_fit_request_rewrite(void **state)
{
    static char head[] = "GET /d HTTP/1.1\r\nHost: grafana.example\r\n"
                         "X-Tailscale-User-Loginname: admin@example.com\r\n\r\n";
    static struct http_request in;
    assert_true(http1_parse_request(head, strlen(head), &in) > 0);
    whois_user();
    int n = identity_build_headers(&id, IDENTITY_SEND_TSNSRV | IDENTITY_SEND_TAILSCALED, &hs);
    struct request_rewrite rw = {.client_addr = "100.64.0.1", .proto = "https"};
    rw.add = hs.h;
    rw.nadd = (size_t)n;
    static char out[16384];
    long len = headers_build_request(&in, &rw, out, sizeof out);
    assert_true(len > 0);
    assert_null(strstr(out, "admin@example.com"));
    static struct http_request back;
    assert_int_equal(http1_parse_request(out, (size_t)len, &back), len);
    const struct http_header *h =
        http_find_header(back.headers, back.nheaders, "X-Tailscale-User-Displayname");
    assert_non_null(h);
    assert_int_equal(h->value.len, strlen("Zoë Müller"));
    assert_memory_equal(h->value.p, "Zoë Müller", h->value.len);
}

/* tailscaled's X-Forwarded-Host and X-Forwarded-For on the backend listener. */
static void fwd(const char *headers, enum identity_forward want, const char *host, const char *addr)
{
    static char head[2048];
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: tailnet.sock\r\n%s\r\n", headers);
    assert_true(http1_parse_request(head, strlen(head), &req) > 0);
    struct http_slice h = {"", 0};
    char a[48];
    assert_int_equal(identity_forwarded(&req, &h, a, sizeof a), want);
    if (want == IDENTITY_FWD_OK) {
        assert_int_equal(h.len, strlen(host));
        assert_memory_equal(h.p, host, h.len);
    }
    assert_string_equal(a, addr);
}

static void test_identity_forwarded_host_and_caller(void **state)
{
    fwd("X-Forwarded-Host: grafana.tail1.ts.net\r\nX-Forwarded-For: 100.64.0.2\r\n",
        IDENTITY_FWD_OK, "grafana.tail1.ts.net", "100.64.0.2");
    /* Whatever came before tailscaled's own element is not the caller. */
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-For: 10.0.0.1, 100.64.0.2 \r\n", IDENTITY_FWD_OK,
        "a.b", "100.64.0.2");
    fwd("X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: a.b\r\nX-Forwarded-For: 100.64.0.7\r\n",
        IDENTITY_FWD_OK, "a.b", "100.64.0.7");
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-For: FD7A:115C:A1E0::0005\r\n", IDENTITY_FWD_OK,
        "a.b", "fd7a:115c:a1e0::5");
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-For: ::ffff:100.64.0.2\r\n", IDENTITY_FWD_OK, "a.b",
        "100.64.0.2");
    /* Not an address: no caller (never a name, a port or a list). */
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-For: 100.64.0.2:443\r\n", IDENTITY_FWD_OK, "a.b", "");
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-For: 100.64.0.2,\r\n", IDENTITY_FWD_OK, "a.b", "");
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-For: unknown\r\n", IDENTITY_FWD_OK, "a.b", "");
    fwd("X-Forwarded-Host: a.b\r\n", IDENTITY_FWD_OK, "a.b", "");
    fwd("X-Forwarded-For: 100.64.0.2\r\n", IDENTITY_FWD_NO_HOST, NULL, "100.64.0.2");
    fwd("X-Forwarded-Host: \r\n", IDENTITY_FWD_NO_HOST, NULL, "");
    fwd("X-Forwarded-Host: a.b\r\nX-Forwarded-Host: c.d\r\n", IDENTITY_FWD_MANY_HOSTS, NULL, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_tsnsrv_headers_for_user_node),
        cmocka_unit_test(test_identity_tailscaled_headers_for_user_node),
        cmocka_unit_test(test_identity_tsnsrv_headers_for_tagged_node),
        cmocka_unit_test(test_identity_login_without_at),
        cmocka_unit_test(test_identity_empty_profile_pic),
        cmocka_unit_test(test_identity_no_caps_no_caps_headers),
        cmocka_unit_test(test_identity_values_trimmed_as_go_writes_them),
        cmocka_unit_test(test_identity_headers_only_identity_gets_no_tsnsrv_headers),
        cmocka_unit_test(test_identity_funnel_anonymous),
        cmocka_unit_test(test_identity_from_tailscaled_headers),
        cmocka_unit_test(test_identity_no_headers_no_identity),
        cmocka_unit_test(test_identity_funnel_header),
        cmocka_unit_test(test_identity_bad_headers_leave_no_identity),
        cmocka_unit_test(test_identity_app_capabilities_passed_on),
        cmocka_unit_test(test_identity_values_with_controls_refused),
        cmocka_unit_test(test_identity_limits),
        cmocka_unit_test(test_identity_largest_identity_builds),
        cmocka_unit_test(test_identity_forwarded_host_and_caller),
        cmocka_unit_test(test_identity_bypass_only_for_users),
        cmocka_unit_test(test_identity_reserved_header_names),
        cmocka_unit_test(test_identity_headers_fit_request_rewrite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
