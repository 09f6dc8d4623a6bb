/* test_localapi_emu.c - the LocalAPI client and the whois cache in a real
 * event loop against the emulated tailscaled (tests/tailscale_emu.py).
 *
 * Skipped unless PORTICO_TS_SOCKET names the emulator's socket: the
 * end-to-end test tests/e2e/test_tailscale_localapi.py starts the emulator,
 * puts it in the state PORTICO_TS_CASE names (up, down, restart, slow),
 * runs this binary, and then checks the emulator's own counts (one whois
 * call per address for a burst of lookups, one status read for modules
 * asking together). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "localapi.h"
#include "loop.h"
#include "metrics.h"
#include "tsjson.h"
#include "tsstatus.h"
#include "whois.h"

static const char *sock_path;
static struct loop *lp;
static struct metrics_worker mw;
static char err[512];

/* ---- running the loop until a condition holds ----------------------------- */

static bool (*until)(void);
static uint64_t give_up_at;
static struct loop_timer check;

static void on_check(struct loop *l, struct loop_timer *t)
{
    if (until() || loop_now_ms(l) >= give_up_at)
        loop_stop(l);
    else
        loop_timer_arm(l, t, 5);
}

static void run_loop(bool (*cond)(void), uint64_t max_ms)
{
    until = cond;
    loop_update_time(lp);
    give_up_at = loop_now_ms(lp) + max_ms;
    loop_timer_init(&check, on_check);
    loop_timer_arm(lp, &check, 5);
    loop_run(lp);
    loop_timer_disarm(lp, &check);
}

static bool wanted(const char *c)
{
    const char *have = getenv("PORTICO_TS_CASE");
    return sock_path && have && strcmp(have, c) == 0;
}

/* ---- whois through the cache ------------------------------------------- */

#define BURST 40

struct seen {
    struct whois_waiter w;
    int calls;
    bool found;
    char login[128], display[128], tag[64];
    char err[300];
};

static struct seen seen[3 * BURST];
static int told;

static void on_whois(struct whois_waiter *w, const struct identity *id, const char *e)
{
    struct seen *s = (struct seen *)w;
    s->calls++;
    told++;
    s->found = id != NULL;
    if (id) {
        snprintf(s->login, sizeof s->login, "%s", identity_get(id, IDENTITY_LOGIN));
        snprintf(s->display, sizeof s->display, "%s", identity_get(id, IDENTITY_DISPLAY_NAME));
        snprintf(s->tag, sizeof s->tag, "%s", identity_item(id, IDENTITY_TAGS, 0));
    }
    snprintf(s->err, sizeof s->err, "%s", e);
}

static bool all_told(void)
{
    return told == 3 * BURST;
}

/* The emulator knows 100.64.0.2 (zoe@example.com, "Zoë Müller") and
 * 100.64.0.3 (tagged tag:monitoring); 100.64.0.99 is unknown. */
static void test_emu_whois_burst_makes_one_call_per_address(void **state)
{
    if (!wanted("up"))
        skip();
    struct localapi_client *la = localapi_client_new(lp, sock_path, 5000, &mw, err, sizeof err);
    struct whois_cache *wc = whois_cache_new_localapi(la, lp, &mw);
    static const char *const addrs[3] = {"100.64.0.2", "100.64.0.3", "100.64.0.99"};
    struct identity id;
    for (int i = 0; i < 3 * BURST; i++) {
        seen[i].w.fn = on_whois;
        assert_int_equal(whois_lookup(wc, addrs[i % 3], &seen[i].w, &id, err, sizeof err),
                         WHOIS_PENDING);
    }
    run_loop(all_told, 10000);
    assert_int_equal(told, 3 * BURST);
    for (int i = 0; i < 3 * BURST; i++) {
        assert_int_equal(seen[i].calls, 1);
        if (i % 3 == 0) {
            assert_string_equal(seen[i].login, "zoe@example.com");
            assert_string_equal(seen[i].display, "Zo\xc3\xab M\xc3\xbcller");
        } else if (i % 3 == 1) {
            assert_string_equal(seen[i].login, "tagged-devices");
            assert_string_equal(seen[i].tag, "tag:monitoring");
        } else {
            assert_false(seen[i].found);
            assert_non_null(strstr(seen[i].err, "whois 100.64.0.99: tailscaled answered 404"));
        }
    }
    /* Answers are cached now: no call, no wait. */
    struct seen again = {0};
    again.w.fn = on_whois;
    assert_int_equal(whois_lookup(wc, "100.64.0.2", &again.w, &id, err, sizeof err), WHOIS_FOUND);
    assert_int_equal(whois_lookup(wc, "100.64.0.99", &again.w, &id, err, sizeof err),
                     WHOIS_UNKNOWN);
    assert_int_equal(mw.localapi[LOCALAPI_EP_WHOIS][LOCALAPI_OK], 2);
    assert_int_equal(mw.localapi[LOCALAPI_EP_WHOIS][LOCALAPI_HTTP_ERROR], 1);
    assert_int_equal(mw.whois[WHOIS_OUT_JOINED], 3 * BURST - 3);
    whois_cache_free(wc);
    localapi_client_free(la);
}

/* ---- plain calls ----------------------------------------------------------- */

struct got {
    int calls;
    enum localapi_result result;
    char *body;
    char error[512];
    uint64_t at;
};

static struct got got[4];
static int ngot;

static void on_answer(void *arg, const struct localapi_answer *a)
{
    struct got *g = arg;
    g->calls++;
    ngot++;
    g->result = a->result;
    g->body = strdup(a->body);
    snprintf(g->error, sizeof g->error, "%s", a->error);
    g->at = loop_now_ms(lp);
}

static bool one_answer(void)
{
    return ngot >= 1;
}

static void ask(struct localapi_client *la, const char *path, struct got *g)
{
    struct localapi_request r = {.method = METHOD_GET, .path = path};
    free(g->body);
    memset(g, 0, sizeof *g);
    ngot = 0;
    assert_int_equal(localapi_call(la, &r, on_answer, g, err, sizeof err), 0);
}

static void test_emu_status_parses(void **state)
{
    if (!wanted("up"))
        skip();
    struct localapi_client *la = localapi_client_new(lp, sock_path, 5000, NULL, err, sizeof err);
    ask(la, "/localapi/v0/status?peers=false", &got[0]);
    run_loop(one_answer, 10000);
    assert_int_equal(got[0].result, LOCALAPI_OK);
    struct tsjson_status st;
    assert_int_equal(tsjson_parse_status(got[0].body, strlen(got[0].body), &st, err, sizeof err),
                     0);
    assert_string_equal(st.dns_name, "portico.tail1234.ts.net");
    assert_string_equal(st.magic_dns_suffix, "tail1234.ts.net");
    tsjson_status_free(&st);
    localapi_client_free(la);
}

static void test_emu_down_fails_with_a_sentence(void **state)
{
    if (!wanted("down"))
        skip();
    struct localapi_client *la = localapi_client_new(lp, sock_path, 5000, &mw, err, sizeof err);
    struct whois_cache *wc = whois_cache_new_localapi(la, lp, &mw);
    struct seen s = {0};
    struct identity id;
    told = 0;
    s.w.fn = on_whois;
    assert_int_equal(whois_lookup(wc, "100.64.0.2", &s.w, &id, err, sizeof err), WHOIS_PENDING);
    run_loop(all_told, 300);
    assert_int_equal(s.calls, 1);
    assert_false(s.found);
    assert_non_null(strstr(s.err, "tailscaled is not running: "));
    assert_non_null(strstr(s.err, "set tailscale.socket to the socket it uses"));
    assert_int_equal(mw.localapi[LOCALAPI_EP_WHOIS][LOCALAPI_UNAVAILABLE], 1);
    whois_cache_free(wc);
    localapi_client_free(la);
}

/* tailscaled restarts: calls fail while it is down, then one succeeds
 * after the back-off, on a new connection. */
static bool answered_ok(void)
{
    return ngot >= 1 && got[0].result == LOCALAPI_OK;
}

static struct localapi_client *retry_la;
static struct loop_timer retry;
static int attempts;
static void on_retry(struct loop *l, struct loop_timer *t)
{
    if (ngot >= 1 && got[0].result != LOCALAPI_OK) {
        attempts++;
        ask(retry_la, "/localapi/v0/status?peers=false", &got[0]);
    }
    loop_timer_arm(l, t, 100);
}

static void test_emu_restart_recovers(void **state)
{
    if (!wanted("restart"))
        skip();
    retry_la = localapi_client_new(lp, sock_path, 2000, &mw, err, sizeof err);
    attempts = 1;
    ask(retry_la, "/localapi/v0/status?peers=false", &got[0]);
    loop_timer_init(&retry, on_retry);
    loop_timer_arm(lp, &retry, 100);
    run_loop(answered_ok, 15000);
    loop_timer_disarm(lp, &retry);
    assert_int_equal(got[0].result, LOCALAPI_OK);
    assert_true(attempts > 1);
    assert_true(mw.localapi[LOCALAPI_EP_STATUS][LOCALAPI_UNAVAILABLE] >= 1);
    localapi_client_free(retry_la);
}

/* A slow tailscaled: the call times out, and the loop keeps running other
 * work meanwhile (a timer due long before the timeout fires first). */
static uint64_t tick_at;
static void on_tick(struct loop *l, struct loop_timer *t)
{
    tick_at = loop_now_ms(l);
}

static void test_emu_slow_times_out_without_blocking_the_loop(void **state)
{
    if (!wanted("slow"))
        skip();
    struct localapi_client *la = localapi_client_new(lp, sock_path, 600, &mw, err, sizeof err);
    struct loop_timer tick;
    loop_timer_init(&tick, on_tick);
    loop_update_time(lp);
    uint64_t start = loop_now_ms(lp);
    ask(la, "/localapi/v0/whois?addr=100.64.0.2", &got[0]);
    loop_timer_arm(lp, &tick, 20);
    run_loop(one_answer, 10000);
    assert_int_equal(got[0].result, LOCALAPI_TIMEOUT);
    assert_non_null(strstr(got[0].error, "did not answer GET /localapi/v0/whois?addr=100.64.0.2"));
    assert_true(tick_at > start && tick_at < got[0].at);
    localapi_client_free(la);
}

/* ---- tailscaled's status, one read shared by the modules asking ---------- */

struct status_seen {
    int statuses, errors;
    char suffix[64], error[256];
};

static struct status_seen seen_status[3];

static uint32_t on_status(void *arg, const struct tsjson_status *st, const char *error)
{
    struct status_seen *s = arg;
    if (st) {
        s->statuses++;
        snprintf(s->suffix, sizeof s->suffix, "%s",
                 st->magic_dns_suffix ? st->magic_dns_suffix : "");
    } else {
        s->errors++;
        snprintf(s->error, sizeof s->error, "%s", error);
    }
    return 0;
}

static int status_round; /* how many answers (or failures) every asking handle wants */
static bool a_and_c_answered(void)
{
    return seen_status[0].statuses + seen_status[0].errors >= status_round &&
           seen_status[2].statuses + seen_status[2].errors >= status_round;
}

static bool b_failed(void)
{
    return seen_status[1].errors >= 1 && a_and_c_answered();
}

/* Run the loop until A and C have round answers, which must be statuses. */
static void run_round(int round, bool (*cond)(void))
{
    status_round = round;
    run_loop(cond, 10000);
    assert_int_equal(seen_status[0].statuses, round);
    assert_int_equal(seen_status[2].statuses, round);
}

/* Three modules' handles: those asking in one turn of the loop share one
 * call (the emulator counts them: test_tailscale_localapi.py expects 3). */
static void test_emu_status_read_shared_by_handles(void **state)
{
    if (!wanted("status"))
        skip();
    memset(seen_status, 0, sizeof seen_status);
    struct tsstatus *h[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(h[i] = tsstatus_new(lp, on_status, &seen_status[i]));
    /* 1: A and C ask, B asks and stops at once: one call, B told nothing. */
    tsstatus_ask(h[0], sock_path);
    tsstatus_ask(h[1], sock_path);
    tsstatus_ask_once(h[2], sock_path);
    tsstatus_stop(h[1]);
    run_round(1, a_and_c_answered);
    assert_string_equal(seen_status[0].suffix, "tail1234.ts.net");
    assert_string_equal(seen_status[2].suffix, "tail1234.ts.net");
    assert_int_equal(seen_status[1].statuses + seen_status[1].errors, 0);
    /* 2: asked again together: one more call. */
    tsstatus_ask(h[2], sock_path);
    tsstatus_ask(h[0], sock_path);
    run_round(2, a_and_c_answered);
    /* 3: B at another socket gets its own failure; A and C one more call. */
    tsstatus_ask(h[1], "/nonexistent/tailscaled.sock");
    tsstatus_ask(h[0], sock_path);
    tsstatus_ask_once(h[2], sock_path);
    run_round(3, b_failed);
    assert_int_equal(seen_status[1].statuses, 0);
    assert_non_null(strstr(seen_status[1].error, "/nonexistent/tailscaled.sock"));
    for (int i = 0; i < 3; i++)
        tsstatus_free(h[i]);
}

static int setup(void **state)
{
    sock_path = getenv("PORTICO_TS_SOCKET");
    lp = loop_new(err, sizeof err);
    return lp ? 0 : -1;
}

static int teardown(void **state)
{
    for (int i = 0; i < 4; i++)
        free(got[i].body);
    loop_free(lp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emu_whois_burst_makes_one_call_per_address),
        cmocka_unit_test(test_emu_status_parses),
        cmocka_unit_test(test_emu_down_fails_with_a_sentence),
        cmocka_unit_test(test_emu_restart_recovers),
        cmocka_unit_test(test_emu_slow_times_out_without_blocking_the_loop),
        cmocka_unit_test(test_emu_status_read_shared_by_handles),
    };
    return cmocka_run_group_tests_name("localapi_emu", tests, setup, teardown);
}
