/* hairpin.c - the hosts-file block of tailscale.hairpin, kept from the main
 * thread's loop (see hairpin.h). */
#include "hairpin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hostsfile.h"
#include "log.h"
#include "loop.h"
#include "tsjson.h"
#include "tsstatus.h"

/* tailscaled connected to no tailnet has no suffix yet: asked this often. */
#define HAIRPIN_STATUS_POLL_MS 60000

struct hairpin {
    struct tsstatus *status;
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

static uint32_t on_status(void *arg, const struct tsjson_status *st, const char *error)
{
    struct hairpin *h = arg;
    if (!h->cfg)
        return 0;
    if (!st) {
        if (!h->failed_logged)
            log_msg(LOG_WARN,
                    "hairpin: cannot read tailscaled's status for the MagicDNS suffix: %s; %s; "
                    "retrying with back-off",
                    error,
                    h->suffix ? "the hosts file keeps the names it has"
                              : "the hosts file is not written until then");
        h->failed_logged = true;
        return 0;
    }
    if (h->failed_logged)
        log_msg(LOG_INFO, "hairpin: tailscaled's status is readable again");
    h->failed_logged = false;
    if (!st->magic_dns_suffix || !st->magic_dns_suffix[0]) {
        if (!h->waiting_logged)
            log_msg(LOG_WARN,
                    "hairpin: tailscaled is not connected to a tailnet (BackendState %s): no "
                    "MagicDNS suffix to write names under; checking again every %u s",
                    st->backend_state && st->backend_state[0] ? st->backend_state : "unknown",
                    HAIRPIN_STATUS_POLL_MS / 1000);
        h->waiting_logged = true;
        return HAIRPIN_STATUS_POLL_MS;
    }
    h->waiting_logged = false;
    if (!h->suffix || strcmp(h->suffix, st->magic_dns_suffix) != 0) {
        char *suffix = strdup(st->magic_dns_suffix);
        if (!suffix) {
            log_msg(LOG_ERROR, "hairpin: out of memory; the hosts file is not updated");
            return 0;
        }
        free(h->suffix);
        h->suffix = suffix;
        write_block(h);
    }
    return 0;
}

struct hairpin *hairpin_new(struct loop *l)
{
    struct hairpin *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (!(h->status = tsstatus_new(l, on_status, h))) {
        free(h);
        return NULL;
    }
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
    if (!path) {
        tsstatus_stop(h->status);
        return;
    }
    if (!h->path && !(h->path = strdup(path))) {
        log_msg(LOG_ERROR, "hairpin: out of memory");
        return;
    }
    h->cfg = config_ref(c);
    /* The names change with the services at once; the suffix is asked
     * again, since the node may have moved to another tailnet. */
    write_block(h);
    tsstatus_ask(h->status, c->tailscale.socket);
}

void hairpin_free(struct hairpin *h, bool remove)
{
    if (!h)
        return;
    tsstatus_free(h->status);
    if (remove)
        remove_block(h);
    config_unref(h->cfg);
    free(h->suffix);
    free(h->path);
    free(h);
}
