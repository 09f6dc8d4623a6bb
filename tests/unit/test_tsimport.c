/* test_tsimport.c - `portico import tsnsrv`: the shell-word splitter,
 * tsnsrv's flag rules (Go's flag package), durations and booleans, the
 * detection of the three inputs, and the conversion of each tsnsrv
 * setting, with every output loaded by the configuration parser. */
#include "unit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tsimport.h"
#include "tsimport_int.h"

/* ---- helpers ---- */

static struct tsimport_result conv_from(const char *in, enum tsimport_from from)
{
    struct tsimport_result r;
    char err[1024] = "";
    if (tsimport_convert(in, strlen(in), from, "in", &r, err, sizeof err) != 0)
        fail_msg("conversion failed: %s", err);
    /* whatever import writes, portico loads */
    char cerr[1024] = "";
    struct config *c = config_parse("out.yaml", r.yaml, strlen(r.yaml), cerr, sizeof cerr);
    if (!c)
        fail_msg("portico refuses the output: %s\n%s", cerr, r.yaml);
    config_unref(c);
    return r;
}

static struct tsimport_result conv(const char *in)
{
    return conv_from(in, TSIMPORT_AUTO);
}

static void has(const struct tsimport_result *r, const char *want)
{
    if (!strstr(r->yaml, want))
        fail_msg("output lacks \"%s\":\n%s", want, r->yaml);
}

static void lacks(const struct tsimport_result *r, const char *bad)
{
    if (strstr(r->yaml, bad))
        fail_msg("output has \"%s\":\n%s", bad, r->yaml);
}

/* conversion refused with a message starting with want */
static void refused_from(const char *in, enum tsimport_from from, const char *want)
{
    struct tsimport_result r = {0};
    char err[1024] = "";
    assert_int_equal(tsimport_convert(in, strlen(in), from, "in", &r, err, sizeof err), -1);
    assert_null(r.yaml);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", err, want);
}

static void refused(const char *in, const char *want)
{
    refused_from(in, TSIMPORT_AUTO, want);
}

/* ---- words ---- */

static int split(const char *line, char **w, size_t max, char *err)
{
    static char buf[1024];
    return tsimport_split_words(line, strlen(line), buf, sizeof buf, w, max, err, 128);
}

static void test_tsimport_split_quotes_like_sh(void **state)
{
    char *w[16], err[128];
    assert_int_equal(split("a 'b c' \"d \\\"e\\\" \\$f \\n\" g\\ h i#j # comment", w, 16, err), 5);
    assert_string_equal(w[0], "a");
    assert_string_equal(w[1], "b c");
    assert_string_equal(w[2], "d \"e\" $f \\n");
    assert_string_equal(w[3], "g h");
    assert_string_equal(w[4], "i#j");
    assert_int_equal(split("a \\\n  b 'x'\"y\"z", w, 16, err), 3);
    assert_string_equal(w[1], "b");
    assert_string_equal(w[2], "xyz");
    assert_int_equal(split("''", w, 16, err), 1);
    assert_string_equal(w[0], "");
    assert_int_equal(split("   # only a comment", w, 16, err), 0);
}

static void test_tsimport_split_refuses(void **state)
{
    char *w[4], err[128];
    assert_int_equal(split("a 'b", w, 4, err), -1);
    assert_string_equal(err, "unterminated ' quote");
    assert_int_equal(split("a \"b", w, 4, err), -1);
    assert_string_equal(err, "unterminated \" quote");
    assert_int_equal(split("a b c d e", w, 4, err), -1);
    assert_string_equal(err, "more than 4 words");
    assert_int_equal(split("tsnsrv x | tee", w, 4, err), -1);
    assert_non_null(strstr(err, "shell operators"));
    assert_int_equal(split("a '|' \"&;\"", w, 4, err), 3); /* quoted: plain characters */
}

/* ---- values ---- */

static void test_tsimport_go_durations(void **state)
{
    assert_int_equal(tsi_parse_duration("1m30s"), 90000);
    assert_int_equal(tsi_parse_duration("500ms"), 500);
    assert_int_equal(tsi_parse_duration("1.5s"), 1500);
    assert_int_equal(tsi_parse_duration("0"), 0);
    assert_int_equal(tsi_parse_duration("0s"), 0);
    assert_int_equal(tsi_parse_duration("1us"), 1); /* rounded up */
    assert_int_equal(tsi_parse_duration("1h"), 3600000);
    assert_int_equal(tsi_parse_duration(""), -1);
    assert_int_equal(tsi_parse_duration("5"), -1);
    assert_int_equal(tsi_parse_duration("5x"), -1);
    assert_int_equal(tsi_parse_duration("s"), -1);
    assert_int_equal(tsi_parse_duration("25h"), -1);
}

static void test_tsimport_go_booleans(void **state)
{
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(tsi_parse_bool(yes[i]), 1);
        assert_int_equal(tsi_parse_bool(no[i]), 0);
    }
    assert_int_equal(tsi_parse_bool("yes"), -1);
    assert_int_equal(tsi_parse_bool("tRUE"), -1);
}

static void test_tsimport_detects_the_input(void **state)
{
    assert_int_equal(tsimport_detect("tsnsrv -name a http://x", 23), TSIMPORT_CMDLINE);
    assert_int_equal(tsimport_detect("# c\n-name=a http://x", 20), TSIMPORT_CMDLINE);
    const char *y = "# tsnsrv config\nservices:\n  - name: a\n";
    assert_int_equal(tsimport_detect(y, strlen(y)), TSIMPORT_YAML);
    assert_int_equal(tsimport_detect("---\n", 4), TSIMPORT_YAML);
    assert_int_equal(tsimport_detect("\n  {\"a\": {}}", 12), TSIMPORT_NIXJSON);
    assert_int_equal(tsimport_detect("\xef\xbb\xbf{}", 5), TSIMPORT_NIXJSON);
}

/* ---- command lines ---- */

static void test_tsimport_plain_service(void **state)
{
    struct tsimport_result r = conv("tsnsrv -name grafana http://127.0.0.1:3000\n");
    has(&r, "tailscale:\n  services: true\n");
    has(&r,
        "services:\n  grafana:\n    hosts: [grafana]\n    upstream: \"http://127.0.0.1:3000\"\n");
    lacks(&r, "# not ");
    assert_int_equal(r.nservices, 1);
    assert_int_equal(r.ndropped, 0);
    assert_int_equal(r.nunneeded, 0);
    assert_string_equal(r.summary, "");
    tsimport_result_free(&r);
}

static void test_tsimport_go_flag_rules(void **state)
{
    /* --flag=v, -flag v, a boolean alone, the program by path, exec and env */
    struct tsimport_result r =
        conv("exec FOO=1 /usr/bin/tsnsrv --name=a -upstreamUnixAddr /run/a.sock -insecureHTTPS "
             "https://127.0.0.1:8443\n"
             "-name b -- http://[::1]:80/\n"
             "$ tsnsrv -name C http://localhost\n");
    has(&r, "    hosts: [a]\n    upstream: \"unix:/run/a.sock\"\n  b:\n");
    has(&r, "not carried over: URL: https://127.0.0.1:8443 (line 1): portico speaks plain HTTP");
    has(&r, "  b:\n    hosts: [b]\n    upstream: \"http://[::1]:80\"\n");
    has(&r, "  c:\n    hosts: [c]\n    upstream: \"http://localhost:80\"\n");
    tsimport_result_free(&r);
    /* a boolean never takes the next word: "false" is then the URL */
    refused("tsnsrv -name a -funnel false http://x\n",
            "in:1: \"http://x\" after the destination URL");
    refused("tsnsrv -name a -prefix\n", "in:1: flag needs an argument: -prefix");
    refused("tsnsrv -name a -bogus http://x\n", "in:1: flag provided but not defined: -bogus");
    refused("tsnsrv -name a ---x http://x\n", "in:1: bad flag syntax: ---x");
    refused("\n\ntsnsrv -name a\n", "in:3: no destination URL");
    refused("tsnsrv http://x\n", "in:1: tsnsrv needs a -name");
    refused("docker run tsnsrv\n", "in:1: \"docker\" is not tsnsrv");
    refused("tsnsrv -name a -stripPrefix=maybe http://x\n",
            "in:1: -stripPrefix: \"maybe\" is not a boolean");
    refused("tsnsrv -name a -timeout 5 http://x\n", "in:1: -timeout: \"5\" is not a duration");
    refused("tsnsrv -name a -tag foo http://x\n", "in:1: -tag: \"foo\": tags must start");
    refused("tsnsrv -name a -upstreamHeader X-A=b http://x\n",
            "in:1: -upstreamHeader: \"X-A=b\": header format");
    /* what portico's loader refuses is an error, not a file check refuses */
    refused(
        "tsnsrv -name a http://999.0.0.1:1\n",
        "in: portico cannot use the result: (the result):12: services.a.upstream: invalid IPv4");
    refused("tsnsrv -name a ftp://x\n", "in:1: service \"a\": destination URL \"ftp://x\"");
    refused("{\"a\\nb\": {\"toURL\": \"http://x\"}}", "in: -name \"a?b\" cannot be"); /* one line */
    refused("tsnsrv -name a_b http://x\n", "in:1: -name \"a_b\" cannot be a portico service name");
    refused("tsnsrv -name a http://x\ntsnsrv -name A http://y\n",
            "in:2: service \"a\" appears twice");
    refused("tsnsrv -name a -funnelOnly http://x\n", "in:1: service \"a\": -funnel is required");
    refused("tsnsrv -name a -upstreamTCPAddr x:1 -upstreamUnixAddr /s http://x\n",
            "in:1: service \"a\": -upstreamTCPAddr and -upstreamUnixAddr");
    refused("tsnsrv -config /etc/tsnsrv.yaml\n", "in:1: -config /etc/tsnsrv.yaml: convert that");
    refused("# nothing\n\n", "in: no tsnsrv service found");
    refused("tsnsrv -name a -prefix \xff http://x\n", "in:1: -prefix: the value is not UTF-8");
    refused("tsnsrv -name \xc3\x28 http://x\n", "in:1: -name: the value is not UTF-8");
}

static void test_tsimport_prefixes(void **state)
{
    /* stripped: a route that strips, and the allowlist named as dropped */
    struct tsimport_result r = conv("tsnsrv -name a -prefix /api/ http://127.0.0.1:1\n");
    has(&r, "    routes:\n      - {prefix: \"/api/\", upstream: \"http://127.0.0.1:1\", "
            "strip_prefix: true}\n");
    has(&r, "# not carried over: -prefix: tsnsrv answered 404 outside /api/;");
    assert_int_equal(r.ndropped, 1);
    tsimport_result_free(&r);
    /* not stripped: the path goes upstream as it is, no route */
    r = conv(
        "tsnsrv -name a -stripPrefix=false -prefix /x -prefix tailnet:/y http://127.0.0.1:1\n");
    lacks(&r, "routes:");
    has(&r, "outside /x, /y;");
    tsimport_result_free(&r);
    /* the README's hydra webhook: stripped and put back by the URL's path */
    r = conv(
        "tsnsrv -name h -funnel -prefix /api/push-github http://127.0.0.1:3001/api/push-github\n");
    lacks(&r, "routes:");
    has(&r, "upstream: \"http://127.0.0.1:3001\"\n");
    has(&r, "tailscale: {funnel: {service: h, paths: [/api/push-github]}}");
    lacks(&r, "the URL's path");
    tsimport_result_free(&r);
    /* a URL path nothing puts back */
    r = conv("tsnsrv -name a http://127.0.0.1:1/sub\n");
    has(&r,
        "# not carried over: URL: http://127.0.0.1:1/sub (line 1): the URL's path /sub was put");
    tsimport_result_free(&r);
    /* "/" and funnel-only prefixes restrict nothing on the tailnet */
    r = conv("tsnsrv -name a -funnel -prefix tailnet:/ -prefix funnel:/.well-known/ "
             "http://127.0.0.1:1\n");
    lacks(&r, "-prefix:");
    has(&r, "paths: [/.well-known/]");
    tsimport_result_free(&r);
}

static void test_tsimport_upstream_settings(void **state)
{
    struct tsimport_result r =
        conv("tsnsrv -name a -insecureHTTPS -recommendedProxyHeaders=false "
             "-upstreamHeader 'X-Env: prod' -upstreamHeader 'Host: other' "
             "-upstreamHeader 'X-Tailscale-User: me' -upstreamHeader 'X-Env: again' "
             "https://app.lan:8443\n"
             "tsnsrv -name b -insecureHTTPS -upstreamTCPAddr 127.0.0.1:9 http://app.lan\n");
    has(&r, "  a:\n");
    has(&r, "    upstream: \"https://app.lan:8443\"\n    tls_insecure_skip_verify: true\n"
            "    host_header: \"app.lan:8443\"\n");
    has(&r, "    headers:\n      \"X-Env\": \"prod\"\n  b:\n");
    has(&r, "# not needed: -upstreamHeader Host: other (line 1): Go's HTTP client ignores");
    has(&r, "# not needed: -upstreamHeader X-Tailscale-User: me (line 1): tsnsrv removed");
    has(&r, "# not carried over: -upstreamHeader X-Env: again (line 1): a second value");
    has(&r, "  b:\n    hosts: [b]\n    upstream: \"http://127.0.0.1:9\"\n");
    tsimport_result_free(&r);
}

/* Values that grow when quoted (control characters become \u00XX) in a
 * route: the route text is built on the heap, whatever their length. */
static void test_tsimport_long_values_in_routes(void **state)
{
    static char line[4096];
    int n = snprintf(line, sizeof line, "tsnsrv -name a -prefix /x -upstreamUnixAddr '/");
    memset(line + n, 1, 600);
    snprintf(line + n + 600, sizeof line - (size_t)n - 600, "' http://x\n");
    struct tsimport_result r = {0};
    char err[1024] = "";
    int rc = tsimport_convert(line, strlen(line), TSIMPORT_AUTO, "in", &r, err, sizeof err);
    /* portico's loader refuses such a socket path: an error, not a crash */
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "portico cannot use the result"));
    assert_null(r.yaml);
    /* longer than any upstream: refused before anything is built */
    memset(line + n, 'a', 1500);
    snprintf(line + n + 1500, sizeof line - (size_t)n - 1500, "' http://x\n");
    refused(line, "in:1: service \"a\": the upstream address is too long");
}

static void test_tsimport_node_settings_not_needed(void **state)
{
    struct tsimport_result r =
        conv("tsnsrv -name a -ephemeral -tag tag:web -stateDir /var/lib/a -authkeyPath /k "
             "-timeout 2m -tsnetVerbose -suppressTailnetDialer -ephemeral=false "
             "-listenAddr :443 -timeout 1m -whoisTimeout 1s -readHeaderTimeout 0s "
             "http://127.0.0.1:1\n");
    /* defaults (the last four) say nothing; the one tag of every service is service_tags */
    assert_int_equal(r.nunneeded, 6);
    assert_int_equal(r.ndropped, 0);
    has(&r, "  service_tags: [\"tag:web\"]    # -tag\n");
    lacks(&r, "-tag tag:web");
    has(&r, "# not needed: -timeout 2m (line 1)");
    lacks(&r, "-timeout 1m");
    lacks(&r, "-listenAddr");
    tsimport_result_free(&r);
}

static void test_tsimport_dropped_settings(void **state)
{
    struct tsimport_result r = conv(
        "tsnsrv -name a -plaintext -listenAddr :80 -certificateFile /c -keyFile /k "
        "-whoisTimeout 3s -readHeaderTimeout 1s -upstreamAllowInsecureCiphers "
        "-enableBugReports -prometheusAddr :9100 -funnel -prefix funnel:/x http://127.0.0.1:1\n");
    assert_int_equal(r.ndropped, 10);
    has(&r, "# not carried over: -plaintext true (line 1)");
    has(&r, "# not carried over: -listenAddr :80 (line 1)");
    has(&r, "# not carried over: -funnel: a Tailscale Service cannot be funnelled");
    /* the summary says the same, one line each, naming the service */
    assert_non_null(strstr(r.summary, "a: not carried over: -enableBugReports true (line 1): "));
    size_t lines = 0;
    for (const char *p = r.summary; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 10);
    tsimport_result_free(&r);
}

static void test_tsimport_forward_auth(void **state)
{
    struct tsimport_result r =
        conv("tsnsrv -name a -authURL http://Authelia:9091/ignored -authCopyHeader 'Remote-User: ' "
             "-authBypassForTailnet http://127.0.0.1:1\n"
             "tsnsrv -name b -authURL http://authelia:9091 -authCopyHeader 'Remote-User: ' "
             "http://127.0.0.1:2\n"
             "tsnsrv -name c -authURL https://10.0.0.1 -authPath /api/verify -authTimeout 1500ms "
             "-authInsecureHTTPS http://127.0.0.1:3\n"
             "tsnsrv -name d -authURL http://authelia:9091 -authTimeout 10s http://127.0.0.1:4\n");
    has(&r, "auth:\n  authelia:\n    url: \"http://authelia:9091/api/authz/forward-auth\"\n"
            "    style: forward-auth\n    copy_headers: [\"Remote-User\"]\n");
    has(&r, "  auth:\n    url: \"https://10.0.0.1/api/verify\"\n"
            "    style: forward-auth\n    timeout: 1500ms\n    copy_headers: []\n");
    has(&r, "  authelia-2:\n    url: \"http://authelia:9091/api/authz/forward-auth\"\n"
            "    style: forward-auth\n    timeout: 10s\n    copy_headers: []\n");
    has(&r, "    auth: authelia\n    auth_bypass_tailnet: true\n  b:\n");
    has(&r, "# note: -authURL path: tsnsrv used only the scheme and host");
    has(&r, "# not carried over: -authInsecureHTTPS true (line 3)");
    has(&r, "upstream: \"http://127.0.0.1:2\"\n    auth: authelia\n");
    tsimport_result_free(&r);
}

static void test_tsimport_funnel_and_tags(void **state)
{
    /* one service with Funnel on every path: tailscale.funnel */
    struct tsimport_result r = conv("tsnsrv -name a -funnel -prefix funnel:/ http://127.0.0.1:1\n"
                                    "tsnsrv -name b -tag tag:x http://127.0.0.1:2\n");
    has(&r, "  funnel:\n    service: a    # -funnel\n");
    has(&r, "# note: -funnel: published as tailscale.funnel on the node's own name");
    lacks(&r, "  service_tags:"); /* a has no tag */
    has(&r, "# not needed: -tag tag:x (line 2): it tagged tsnsrv's own node");
    assert_int_equal(r.ndropped, 0);
    tsimport_result_free(&r);
    /* two services with Funnel, or paths, or -funnelOnly: a comment with the snippet */
    const char *const twice[] = {
        "tsnsrv -name a -funnel http://127.0.0.1:1\ntsnsrv -name b -funnel http://127.0.0.1:2\n",
        "tsnsrv -name a -funnel -prefix /x http://127.0.0.1:1\n",
        "tsnsrv -name a -funnel -funnelOnly http://127.0.0.1:1\n",
    };
    for (size_t i = 0; i < 3; i++) {
        r = conv(twice[i]);
        lacks(&r, "  funnel:");
        has(&r, "# not carried over: -funnel");
        has(&r, "tailscale: {funnel: {service: a, paths: [");
        tsimport_result_free(&r);
    }
    /* different tags: none carried */
    r = conv("tsnsrv -name a -tag tag:x http://127.0.0.1:1\n"
             "tsnsrv -name b -tag tag:y http://127.0.0.1:2\n");
    lacks(&r, "  service_tags:");
    assert_int_equal(r.nunneeded, 2);
    tsimport_result_free(&r);
}

static void test_tsimport_suppress_whois(void **state)
{
    struct tsimport_result r = conv("tsnsrv -name a -suppressWhois http://127.0.0.1:1\n"
                                    "tsnsrv -name b -suppressWhois http://127.0.0.1:2\n");
    has(&r, "  identity_headers: false");
    assert_int_equal(r.ndropped, 0);
    tsimport_result_free(&r);
    r = conv("tsnsrv -name a -suppressWhois http://127.0.0.1:1\n"
             "tsnsrv -name b http://127.0.0.1:2\n");
    lacks(&r, "identity_headers");
    assert_int_equal(r.ndropped, 1);
    assert_non_null(strstr(r.summary, "a: not carried over: -suppressWhois: "));
    tsimport_result_free(&r);
}

static void test_tsimport_fork_service_flags(void **state)
{
    struct tsimport_result r =
        conv("tsnsrv -prometheusAddr :9099 -service \"name=a,upstream=http://127.0.0.1:1,"
             "funnel=no,stripPrefix=n,prefix=/x,upstreamHeader=X-A:b\" "
             "-service name=b,upstream=http://127.0.0.1:2,authURL=http://127.0.0.1:9091\n");
    has(&r, "# not carried over: prometheusAddr :9099: the metrics of every service");
    has(&r, "  a:\n");
    lacks(&r, "routes:");
    has(&r, "      \"X-A\": \"b\"\n");
    has(&r, "    auth: auth\n");
    tsimport_result_free(&r);
    refused("tsnsrv -service name=a,upstream=http://x,bogus=1\n", "in:1: -service: unknown key");
    refused("tsnsrv -service name=a,upstream=http://x -funnel\n", "in:1: -funnel: put it inside");
    refused("tsnsrv -service name=a,upstream=http://x http://y\n",
            "in:1: \"http://y\": no destination URL with -service");
}

/* ---- the fork's YAML ---- */

static void test_tsimport_fork_yaml(void **state)
{
    struct tsimport_result r = conv("prometheusAddr: \"\"\n"
                                    "services:\n"
                                    "  - name: a\n"
                                    "    upstream: http://127.0.0.1:1\n"
                                    "    prefixes: [/x]\n"
                                    "    funnel: no\n"
                                    "    colour: blue\n"
                                    "    upstreamHeaders: {X-A: b}\n"
                                    "  - name: b\n"
                                    "    upstream: http://127.0.0.1:2\n"
                                    "    recommendedProxyHeaders: true\n"
                                    "    stripPrefix: true\n"
                                    "    prefixes: [/y]\n"
                                    "    whoisTimeout: ~\n");
    /* absent booleans are false in -config mode (config.go): no strip, upstream's Host */
    has(&r, "  a:\n");
    has(&r, "    host_header: \"127.0.0.1:1\"\n");
    has(&r, "# note: recommendedProxyHeaders: absent, which tsnsrv -config reads as false");
    has(&r, "# not carried over: colour (line 7): tsnsrv ignores this key");
    has(&r, "      \"X-A\": \"b\"\n");
    has(&r, "    routes:\n      - {prefix: \"/y\", upstream: \"http://127.0.0.1:2\", strip_prefix: "
            "true}\n");
    lacks(&r, "prometheusAddr");
    tsimport_result_free(&r);
    refused("services:\n  - name: a\n    upstream: [x\n", "in:4: not YAML");
    refused("services:\n  - name: a\n    upstream: http://x\n    funnel: maybe\n",
            "in:4: funnel: \"maybe\" is not a boolean");
    refused("services:\n  - name: a\n    upstream: http://x\n    prefixes: /x\n",
            "in:4: prefixes: a list belongs here");
    refused("services:\n  - just a string\n", "in:2: services: every entry must be a mapping");
    refused("services: {}\n", "in:1: services: expected a list");
    refused("other: 1\n", "in:1: \"other\": a tsnsrv -config file has only");
    refused_from("{\"a\": 1}", TSIMPORT_YAML, "in:1: \"a\": a tsnsrv -config file");
}

/* ---- nix eval --json ---- */

static void test_tsimport_nix_json(void **state)
{
    struct tsimport_result r =
        conv("{\"a\": {\"toURL\": \"http://127.0.0.1:1\", \"timeout\": null, \"urlParts\": null,"
             " \"prefixes\": [\"/api\"], \"upstreamHeaders\": {\"X-A\": \"b\"}, \"tags\": [],"
             " \"extraArgs\": [\"-funnel\", \"-whoisTimeout\", \"2s\"], \"newOption\": 3,"
             " \"authKeyPath\": \"/run/k\", \"certificateKey\": null, \"stripPrefix\": true}}");
    has(&r, "    routes:\n      - {prefix: \"/api\", ");
    has(&r, "# not carried over: -funnel: a Tailscale Service");
    has(&r, "# not carried over: -whoisTimeout 2s: portico's whois call");
    has(&r, "# not carried over: newOption: not an option of tsnsrv's NixOS module");
    has(&r, "# not needed: authKeyPath: /run/k: it configured tsnsrv's own tailnet node");
    tsimport_result_free(&r);
    refused("{\"a\": {\"toURL\": \"http://x\", \"funnel\": \"maybe\"}}",
            "in: service a: funnel: \"maybe\" is not a boolean");
    refused("{\"a\": {\"toURL\": \"http://x\", \"extraArgs\": [\"-nope\"]}}",
            "in: service a: flag provided but not defined: -nope");
    refused("{\"a\": {\"toURL\": \"http://x\", \"extraArgs\": [\"http://y\"]}}",
            "in: service a: \"http://y\": not a flag");
    refused("{\"enable\": true, \"services\": {}}", "in: enable: expected the service's options");
    refused("{\"a\": {\"enable\": true, \"services\": {}}}", "in: this looks like services.tsnsrv");
    refused("{\"a\": {\"toURL\": \"http://x\"}, \"a\": {}}", "in:1: not JSON: duplicate");
    refused("[1", "in:1: not JSON");
    refused_from("[1]", TSIMPORT_NIXJSON, "in: expected an object of services");
    refused("{\"a\": {}}", "in: service \"a\" has no destination URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsimport_split_quotes_like_sh),
        cmocka_unit_test(test_tsimport_split_refuses),
        cmocka_unit_test(test_tsimport_go_durations),
        cmocka_unit_test(test_tsimport_go_booleans),
        cmocka_unit_test(test_tsimport_detects_the_input),
        cmocka_unit_test(test_tsimport_plain_service),
        cmocka_unit_test(test_tsimport_go_flag_rules),
        cmocka_unit_test(test_tsimport_prefixes),
        cmocka_unit_test(test_tsimport_upstream_settings),
        cmocka_unit_test(test_tsimport_long_values_in_routes),
        cmocka_unit_test(test_tsimport_node_settings_not_needed),
        cmocka_unit_test(test_tsimport_dropped_settings),
        cmocka_unit_test(test_tsimport_forward_auth),
        cmocka_unit_test(test_tsimport_funnel_and_tags),
        cmocka_unit_test(test_tsimport_suppress_whois),
        cmocka_unit_test(test_tsimport_fork_service_flags),
        cmocka_unit_test(test_tsimport_fork_yaml),
        cmocka_unit_test(test_tsimport_nix_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
