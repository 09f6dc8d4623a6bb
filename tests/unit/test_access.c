/* test_access.c - allow lists: entries checked with a message a user can
 * act on, and matched against a caller's identity. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

#include "access.h"
#include "identity.h"

static struct access_list list;
static struct identity id;
static char err[256];

static int teardown(void **state)
{
    access_list_free(&list);
    return 0;
}

static void allow(const char *entry)
{
    if (access_list_add(&list, entry, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void user(const char *login)
{
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    assert_int_equal(identity_set(&id, IDENTITY_LOGIN, login, strlen(login)), 0);
}

static void tagged(const char *tag)
{
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    assert_int_equal(identity_set(&id, IDENTITY_LOGIN, "tagged-devices", 14), 0);
    assert_int_equal(identity_add(&id, IDENTITY_TAGS, "tag:other", 9), 0);
    assert_int_equal(identity_add(&id, IDENTITY_TAGS, tag, strlen(tag)), 0);
}

static void test_access_good_entries_accepted(void **state)
{
    static const char *const good[] = {
        "alice@example.com",
        "*@example.com",
        "tag:monitoring",
        "tag:a-1",
        "local",
        "bob@github",
        "zoë@example.com",
        "Alice.Smith+x@Sub.Example.ORG",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (access_entry_check(good[i], err, sizeof err) != 0)
            fail_msg("%s", err);
}

/* Each bad entry names itself and says what is wrong. */
static void test_access_bad_entries_explained(void **state)
{
    static const char *const bad[][2] = {
        {"bob", "allow entry \"bob\": is not a login (write a login such as alice@example.com, "
                "*@example.com, tag:NAME or local)"},
        {"tag:", "allow entry \"tag:\": a tag name must not be empty"},
        {"tag:1x", "allow entry \"tag:1x\": a tag name must start with a letter after \"tag:\""},
        {"tag:a_b", "allow entry \"tag:a_b\": a tag name may contain only letters, digits and '-'"},
        {"*@", "allow entry \"*@\": the domain after '@' is empty"},
        {"@example.com", "allow entry \"@example.com\": the part before '@' is empty (write a "
                         "login such as alice@example.com, *@example.com, tag:NAME or local)"},
        {"a*@example.com",
         "allow entry \"a*@example.com\": '*' may only stand alone before '@', as in "
         "*@example.com"},
        {"*", "allow entry \"*\": is not a login (write a login such as alice@example.com, "
              "*@example.com, tag:NAME or local)"},
        {"a@b@example.com", "allow entry \"a@b@example.com\": has more than one '@' (write a "
                            "login such as alice@example.com, *@example.com, tag:NAME or local)"},
        {"alice@exa mple.com", "allow entry \"alice@exa mple.com\": the domain after '@' may "
                               "contain only letters, digits, '-' and '.'"},
        {"alice@example..com", "allow entry \"alice@example..com\": the domain after '@' has an "
                               "empty label"},
        {"alice@-x.com", "allow entry \"alice@-x.com\": a domain label must not start with '-'"},
        {"al ice@x.com", "allow entry \"al ice@x.com\": a login must not contain spaces"},
        {"a\r\nb@x.com", "allow entry \"a??b@x.com\": is not UTF-8 text without control "
                         "characters"},
        {"group:eng", "allow entry \"group:eng\": tailnet groups are not known to portico; list "
                      "the logins, or grant the group access to the service in the tailnet "
                      "policy"},
        {"Local", "allow entry \"Local\": is not a login (write a login such as "
                  "alice@example.com, *@example.com, tag:NAME or local)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(access_entry_check(bad[i][0], err, sizeof err), -1);
        assert_string_equal(err, bad[i][1]);
        assert_int_equal(access_list_add(&list, bad[i][0], err, sizeof err), -1);
    }
    assert_int_equal(list.n, 0);
}

static void test_access_list_bounded(void **state)
{
    char e[32];
    for (int i = 0; i < LIMIT_ACCESS_ENTRIES; i++) {
        snprintf(e, sizeof e, "u%d@example.com", i);
        allow(e);
    }
    assert_int_equal(access_list_add(&list, "x@example.com", err, sizeof err), -1);
    assert_string_equal(err, "allow: more than 1024 entries");
}

/* The domain without regard to case; the part before '@' exactly, as
 * Tailscale compares logins. */
static void test_access_login_match(void **state)
{
    allow("Alice@Example.COM");
    user("Alice@example.com");
    assert_true(access_list_allows(&list, &id));
    user("alice@example.com");
    assert_false(access_list_allows(&list, &id));
    user("Alice@example.org");
    assert_false(access_list_allows(&list, &id));
    user("Alice@example.com.evil");
    assert_false(access_list_allows(&list, &id));
    user("xAlice@example.com");
    assert_false(access_list_allows(&list, &id));
}

static void test_access_domain_match(void **state)
{
    allow("*@Example.com");
    user("bob@example.com");
    assert_true(access_list_allows(&list, &id));
    user("bob@EXAMPLE.COM");
    assert_true(access_list_allows(&list, &id));
    user("bob@sub.example.com");
    assert_false(access_list_allows(&list, &id));
    user("bob@notexample.com");
    assert_false(access_list_allows(&list, &id));
    /* a login with more than one '@' is in no domain */
    user("bob@evil.example@example.com");
    assert_false(access_list_allows(&list, &id));
    user("example.com");
    assert_false(access_list_allows(&list, &id));
}

/* Tagged nodes match only tag: entries, and users never match them. */
static void test_access_tags_only_for_tagged_nodes(void **state)
{
    allow("tag:monitoring");
    allow("*@example.com");
    tagged("tag:monitoring");
    assert_true(access_list_allows(&list, &id));
    tagged("tag:Monitoring");
    assert_false(access_list_allows(&list, &id));
    tagged("tag:ci");
    assert_false(access_list_allows(&list, &id));
    tagged("tag:monitoring"); /* tags without a source are not trusted */
    id.source = IDENTITY_NONE;
    assert_false(access_list_allows(&list, &id));

    access_list_free(&list);
    allow("*@example.com");
    allow("tagged-devices@example.com");
    /* a tagged node whose profile would match a user entry */
    identity_init(&id);
    id.source = IDENTITY_WHOIS;
    assert_int_equal(identity_set(&id, IDENTITY_LOGIN, "tagged-devices@example.com", 26), 0);
    assert_int_equal(identity_add(&id, IDENTITY_TAGS, "tag:ci", 6), 0);
    assert_false(access_list_allows(&list, &id));
}

/* Funnel callers and callers with no identity match no user entry. */
static void test_access_anonymous_match_nothing(void **state)
{
    allow("alice@example.com");
    allow("*@example.com");
    allow("tag:monitoring");
    user("alice@example.com");
    assert_true(access_list_allows(&list, &id));
    id.funnel = true;
    assert_false(access_list_allows(&list, &id));
    user("alice@example.com");
    id.source = IDENTITY_NONE; /* a failed whois */
    assert_false(access_list_allows(&list, &id));
    tagged("tag:monitoring");
    id.funnel = true;
    assert_false(access_list_allows(&list, &id));
    identity_init(&id);
    assert_false(access_list_allows(&list, &id));
}

static void test_access_local_entry(void **state)
{
    allow("local");
    identity_init(&id);
    assert_false(access_list_allows(&list, &id));
    id.local = true;
    assert_true(access_list_allows(&list, &id));
    id.funnel = true;
    assert_false(access_list_allows(&list, &id));
    user("alice@example.com");
    assert_false(access_list_allows(&list, &id));
}

static void test_access_empty_list_allows_nobody(void **state)
{
    user("alice@example.com");
    assert_false(access_list_allows(&list, &id));
}

static struct sockaddr_storage ip(const char *text)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    return ss;
}

/* Only Tailscale's ranges can carry a tailnet identity. */
static void test_access_tailnet_address(void **state)
{
    static const char *const yes[] = {
        "100.64.0.0",         "100.64.0.7",        "100.127.255.255",
        "::ffff:100.100.1.1", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff"};
    static const char *const no[] = {"100.63.255.255",    "100.128.0.0",      "127.0.0.1",
                                     "10.0.0.1",          "::ffff:127.0.0.1", "::1",
                                     "fd7a:115c:a1e1::1", "fd7a:115c:a0e0::1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        struct sockaddr_storage ss = ip(yes[i]);
        assert_true(access_tailnet_address(&ss));
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        struct sockaddr_storage ss = ip(no[i]);
        assert_false(access_tailnet_address(&ss));
    }
    struct sockaddr_storage unix_addr = {.ss_family = AF_UNIX};
    assert_false(access_tailnet_address(&unix_addr));
}

/* The kernel says which addresses are this host's: loopback is, an
 * address of a documentation range is not. */
static void test_access_address_is_own(void **state)
{
    struct access_probe p;
    access_probe_init(&p);
    struct sockaddr_storage lo = ip("127.0.0.1"), mapped = ip("::ffff:127.0.0.1"),
                            doc = ip("192.0.2.1"), doc6 = ip("2001:db8::1");
    assert_true(access_address_is_own(&p, &lo));
    assert_true(access_address_is_own(&p, &mapped));
    assert_false(access_address_is_own(&p, &doc));
    int fd6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd6 >= 0) { /* a kernel without IPv6 answers "own" to every IPv6 address */
        close(fd6);
        assert_false(access_address_is_own(&p, &doc6));
    }
    struct sockaddr_storage unix_addr = {.ss_family = AF_UNIX};
    assert_true(access_address_is_own(&p, &unix_addr)); /* unknown: never someone else */
    access_probe_close(&p);
}

/* A peer that is not this host costs one bind on a socket kept for the
 * next question; a bind that succeeds (this host) uses its socket up, and
 * the answers stay right in any order. */
static void test_access_address_is_own_keeps_its_probe(void **state)
{
    struct access_probe p;
    access_probe_init(&p);
    struct sockaddr_storage lo = ip("127.0.0.1"), doc = ip("192.0.2.1"),
                            doc_mapped = ip("::ffff:198.51.100.7");
    assert_false(access_address_is_own(&p, &doc));
    int fd = p.fd[0];
    assert_true(fd >= 0);
    for (int i = 0; i < 100; i++) {
        assert_false(access_address_is_own(&p, &doc));
        assert_false(access_address_is_own(&p, &doc_mapped));
    }
    assert_int_equal(p.fd[0], fd); /* no new socket per question */
    for (int i = 0; i < 3; i++) {
        assert_true(access_address_is_own(&p, &lo));
        assert_false(access_address_is_own(&p, &doc));
        assert_true(access_address_is_own(&p, &lo));
    }
    access_probe_close(&p);
    assert_int_equal(p.fd[0], -1);
    assert_int_equal(p.fd[1], -1);
}

/* A tailnet address may be a tailnet caller; from a PROXY header it is
 * taken as sent, from the socket only when it is not this host's. */
static void test_access_peer_tailnet(void **state)
{
    struct access_probe p;
    access_probe_init(&p);
    struct sockaddr_storage peer = ip("100.64.0.7"), peer6 = ip("fd7a:115c:a1e0::7"),
                            mapped = ip("::ffff:100.64.0.7"), lan = ip("192.0.2.1"),
                            lo = ip("127.0.0.1");
    if (access_address_is_own(&p, &peer) || access_address_is_own(&p, &peer6)) {
        access_probe_close(&p);
        skip(); /* this machine is that tailnet node */
    }
    assert_true(access_peer_tailnet(&p, &peer, false));
    assert_true(access_peer_tailnet(&p, &peer6, false));
    assert_true(access_peer_tailnet(&p, &mapped, false));
    assert_true(access_peer_tailnet(&p, &peer, true));
    assert_false(access_peer_tailnet(&p, &lan, true));
    assert_false(access_peer_tailnet(&p, &lan, false));
    assert_false(access_peer_tailnet(&p, &lo, false));
    assert_false(access_peer_tailnet(&p, &lo, true));
    access_probe_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_access_good_entries_accepted, teardown),
        cmocka_unit_test_teardown(test_access_bad_entries_explained, teardown),
        cmocka_unit_test_teardown(test_access_list_bounded, teardown),
        cmocka_unit_test_teardown(test_access_login_match, teardown),
        cmocka_unit_test_teardown(test_access_domain_match, teardown),
        cmocka_unit_test_teardown(test_access_tags_only_for_tagged_nodes, teardown),
        cmocka_unit_test_teardown(test_access_anonymous_match_nothing, teardown),
        cmocka_unit_test_teardown(test_access_local_entry, teardown),
        cmocka_unit_test_teardown(test_access_empty_list_allows_nobody, teardown),
        cmocka_unit_test(test_access_tailnet_address),
        cmocka_unit_test(test_access_address_is_own),
        cmocka_unit_test(test_access_address_is_own_keeps_its_probe),
        cmocka_unit_test(test_access_peer_tailnet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
