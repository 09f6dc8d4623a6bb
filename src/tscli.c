/* tscli.c - `portico tailscale plan|apply|status|policy -c FILE`: publish
 * the configuration's HTTP services as Tailscale Services on the local
 * tailscaled node, once, from the command line.
 *
 * plan and apply run the steps of tsapply.c (the daemon runs the same ones
 * in its loop) with one blocking LocalAPI call each (localapi_call_blocking):
 * read status, prefs and the serve configuration, merge portico's services
 * into it (servecfg.c); apply then writes the serve configuration with
 * If-Match (another client writing in between gives 412: read again and
 * merge again, a bounded number of times), sets AdvertiseServices when it
 * changes, and saves the names it published in STATE_DIR/tailscale-services
 * (written to a temporary file and renamed), which is how the next apply
 * knows what it may delete. Nothing to change: no write at all.
 *
 * tailscaled lets only root, or its operator allowed to run `sudo
 * tailscale`, publish a Unix-socket backend (ipn/ipnserver/actor.go), so
 * an unprivileged daemon has a unit run `portico tailscale apply` with
 * privileges. */
#include "tscli.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "limits.h"
#include "localapi.h"
#include "log.h"
#include "servecfg.h"
#include "strbuf.h"
#include "tsapi_client.h"
#include "tsapply.h"
#include "tsjson.h"
#include "tspolicy.h"

#define OPERATOR_HINT                                                                              \
    "; writing the serve config needs root, or the tailscale operator able to run `sudo "          \
    "tailscale` (tailscale set --operator=USER)"

struct tsctx {
    const char *cmd;
    struct config *c;
    const struct config_tailscale *ts;
    struct servecfg_service *svcs;
    size_t n;
    struct tsapply a; /* the LocalAPI steps and what they read */
    char state[PATH_MAX];
};

static int fail(const struct tsctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const struct tsctx *x, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "portico tailscale %s: ", x->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

/* Run the steps in mode with one blocking call each, saying on stderr
 * what tailscaled did not like: 0 once done, else -1. */
static int drive(struct tsctx *x, enum tsapply_mode mode)
{
    char err[700], etag[LIMIT_LOCALAPI_ETAG_BYTES];
    struct localapi_request req;
    enum tsapply_step step;
    bool warned = false, shown = false;
    tsapply_init(&x->a, mode, x->svcs, x->n, x->ts->host_tags[0]);
    tsapply_use_config(&x->a, x->c);
    if (mode != TSAPPLY_READ && tsapply_read_owned(&x->a, x->state, err, sizeof err) < 0)
        return fail(x, "%s", err);
    while ((step = tsapply_next(&x->a, &req)) == TSAPPLY_CALL) {
        struct localapi_reader rd = {0};
        unsigned races = x->a.lost_races;
        if (localapi_call_blocking(x->ts->socket, &req, TIMEOUT_LOCALAPI_CLI_MS, &rd, err,
                                   sizeof err) < 0) {
            bool perm = errno == EACCES || errno == EPERM;
            tsapply_unreachable(&x->a, err);
            return fail(x, "%s%s", err, perm ? OPERATOR_HINT : "");
        }
        size_t len;
        const char *body = localapi_reader_body(&rd, &len);
        tsapply_answer(&x->a, rd.resp.status, body, len,
                       localapi_reader_etag(&rd, etag, sizeof etag) ? etag : NULL);
        localapi_reader_free(&rd);
        if (x->a.untagged_host && !warned)
            fprintf(stderr,
                    "portico tailscale %s: warning: this node does not carry %s "
                    "(tailscale.host_tags); Tailscale Services need a tagged host, and "
                    "auto-approval names that tag\n",
                    x->cmd, x->ts->host_tags[0]);
        warned = x->a.untagged_host;
        if (x->a.tg.warnings && !shown) /* once status is read */
            for (const char *w = x->a.tg.warnings; *w;) {
                size_t wl = strcspn(w, "\n");
                fprintf(stderr, "portico tailscale %s: warning: %.*s\n", x->cmd, (int)wl, w);
                w += wl + (w[wl] == '\n');
            }
        shown = shown || x->a.tg.warnings;
        if (x->a.lost_races != races)
            fprintf(stderr,
                    "portico tailscale %s: another client changed the serve config; "
                    "reading it again\n",
                    x->cmd);
    }
    if (step == TSAPPLY_FAILED)
        return fail(x, "%s%s", x->a.err, x->a.refused ? OPERATOR_HINT : "");
    return 0;
}

/* "+ advertise svc:x" / "- advertise svc:x" for each name that changes. */
static void print_advertise(const struct tsctx *x)
{
    const struct tsjson_strlist *now = &x->a.adv, *next = &x->a.result.advertise;
    for (size_t i = 0; i < next->n; i++)
        if (!tsapply_list_has(now, next->v[i]))
            printf("+ advertise %s\n", next->v[i]);
    for (size_t i = 0; i < now->n; i++)
        if (!tsapply_list_has(next, now->v[i]))
            printf("- advertise %s\n", now->v[i]);
}

/* ---- service definitions (tailscale.api) --------------------------------------- */

/* With tailscale.api, make the tailnet's definition of every published
 * service hold its port and the service tag (dry_run: only say what would
 * change). Done before the serve config is written, so that a service is
 * defined by the time the node advertises it. */
static int define(struct tsctx *x, bool dry_run)
{
    if (!x->ts->api.enabled || x->n == 0)
        return 0;
    char err[1024];
    struct tsapi_counts counts;
    struct strbuf plan = {0};
    struct tsapi_want *w = calloc(x->n, sizeof *w);
    char(*ports)[16] = calloc(x->n, sizeof *ports);
    const char **port_of = calloc(x->n, sizeof *port_of);
    struct tsapi_client *c =
        w && ports && port_of ? tsapi_client_new(&x->ts->api, err, sizeof err) : NULL;
    int rc = c ? 0 : fail(x, "%s", w && ports && port_of ? err : "out of memory");
    for (size_t i = 0; rc == 0 && i < x->n; i++) {
        snprintf(ports[i], sizeof ports[i], "tcp:%u", (unsigned)x->svcs[i].port);
        port_of[i] = ports[i];
        w[i] = (struct tsapi_want){x->svcs[i].name, &port_of[i], 1,
                                   (const char *const *)x->ts->service_tags, x->ts->nservice_tags};
    }
    if (rc == 0 && tsapi_define_services(c, w, x->n, dry_run, &plan, &counts, err, sizeof err) < 0)
        rc = fail(x, "%s", err);
    if (plan.s)
        fputs(plan.s, stdout);
    if (rc == 0)
        printf("service definitions in tailnet %s: %s%zu created, %zu updated, %zu unchanged\n",
               x->ts->api.tailnet, dry_run ? "would be " : "", counts.created, counts.updated,
               counts.unchanged);
    fflush(stdout);
    tsapi_client_free(c);
    free(plan.s);
    free(port_of);
    free(ports);
    free(w);
    return rc;
}

/* ---- the commands ------------------------------------------------------------ */

static int cmd_plan(struct tsctx *x)
{
    if (define(x, true) < 0 || drive(x, TSAPPLY_PLAN) < 0)
        return 1;
    const struct servecfg_result *r = &x->a.result;
    fputs(r->plan, stdout);
    print_advertise(x);
    if (r->changed || r->advertise_changed)
        printf("would change:%s%s (portico tailscale apply -c %s)\n",
               r->changed ? " the serve config" : "",
               r->advertise_changed ? (r->changed ? " and AdvertiseServices" : " AdvertiseServices")
                                    : "",
               x->c->path);
    else
        printf("nothing to change: %zu %s published as configured\n", x->n,
               log_plural(x->n, "service", "services"));
    return 0;
}

static int cmd_apply(struct tsctx *x)
{
    char err[700];
    if (define(x, false) < 0 || drive(x, TSAPPLY_APPLY) < 0)
        return 1;
    if (tsapply_save_state(&x->a, x->ts->state_dir, x->state, err, sizeof err) < 0)
        return fail(x, "%s", err), 1;
    bool written = x->a.written, adv = x->a.advertise_set;
    fputs(x->a.result.plan, stdout);
    print_advertise(x);
    if (written || adv)
        printf("applied:%s%s; %zu %s published\n", written ? " serve config written" : "",
               adv ? (written ? ", AdvertiseServices set" : " AdvertiseServices set") : "", x->n,
               log_plural(x->n, "service", "services"));
    else
        printf("nothing changed: %zu %s already published as configured\n", x->n,
               log_plural(x->n, "service", "services"));
    return 0;
}

/* Whether the serve config (JSON) has an entry for "svc:NAME". */
static bool in_serve_config(const json_t *root, const char *svc)
{
    const json_t *s = json_is_object(root) ? json_object_get(root, "Services") : NULL;
    return s && json_is_object(s) && json_object_get(s, svc) != NULL;
}

static bool approved(const struct tsjson_status *st, const char *svc)
{
    for (size_t i = 0; i < st->n_hosts; i++)
        if (strcmp(st->hosts[i].name, svc) == 0)
            return true;
    return false;
}

static int cmd_status(struct tsctx *x)
{
    if (drive(x, TSAPPLY_READ) < 0)
        return 1;
    const struct tsjson_status *st = &x->a.st;
    json_t *root = json_loadb(x->a.sc, x->a.sc_len, JSON_DECODE_ANY, NULL);
    if (!root)
        return fail(x, "tailscaled's serve config is not JSON"), 1;
    printf("node %s (tailscaled %s), %zu %s configured%s\n", st->dns_name, st->version, x->n,
           log_plural(x->n, "service", "services"),
           x->ts->services ? "" : " (tailscale.services is false)");
    printf("%-24s %-13s %-11s %-9s %s\n", "SERVICE", "SERVE-CONFIG", "ADVERTISED", "APPROVED",
           "CERTIFICATE");
    size_t counts[4] = {0};
    for (size_t i = 0; i < x->n; i++) {
        char svc[4 + LIMIT_SERVICE_NAME + 1], fqdn[LIMIT_TS_STRING_BYTES + 80];
        snprintf(svc, sizeof svc, "svc:%s", x->svcs[i].name);
        snprintf(fqdn, sizeof fqdn, "%s.%s", x->svcs[i].name, st->magic_dns_suffix);
        bool v[4] = {in_serve_config(root, svc), tsapply_list_has(&x->a.adv, svc),
                     approved(st, svc), tsapply_list_has(&st->cert_domains, fqdn)};
        for (int k = 0; k < 4; k++)
            counts[k] += v[k];
        printf("%-24s %-13s %-11s %-9s %s\n", svc, v[0] ? "yes" : "no", v[1] ? "yes" : "no",
               v[2] ? "yes" : "no", v[3] ? fqdn : "no");
    }
    json_decref(root);
    printf("%zu configured, %zu in the serve config, %zu advertised, %zu approved, %zu with a "
           "certificate\n",
           x->n, counts[0], counts[1], counts[2], counts[3]);
    return 0;
}

static int cmd_policy(struct tsctx *x)
{
    char err[512];
    const char *host_tag = x->ts->host_tags[0], *service_tag = x->ts->service_tags[0];
    struct tspolicy_input in = {x->svcs, x->n, host_tag, service_tag, NULL, 0, NULL, 0};
    char *text = tspolicy_print(&in, err, sizeof err);
    if (!text)
        return fail(x, "%s", err), 1;
    fputs(text, stdout);
    free(text);
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*run)(struct tsctx *x);
} subcommands[] = {
    {"plan", cmd_plan},
    {"apply", cmd_apply},
    {"status", cmd_status},
    {"policy", cmd_policy},
};

bool tscli_known(const char *sub)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(sub, subcommands[i].name) == 0)
            return true;
    return false;
}

int tscli_run(const char *sub, const char *config_path)
{
    struct tsctx x = {.cmd = sub};
    char err[1024];
    /* A kept-alive HTTPS connection the control API closed must fail the
     * write (and be retried), not kill the command (the daemon ignores
     * SIGPIPE too: run.c). */
    signal(SIGPIPE, SIG_IGN);
    x.c = config_load(config_path, err, sizeof err);
    if (!x.c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 1;
    x.ts = &x.c->tailscale;
    if (!x.ts->enabled)
        fail(&x, "%s has no tailscale: section (add one; see docs/tailscale.md)", config_path);
    else if (tsapply_state_path(x.c, x.state, sizeof x.state) < 0)
        fail(&x, "tailscale.state_dir is too long");
    else if (tsapply_collect(x.c, &x.svcs, &x.n, err, sizeof err) < 0)
        fail(&x, "%s", err);
    else
        for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
            if (strcmp(sub, subcommands[i].name) == 0)
                rc = subcommands[i].run(&x);
    tsapply_free(&x.a);
    free(x.svcs);
    config_unref(x.c);
    return rc;
}
