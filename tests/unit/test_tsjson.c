/* test_tsjson.c - tailscaled's status, whois and prefs answers: real-shaped
 * fixtures (tests/fixtures/tailscale/, written from the Go types of
 * tailscale/tailscale 1.103.0), then every way an answer can be wrong. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "tsfixture.h"
#include "tsjson.h"

static char err[512];

static int status_of(const char *json, struct tsjson_status *st)
{
    return tsjson_parse_status(json, strlen(json), st, err, sizeof err);
}

static int whois_of(const char *json, struct tsjson_whois *w)
{
    return tsjson_parse_whois(json, strlen(json), w, err, sizeof err);
}

static void test_status_service_host(void **state)
{
    size_t len;
    char *buf = ts_fixture("status_service_host.json", &len);
    struct tsjson_status st;
    assert_int_equal(tsjson_parse_status(buf, len, &st, err, sizeof err), 0);
    assert_string_equal(st.version, "1.94.1-t65182f211-g8e1c1fb7a");
    assert_int_equal(st.major, 1);
    assert_int_equal(st.minor, 94);
    assert_true(tsjson_version_at_least(st.major, st.minor, TSJSON_PROXY_PROTOCOL_MAJOR,
                                        TSJSON_PROXY_PROTOCOL_MINOR));
    assert_string_equal(st.backend_state, "Running");
    assert_string_equal(st.dns_name, "portico.tail1234.ts.net");
    assert_string_equal(st.magic_dns_suffix, "tail1234.ts.net");
    assert_string_equal(st.tailnet_name, "example.com");
    assert_int_equal(st.ips.n, 2);
    assert_string_equal(st.ips.v[0], "100.101.102.103");
    assert_string_equal(st.ips.v[1], "fd7a:115c:a1e0::1f01:6667");
    assert_int_equal(st.tags.n, 1);
    assert_string_equal(st.tags.v[0], "tag:portico");
    assert_true(st.service_host);
    /* Two values merge in order: the second replaces jellyfin's addresses. */
    assert_int_equal(st.n_hosts, 2);
    assert_string_equal(st.hosts[0].name, "svc:grafana");
    assert_int_equal(st.hosts[0].addrs.n, 2);
    assert_string_equal(st.hosts[0].addrs.v[0], "100.88.12.7");
    assert_string_equal(st.hosts[1].name, "svc:jellyfin");
    assert_int_equal(st.hosts[1].addrs.n, 2);
    assert_string_equal(st.hosts[1].addrs.v[0], "100.88.12.10");
    assert_string_equal(st.hosts[1].addrs.v[1], "fd7a:115c:a1e0::4e01:c0a");
    assert_int_equal(st.cert_domains.n, 3);
    assert_string_equal(st.cert_domains.v[1], "grafana.tail1234.ts.net");
    tsjson_status_free(&st);
    free(buf);
}

static void test_status_waiting_for_approval_on_1_92(void **state)
{
    size_t len;
    char *buf = ts_fixture("status_waiting.json", &len);
    struct tsjson_status st;
    assert_int_equal(tsjson_parse_status(buf, len, &st, err, sizeof err), 0);
    assert_int_equal(st.major, 1);
    assert_int_equal(st.minor, 92);
    assert_false(tsjson_version_at_least(st.major, st.minor, TSJSON_PROXY_PROTOCOL_MAJOR,
                                         TSJSON_PROXY_PROTOCOL_MINOR));
    assert_false(st.service_host);
    assert_int_equal(st.n_hosts, 0);
    assert_int_equal(st.tags.n, 2);
    assert_string_equal(st.tags.v[1], "tag:home");
    assert_int_equal(st.ips.n, 1);
    tsjson_status_free(&st);
    free(buf);
}

static void test_status_logged_out(void **state)
{
    size_t len;
    char *buf = ts_fixture("status_stopped.json", &len);
    struct tsjson_status st;
    assert_int_equal(tsjson_parse_status(buf, len, &st, err, sizeof err), 0);
    assert_string_equal(st.backend_state, "NeedsLogin");
    assert_string_equal(st.magic_dns_suffix, "");
    assert_string_equal(st.dns_name, "");
    assert_string_equal(st.tailnet_name, "");
    assert_int_equal(st.ips.n, 0);
    assert_int_equal(st.cert_domains.n, 0);
    assert_int_equal(st.major, 1);
    assert_int_equal(st.minor, 103);
    tsjson_status_free(&st);
    free(buf);
}

static void test_status_legacy_suffix_and_self_ips(void **state)
{
    struct tsjson_status st;
    assert_int_equal(status_of("{\"Version\":\"1.80.3-t1\",\"MagicDNSSuffix\":\"tail9.ts.net\","
                               "\"Self\":{\"DNSName\":\"n.tail9.ts.net.\",\"TailscaleIPs\":"
                               "[\"100.64.1.1\"]}}",
                               &st),
                     0);
    assert_string_equal(st.magic_dns_suffix, "tail9.ts.net");
    assert_int_equal(st.ips.n, 1);
    assert_string_equal(st.ips.v[0], "100.64.1.1");
    assert_false(st.service_host);
    assert_false(st.funnel);
    tsjson_status_free(&st);
}

/* nodecap.Funnel: present (whatever its value) or not. */
static void test_status_funnel_attribute(void **state)
{
    struct tsjson_status st;
    assert_int_equal(
        status_of("{\"Version\":\"1.103.0-t1\",\"MagicDNSSuffix\":\"t.ts.net\","
                  "\"Self\":{\"DNSName\":\"n.t.ts.net.\",\"CapMap\":{\"https\":null,"
                  "\"funnel\":null,\"https://tailscale.com/cap/funnel-ports?ports=443\""
                  ":null}}}",
                  &st),
        0);
    assert_true(st.funnel);
    tsjson_status_free(&st);
    assert_int_equal(status_of("{\"Version\":\"1.103.0-t1\",\"MagicDNSSuffix\":\"t.ts.net\","
                               "\"Self\":{\"DNSName\":\"n.t.ts.net.\",\"CapMap\":{\"https\":null,"
                               "\"https://tailscale.com/cap/warn-funnel-no-invite\":null}}}",
                               &st),
                     0);
    assert_false(st.funnel);
    tsjson_status_free(&st);
}

static void test_status_version_forms(void **state)
{
    static const struct {
        const char *v;
        int major, minor;
    } cases[] = {
        {"1.94.0", 1, 94},
        {"1.100.2-t0123456789-gabcdef", 1, 100},
        {"1.93.9-12-tabc", 1, 93},
        {"2.0.0", 2, 0},
        {"1.94.0-ERR-BuildInfo", 1, 94},
        {"v1.94.0", 0, 0},
        {"1", 0, 0},
        {"1.", 0, 0},
        {"", 0, 0},
        {"99999999999999.1", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"Version\":\"%s\"}", cases[i].v);
        struct tsjson_status st;
        assert_int_equal(status_of(json, &st), 0);
        assert_int_equal(st.major, cases[i].major);
        assert_int_equal(st.minor, cases[i].minor);
        tsjson_status_free(&st);
    }
    assert_true(tsjson_version_at_least(1, 94, 1, 94));
    assert_true(tsjson_version_at_least(2, 0, 1, 94));
    assert_false(tsjson_version_at_least(1, 93, 1, 94));
    assert_false(tsjson_version_at_least(0, 0, 1, 94));
}

static void expect_status_error(const char *json, const char *needle)
{
    struct tsjson_status st;
    err[0] = '\0';
    int rc = status_of(json, &st);
    if (rc == 0 || !strstr(err, needle))
        fprintf(stderr, "input %s: rc %d, err \"%s\", wanted \"%s\"\n", json, rc, err, needle);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, needle));
    tsjson_status_free(&st);
}

static void test_status_refused(void **state)
{
    expect_status_error("", "not valid JSON");
    expect_status_error("{\"Version\":\"1.94.0\"", "not valid JSON");
    expect_status_error("{\"Version\":\"1.94.0\"} x", "not valid JSON");
    expect_status_error("[]", "not a JSON object");
    expect_status_error("null", "not a JSON object");
    expect_status_error("{}", "Version is missing");
    expect_status_error("{\"Version\":194}", "Version is not a string");
    expect_status_error("{\"Version\":\"1.94.0\",\"Version\":\"1.95.0\"}", "duplicate");
    expect_status_error("{\"Version\":\"1.94\\n0\"}", "Version is not text");
    expect_status_error("{\"Version\":\"1.94\\u00000\"}", "not valid JSON");
    expect_status_error("{\"Version\":\"1.94.0\",\"TailscaleIPs\":\"100.64.0.1\"}",
                        "TailscaleIPs is not a list");
    expect_status_error("{\"Version\":\"1.94.0\",\"TailscaleIPs\":[\"100.64.0.300\"]}",
                        "TailscaleIPs[0] is not an IP address");
    expect_status_error("{\"Version\":\"1.94.0\",\"TailscaleIPs\":[100]}",
                        "TailscaleIPs[0] is not an IP address");
    expect_status_error("{\"Version\":\"1.94.0\",\"CurrentTailnet\":\"x\"}",
                        "CurrentTailnet is not an object");
    expect_status_error("{\"Version\":\"1.94.0\",\"CurrentTailnet\":{\"MagicDNSSuffix\":"
                        "\"a b.ts.net\"}}",
                        "MagicDNSSuffix is not a DNS name");
    expect_status_error("{\"Version\":\"1.94.0\",\"CurrentTailnet\":{\"MagicDNSSuffix\":"
                        "\"a..ts.net\"}}",
                        "MagicDNSSuffix is not a DNS name");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":[]}", "Self is not an object");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"DNSName\":\"x\\r\\nSet-Cookie: "
                        "a=b.\"}}",
                        "DNSName is not a DNS name");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"Tags\":[\"portico\"]}}",
                        "Tags[0] is not a tag");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"CapMap\":[]}}",
                        "CapMap is not an object");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"CapMap\":{\"service-host\":{}}}}",
                        "service-host\"] is not a list");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"CapMap\":{\"service-host\":"
                        "[[\"svc:a\"]]}}}",
                        "[0] is not an object of service names");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"CapMap\":{\"service-host\":"
                        "[{\"grafana\":[\"100.64.0.1\"]}]}}}",
                        "\"grafana\" is not a service name");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"CapMap\":{\"service-host\":"
                        "[{\"svc:a\":\"100.64.0.1\"}]}}}",
                        "svc:a is not a list of addresses");
    expect_status_error("{\"Version\":\"1.94.0\",\"Self\":{\"CapMap\":{\"service-host\":"
                        "[{\"svc:a\":[\"100.64.0.1/32\"]}]}}}",
                        "svc:a[0] is not an IP address");
    expect_status_error("{\"Version\":\"1.94.0\",\"CertDomains\":[\"*.*.x\"]}",
                        "CertDomains[0] is not a DNS name");
}

static void test_status_limits(void **state)
{
    /* Larger than the bound: refused before parsing. */
    size_t big = LIMIT_TS_JSON_BYTES + 1;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    memcpy(buf, "{\"Version\":\"1.94.0\"}", 20);
    struct tsjson_status st;
    assert_int_equal(tsjson_parse_status(buf, big, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than"));
    tsjson_status_free(&st);
    /* At the bound it parses. */
    assert_int_equal(tsjson_parse_status(buf, big - 1, &st, err, sizeof err), 0);
    tsjson_status_free(&st);
    free(buf);

    /* 64 tags pass, 65 do not. */
    char json[8192];
    for (int n = 64; n <= 65; n++) {
        size_t o =
            (size_t)snprintf(json, sizeof json, "{\"Version\":\"1.94.0\",\"Self\":{\"Tags\":[");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(json + o, sizeof json - o, "%s\"tag:t%d\"", i ? "," : "", i);
        snprintf(json + o, sizeof json - o, "]}}");
        int rc = status_of(json, &st);
        assert_int_equal(rc, n == 64 ? 0 : -1);
        if (rc == 0)
            assert_int_equal(st.tags.n, 64);
        else
            assert_non_null(strstr(err, "more than 64"));
        tsjson_status_free(&st);
    }

    /* A string of LIMIT_TS_STRING_BYTES passes, one byte more does not. */
    char *s = malloc(LIMIT_TS_STRING_BYTES + 64);
    for (int extra = 0; extra <= 1; extra++) {
        int n = snprintf(s, 64, "{\"Version\":\"");
        memset(s + n, '1', LIMIT_TS_STRING_BYTES + (size_t)extra);
        strcpy(s + n + LIMIT_TS_STRING_BYTES + extra, "\"}");
        assert_int_equal(status_of(s, &st), extra ? -1 : 0);
        tsjson_status_free(&st);
    }
    free(s);

    /* Nesting far deeper than any answer: an error, not a crash. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    assert_int_equal(status_of(deep, &st), -1);
    tsjson_status_free(&st);
    free(deep);
}

static void test_whois_user_node(void **state)
{
    size_t len;
    char *buf = ts_fixture("whois_user.json", &len);
    struct tsjson_whois w;
    assert_int_equal(tsjson_parse_whois(buf, len, &w, err, sizeof err), 0);
    assert_true(w.node_id == 5873210987654LL);
    assert_string_equal(w.node_stable_id, "nK8sT2CNTRL");
    assert_string_equal(w.node_name, "alices-laptop.tail1234.ts.net");
    assert_string_equal(w.node_computed_name, "alices-laptop");
    assert_int_equal(w.tags.n, 0);
    assert_int_equal(w.node_caps.n, 2);
    assert_string_equal(w.node_caps.v[0], "https://tailscale.com/cap/file-sharing");
    assert_string_equal(w.node_caps.v[1], "https://tailscale.com/cap/is-admin");
    assert_true(w.user_id == 6120009876543LL);
    assert_string_equal(w.login_name, "alice@example.com");
    /* UTF-8 kept as sent (tsnsrv passes it on raw) */
    assert_string_equal(w.display_name, "Alice \xc4\xb2sselmeer-\xc3\x86r\xc3\xb8sk\xc3\xb8"
                                        "bing");
    assert_string_equal(w.profile_pic_url, "https://lh3.googleusercontent.com/a/ACg8ocK1=s96-c");
    assert_int_equal(w.caps.n, 2);
    assert_string_equal(w.caps.v[0], "example.com/cap/grafana");
    assert_string_equal(w.caps.v[1], "tailscale.com/cap/drive");
    tsjson_whois_free(&w);
    free(buf);
}

static void test_whois_tagged_node(void **state)
{
    size_t len;
    char *buf = ts_fixture("whois_tagged.json", &len);
    struct tsjson_whois w;
    assert_int_equal(tsjson_parse_whois(buf, len, &w, err, sizeof err), 0);
    assert_true(w.node_id == 98765);
    assert_string_equal(w.login_name, "tagged-devices");
    assert_string_equal(w.display_name, "Tagged Devices");
    assert_string_equal(w.profile_pic_url, "");
    assert_int_equal(w.tags.n, 2);
    assert_string_equal(w.tags.v[0], "tag:ci");
    assert_string_equal(w.tags.v[1], "tag:monitoring");
    assert_int_equal(w.caps.n, 0);
    assert_int_equal(w.node_caps.n, 0);
    tsjson_whois_free(&w);
    free(buf);
}

#define NODE "\"Node\":{\"ID\":1,\"StableID\":\"s\",\"Name\":\"n.t.ts.net.\"}"
#define USER "\"UserProfile\":{\"ID\":2,\"LoginName\":\"a@b\",\"DisplayName\":\"A\"}"

static void expect_whois_error(const char *json, const char *needle)
{
    struct tsjson_whois w;
    err[0] = '\0';
    int rc = whois_of(json, &w);
    if (rc == 0 || !strstr(err, needle))
        fprintf(stderr, "input %s: rc %d, err \"%s\", wanted \"%s\"\n", json, rc, err, needle);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, needle));
    tsjson_whois_free(&w);
}

static void test_whois_refused(void **state)
{
    struct tsjson_whois w;
    assert_int_equal(whois_of("{" NODE "," USER "}", &w), 0);
    assert_string_equal(w.node_computed_name, "");
    tsjson_whois_free(&w);

    expect_whois_error("no match for IP:port", "not valid JSON");
    expect_whois_error("{" USER "}", "Node is missing");
    expect_whois_error("{\"Node\":null," USER "}", "Node is missing");
    expect_whois_error("{" NODE "}", "UserProfile is missing");
    expect_whois_error("{\"Node\":[]," USER "}", "Node is not an object");
    expect_whois_error("{\"Node\":{\"ID\":\"1\",\"StableID\":\"s\",\"Name\":\"n.\"}," USER "}",
                       "Node: ID is not an integer");
    expect_whois_error("{\"Node\":{\"ID\":1.5,\"StableID\":\"s\",\"Name\":\"n.\"}," USER "}",
                       "Node: ID is not an integer");
    expect_whois_error("{\"Node\":{\"ID\":0,\"StableID\":\"s\",\"Name\":\"n.\"}," USER "}",
                       "ID is 0, below 1");
    expect_whois_error("{\"Node\":{\"ID\":99999999999999999999,\"StableID\":\"s\",\"Name\":"
                       "\"n.\"}," USER "}",
                       "not valid JSON");
    expect_whois_error("{\"Node\":{\"StableID\":\"s\",\"Name\":\"n.\"}," USER "}",
                       "Node: ID is missing");
    expect_whois_error("{" NODE ",\"UserProfile\":{\"ID\":-1,\"LoginName\":\"a\"}}",
                       "ID is -1, below 0");
    expect_whois_error("{" NODE ",\"UserProfile\":{\"ID\":2}}", "LoginName is missing");
    expect_whois_error("{" NODE ",\"UserProfile\":{\"ID\":2,\"LoginName\":\"a\",\"DisplayName\":"
                       "\"A\\r\\nX-Tailscale-User: userid:1\"}}",
                       "DisplayName is not text");
    expect_whois_error("{" NODE ",\"UserProfile\":{\"ID\":2,\"LoginName\":\"a\\u007f\"}}",
                       "LoginName is not text");
    expect_whois_error("{" NODE ",\"UserProfile\":{\"ID\":2,\"LoginName\":\"\xff\"}}",
                       "not valid JSON");
    expect_whois_error("{\"Node\":{\"ID\":1,\"StableID\":\"s\",\"Name\":\"n.\",\"Tags\":"
                       "\"tag:a\"}," USER "}",
                       "Tags is not a list");
    expect_whois_error("{\"Node\":{\"ID\":1,\"StableID\":\"s\",\"Name\":\"n.\",\"Tags\":"
                       "[\"tag:\"]}," USER "}",
                       "Tags[0] is not a tag");
    expect_whois_error("{\"Node\":{\"ID\":1,\"StableID\":\"s\",\"Name\":\"n.\",\"CapMap\":"
                       "[\"x\"]}," USER "}",
                       "CapMap is not an object");
    expect_whois_error("{" NODE "," USER ",\"CapMap\":{\"\":null}}", "CapMap has a key");
    expect_whois_error("{" NODE "," USER ",\"CapMap\":{\"a\\nb\":null}}", "CapMap has a key");
    expect_whois_error("{\"Node\":{\"ID\":1,\"StableID\":\"s\",\"Name\":\"n m.\"}," USER "}",
                       "Name is not a DNS name");

    /* 256 capabilities pass, 257 do not. */
    char *json = malloc(65536);
    for (int n = 256; n <= 257; n++) {
        size_t o = (size_t)snprintf(json, 65536, "{" NODE "," USER ",\"CapMap\":{");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(json + o, 65536 - o, "%s\"example.com/cap/c%d\":null",
                                  i ? "," : "", i);
        snprintf(json + o, 65536 - o, "}}");
        int rc = whois_of(json, &w);
        assert_int_equal(rc, n == 256 ? 0 : -1);
        if (rc == 0)
            assert_string_equal(w.caps.v[255], "example.com/cap/c255");
        tsjson_whois_free(&w);
    }
    free(json);
}

static void test_prefs_advertised(void **state)
{
    size_t len;
    char *buf = ts_fixture("prefs.json", &len);
    struct tsjson_strlist l;
    assert_int_equal(tsjson_parse_advertised(buf, len, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0], "svc:wiki");
    assert_string_equal(l.v[1], "svc:grafana");
    tsjson_strlist_free(&l);
    free(buf);

    const char *none = "{\"AdvertiseServices\":null}";
    assert_int_equal(tsjson_parse_advertised(none, strlen(none), &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    tsjson_strlist_free(&l);

    const char *bad = "{\"AdvertiseServices\":[\"grafana\"]}";
    assert_int_equal(tsjson_parse_advertised(bad, strlen(bad), &l, err, sizeof err), -1);
    assert_non_null(strstr(err, "AdvertiseServices[0] is not a service name"));
    tsjson_strlist_free(&l);
    const char *arr = "[\"svc:a\"]";
    assert_int_equal(tsjson_parse_advertised(arr, strlen(arr), &l, err, sizeof err), -1);
    tsjson_strlist_free(&l);
}

static void test_advertise_body(void **state)
{
    const char *names[] = {"svc:wiki", "svc:grafana"};
    char *b = tsjson_advertise_body(names, 2);
    assert_string_equal(b, "{\"AdvertiseServicesSet\":true,\"AdvertiseServices\":"
                           "[\"svc:wiki\",\"svc:grafana\"]}");
    free(b);
    b = tsjson_advertise_body(NULL, 0);
    assert_string_equal(b, "{\"AdvertiseServicesSet\":true,\"AdvertiseServices\":[]}");
    free(b);
}

static void test_service_names(void **state)
{
    assert_true(tsjson_service_name_valid("svc:a"));
    assert_true(tsjson_service_name_valid("svc:grafana-2"));
    assert_true(tsjson_service_name_valid("svc:0ab"));
    assert_false(tsjson_service_name_valid("svc:"));
    assert_false(tsjson_service_name_valid("grafana"));
    assert_false(tsjson_service_name_valid("svc:-a"));
    assert_false(tsjson_service_name_valid("svc:a-"));
    assert_false(tsjson_service_name_valid("svc:Grafana"));
    assert_false(tsjson_service_name_valid("svc:a.b"));
    assert_false(tsjson_service_name_valid("svc:a_b"));
    char name[80] = "svc:";
    memset(name + 4, 'a', 63);
    name[67] = '\0';
    assert_true(tsjson_service_name_valid(name));
    name[67] = 'a';
    name[68] = '\0';
    assert_false(tsjson_service_name_valid(name));
}

/* A copy owns its strings: the original can go first. */
static void test_strlist_copy(void **state)
{
    struct tsjson_strlist src = {0}, dst, empty = {0};
    const char *body = "{\"AdvertiseServices\":[\"svc:a\",\"svc:b\"]}";
    assert_int_equal(tsjson_parse_advertised(body, strlen(body), &src, err, sizeof err), 0);
    assert_int_equal(tsjson_strlist_copy(&dst, &src), 0);
    tsjson_strlist_free(&src);
    assert_int_equal(dst.n, 2);
    assert_string_equal(dst.v[0], "svc:a");
    assert_string_equal(dst.v[1], "svc:b");
    tsjson_strlist_free(&dst);
    assert_int_equal(tsjson_strlist_copy(&dst, &empty), 0);
    assert_int_equal(dst.n, 0);
    assert_null(dst.v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_service_host),
        cmocka_unit_test(test_status_waiting_for_approval_on_1_92),
        cmocka_unit_test(test_status_logged_out),
        cmocka_unit_test(test_status_legacy_suffix_and_self_ips),
        cmocka_unit_test(test_status_funnel_attribute),
        cmocka_unit_test(test_status_version_forms),
        cmocka_unit_test(test_status_refused),
        cmocka_unit_test(test_status_limits),
        cmocka_unit_test(test_whois_user_node),
        cmocka_unit_test(test_whois_tagged_node),
        cmocka_unit_test(test_whois_refused),
        cmocka_unit_test(test_prefs_advertised),
        cmocka_unit_test(test_advertise_body),
        cmocka_unit_test(test_service_names),
        cmocka_unit_test(test_strlist_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
