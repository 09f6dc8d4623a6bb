/* hairpin.c - the hosts-file block of tailscale.hairpin, kept from the main
 * thread's loop (see hairpin.h). */
#include "hairpin.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hostsfile.h"
#include "limits.h"
#include "localapi.h"
#include "log.h"
#include "loop.h"
#include "tsjson.h"

/* tailscaled connected to no tailnet has no suffix yet: asked this often. */
#define HAIRPIN_STATUS_POLL_MS 60000

struct hairpin {
    struct loop *loop;
    struct localapi_client *client;
    char socket[PATH_MAX];
    struct loop_timer retry;
    uint32_t backoff_ms;
    bool asking;        /* a status call is in flight */
    bool failed_logged; /* "cannot read the status" said for this outage */
    bool waiting_logged;
    struct config *cfg; /* the configuration the block follows; NULL: no block */
    char *suffix;       /* the MagicDNS suffix from the last status; NULL: not known yet */
    char *path;         /* the hosts file the block was written to or is meant for */
};

static bool wanted(const struct config *c)
{
    return c && c->tailscale.enabled && c->tailscale.hairpin.enabled;
}

int hairpin_lines(const struct config *c, const char *suffix, char ***out, size_t *n)
{
    const struct config_hairpin *h = &c->tailscale.hairpin;
    size_t cap = h->nlisten * c->nservices, k = 0;
    char **v = calloc(cap ? cap : 1, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < h->nlisten; i++) {
        char ip[INET6_ADDRSTRLEN];
        const struct sockaddr_storage *sa = &h->listen[i].sa;
        if (sa->ss_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
        else
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
        for (size_t s = 0; s < c->nservices; s++) {
            const struct config_service *svc = &c->services[s];
            if (!svc->upstream) /* published: HTTP services only */
                continue;
            size_t len = strlen(ip) + 1 + strlen(svc->name) + 1 + strlen(suffix) + 1;
            if (!(v[k] = malloc(len))) {
                hairpin_lines_free(v, k);
                return -1;
            }
            snprintf(v[k++], len, "%s %s.%s", ip, svc->name, suffix);
        }
    }
    *out = v;
    *n = k;
    return 0;
}

void hairpin_lines_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void remove_block(struct hairpin *h)
{
    char err[1024];
    if (!h->path)
        return;
    int r = hostsfile_update(h->path, NULL, 0, true, err, sizeof err);
    if (r < 0)
        log_msg(LOG_ERROR, "hairpin: cannot remove the portico block from %s", err);
    else if (r > 0)
        log_msg(LOG_INFO, "hairpin: removed the portico block from %s", h->path);
    free(h->path);
    h->path = NULL;
}

static void write_block(struct hairpin *h)
{
    char **lines, err[1024];
    size_t n;
    if (!h->cfg || !h->suffix)
        return;
    if (hairpin_lines(h->cfg, h->suffix, &lines, &n) < 0) {
        log_msg(LOG_ERROR, "hairpin: out of memory; the hosts file is not updated");
        return;
    }
    int r = hostsfile_update(h->path, (const char *const *)lines, n, false, err, sizeof err);
    size_t names = h->cfg->tailscale.hairpin.nlisten ? n / h->cfg->tailscale.hairpin.nlisten : 0;
    if (r < 0)
        log_msg(LOG_ERROR,
                "hairpin: cannot update the hosts file: %s; local processes do not find the "
                "published names there until the next reload",
                err);
    else if (r > 0)
        log_msg(LOG_INFO, "hairpin: %s lists %zu %s under %s for %zu %s", h->path, names,
                log_plural(names, "name", "names"), h->suffix, h->cfg->tailscale.hairpin.nlisten,
                log_plural(h->cfg->tailscale.hairpin.nlisten, "address", "addresses"));
    hairpin_lines_free(lines, n);
}

static void ask(struct hairpin *h);

static void retry_later(struct hairpin *h, uint32_t ms)
{
    loop_timer_arm(h->loop, &h->retry, ms);
}

static void on_status(void *arg, const struct localapi_answer *a)
{
    struct hairpin *h = arg;
    char why[512];
    h->asking = false;
    if (!h->cfg)
        return;
    struct tsjson_status st = {0};
    if (a->result != LOCALAPI_OK)
        snprintf(why, sizeof why, "%s", a->error);
    else if (tsjson_parse_status(a->body, a->body_len, &st, why, sizeof why) == 0)
        why[0] = '\0';
    if (why[0]) {
        tsjson_status_free(&st);
        if (!h->failed_logged)
            log_msg(LOG_WARN,
                    "hairpin: cannot read tailscaled's status for the MagicDNS suffix: %s; %s; "
                    "retrying with back-off",
                    why,
                    h->suffix ? "the hosts file keeps the names it has"
                              : "the hosts file is not written until then");
        h->failed_logged = true;
        retry_later(h, h->backoff_ms);
        h->backoff_ms = h->backoff_ms * 2 > TIMEOUT_TS_PUBLISH_RETRY_MAX_MS
                            ? TIMEOUT_TS_PUBLISH_RETRY_MAX_MS
                            : h->backoff_ms * 2;
        return;
    }
    if (h->failed_logged)
        log_msg(LOG_INFO, "hairpin: tailscaled's status is readable again");
    h->failed_logged = false;
    h->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    if (!st.magic_dns_suffix || !st.magic_dns_suffix[0]) {
        if (!h->waiting_logged)
            log_msg(LOG_WARN,
                    "hairpin: tailscaled is not connected to a tailnet (BackendState %s): no "
                    "MagicDNS suffix to write names under; checking again every %u s",
                    st.backend_state && st.backend_state[0] ? st.backend_state : "unknown",
                    HAIRPIN_STATUS_POLL_MS / 1000);
        h->waiting_logged = true;
        tsjson_status_free(&st);
        retry_later(h, HAIRPIN_STATUS_POLL_MS);
        return;
    }
    h->waiting_logged = false;
    bool changed = !h->suffix || strcmp(h->suffix, st.magic_dns_suffix) != 0;
    if (changed) {
        free(h->suffix);
        h->suffix = st.magic_dns_suffix;
        st.magic_dns_suffix = NULL;
        write_block(h);
    }
    tsjson_status_free(&st);
}

static void ask(struct hairpin *h)
{
    char err[512];
    const char *sock = h->cfg->tailscale.socket;
    if (h->asking)
        return;
    if (!h->client || strcmp(h->socket, sock) != 0) {
        localapi_client_free(h->client);
        h->client =
            localapi_client_new(h->loop, sock, TIMEOUT_LOCALAPI_CLI_MS, NULL, err, sizeof err);
        snprintf(h->socket, sizeof h->socket, "%s", sock);
        if (!h->client) {
            log_msg(LOG_ERROR, "hairpin: %s", err);
            return;
        }
    }
    struct localapi_request req = {.method = METHOD_GET,
                                   .path = LOCALAPI_PREFIX "status?peers=false"};
    if (localapi_call(h->client, &req, on_status, h, err, sizeof err) < 0) {
        log_msg(LOG_WARN, "hairpin: %s; retrying", err);
        retry_later(h, h->backoff_ms);
        return;
    }
    h->asking = true;
}

static void on_retry(struct loop *l, struct loop_timer *t)
{
    struct hairpin *h = container_of(t, struct hairpin, retry);
    if (h->cfg)
        ask(h);
}

struct hairpin *hairpin_new(struct loop *l)
{
    struct hairpin *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = l;
    h->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    loop_timer_init(&h->retry, on_retry);
    return h;
}

void hairpin_set(struct hairpin *h, struct config *c)
{
    if (!h)
        return;
    const char *path = wanted(c) ? c->tailscale.hairpin.hosts_file : NULL;
    /* Off, or moved to another file: the old file loses its block. */
    if (h->path && (!path || strcmp(h->path, path) != 0))
        remove_block(h);
    config_unref(h->cfg);
    h->cfg = NULL;
    loop_timer_disarm(h->loop, &h->retry);
    if (!path) {
        if (h->client && h->asking)
            localapi_cancel(h->client, on_status, h);
        h->asking = false;
        return;
    }
    if (!h->path && !(h->path = strdup(path))) {
        log_msg(LOG_ERROR, "hairpin: out of memory");
        return;
    }
    h->cfg = config_ref(c);
    h->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    /* The names change with the services at once; the suffix is asked
     * again, since the node may have moved to another tailnet. */
    write_block(h);
    ask(h);
}

void hairpin_free(struct hairpin *h, bool remove)
{
    if (!h)
        return;
    loop_timer_disarm(h->loop, &h->retry);
    localapi_client_free(h->client);
    if (remove)
        remove_block(h);
    config_unref(h->cfg);
    free(h->suffix);
    free(h->path);
    free(h);
}
