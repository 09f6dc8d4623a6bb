/* test_whois.c - the per-worker whois cache with a fake clock and a fake
 * backend: hits and misses, the two TTLs, LRU eviction, coalescing of
 * concurrent lookups, detaching a waiter whose owner ended, and a whois
 * answer turned into an identity. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"
#include "tsfixture.h"
#include "tsjson.h"
#include "whois.h"

/* The fake backend records the lookups it was asked for; the test answers
 * them with whois_cache_answer. */
struct fake {
    uint64_t now;
    int asks, cancels;
    void *tokens[LIMIT_WHOIS_ENTRIES + 8];
    char addrs[LIMIT_WHOIS_ENTRIES + 8][64];
    const char *fail_ask; /* ask refuses with this sentence */
};

static int fake_ask(void *ctx, void *token, const char *addr, char *err, size_t errlen)
{
    struct fake *f = ctx;
    if (f->fail_ask) {
        snprintf(err, errlen, "%s", f->fail_ask);
        return -1;
    }
    f->tokens[f->asks] = token;
    snprintf(f->addrs[f->asks], sizeof f->addrs[0], "%s", addr);
    f->asks++;
    return 0;
}

static void fake_cancel(void *ctx, void *token)
{
    ((struct fake *)ctx)->cancels++;
}

static uint64_t fake_clock(const void *ctx)
{
    return ((const struct fake *)ctx)->now;
}

/* What a waiter heard. */
struct heard {
    struct whois_waiter w;
    int calls;
    char login[128];
    char err[256];
    bool found;
};

static void on_done(struct whois_waiter *w, const struct identity *id, const char *err)
{
    struct heard *h = (struct heard *)w;
    h->calls++;
    h->found = id != NULL;
    snprintf(h->login, sizeof h->login, "%s", id ? identity_get(id, IDENTITY_LOGIN) : "");
    snprintf(h->err, sizeof h->err, "%s", err);
}

static struct fake fk;
static struct metrics_worker mw;
static char *user_json, *tagged_json;
static size_t user_len, tagged_len;

static struct whois_cache *new_cache(void)
{
    memset(&fk, 0, sizeof fk);
    memset(&mw, 0, sizeof mw);
    fk.now = 1000;
    struct whois_backend b = {fake_ask, fake_cancel, &fk};
    struct whois_cache *c = whois_cache_new(&b, fake_clock, &fk, &mw);
    assert_non_null(c);
    return c;
}

static enum whois_status look(struct whois_cache *c, const char *addr, struct heard *h,
                              struct identity *out)
{
    char err[256];
    h->w.fn = on_done;
    return whois_lookup(c, addr, &h->w, out, err, sizeof err);
}

static void answer_user(struct whois_cache *c, int i)
{
    whois_cache_answer(c, fk.tokens[i], user_json, user_len, NULL);
}

static void test_whois_miss_then_hit_without_second_call(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0};
    struct identity id;
    assert_int_equal(look(c, "100.64.0.2", &h, &id), WHOIS_PENDING);
    assert_int_equal(fk.asks, 1);
    assert_string_equal(fk.addrs[0], "100.64.0.2");
    answer_user(c, 0);
    assert_int_equal(h.calls, 1);
    assert_true(h.found);
    assert_string_equal(h.login, "alice@example.com");
    struct heard h2 = {0};
    assert_int_equal(look(c, "100.64.0.2", &h2, &id), WHOIS_FOUND);
    assert_int_equal(fk.asks, 1);
    assert_string_equal(identity_get(&id, IDENTITY_LOGIN), "alice@example.com");
    assert_string_equal(identity_get(&id, IDENTITY_NODE_NAME), "alices-laptop");
    assert_int_equal(identity_count(&id, IDENTITY_PEER_CAPS), 2);
    assert_true(identity_is_user(&id));
    assert_true(id.node_id == 5873210987654LL);
    assert_int_equal(h2.calls, 0);
    assert_int_equal(mw.whois[WHOIS_OUT_MISS], 1);
    assert_int_equal(mw.whois[WHOIS_OUT_HIT], 1);
    whois_cache_free(c);
}

static void test_whois_concurrent_lookups_share_one_call(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h[3];
    memset(h, 0, sizeof h);
    struct identity id;
    for (int i = 0; i < 3; i++)
        assert_int_equal(look(c, "100.99.0.3", &h[i], &id), WHOIS_PENDING);
    assert_int_equal(fk.asks, 1);
    whois_cache_answer(c, fk.tokens[0], tagged_json, tagged_len, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h[i].calls, 1);
        assert_true(h[i].found);
        assert_string_equal(h[i].login, "tagged-devices");
    }
    assert_int_equal(mw.whois[WHOIS_OUT_JOINED], 2);
    whois_cache_free(c);
}

static void test_whois_detached_waiter_is_not_called_and_answer_is_cached(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard *gone = calloc(1, sizeof *gone);
    struct heard stays = {0}, left = {0};
    struct identity id;
    assert_int_equal(look(c, "100.64.0.2", gone, &id), WHOIS_PENDING);
    assert_int_equal(look(c, "100.64.0.2", &left, &id), WHOIS_PENDING);
    assert_int_equal(look(c, "100.64.0.2", &stays, &id), WHOIS_PENDING);
    /* The exchanges that owned `gone` and `left` end: detach, free (ASan
     * would see a later write), and detaching twice is harmless. */
    whois_detach(&gone->w);
    whois_detach(&gone->w);
    free(gone);
    whois_detach(&left.w);
    assert_null(left.w.entry);
    answer_user(c, 0);
    assert_int_equal(stays.calls, 1);
    assert_int_equal(left.calls, 0);
    /* Every waiter gone before the answer: the answer still fills the cache. */
    struct heard lone = {0};
    assert_int_equal(look(c, "100.64.0.9", &lone, &id), WHOIS_PENDING);
    whois_detach(&lone.w);
    answer_user(c, 1);
    assert_int_equal(lone.calls, 0);
    assert_int_equal(look(c, "100.64.0.9", &lone, &id), WHOIS_FOUND);
    assert_int_equal(fk.asks, 2);
    whois_cache_free(c);
}

static void test_whois_free_with_call_in_flight_cancels_it(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0};
    struct identity id;
    assert_int_equal(look(c, "100.64.0.2", &h, &id), WHOIS_PENDING);
    whois_cache_free(c);
    assert_int_equal(fk.cancels, 1);
    assert_int_equal(h.calls, 0);
    assert_null(h.w.entry);
}

static void test_whois_hit_expires_after_ttl(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0};
    struct identity id;
    look(c, "100.64.0.2", &h, &id);
    answer_user(c, 0);
    fk.now += TIMEOUT_WHOIS_TTL_MS - 1;
    assert_int_equal(look(c, "100.64.0.2", &h, &id), WHOIS_FOUND);
    fk.now += 1;
    assert_int_equal(look(c, "100.64.0.2", &h, &id), WHOIS_PENDING);
    assert_int_equal(fk.asks, 2);
    assert_int_equal(whois_cache_size(c), 1);
    whois_cache_free(c);
}

static void test_whois_failure_cached_for_fail_ttl(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0};
    struct identity id;
    char err[256];
    look(c, "100.64.0.7", &h, &id);
    whois_cache_answer(c, fk.tokens[0], NULL, 0,
                       "tailscaled answered 404 to GET /localapi/v0/whois?addr=100.64.0.7");
    assert_int_equal(h.calls, 1);
    assert_false(h.found);
    assert_non_null(strstr(h.err, "whois 100.64.0.7: tailscaled answered 404"));
    fk.now += TIMEOUT_WHOIS_FAIL_TTL_MS - 1;
    h.w.fn = on_done;
    assert_int_equal(whois_lookup(c, "100.64.0.7", &h.w, &id, err, sizeof err), WHOIS_UNKNOWN);
    assert_non_null(strstr(err, "404"));
    assert_int_equal(fk.asks, 1);
    fk.now += 1;
    assert_int_equal(look(c, "100.64.0.7", &h, &id), WHOIS_PENDING);
    assert_int_equal(fk.asks, 2);
    assert_int_equal(mw.whois[WHOIS_OUT_NEGATIVE], 1);
    assert_int_equal(mw.whois[WHOIS_OUT_FAILED], 1);
    whois_cache_free(c);
}

/* A call that cannot be queued (the LocalAPI client's queue is full) says
 * nothing about the address: the lookup fails, nothing is cached. */
static void test_whois_refused_ask_fails_at_once_and_is_not_cached(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0}, later = {0};
    struct identity id;
    char err[256];
    look(c, "100.64.0.7", &later, &id);
    fk.fail_ask = "64 LocalAPI calls are waiting for tailscaled already";
    h.w.fn = on_done;
    assert_int_equal(whois_lookup(c, "100.64.0.2", &h.w, &id, err, sizeof err), WHOIS_UNKNOWN);
    assert_string_equal(err, "whois 100.64.0.2: 64 LocalAPI calls are waiting for tailscaled "
                             "already");
    assert_null(h.w.entry);
    assert_int_equal(whois_cache_size(c), 1);
    fk.fail_ask = NULL;
    assert_int_equal(whois_lookup(c, "100.64.0.2", &h.w, &id, err, sizeof err), WHOIS_PENDING);
    assert_int_equal(fk.asks, 2);
    answer_user(c, 0);
    answer_user(c, 1);
    assert_int_equal(h.calls + later.calls, 2);
    assert_int_equal(mw.whois[WHOIS_OUT_FAILED], 1);
    whois_cache_free(c);
}

static void test_whois_evicts_least_recently_used(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0};
    struct identity id;
    char addr[64];
    for (int i = 0; i < LIMIT_WHOIS_ENTRIES; i++) {
        snprintf(addr, sizeof addr, "100.64.%d.%d", i / 250, i % 250 + 1);
        assert_int_equal(look(c, addr, &h, &id), WHOIS_PENDING);
        answer_user(c, i);
    }
    assert_int_equal(whois_cache_size(c), LIMIT_WHOIS_ENTRIES);
    /* Touch the oldest: the second oldest becomes the one to go. */
    assert_int_equal(look(c, "100.64.0.1", &h, &id), WHOIS_FOUND);
    assert_int_equal(look(c, "100.100.0.1", &h, &id), WHOIS_PENDING);
    answer_user(c, LIMIT_WHOIS_ENTRIES);
    assert_int_equal(whois_cache_size(c), LIMIT_WHOIS_ENTRIES);
    assert_int_equal(look(c, "100.64.0.1", &h, &id), WHOIS_FOUND);
    assert_int_equal(look(c, "100.64.0.3", &h, &id), WHOIS_FOUND);
    assert_int_equal(look(c, "100.64.0.2", &h, &id), WHOIS_PENDING);
    assert_int_equal(fk.asks, LIMIT_WHOIS_ENTRIES + 2);
    whois_detach(&h.w);
    whois_cache_free(c);
}

static void test_whois_never_evicts_entries_in_flight(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard *h = calloc(LIMIT_WHOIS_ENTRIES + 1, sizeof *h);
    struct identity id;
    char addr[64], err[256];
    for (int i = 0; i < LIMIT_WHOIS_ENTRIES; i++) {
        snprintf(addr, sizeof addr, "100.65.%d.%d", i / 250, i % 250 + 1);
        assert_int_equal(look(c, addr, &h[i], &id), WHOIS_PENDING);
    }
    h[LIMIT_WHOIS_ENTRIES].w.fn = on_done;
    assert_int_equal(whois_lookup(c, "100.66.0.1", &h[LIMIT_WHOIS_ENTRIES].w, &id, err, sizeof err),
                     WHOIS_UNKNOWN);
    assert_non_null(strstr(err, "cache entries are waiting for tailscaled"));
    /* One answer frees nothing (answered entries stay cached) but makes
     * that entry evictable: the next lookup takes its place. */
    answer_user(c, 0);
    assert_int_equal(look(c, "100.66.0.1", &h[LIMIT_WHOIS_ENTRIES], &id), WHOIS_PENDING);
    for (int i = 1; i <= LIMIT_WHOIS_ENTRIES; i++)
        answer_user(c, i);
    for (int i = 1; i <= LIMIT_WHOIS_ENTRIES; i++)
        assert_int_equal(h[i].calls, 1);
    whois_cache_free(c);
    free(h);
}

/* A waiter's callback may look up again (here: another address, which
 * starts a call) while the cache is telling the other waiters. */
static struct whois_cache *reentry_cache;
static struct heard reentry_other;
static void on_done_lookup(struct whois_waiter *w, const struct identity *id, const char *err)
{
    on_done(w, id, err);
    struct identity tmp;
    look(reentry_cache, "100.64.0.50", &reentry_other, &tmp);
}

/* The entry being answered is the only evictable one while its waiters
 * hear the answer; a lookup made from a callback then must not take it
 * from under the waiters still to be told. */
static void test_whois_entry_being_answered_is_not_evicted(void **state)
{
    struct whois_cache *c = reentry_cache = new_cache();
    struct heard *h = calloc(LIMIT_WHOIS_ENTRIES, sizeof *h);
    struct heard a = {0}, b = {0};
    struct identity id;
    char addr[64];
    for (int i = 0; i < LIMIT_WHOIS_ENTRIES - 1; i++) {
        snprintf(addr, sizeof addr, "100.65.%d.%d", i / 250, i % 250 + 1);
        assert_int_equal(look(c, addr, &h[i], &id), WHOIS_PENDING);
    }
    look(c, "100.64.0.2", &a, &id);
    look(c, "100.64.0.2", &b, &id);
    a.w.fn = b.w.fn = on_done_lookup;
    answer_user(c, LIMIT_WHOIS_ENTRIES - 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(fk.asks, LIMIT_WHOIS_ENTRIES);
    whois_cache_free(c);
    free(h);
}

static void test_whois_mapped_ipv6_is_the_ipv4_entry(void **state)
{
    struct whois_cache *c = new_cache();
    struct heard h = {0};
    struct identity id;
    char err[256];
    look(c, "::ffff:100.64.0.2", &h, &id);
    assert_string_equal(fk.addrs[0], "100.64.0.2");
    answer_user(c, 0);
    assert_int_equal(look(c, "100.64.0.2", &h, &id), WHOIS_FOUND);
    h.w.fn = on_done;
    assert_int_equal(whois_lookup(c, "not-an-ip", &h.w, &id, err, sizeof err), WHOIS_UNKNOWN);
    assert_non_null(strstr(err, "not an IP address"));
    assert_int_equal(look(c, "fd7a:115c:a1e0::2", &h, &id), WHOIS_PENDING);
    assert_string_equal(fk.addrs[1], "fd7a:115c:a1e0::2");
    whois_detach(&h.w);
    whois_cache_free(c);
}

static void test_whois_callback_may_look_up_again(void **state)
{
    struct whois_cache *c = reentry_cache = new_cache();
    struct heard a = {0}, b = {0};
    struct identity id;
    look(c, "100.64.0.2", &a, &id);
    look(c, "100.64.0.2", &b, &id);
    a.w.fn = on_done_lookup;
    answer_user(c, 0);
    assert_int_equal(a.calls + b.calls, 2);
    assert_int_equal(fk.asks, 2);
    whois_detach(&reentry_other.w);
    whois_cache_free(c);
}

static void test_whois_answer_with_too_many_caps_gives_no_identity(void **state)
{
    struct whois_cache *c = new_cache();
    /* LIMIT_TS_CAPS lets tsjson keep more capability names than an
     * identity holds: such a caller is refused whole, never cut. */
    size_t cap = 64 * 1024;
    char *json = malloc(cap);
    size_t n = (size_t)snprintf(json, cap,
                                "{\"Node\":{\"ID\":1,\"StableID\":\"n1\",\"Name\":\"a.ts.net.\","
                                "\"ComputedName\":\"a\"},\"UserProfile\":{\"ID\":2,"
                                "\"LoginName\":\"bob@example.com\",\"DisplayName\":\"Bob\"},"
                                "\"CapMap\":{");
    for (int i = 0; i <= LIMIT_IDENTITY_LIST; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s\"example.com/cap/c%d\":null", i ? "," : "", i);
    n += (size_t)snprintf(json + n, cap - n, "}}");
    struct heard h = {0};
    struct identity id;
    look(c, "100.64.0.2", &h, &id);
    whois_cache_answer(c, fk.tokens[0], json, n, NULL);
    assert_false(h.found);
    assert_non_null(strstr(h.err, "has 65 capabilities; portico keeps at most 64"));
    free(json);
    whois_cache_free(c);
}

static void test_whois_to_identity_tagged_node(void **state)
{
    struct tsjson_whois w = {0};
    char err[256];
    assert_int_equal(tsjson_parse_whois(tagged_json, tagged_len, &w, err, sizeof err), 0);
    struct identity id;
    assert_int_equal(whois_to_identity(&w, &id, err, sizeof err), 0);
    assert_int_equal(id.source, IDENTITY_WHOIS);
    assert_true(identity_is_tagged(&id));
    assert_false(identity_is_user(&id));
    assert_int_equal(identity_count(&id, IDENTITY_TAGS), 2);
    assert_string_equal(identity_item(&id, IDENTITY_TAGS, 1), "tag:monitoring");
    assert_string_equal(identity_get(&id, IDENTITY_PROFILE_PIC), "");
    tsjson_whois_free(&w);
}

static int setup(void **state)
{
    user_json = ts_fixture("whois_user.json", &user_len);
    tagged_json = ts_fixture("whois_tagged.json", &tagged_len);
    return 0;
}

static int teardown(void **state)
{
    free(user_json);
    free(tagged_json);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whois_miss_then_hit_without_second_call),
        cmocka_unit_test(test_whois_concurrent_lookups_share_one_call),
        cmocka_unit_test(test_whois_detached_waiter_is_not_called_and_answer_is_cached),
        cmocka_unit_test(test_whois_free_with_call_in_flight_cancels_it),
        cmocka_unit_test(test_whois_hit_expires_after_ttl),
        cmocka_unit_test(test_whois_failure_cached_for_fail_ttl),
        cmocka_unit_test(test_whois_refused_ask_fails_at_once_and_is_not_cached),
        cmocka_unit_test(test_whois_evicts_least_recently_used),
        cmocka_unit_test(test_whois_never_evicts_entries_in_flight),
        cmocka_unit_test(test_whois_entry_being_answered_is_not_evicted),
        cmocka_unit_test(test_whois_mapped_ipv6_is_the_ipv4_entry),
        cmocka_unit_test(test_whois_callback_may_look_up_again),
        cmocka_unit_test(test_whois_answer_with_too_many_caps_gives_no_identity),
        cmocka_unit_test(test_whois_to_identity_tagged_node),
    };
    return cmocka_run_group_tests_name("whois", tests, setup, teardown);
}
