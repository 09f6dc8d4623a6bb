/* test_tstarget.c - which services are published on the tailnet and where
 * tailscaled forwards each: the TLS listener chosen for passthrough, the
 * loopback address of a wildcard listener, the PROXY rules against
 * tailscaled's version, the warnings, and every refusal. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "tstarget.h"

#define SUFFIX "tail1234.ts.net"

static char err[700];

static const struct tstarget_node new_ts = {SUFFIX, true, 1, 94, NULL, false};
static const struct tstarget_node old_ts = {SUFFIX, true, 1, 92, NULL, false};
static const struct tstarget_node unknown = {NULL, false, 0, 0, NULL, false};

/* A configuration with these listen entries and services, publishing. */
static struct config *conf(const char *listen, const char *services)
{
    char text[4096];
    snprintf(text, sizeof text,
             "listen:\n%s"
             "tailscale: {services: true, state_dir: /tmp}\n"
             "services:\n"
             "  web: {hosts: [web.test], upstream: \"http://127.0.0.1:9\"}\n%s",
             listen, services);
    struct config *c = config_parse("t.yaml", text, strlen(text), err, sizeof err);
    if (!c)
        fprintf(stderr, "%s\n", err);
    assert_non_null(c);
    return c;
}

#define VAULT "  vault: {hosts: [vault." SUFFIX "], passthrough: \"127.0.0.1:9\"}\n"

static void test_passthrough_prefers_the_listener_matching_tailscaled(void **state)
{
    struct config *c = conf("  - {addr: \"127.0.0.1:8001\"}\n"
                            "  - {addr: \"127.0.0.1:8443\", tls: true}\n"
                            "  - {addr: \"127.0.0.1:8444\", tls: true, proxy_protocol: true}\n",
                            VAULT);
    struct tstarget t;
    assert_int_equal(tstarget_collect(c, &new_ts, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.svcs[0].name, "web");
    assert_int_equal(t.svcs[0].kind, SERVECFG_HTTP);
    assert_string_equal(t.svcs[0].backend, "unix:/run/portico/tailnet.sock");
    assert_string_equal(t.svcs[1].name, "vault");
    assert_int_equal(t.svcs[1].kind, SERVECFG_PASSTHROUGH);
    assert_int_equal(t.svcs[1].port, 443);
    assert_string_equal(t.svcs[1].backend, "127.0.0.1:8444");
    assert_true(t.svcs[1].proxy_protocol);
    assert_string_equal(t.warnings, "");
    tstarget_free(&t);

    /* 1.92 sends no PROXY header for Services: the other listener. */
    assert_int_equal(tstarget_collect(c, &old_ts, &t, err, sizeof err), 0);
    assert_string_equal(t.svcs[1].backend, "127.0.0.1:8443");
    assert_false(t.svcs[1].proxy_protocol);
    assert_string_equal(t.warnings,
                        "service vault: the TLS listener 127.0.0.1:8443 does not expect a PROXY "
                        "header, so the callers of svc:vault are unknown to portico (tailscaled "
                        "connects from this machine); tailscaled 1.94 and later can send one\n");
    tstarget_free(&t);

    /* policy: the version is not known, no warning, the first listener. */
    assert_int_equal(tstarget_collect(c, &unknown, &t, err, sizeof err), 0);
    assert_string_equal(t.svcs[1].backend, "127.0.0.1:8443");
    assert_string_equal(t.warnings, "");
    tstarget_free(&t);
    config_unref(c);
}

static void test_wildcard_listeners(void **state)
{
    struct config *c = conf("  - {addr: \"[::]:8443\", tls: true, proxy_protocol: true}\n",
                            VAULT "  db: {tcp: {listen: \"0.0.0.0:15432\", upstream: "
                                  "\"127.0.0.1:5432\"}}\n");
    struct tstarget t;
    assert_int_equal(tstarget_collect(c, &new_ts, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.svcs[1].backend, "[::1]:8443");
    assert_true(t.svcs[1].proxy_protocol);
    assert_int_equal(t.svcs[2].kind, SERVECFG_TCP);
    assert_int_equal(t.svcs[2].port, 15432);
    assert_string_equal(t.svcs[2].backend, "127.0.0.1:15432");
    assert_false(t.svcs[2].proxy_protocol);
    tstarget_free(&t);
    config_unref(c);
}

static void test_tcp_forwarder_with_proxy_protocol(void **state)
{
    struct config *c = conf("  - {addr: \"127.0.0.1:8001\"}\n",
                            "  ssh: {tcp: {listen: \"127.0.0.1:2222\", upstream: "
                            "\"127.0.0.1:22\", proxy_protocol: true}}\n");
    struct tstarget t;
    assert_int_equal(tstarget_collect(c, &new_ts, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.svcs[1].kind, SERVECFG_TCP);
    assert_int_equal(t.svcs[1].port, 2222);
    assert_string_equal(t.svcs[1].backend, "127.0.0.1:2222");
    assert_true(t.svcs[1].proxy_protocol);
    assert_string_equal(t.warnings, "");
    tstarget_free(&t);
    assert_int_equal(tstarget_collect(c, &old_ts, &t, err, sizeof err), -1);
    assert_string_equal(err, "service ssh: tcp.listen 127.0.0.1:2222 expects a PROXY header, "
                             "which tailscaled 1.92 does not send for Services (1.94 does); every "
                             "connection would be closed: upgrade tailscaled, or drop "
                             "proxy_protocol there (portico then cannot tell who connects)");
    tstarget_free(&t);
    config_unref(c);
}

static void test_funnel_targets_and_warning(void **state)
{
    const char *text = "listen: [{addr: \"127.0.0.1:8001\"}]\n"
                       "tailscale: {backend: \"http://127.0.0.1:8081\", insecure_loopback_backend: "
                       "true, state_dir: /tmp, funnel: {service: pub, port: 8443, paths: "
                       "[/, /_matrix/, /hooks]}}\n"
                       "services:\n"
                       "  pub: {hosts: [portico." SUFFIX "], upstream: \"http://127.0.0.1:9\"}\n";
    struct config *c = config_parse("t.yaml", text, strlen(text), err, sizeof err);
    if (!c)
        fprintf(stderr, "%s\n", err);
    assert_non_null(c);
    const struct tstarget_node node = {SUFFIX, true, 1, 103, "portico." SUFFIX, true};
    struct tstarget t;
    assert_int_equal(tstarget_collect(c, &node, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 0); /* services: false publishes no Service */
    assert_non_null(t.funnel);
    assert_string_equal(t.funnel->host, "portico." SUFFIX);
    assert_int_equal(t.funnel->port, 8443);
    assert_int_equal(t.funnel->n, 3);
    assert_string_equal(t.funnel->targets[0], "http://127.0.0.1:8081");
    assert_string_equal(t.funnel->targets[1], "http://127.0.0.1:8081/_matrix");
    assert_string_equal(t.funnel->targets[2], "http://127.0.0.1:8081/hooks");
    assert_string_equal(t.warnings, "");
    tstarget_free(&t);

    const struct tstarget_node no_attr = {SUFFIX, true, 1, 103, "portico." SUFFIX, false};
    assert_int_equal(tstarget_collect(c, &no_attr, &t, err, sizeof err), 0);
    assert_string_equal(t.warnings,
                        "tailscale.funnel: this node lacks the \"funnel\" node attribute, so "
                        "tailscaled publishes portico." SUFFIX ":8443 but the internet cannot "
                        "reach it; add {\"target\": [\"tag:portico\"], \"attr\": [\"funnel\"]} to "
                        "nodeAttrs in the tailnet policy\n");
    tstarget_free(&t);

    /* The node's name unknown (policy): nothing on Funnel. */
    assert_int_equal(tstarget_collect(c, &unknown, &t, err, sizeof err), 0);
    assert_null(t.funnel);
    tstarget_free(&t);
    config_unref(c);
}

static void test_publishing_off_publishes_nothing(void **state)
{
    const char *text = "listen: [{addr: \"127.0.0.1:8443\", tls: true}]\n"
                       "tailscale: {services: false}\n"
                       "services:\n" VAULT;
    struct config *c = config_parse("t.yaml", text, strlen(text), err, sizeof err);
    assert_non_null(c);
    struct tstarget t;
    assert_int_equal(tstarget_collect(c, &new_ts, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 0);
    tstarget_free(&t);
    config_unref(c);
}

static void test_refused(void **state)
{
    static const struct {
        const char *listen, *services;
        const struct tstarget_node *node;
        const char *msg;
    } cases[] = {
        {"  - {addr: \"127.0.0.1:8443\", tls: true, proxy_protocol: true}\n", VAULT, &old_ts,
         "service vault: the TLS listener 127.0.0.1:8443 expects a PROXY header, which "
         "tailscaled 1.92 does not send for Services (1.94 does); every connection would be "
         "closed: upgrade tailscaled, or drop proxy_protocol there (portico then cannot tell who "
         "connects)"},
        {"  - {addr: \"10.1.2.3:8443\", tls: true}\n", VAULT, &unknown,
         "service vault passes TLS through, and tailscaled would have to reach one of portico's "
         "TLS listeners on this machine, but none listens on a loopback or wildcard address with "
         "a fixed port (the TLS listener 10.1.2.3:8443 is not a loopback or wildcard address): "
         "add one (e.g. addr: 127.0.0.1:8443, tls: true, proxy_protocol: true)"},
        {"  - {addr: \"[::1]:0\", tls: true}\n", VAULT, &unknown,
         "service vault passes TLS through, and tailscaled would have to reach one of portico's "
         "TLS listeners on this machine, but none listens on a loopback or wildcard address with "
         "a fixed port (the TLS listener [::1]:0 has port 0, chosen at start): add one (e.g. "
         "addr: 127.0.0.1:8443, tls: true, proxy_protocol: true)"},
        {"  - {addr: \"127.0.0.1:8443\", tls: true}\n",
         "  vault: {hosts: [vault.test], passthrough: \"127.0.0.1:9\"}\n", &new_ts,
         "service vault: tailnet clients ask for vault." SUFFIX ", which is not among its "
         "hosts, so portico's TLS listener would not pass it through: add vault." SUFFIX
         " to services.vault.hosts"},
        {"  - {addr: \"127.0.0.1:8001\"}\n",
         "  db: {tcp: {listen: \"192.0.2.1:5432\", upstream: \"127.0.0.1:5432\"}}\n", &unknown,
         "service db: tailscaled forwards its tailnet port to tcp.listen on this machine, and "
         "192.0.2.1:5432 is not a loopback or wildcard address; listen on 127.0.0.1, 0.0.0.0 or "
         "[::] with a fixed port"},
        {"  - {addr: \"127.0.0.1:8001\"}\n",
         "  db: {tcp: {listen: \"unix:/run/db.sock\", upstream: \"127.0.0.1:5432\"}}\n", &unknown,
         "service db: tailscaled forwards its tailnet port to tcp.listen on this machine, and "
         "unix:/run/db.sock is a Unix socket; listen on 127.0.0.1, 0.0.0.0 or [::] with a fixed "
         "port"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config *c = conf(cases[i].listen, cases[i].services);
        struct tstarget t;
        err[0] = '\0';
        assert_int_equal(tstarget_collect(c, cases[i].node, &t, err, sizeof err), -1);
        if (strcmp(err, cases[i].msg) != 0)
            fprintf(stderr, "case %zu: %s\n", i, err);
        assert_string_equal(err, cases[i].msg);
        tstarget_free(&t);
        config_unref(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passthrough_prefers_the_listener_matching_tailscaled),
        cmocka_unit_test(test_wildcard_listeners),
        cmocka_unit_test(test_tcp_forwarder_with_proxy_protocol),
        cmocka_unit_test(test_funnel_targets_and_warning),
        cmocka_unit_test(test_publishing_off_publishes_nothing),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
