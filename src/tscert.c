/* tscert.c - certificates from tailscaled for the TLS portico terminates
 * (see tscert.h). */
#include "tscert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "localapi.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "strbuf.h"
#include "tls.h"
#include "tsjson.h"
#include "tsstatus.h"

/* ---- pure parts ----------------------------------------------------------------- */

int tscert_split_pair(const char *buf, size_t len, size_t *key_len, char *err, size_t errlen)
{
    static const char delim[] = "--\n--";
    const char *d = len >= 5 ? memmem(buf, len, delim, 5) : NULL;
    if (!d) {
        snprintf(err, errlen, "unexpected answer: no boundary between key and certificate");
        return -1;
    }
    size_t k = (size_t)(d - buf) + 3;
    if (!memmem(buf, k, "PRIVATE KEY-----", 16)) {
        snprintf(err, errlen, "unexpected answer: it does not start with a private key");
        return -1;
    }
    if (memmem(buf + k, len - k, " PRIVATE KEY-----", 17)) {
        snprintf(err, errlen, "unexpected answer: a private key among the certificates");
        return -1;
    }
    if (!memmem(buf + k, len - k, "-----BEGIN CERTIFICATE-----", 27)) {
        snprintf(err, errlen, "unexpected answer: no certificate after the key");
        return -1;
    }
    *key_len = k;
    return 0;
}

int64_t tscert_renew_at(int64_t not_before, int64_t not_after)
{
    if (not_after <= not_before)
        return not_before;
    return not_before + (not_after - not_before) / 3 * 2 + (not_after - not_before) % 3 * 2 / 3;
}

void tscert_min_validity(int64_t not_after, int64_t now, char *out, size_t cap)
{
    int64_t left = not_after - now;
    snprintf(out, cap, "%llds", (long long)(left < 0 ? 1 : left + 1));
}

long tscert_retry_after(const char *v, size_t len)
{
    if (len == 0 || len > 5)
        return -1;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n <= 86400 ? n : -1;
}

/* ---- the fetcher ------------------------------------------------------------------ */

enum fetch_result {
    FETCH_OK,          /* a new certificate */
    FETCH_UNCHANGED,   /* a renewal gave no newer certificate (yet) */
    FETCH_REFUSED,     /* tailscaled answered an error */
    FETCH_UNAVAILABLE, /* no answer: tailscaled missing, stopped or restarting */
    FETCH_TIMEOUT,
    FETCH_BAD_ANSWER, /* not a key and a certificate for the name */
    FETCH_NRESULTS
};

static const char *const fetch_result_names[FETCH_NRESULTS] = {
    "ok", "unchanged", "refused", "unavailable", "timeout", "bad_answer",
};

struct entry {
    char *name;
    char *pem; /* key then chain, as tailscaled sends them; NULL: no certificate */
    size_t len, key_len;
    struct tls_pair_info info;
    uint64_t next_ms;    /* loop time before which no fetch is tried */
    uint32_t backoff_ms; /* after the next failure */
    bool waiting_logged; /* "not in CertDomains" said already */
};

struct tscert {
    struct loop *loop;
    struct loop_timer timer;
    struct localapi_client *client;
    char *socket, *state_dir;
    struct entry *v;
    size_t n;
    bool enabled;
    /* tailscaled's status: its CertDomains and MagicDNS suffix, read
     * through the reader shared with the other modules (tsstatus.c) */
    struct tsstatus *status;
    bool status_known;
    struct tsjson_strlist domains;
    char *suffix;
    uint64_t status_next_ms;
    uint32_t status_backoff_ms;
    bool status_failed_logged;
    bool unconnected_logged; /* "not connected to a tailnet" said for this spell */
    /* tailscale.hairpin: the HTTP services' names, whose NAME.<suffix>
     * certificates are served on the hairpin listeners once the status
     * says the suffix (their hosts need not list those names). */
    char **hairpin;
    size_t nhairpin;
    bool busy;       /* a call is in flight */
    size_t fetching; /* its entry, for a cert call */
    char fetch_name[LIMIT_HOST_LEN + 1];
    uint64_t fetches[FETCH_NRESULTS];
};

static struct tscert *live; /* for /metrics; one per process */

static void tick(struct tscert *t);

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

static void when_text(int64_t t, char *out, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "%lld", (long long)t);
}

static void entry_clear(struct entry *e)
{
    free(e->name);
    free(e->pem);
    memset(e, 0, sizeof *e);
}

static bool in_domains(const struct tscert *t, const char *name)
{
    for (size_t i = 0; i < t->domains.n; i++)
        if (strcmp(t->domains.v[i], name) == 0)
            return true;
    return false;
}

static bool under_suffix(const struct tscert *t, const char *name)
{
    if (!t->suffix || !t->suffix[0])
        return false;
    size_t n = strlen(name), s = strlen(t->suffix);
    return n > s + 1 && name[n - s - 1] == '.' && strcmp(name + n - s, t->suffix) == 0;
}

/* Serve every certificate held now. */
static void install(struct tscert *t)
{
    struct tls_pem_pair *pairs = calloc(t->n ? t->n : 1, sizeof *pairs);
    if (!pairs) {
        log_msg(LOG_ERROR, "tailscale certificates: out of memory; serving the previous set");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].pem)
            pairs[k++] =
                (struct tls_pem_pair){t->v[i].name, t->v[i].pem, t->v[i].pem + t->v[i].key_len,
                                      t->v[i].key_len, t->v[i].len - t->v[i].key_len};
    char err[512];
    struct tls_dyn *d = tls_dyn_new(pairs, k, err, sizeof err);
    free(pairs);
    if (!d) {
        log_msg(LOG_ERROR, "tailscale certificates: %s; serving the previous set", err);
        return;
    }
    tls_dyn_install(d);
}

static void cache_load(struct tscert *t, struct entry *e);

static void hairpin_clear(struct tscert *t)
{
    for (size_t i = 0; i < t->nhairpin; i++)
        free(t->hairpin[i]);
    free(t->hairpin);
    t->hairpin = NULL;
    t->nhairpin = 0;
}

/* Entries for NAME.<suffix> of the hairpin names not held yet: true when
 * one was added. */
static bool add_hairpin_names(struct tscert *t)
{
    if (!t->nhairpin || !t->suffix || !t->suffix[0] || !t->state_dir)
        return false;
    struct entry *v = realloc(t->v, (t->n + t->nhairpin) * sizeof *v);
    if (!v) {
        log_msg(LOG_ERROR, "tailscale certificates: out of memory for the hairpin names");
        return false;
    }
    t->v = v;
    bool added = false;
    for (size_t i = 0; i < t->nhairpin; i++) {
        char name[LIMIT_HOST_LEN + 1];
        int len = snprintf(name, sizeof name, "%s.%s", t->hairpin[i], t->suffix);
        if (len < 0 || (size_t)len >= sizeof name)
            continue;
        bool have = false;
        for (size_t k = 0; k < t->n && !have; k++)
            have = t->v[k].name && strcmp(t->v[k].name, name) == 0;
        if (have)
            continue;
        struct entry *e = &t->v[t->n];
        memset(e, 0, sizeof *e);
        if (!(e->name = strdup(name)))
            continue;
        cache_load(t, e);
        t->n++;
        added = true;
    }
    return added;
}

/* Check a pair (key then chain) for name. */
static int pair_read(const char *buf, size_t len, const char *name, size_t *key_len,
                     struct tls_pair_info *info, char *err, size_t errlen)
{
    if (tscert_split_pair(buf, len, key_len, err, errlen) < 0)
        return -1;
    return tls_pair_check(buf, *key_len, buf + *key_len, len - *key_len, name, info, err, errlen);
}

static int cache_path(const struct tscert *t, const char *name, const char *suffix, char *out,
                      size_t cap)
{
    int n = snprintf(out, cap, "%s/" TSCERT_DIR "/%s.pem%s", t->state_dir, name, suffix);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The cached pair for e, if it is readable, for its name and not expired. */
static void cache_load(struct tscert *t, struct entry *e)
{
    char path[4200], err[512];
    if (cache_path(t, e->name, "", path, sizeof path) < 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            log_msg(LOG_WARN, "cannot read the cached certificate %s: %s", path, strerror(errno));
        return;
    }
    char *buf = malloc(LIMIT_TS_CERT_BYTES + 1);
    size_t len = 0;
    ssize_t r = 1;
    while (buf && len < LIMIT_TS_CERT_BYTES + 1 &&
           (r = read(fd, buf + len, LIMIT_TS_CERT_BYTES + 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    struct tls_pair_info info;
    size_t key_len;
    if (!buf || r < 0 || len > LIMIT_TS_CERT_BYTES) {
        log_msg(LOG_WARN, "cannot use the cached certificate %s: %s", path,
                !buf    ? "out of memory"
                : r < 0 ? strerror(errno)
                        : "too large");
        free(buf);
        return;
    }
    if (pair_read(buf, len, e->name, &key_len, &info, err, sizeof err) < 0) {
        log_msg(LOG_WARN, "ignoring the cached certificate %s: %s", path, err);
        free(buf);
        return;
    }
    char until[32];
    when_text(info.not_after, until, sizeof until);
    if (info.not_after <= wall_now()) {
        log_msg(LOG_WARN, "ignoring the cached certificate %s: it expired at %s", path, until);
        free(buf);
        return;
    }
    e->pem = buf;
    e->len = len;
    e->key_len = key_len;
    e->info = info;
    log_msg(LOG_INFO, "certificate for %s read from %s (serial %s, valid until %s)", e->name, path,
            info.serial, until);
}

/* Replace the cached pair atomically: a new file, synced, renamed over. */
static void cache_store(struct tscert *t, const struct entry *e)
{
    char dir[4200], tmp[4200], path[4200];
    snprintf(dir, sizeof dir, "%s/" TSCERT_DIR, t->state_dir);
    if (cache_path(t, e->name, "", path, sizeof path) < 0 ||
        cache_path(t, e->name, ".tmp", tmp, sizeof tmp) < 0)
        return;
    const char *step = "mkdir";
    if ((mkdir(t->state_dir, 0755) < 0 && errno != EEXIST) ||
        (mkdir(dir, 0700) < 0 && errno != EEXIST))
        goto fail;
    step = "write";
    unlink(tmp); /* a leftover of a crash */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    size_t off = 0;
    while (off < e->len) {
        ssize_t w = write(fd, e->pem + off, e->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int saved = errno;
    if (off < e->len || fsync(fd) < 0) {
        saved = off < e->len ? saved : errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    close(fd);
    step = "rename";
    if (rename(tmp, path) < 0) {
        saved = errno;
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return;
fail:
    log_msg(LOG_WARN,
            "cannot cache the certificate for %s in %s (%s: %s); it is served, but a restart "
            "without tailscaled will not have it",
            e->name, path, step, strerror(errno));
}

/* ---- calls and their answers ----------------------------------------------------------- */

static void retry_later(uint64_t now, uint64_t *next, uint32_t *backoff)
{
    if (*backoff < TSCERT_RETRY_MIN_MS)
        *backoff = TSCERT_RETRY_MIN_MS;
    *next = now + *backoff;
    *backoff = *backoff >= TSCERT_RETRY_MAX_MS / 2 ? TSCERT_RETRY_MAX_MS : *backoff * 2;
}

/* The status through the shared reader (asked by tick with
 * tsstatus_ask_once: tscert keeps its own schedule and back-off). */
static uint32_t on_status(void *arg, const struct tsjson_status *shared, const char *error)
{
    struct tscert *t = arg;
    t->busy = false;
    uint64_t now = loop_now_ms(t->loop);
    struct tsjson_strlist domains = {0};
    char *suffix = NULL;
    const char *why = error;
    if (!why && (tsjson_strlist_copy(&domains, &shared->cert_domains) < 0 ||
                 (shared->magic_dns_suffix && !(suffix = strdup(shared->magic_dns_suffix))))) {
        tsjson_strlist_free(&domains);
        why = "out of memory";
    }
    if (why) {
        uint32_t wait =
            t->status_backoff_ms < TSCERT_RETRY_MIN_MS ? TSCERT_RETRY_MIN_MS : t->status_backoff_ms;
        if (!t->status_failed_logged)
            log_msg(LOG_WARN,
                    "cannot read tailscaled's status for certificates: %s; cached certificates "
                    "stay in use; retrying in %u s (and with back-off after that)",
                    why, (unsigned)(wait / 1000));
        t->status_failed_logged = true;
        retry_later(now, &t->status_next_ms, &t->status_backoff_ms);
        tick(t);
        return 0;
    }
    if (t->status_failed_logged)
        log_msg(LOG_INFO, "tailscaled's status is readable again: fetching certificates");
    t->status_failed_logged = false;
    t->status_backoff_ms = 0;
    tsjson_strlist_free(&t->domains);
    free(t->suffix);
    t->domains = domains;
    t->suffix = suffix;
    if (add_hairpin_names(t))
        install(t);
    /* Not connected to a tailnet (stopped, logged out, starting): no
     * CertDomains yet, so read the status again soon. */
    bool waiting = t->n && (!t->suffix || !t->suffix[0]);
    if (waiting && !t->unconnected_logged)
        log_msg(LOG_WARN,
                "tailscaled is not connected to a tailnet (BackendState %s): no certificates "
                "can be fetched until it is; checking again every %u s",
                shared->backend_state && shared->backend_state[0] ? shared->backend_state
                                                                  : "unknown",
                (unsigned)(TSCERT_STATUS_POLL_MS / 1000));
    t->unconnected_logged = waiting;
    t->status_known = true;
    /* Names still waiting for CertDomains make the status worth reading
     * again soon; otherwise only a reload or a failed fetch re-reads it. */
    for (size_t i = 0; i < t->n; i++) {
        struct entry *e = &t->v[i];
        if (in_domains(t, e->name)) {
            e->waiting_logged = false;
            continue;
        }
        if (!under_suffix(t, e->name))
            continue;
        waiting = true;
        if (!e->waiting_logged && !e->pem)
            log_msg(LOG_WARN,
                    "no certificate for %s yet: tailscaled does not list it in CertDomains (a "
                    "Service's name is listed once control approves this node as its host); TLS "
                    "handshakes for it fail until then; checking again every %u s",
                    e->name, (unsigned)(TSCERT_STATUS_POLL_MS / 1000));
        e->waiting_logged = true;
    }
    t->status_next_ms = waiting ? now + TSCERT_STATUS_POLL_MS : UINT64_MAX;
    tick(t);
    return 0;
}

static void fetch_failed(struct tscert *t, struct entry *e, enum fetch_result r, const char *why,
                         long retry_after_s)
{
    uint64_t now = loop_now_ms(t->loop);
    t->fetches[r]++;
    retry_later(now, &e->next_ms, &e->backoff_ms);
    if (retry_after_s > 0 && e->next_ms < now + (uint64_t)retry_after_s * 1000)
        e->next_ms = now + (uint64_t)retry_after_s * 1000;
    char until[32], keep[200];
    if (e->pem) {
        when_text(e->info.not_after, until, sizeof until);
        snprintf(keep, sizeof keep, "keeping the current one (serial %s, valid until %s)",
                 e->info.serial, until);
    }
    log_msg(r == FETCH_UNCHANGED ? LOG_INFO : LOG_WARN,
            "%s the certificate for %s from tailscaled: %s; %s; retrying in %llu s",
            r == FETCH_UNCHANGED ? "could not renew" : "cannot fetch", e->name, why,
            e->pem ? keep : "no certificate for it: TLS handshakes for it fail",
            (unsigned long long)((e->next_ms - now) / 1000));
    /* A refusal may mean the name left CertDomains: read the status again. */
    if (r == FETCH_REFUSED)
        t->status_next_ms = now;
}

static long answer_retry_after(const struct localapi_answer *a)
{
    if (!a->head)
        return -1;
    for (size_t i = 0; i < a->head->nheaders; i++) {
        const struct http_header *h = &a->head->headers[i];
        if (h->name.len == 11 && strncasecmp(h->name.p, "Retry-After", 11) == 0)
            return tscert_retry_after(h->value.p, h->value.len);
    }
    return -1;
}

static void on_cert(void *arg, const struct localapi_answer *a)
{
    struct tscert *t = arg;
    t->busy = false;
    /* The entry may have moved or gone with a reload while the call ran. */
    struct entry *e = NULL;
    for (size_t i = 0; i < t->n && !e; i++)
        if (strcmp(t->v[i].name, t->fetch_name) == 0)
            e = &t->v[i];
    if (!e) {
        tick(t);
        return;
    }
    char err[640];
    if (a->result != LOCALAPI_OK) {
        enum fetch_result r = a->result == LOCALAPI_HTTP_ERROR   ? FETCH_REFUSED
                              : a->result == LOCALAPI_TIMEOUT    ? FETCH_TIMEOUT
                              : a->result == LOCALAPI_BAD_ANSWER ? FETCH_BAD_ANSWER
                                                                 : FETCH_UNAVAILABLE;
        fetch_failed(t, e, r, a->error, a->status == 429 ? answer_retry_after(a) : -1);
        tick(t);
        return;
    }
    struct tls_pair_info info;
    size_t key_len;
    if (a->body_len > LIMIT_TS_CERT_BYTES) {
        fetch_failed(t, e, FETCH_BAD_ANSWER, "the answer is too large", -1);
    } else if (pair_read(a->body, a->body_len, e->name, &key_len, &info, err, sizeof err) < 0) {
        fetch_failed(t, e, FETCH_BAD_ANSWER, err, -1);
    } else if (info.not_after <= wall_now()) {
        fetch_failed(t, e, FETCH_BAD_ANSWER, "the certificate it gave has expired", -1);
    } else if (e->pem && info.not_after <= e->info.not_after) {
        fetch_failed(t, e, FETCH_UNCHANGED, "it gave the same certificate", -1);
    } else {
        char *pem = malloc(a->body_len + 1);
        if (!pem) {
            fetch_failed(t, e, FETCH_BAD_ANSWER, "out of memory", -1);
            tick(t);
            return;
        }
        memcpy(pem, a->body, a->body_len);
        pem[a->body_len] = '\0';
        free(e->pem);
        e->pem = pem;
        e->len = a->body_len;
        e->key_len = key_len;
        e->info = info;
        e->backoff_ms = 0;
        e->next_ms = 0;
        t->fetches[FETCH_OK]++;
        install(t);
        cache_store(t, e);
        char until[32], renew[32];
        when_text(info.not_after, until, sizeof until);
        when_text(tscert_renew_at(info.not_before, info.not_after), renew, sizeof renew);
        log_msg(LOG_INFO,
                "certificate for %s from tailscaled: serial %s, valid until %s; renewal at %s",
                e->name, info.serial, until, renew);
    }
    tick(t);
}

/* 0 when the call is on its way; -1 (logged) when it could not even be
 * queued, which only a bug or memory exhaustion causes. */
static int call(struct tscert *t, const char *path, localapi_done_fn fn)
{
    struct localapi_request r = {.method = METHOD_GET, .path = path};
    char err[512];
    if (localapi_call(t->client, &r, fn, t, err, sizeof err) < 0) {
        log_msg(LOG_ERROR, "tailscale certificates: %s; trying again in an hour", err);
        return -1;
    }
    t->busy = true;
    return 0;
}

/* A name whose certificate should be fetched now: none, renewal due, or a
 * retry; with min_validity when it is a renewal. */
static bool due(const struct tscert *t, const struct entry *e, uint64_t now, int64_t wall)
{
    if (!in_domains(t, e->name) || now < e->next_ms)
        return false;
    return !e->pem || wall >= tscert_renew_at(e->info.not_before, e->info.not_after);
}

/* When the next thing is to be done (loop time), UINT64_MAX when nothing. */
static uint64_t next_time(const struct tscert *t, uint64_t now, int64_t wall)
{
    uint64_t next = t->status_next_ms;
    for (size_t i = 0; i < t->n; i++) {
        const struct entry *e = &t->v[i];
        if (!in_domains(t, e->name))
            continue;
        uint64_t at = e->next_ms;
        if (e->pem) {
            int64_t left = tscert_renew_at(e->info.not_before, e->info.not_after) - wall;
            uint64_t renew = left <= 0 ? now : now + (uint64_t)left * 1000;
            at = renew > at ? renew : at;
        }
        next = at < next ? at : next;
    }
    return next;
}

static void tick(struct tscert *t)
{
    if (!t->enabled || t->busy || !t->client)
        return;
    uint64_t now = loop_now_ms(t->loop);
    int64_t wall = wall_now();
    if (now >= t->status_next_ms) {
        t->status_next_ms = now + TSCERT_RETRY_MAX_MS; /* on_status sets the real time */
        t->busy = true;
        tsstatus_ask_once(t->status, t->socket);
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        struct entry *e = &t->v[i];
        if (!due(t, e, now, wall))
            continue;
        char path[LIMIT_LOCALAPI_PATH_BYTES], mv[32] = "";
        if (e->pem)
            tscert_min_validity(e->info.not_after, wall, mv, sizeof mv);
        snprintf(path, sizeof path, LOCALAPI_PREFIX "cert/%s?type=pair%s%s", e->name,
                 mv[0] ? "&min_validity=" : "", mv);
        snprintf(t->fetch_name, sizeof t->fetch_name, "%s", e->name);
        if (call(t, path, on_cert) == 0)
            return;
        e->next_ms = now + TSCERT_RETRY_MAX_MS;
    }
    uint64_t next = next_time(t, now, wall);
    if (next == UINT64_MAX) {
        loop_timer_disarm(t->loop, &t->timer);
        return;
    }
    /* The wall clock may jump (a suspended machine): look again hourly. */
    uint64_t wait = next > now ? next - now : 0;
    loop_timer_arm(t->loop, &t->timer, wait < TSCERT_RETRY_MAX_MS ? wait : TSCERT_RETRY_MAX_MS);
}

static void on_timer(struct loop *l, struct loop_timer *tm)
{
    struct tscert *t = container_of(tm, struct tscert, timer);
    tick(t);
}

struct tscert *tscert_new(struct loop *l)
{
    struct tscert *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->loop = l;
    if (!(t->status = tsstatus_new(l, on_status, t))) {
        free(t);
        return NULL;
    }
    loop_timer_init(&t->timer, on_timer);
    live = t;
    return t;
}

static void drop_client(struct tscert *t)
{
    localapi_client_free(t->client);
    t->client = NULL;
    tsstatus_stop(t->status);
    t->busy = false;
}

/* Is name among the hosts before service upto_svc's host upto_host? */
static bool seen_before(const struct config *c, const char *name, size_t upto_svc, size_t upto_host)
{
    for (size_t i = 0; i <= upto_svc && i < c->nservices; i++) {
        const struct config_service *s = &c->services[i];
        for (size_t j = 0; j < s->nhosts && (i < upto_svc || j < upto_host); j++)
            if (strcmp(s->hosts[j], name) == 0)
                return true;
    }
    return false;
}

void tscert_set(struct tscert *t, const struct config *c)
{
    if (!t)
        return;
    bool on = c->tls_tailscale && c->tls;
    const char *sock = c->tailscale.socket, *dir = c->tailscale.state_dir;
    if (!on || !t->socket || strcmp(t->socket, sock) != 0) {
        drop_client(t);
        free(t->socket);
        t->socket = NULL;
        t->status_known = false;
    }
    if (!on || !t->state_dir || strcmp(t->state_dir, dir) != 0) {
        for (size_t i = 0; i < t->n; i++)
            entry_clear(&t->v[i]);
        t->n = 0;
        free(t->state_dir);
        t->state_dir = NULL;
    }
    t->enabled = on;
    if (!on) {
        loop_timer_disarm(t->loop, &t->timer);
        tls_dyn_install(NULL);
        return;
    }
    char err[512];
    if (!t->socket) {
        t->socket = strdup(sock);
        t->client = t->socket ? localapi_client_new(t->loop, sock, TIMEOUT_TS_CERT_MS, NULL, err,
                                                    sizeof err)
                              : NULL;
        if (!t->client)
            log_msg(LOG_ERROR, "tailscale certificates: %s", t->socket ? err : "out of memory");
    }
    if (!t->state_dir && !(t->state_dir = strdup(dir))) {
        log_msg(LOG_ERROR, "tailscale certificates: out of memory");
        return;
    }
    /* The new list: kept entries keep their certificate. */
    size_t total = 0;
    for (size_t i = 0; i < c->nservices; i++)
        total += c->services[i].nhosts;
    struct entry *v = calloc(total ? total : 1, sizeof *v);
    if (!v) {
        log_msg(LOG_ERROR, "tailscale certificates: out of memory; keeping the previous names");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->nservices; i++) {
        const struct config_service *s = &c->services[i];
        for (size_t j = 0; j < s->nhosts && !s->passthrough; j++) {
            const char *h = s->hosts[j];
            if (h[0] == '*' || seen_before(c, h, i, j))
                continue;
            struct entry *old = NULL;
            for (size_t k = 0; k < t->n && !old; k++)
                if (t->v[k].name && strcmp(t->v[k].name, h) == 0)
                    old = &t->v[k];
            if (old) {
                v[n++] = *old;
                memset(old, 0, sizeof *old);
                continue;
            }
            if (!(v[n].name = strdup(h)))
                continue;
            cache_load(t, &v[n]);
            n++;
        }
    }
    for (size_t k = 0; k < t->n; k++)
        entry_clear(&t->v[k]);
    free(t->v);
    t->v = v;
    t->n = n;
    /* Hairpin names come back from the cache (their suffix is known) or
     * once the status says the suffix. */
    hairpin_clear(t);
    if (c->tailscale.hairpin.enabled && (t->hairpin = calloc(c->nservices + 1, sizeof *t->hairpin)))
        for (size_t i = 0; i < c->nservices; i++)
            if (c->services[i].upstream && (t->hairpin[t->nhairpin] = strdup(c->services[i].name)))
                t->nhairpin++;
    add_hairpin_names(t);
    install(t);
    /* The status tells which of the names tailscaled has certificates for. */
    t->status_next_ms = 0;
    tick(t);
}

void tscert_free(struct tscert *t)
{
    if (!t)
        return;
    if (live == t)
        live = NULL;
    drop_client(t);
    tsstatus_free(t->status);
    loop_timer_disarm(t->loop, &t->timer);
    for (size_t i = 0; i < t->n; i++)
        entry_clear(&t->v[i]);
    free(t->v);
    tsjson_strlist_free(&t->domains);
    hairpin_clear(t);
    free(t->suffix);
    free(t->socket);
    free(t->state_dir);
    free(t);
    tls_dyn_install(NULL);
}

void tscert_render_metrics(struct strbuf *o)
{
    const struct tscert *t = live;
    if (!t || (!t->enabled && !t->fetches[FETCH_OK]))
        return;
    metrics_render_results(o, "portico_tailscale_cert_fetches_total",
                           "Certificate fetches from tailscaled, by result.", fetch_result_names,
                           t->fetches, FETCH_NRESULTS);
    strbuf_printf(o, "# HELP portico_tailscale_cert_expiry_timestamp_seconds When the "
                     "certificate from tailscaled served for a name expires (Unix time).\n"
                     "# TYPE portico_tailscale_cert_expiry_timestamp_seconds gauge\n");
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].pem)
            strbuf_printf(o, "portico_tailscale_cert_expiry_timestamp_seconds{name=\"%s\"} %lld\n",
                          t->v[i].name, (long long)t->v[i].info.not_after);
}

bool tscert_cert_at(size_t i, const char **name, int64_t *not_after)
{
    const struct tscert *t = live;
    if (!t || i >= t->n)
        return false;
    *name = t->v[i].name;
    *not_after = t->v[i].pem ? t->v[i].info.not_after : 0;
    return true;
}
