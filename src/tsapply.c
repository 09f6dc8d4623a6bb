/* tsapply.c - the publishing steps shared by `portico tailscale apply` and
 * the daemon (see tsapply.h), and the state file that says which services
 * portico published last. */
#include "tsapply.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

enum phase { P_STATUS, P_PREFS, P_GET_SC, P_POST_SC, P_PATCH, P_DONE, P_FAILED };

static const char *const paths[] = {
    [P_STATUS] = "/localapi/v0/status?peers=false",
    [P_PREFS] = "/localapi/v0/prefs",
    [P_GET_SC] = "/localapi/v0/serve-config",
    [P_POST_SC] = "/localapi/v0/serve-config",
    [P_PATCH] = "/localapi/v0/prefs",
};

void tsapply_init(struct tsapply *x, enum tsapply_mode mode, const struct servecfg_service *svcs,
                  size_t n, const char *host_tag)
{
    memset(x, 0, sizeof *x);
    x->mode = mode;
    x->svcs = svcs;
    x->n = n;
    x->host_tag = host_tag;
    x->phase = P_STATUS;
}

void tsapply_free(struct tsapply *x)
{
    tsjson_strlist_free(&x->owned);
    tsjson_strlist_free(&x->funnel_owned);
    tsjson_status_free(&x->st);
    tsjson_strlist_free(&x->adv);
    servecfg_result_free(&x->result);
    tstarget_free(&x->tg);
    free(x->sc);
    free(x->body);
    x->sc = x->body = NULL;
}

void tsapply_use_config(struct tsapply *x, const struct config *c)
{
    x->cfg = c;
}

static void failf(struct tsapply *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct tsapply *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof x->err, fmt, ap);
    va_end(ap);
    x->phase = P_FAILED;
}

static enum http1_method method_of(int phase)
{
    return phase == P_POST_SC ? METHOD_POST : phase == P_PATCH ? METHOD_PATCH : METHOD_GET;
}

enum tsapply_step tsapply_next(struct tsapply *x, struct localapi_request *req)
{
    if (x->phase == P_DONE)
        return TSAPPLY_DONE;
    if (x->phase == P_FAILED)
        return TSAPPLY_FAILED;
    *req = (struct localapi_request){method_of(x->phase), paths[x->phase], NULL, NULL, 0};
    if (x->phase == P_POST_SC) {
        req->if_match = x->etag[0] ? x->etag : NULL;
        req->body = x->result.interim ? x->result.interim : x->result.json;
        req->body_len = strlen(req->body);
    } else if (x->phase == P_PATCH) {
        req->body = x->body;
        req->body_len = strlen(x->body);
    }
    return TSAPPLY_CALL;
}

/* After the serve config is written or found unchanged: AdvertiseServices. */
static void to_prefs(struct tsapply *x)
{
    if (!x->result.advertise_changed) {
        x->phase = P_DONE;
        return;
    }
    free(x->body);
    x->body =
        tsjson_advertise_body((const char *const *)x->result.advertise.v, x->result.advertise.n);
    if (!x->body)
        return failf(x, "out of memory");
    x->phase = P_PATCH;
}

static void got_status(struct tsapply *x, const char *body, size_t len)
{
    char err[512];
    if (tsjson_parse_status(body, len, &x->st, err, sizeof err) < 0)
        return failf(x, "tailscaled's status: %s", err);
    if (!x->st.magic_dns_suffix[0])
        return failf(x,
                     "tailscaled is not connected to a tailnet (BackendState \"%s\"): no MagicDNS "
                     "suffix to name the services with; log the node in first",
                     x->st.backend_state);
    x->untagged_host = x->host_tag && !tsapply_list_has(&x->st.tags, x->host_tag);
    if (x->cfg) {
        const struct tstarget_node node = {x->st.magic_dns_suffix,
                                           true,
                                           x->st.major,
                                           x->st.minor,
                                           x->st.dns_name[0] ? x->st.dns_name : NULL,
                                           x->st.funnel};
        tstarget_free(&x->tg);
        if (tstarget_collect(x->cfg, &node, &x->tg, err, sizeof err) < 0)
            return failf(x, "%s", err);
        x->svcs = x->tg.svcs;
        x->n = x->tg.n;
    }
    x->phase = P_PREFS;
}

static void got_prefs(struct tsapply *x, const char *body, size_t len)
{
    char err[512];
    if (tsjson_parse_advertised(body, len, &x->adv, err, sizeof err) < 0)
        return failf(x, "tailscaled's prefs: %s", err);
    x->node_read = true;
    x->phase = P_GET_SC;
}

static void got_serve_config(struct tsapply *x, const char *body, size_t len, const char *etag)
{
    free(x->sc);
    x->sc = malloc(len + 1);
    if (!x->sc)
        return failf(x, "out of memory");
    memcpy(x->sc, body, len);
    x->sc[len] = '\0';
    x->sc_len = len;
    x->etag[0] = '\0';
    if (etag && strlen(etag) < sizeof x->etag)
        strcpy(x->etag, etag);
    if (x->mode == TSAPPLY_READ) {
        x->phase = P_DONE;
        return;
    }
    const struct servecfg_input in = {.services = x->svcs,
                                      .n_services = x->n,
                                      .suffix = x->st.magic_dns_suffix,
                                      .ts_major = x->st.major,
                                      .ts_minor = x->st.minor,
                                      .owned = (const char *const *)x->owned.v,
                                      .n_owned = x->owned.n,
                                      .advertised = (const char *const *)x->adv.v,
                                      .n_advertised = x->adv.n,
                                      .funnel = x->tg.funnel,
                                      .funnel_owned = (const char *const *)x->funnel_owned.v,
                                      .n_funnel_owned = x->funnel_owned.n};
    servecfg_result_free(&x->result);
    memset(&x->result, 0, sizeof x->result);
    if (servecfg_merge(x->sc, x->sc_len, &in, &x->result, x->err, sizeof x->err) < 0) {
        x->phase = P_FAILED;
        return;
    }
    if (x->mode == TSAPPLY_PLAN)
        x->phase = P_DONE;
    else if (!x->result.changed && !x->result.interim)
        to_prefs(x);
    else
        x->phase = P_POST_SC;
}

/* A serve config write answered 200 or 412. */
static void got_post(struct tsapply *x, int status)
{
    x->attempt++;
    if (status == 412)
        x->lost_races++;
    else
        x->written = true;
    if (status == 200 && !x->result.interim)
        return to_prefs(x);
    /* 412: start again from what the other client wrote; interim: merge
     * again from the step just written. */
    if (x->attempt >= TSAPPLY_ATTEMPTS)
        return failf(x,
                     "the serve config changed under every one of %d attempts to write it; "
                     "another client keeps writing it, try again",
                     TSAPPLY_ATTEMPTS);
    x->phase = P_GET_SC;
}

void tsapply_answer(struct tsapply *x, int status, const char *body, size_t len, const char *etag)
{
    if (x->phase >= P_DONE)
        return;
    if (status != 200 && !(x->phase == P_POST_SC && status == 412)) {
        char msg[LOCALAPI_ERROR_SHOWN + 8];
        localapi_error_text_of(body, len, msg, sizeof msg);
        x->refused = status == 401 || status == 403;
        return failf(x, "tailscaled refused %s %s with %d: %s",
                     localapi_method_name(method_of(x->phase)), paths[x->phase], status,
                     msg[0] ? msg : "(no message)");
    }
    switch (x->phase) {
    case P_STATUS:
        return got_status(x, body, len);
    case P_PREFS:
        return got_prefs(x, body, len);
    case P_GET_SC:
        return got_serve_config(x, body, len, etag);
    case P_POST_SC:
        return got_post(x, status);
    default: /* P_PATCH */
        x->advertise_set = true;
        x->phase = P_DONE;
    }
}

void tsapply_unreachable(struct tsapply *x, const char *why)
{
    if (x->phase < P_DONE)
        failf(x, "%s", why);
}

/* ---- the services and the state file ------------------------------------- */

int tsapply_collect(const struct config *c, struct servecfg_service **out, size_t *n, char *err,
                    size_t errlen)
{
    static const struct tstarget_node unknown = {NULL, false, 0, 0, NULL, false};
    struct tstarget tg;
    *out = NULL;
    *n = 0;
    if (tstarget_collect(c, &unknown, &tg, err, errlen) < 0) {
        tstarget_free(&tg);
        return -1;
    }
    /* One block: the array, then the backends tg computed (the others are
     * c's strings), so that the caller frees it with one free(). */
    size_t text = 0;
    for (size_t i = 0; i < tg.n; i++)
        text += tg.svcs[i].kind == SERVECFG_HTTP ? 0 : strlen(tg.svcs[i].backend) + 1;
    size_t head = (tg.n ? tg.n : 1) * sizeof **out;
    char *block = malloc(head + text);
    if (!block) {
        tstarget_free(&tg);
        return tsjson_errorf(err, errlen, "out of memory");
    }
    *out = (struct servecfg_service *)(void *)block;
    char *t = block + head;
    for (size_t i = 0; i < tg.n; i++) {
        (*out)[i] = tg.svcs[i];
        if (tg.svcs[i].kind != SERVECFG_HTTP) {
            size_t len = strlen(tg.svcs[i].backend) + 1;
            memcpy(t, tg.svcs[i].backend, len);
            (*out)[i].backend = t;
            t += len;
        }
    }
    *n = tg.n;
    tstarget_free(&tg);
    return 0;
}

int tsapply_state_path(const struct config *c, char *path, size_t cap)
{
    int n = snprintf(path, cap, "%s/" TSAPPLY_STATE_FILE, c->tailscale.state_dir);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* "HOST:PORT", as the Funnel state file holds it. */
static bool host_port_valid(const char *s)
{
    const char *c = strrchr(s, ':');
    return c && c > s && c[1] && strspn(c + 1, "0123456789") == strlen(c + 1) &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == (size_t)(c - s);
}

/* One name a line from path into l, each checked with valid. */
static int read_list(const char *path, struct tsjson_strlist *l, bool (*valid)(const char *),
                     const char *what, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f && errno == ENOENT)
        return 0; /* never published from here: nothing is portico's to delete */
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int rc = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        char **v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (v)
            l->v = v;
        if (!valid(line)) {
            rc = -1;
            tsjson_errorf(err, errlen, "%s:%u: \"%.80s\" is not %s; fix or remove the file", path,
                          no, line, what);
        } else if (!v || !(v[l->n] = strdup(line))) {
            rc = -1;
            snprintf(err, errlen, "out of memory");
        } else {
            l->n++;
        }
    }
    fclose(f);
    return rc;
}

/* The Funnel state file beside the services' one at path. */
static int funnel_path(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    int n =
        snprintf(out, cap, "%.*s" TSAPPLY_FUNNEL_FILE, slash ? (int)(slash - path + 1) : 0, path);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int tsapply_read_owned(struct tsapply *x, const char *path, char *err, size_t errlen)
{
    char fpath[PATH_MAX + 32];
    if (funnel_path(path, fpath, sizeof fpath) < 0)
        return tsjson_errorf(err, errlen, "tailscale.state_dir is too long");
    return read_list(path, &x->owned, tsjson_service_name_valid, "a service name (svc:NAME)", err,
                     errlen) < 0 ||
                   read_list(fpath, &x->funnel_owned, host_port_valid, "HOST:PORT", err, errlen) < 0
               ? -1
               : 0;
}

int tsapply_save_owned(const char *dir, const char *path, const struct tsjson_strlist *l, char *err,
                       size_t errlen)
{
    char tmp[PATH_MAX + 32];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        fprintf(f, "%s\n", l->v[i]);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

static bool lists_differ(const struct tsjson_strlist *a, const struct tsjson_strlist *b)
{
    if (a->n != b->n)
        return true;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return true;
    return false;
}

bool tsapply_owned_changed(const struct tsapply *x)
{
    return lists_differ(&x->result.owned, &x->owned);
}

int tsapply_save_state(const struct tsapply *x, const char *dir, const char *path, char *err,
                       size_t errlen)
{
    char fpath[PATH_MAX + 32];
    if (tsapply_owned_changed(x) &&
        tsapply_save_owned(dir, path, &x->result.owned, err, errlen) < 0)
        return -1;
    if (!lists_differ(&x->result.funnel_owned, &x->funnel_owned))
        return 0;
    if (funnel_path(path, fpath, sizeof fpath) < 0)
        return tsjson_errorf(err, errlen, "tailscale.state_dir is too long");
    return tsapply_save_owned(dir, fpath, &x->result.funnel_owned, err, errlen);
}

bool tsapply_list_has(const struct tsjson_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* "svc:" + the service's name into out (names are DNS labels, checked by
 * the configuration). */
static const char *svc_name(const struct servecfg_service *s, char *out, size_t cap)
{
    snprintf(out, cap, "svc:%s", s->name);
    return out;
}

size_t tsapply_count_advertised(const struct tsapply *x)
{
    char svc[4 + LIMIT_SERVICE_NAME + 1];
    const struct tsjson_strlist *now = x->advertise_set ? &x->result.advertise : &x->adv;
    size_t k = 0;
    for (size_t i = 0; i < x->n; i++)
        k += tsapply_list_has(now, svc_name(&x->svcs[i], svc, sizeof svc));
    return k;
}

size_t tsapply_count_approved(const struct tsapply *x)
{
    char svc[4 + LIMIT_SERVICE_NAME + 1];
    size_t k = 0;
    for (size_t i = 0; i < x->n; i++) {
        svc_name(&x->svcs[i], svc, sizeof svc);
        for (size_t j = 0; j < x->st.n_hosts; j++)
            if (strcmp(x->st.hosts[j].name, svc) == 0) {
                k++;
                break;
            }
    }
    return k;
}
