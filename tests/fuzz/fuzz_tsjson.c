/* fuzz_tsjson.c - tailscaled's LocalAPI answers and the serve-config merge.
 *
 * The first byte picks the reader: status, whois, prefs, or the merge of
 * portico's services into a serve configuration; for the merge a second
 * byte chooses the services, the names portico owned, tailscaled's version
 * and the advertised list, and the rest is the current configuration.
 *
 * Beyond "no crash, no leak": a refused answer gives one line of message;
 * every string kept is free of control characters and within
 * LIMIT_TS_STRING_BYTES; IDs are in range; service-host names are valid
 * and sorted. A merge that succeeds gives JSON objects, a plan of lines
 * without control characters, keeps every foreign service entry equal to
 * what it was, and is idempotent: merging its own output again changes
 * nothing (no write, no prefs change, only "? " notes in the plan). */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "servecfg.h"
#include "tsjson.h"

static void check_err(const char *err)
{
    FUZZ_CHECK(err[0] != '\0');
    FUZZ_CHECK(strchr(err, '\n') == NULL);
}

static void check_text(const char *s)
{
    FUZZ_CHECK(s != NULL);
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
    FUZZ_CHECK(n <= LIMIT_TS_STRING_BYTES);
}

static void check_list(const struct tsjson_strlist *l, size_t max)
{
    FUZZ_CHECK(l->n <= max);
    for (size_t i = 0; i < l->n; i++)
        check_text(l->v[i]);
}

static void fuzz_status(const char *buf, size_t len)
{
    struct tsjson_status st;
    char err[512] = "";
    if (tsjson_parse_status(buf, len, &st, err, sizeof err) < 0) {
        check_err(err);
    } else {
        check_text(st.version);
        check_text(st.backend_state);
        check_text(st.dns_name);
        check_text(st.magic_dns_suffix);
        check_text(st.tailnet_name);
        FUZZ_CHECK(st.major >= 0 && st.minor >= 0);
        check_list(&st.ips, LIMIT_TS_ADDRS);
        check_list(&st.tags, LIMIT_TS_TAGS);
        check_list(&st.cert_domains, LIMIT_TS_CERT_DOMAINS);
        FUZZ_CHECK(st.n_hosts == 0 || st.service_host);
        for (size_t i = 0; i < st.n_hosts; i++) {
            FUZZ_CHECK(tsjson_service_name_valid(st.hosts[i].name));
            FUZZ_CHECK(i == 0 || strcmp(st.hosts[i - 1].name, st.hosts[i].name) < 0);
            check_list(&st.hosts[i].addrs, LIMIT_TS_ADDRS);
        }
    }
    tsjson_status_free(&st);
}

static void fuzz_whois(const char *buf, size_t len)
{
    struct tsjson_whois w;
    char err[512] = "";
    if (tsjson_parse_whois(buf, len, &w, err, sizeof err) < 0) {
        check_err(err);
    } else {
        FUZZ_CHECK(w.node_id >= 1 && w.user_id >= 0);
        check_text(w.node_stable_id);
        check_text(w.node_name);
        check_text(w.node_computed_name);
        check_text(w.login_name);
        check_text(w.display_name);
        check_text(w.profile_pic_url);
        check_list(&w.tags, LIMIT_TS_TAGS);
        check_list(&w.node_caps, LIMIT_TS_CAPS);
        check_list(&w.caps, LIMIT_TS_CAPS);
    }
    tsjson_whois_free(&w);
}

static void fuzz_prefs(const char *buf, size_t len)
{
    struct tsjson_strlist l;
    char err[512] = "";
    if (tsjson_parse_advertised(buf, len, &l, err, sizeof err) < 0) {
        check_err(err);
    } else {
        for (size_t i = 0; i < l.n; i++)
            FUZZ_CHECK(tsjson_service_name_valid(l.v[i]));
    }
    tsjson_strlist_free(&l);
}

static const struct servecfg_service pool[] = {
    {"grafana", SERVECFG_HTTP, 443, "unix:/run/portico/tailnet.sock", false},
    {"wiki", SERVECFG_HTTP, 443, "http://127.0.0.1:3001", false},
    {"pg", SERVECFG_TCP, 5432, "127.0.0.1:15432", true},
    {"web", SERVECFG_PASSTHROUGH, 443, "127.0.0.1:8443", false},
    {"vpn", SERVECFG_TCP, 22, "unix:/run/portico/ssh.sock", false},
};
static const char *const names[] = {"svc:grafana", "svc:wiki", "svc:pg",  "svc:web",
                                    "svc:vpn",     "svc:old",  "svc:foo", "svc:a"};

static bool is_ours(const struct servecfg_service *svcs, size_t n, const char *const *owned,
                    size_t n_owned, const char *name)
{
    for (size_t i = 0; strncmp(name, "svc:", 4) == 0 && i < n; i++)
        if (strcmp(name + 4, svcs[i].name) == 0)
            return true;
    for (size_t i = 0; i < n_owned; i++)
        if (strcmp(name, owned[i]) == 0)
            return true;
    return false;
}

static void check_plan(const char *plan)
{
    FUZZ_CHECK(plan != NULL);
    for (const unsigned char *p = (const unsigned char *)plan; *p; p++)
        FUZZ_CHECK(*p == '\n' || (*p >= 0x20 && *p != 0x7f));
}

static void fuzz_merge(uint8_t sel, const char *buf, size_t len)
{
    /* sel: which services (bits 0-2: how many of the pool, from the start
     * or rotated by bit 3), which names were owned (bits 4-5), the version
     * (bit 6) and whether some are advertised (bit 7). */
    struct servecfg_service svcs[5];
    size_t n = (sel & 7) % 6, off = (sel & 8) ? 2 : 0;
    for (size_t i = 0; i < n; i++)
        svcs[i] = pool[(i + off) % 5];
    const char *owned[8];
    size_t n_owned = 0;
    for (size_t i = 0; i < 8; i++)
        if ((((sel >> 4) & 3) + i) % 3 == 0)
            owned[n_owned++] = names[i];
    const char *adv[8];
    size_t n_adv = 0;
    for (size_t i = 0; (sel & 128) && i < 8; i += 2)
        adv[n_adv++] = names[i];
    struct servecfg_input in = {.services = svcs,
                                .n_services = n,
                                .suffix = "tail1234.ts.net",
                                .ts_major = 1,
                                .ts_minor = (sel & 64) ? 94 : 92,
                                .owned = owned,
                                .n_owned = n_owned,
                                .advertised = adv,
                                .n_advertised = n_adv};
    struct servecfg_result r, again;
    char err[512] = "";
    if (servecfg_merge(buf, len, &in, &r, err, sizeof err) < 0) {
        check_err(err);
        servecfg_result_free(&r);
        return;
    }
    check_plan(r.plan);
    json_t *old = json_loadb(buf, len, JSON_DECODE_ANY, NULL);
    json_t *new = json_loads(r.json, 0, NULL);
    FUZZ_CHECK(json_is_object(new));
    if (r.interim) {
        json_t *mid = json_loads(r.interim, 0, NULL);
        FUZZ_CHECK(json_is_object(mid));
        json_decref(mid);
    }
    /* Foreign entries come through unchanged. */
    const char *k;
    json_t *v;
    json_t *old_svcs = json_object_get(old, "Services"),
           *new_svcs = json_object_get(new, "Services");
    if (json_is_object(old_svcs)) {
        json_object_foreach(old_svcs, k, v)
        {
            if (is_ours(svcs, n, owned, n_owned, k))
                continue;
            FUZZ_CHECK(json_equal(v, json_object_get(new_svcs, k)));
        }
    }
    if (json_is_object(old)) {
        json_object_foreach(old, k, v)
        {
            if (strcmp(k, "Services") != 0)
                FUZZ_CHECK(json_equal(v, json_object_get(new, k)));
        }
    }
    if (json_is_object(old))
        FUZZ_CHECK(r.changed == !json_equal(old, new));
    json_decref(old);
    json_decref(new);

    /* Merging the result again is a no-op. */
    struct servecfg_input in2 = in;
    in2.owned = (const char *const *)r.owned.v;
    in2.n_owned = r.owned.n;
    in2.advertised = (const char *const *)r.advertise.v;
    in2.n_advertised = r.advertise.n;
    int rc = servecfg_merge(r.json, strlen(r.json), &in2, &again, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "second merge: %s\n", err);
    FUZZ_CHECK(rc == 0);
    /* Only notes ("? ") may remain in the plan. */
    bool quiet = true;
    for (const char *line = again.plan; *line; line = strchr(line, '\n') + 1)
        quiet = quiet && line[0] == '?';
    if (again.changed || again.advertise_changed || !quiet)
        fprintf(stderr, "second merge changed: %s\n%s\n", again.json, again.plan);
    FUZZ_CHECK(!again.changed && !again.advertise_changed && quiet);
    FUZZ_CHECK(strcmp(again.json, r.json) == 0);
    FUZZ_CHECK(again.interim == NULL);
    servecfg_result_free(&again);
    servecfg_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0:
        fuzz_status(buf, len);
        break;
    case 1:
        fuzz_whois(buf, len);
        break;
    case 2:
        fuzz_prefs(buf, len);
        break;
    default:
        if (len >= 1)
            fuzz_merge(data[1], buf + 1, len - 1);
        break;
    }
    return 0;
}
