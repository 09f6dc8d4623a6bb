/* tscli.c - `portico tailscale plan|apply|status|policy -c FILE`: publish
 * the configuration's HTTP services as Tailscale Services on the local
 * tailscaled node, once, from the command line.
 *
 * plan and apply read status, prefs and the serve configuration from the
 * LocalAPI (localapi_call_blocking, localapi_msg.c) and merge portico's services into
 * it (servecfg.c). apply then writes the serve configuration with If-Match
 * (another client writing in between gives 412: read again and merge
 * again, a bounded number of times), sets AdvertiseServices when it
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
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "localapi.h"
#include "log.h"
#include "servecfg.h"
#include "strbuf.h"
#include "tsapi_client.h"
#include "tsjson.h"
#include "tspolicy.h"

#define APPLY_ATTEMPTS 5 /* serve config writes lost to another client before giving up */
#define STATE_FILE     "tailscale-services"
#define OPERATOR_HINT                                                                              \
    "; writing the serve config needs root, or the tailscale operator able to run `sudo "          \
    "tailscale` (tailscale set --operator=USER)"

struct tsctx {
    const char *cmd;
    struct config *c;
    const struct config_tailscale *ts;
    struct servecfg_service *svcs;
    size_t n;
    struct tsjson_status st;
    struct tsjson_strlist adv;   /* AdvertiseServices now */
    struct tsjson_strlist owned; /* from the state file */
    struct localapi_reader sc;   /* the serve config as read last */
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

/* One LocalAPI call that must answer want (or 412 when allow_412); the
 * answer stays in a (free it with localapi_reader_free). */
static int call(struct tsctx *x, enum http1_method method, const char *path, const char *if_match,
                const char *body, struct localapi_reader *a, int want, bool allow_412)
{
    char err[700], msg[LOCALAPI_ERROR_SHOWN + 8];
    const struct localapi_request req = {method, path, if_match, body, body ? strlen(body) : 0};
    localapi_reader_free(a);
    if (localapi_call_blocking(x->ts->socket, &req, TIMEOUT_LOCALAPI_CLI_MS, a, err, sizeof err) <
        0)
        return fail(x, "%s%s", err, errno == EACCES || errno == EPERM ? OPERATOR_HINT : "");
    if (a->resp.status == want || (allow_412 && a->resp.status == 412))
        return 0;
    localapi_error_text(a, msg, sizeof msg);
    bool perm = a->resp.status == 401 || a->resp.status == 403;
    return fail(x, "tailscaled refused %s %s with %d: %s%s", localapi_method_name(method), path,
                a->resp.status, msg[0] ? msg : "(no message)", perm ? OPERATOR_HINT : "");
}

/* ---- the owned list (state file) ------------------------------------------- */

static int read_owned(struct tsctx *x)
{
    FILE *f = fopen(x->state, "re");
    if (!f && errno == ENOENT)
        return 0; /* never published from here: nothing is portico's to delete */
    if (!f)
        return fail(x, "cannot read %s: %s", x->state, strerror(errno));
    char line[256];
    int rc = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        char **v = realloc(x->owned.v, (x->owned.n + 1) * sizeof *v);
        if (!tsjson_service_name_valid(line))
            rc = fail(x,
                      "%s:%u: \"%.80s\" is not a service name (svc:NAME); fix or remove the "
                      "file",
                      x->state, no, line);
        else if (!v || !(v[x->owned.n] = strdup(line)))
            rc = fail(x, "out of memory");
        if (v)
            x->owned.v = v;
        if (rc == 0)
            x->owned.n++;
    }
    fclose(f);
    return rc;
}

/* Write the list to a temporary file and rename it over the old one, so a
 * crash leaves either list, never half of one. */
static int save_owned(struct tsctx *x, const struct tsjson_strlist *l)
{
    char tmp[PATH_MAX + 32];
    if (mkdir(x->ts->state_dir, 0755) < 0 && errno != EEXIST)
        return fail(x, "cannot create the state directory %s: %s", x->ts->state_dir,
                    strerror(errno));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", x->state, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return fail(x, "cannot write %s: %s", tmp, strerror(errno));
    }
    for (size_t i = 0; i < l->n; i++)
        fprintf(f, "%s\n", l->v[i]);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, x->state) < 0) {
        int e = errno;
        unlink(tmp);
        return fail(x, "cannot write %s: %s", x->state, strerror(e));
    }
    return 0;
}

static bool lists_equal(const struct tsjson_strlist *a, const struct tsjson_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

static bool list_has(const struct tsjson_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* ---- reading the node ------------------------------------------------------- */

/* GET path and read its JSON answer into out with parse. */
static int get_parsed(struct tsctx *x, const char *path, const char *what,
                      int (*parse)(const char *, size_t, void *, char *, size_t), void *out)
{
    char err[512];
    struct localapi_reader a = {0};
    int rc = call(x, METHOD_GET, path, NULL, NULL, &a, 200, false);
    size_t len;
    const char *body = rc == 0 ? localapi_reader_body(&a, &len) : NULL;
    if (body && parse(body, len, out, err, sizeof err) < 0)
        rc = fail(x, "tailscaled's %s: %s", what, err);
    localapi_reader_free(&a);
    return rc;
}

static int parse_status(const char *buf, size_t len, void *out, char *err, size_t errlen)
{
    return tsjson_parse_status(buf, len, out, err, errlen);
}

static int parse_prefs(const char *buf, size_t len, void *out, char *err, size_t errlen)
{
    return tsjson_parse_advertised(buf, len, out, err, errlen);
}

static int read_status(struct tsctx *x)
{
    if (get_parsed(x, "/localapi/v0/status?peers=false", "status", parse_status, &x->st) < 0)
        return -1;
    if (!x->st.magic_dns_suffix[0])
        return fail(x,
                    "tailscaled is not connected to a tailnet (BackendState \"%s\"): no MagicDNS "
                    "suffix to name the services with; log the node in first",
                    x->st.backend_state);
    if (!list_has(&x->st.tags, x->ts->host_tags[0]))
        fprintf(stderr,
                "portico tailscale %s: warning: this node does not carry %s (tailscale.host_tags); "
                "Tailscale Services need a tagged host, and auto-approval names that tag\n",
                x->cmd, x->ts->host_tags[0]);
    return 0;
}

static int read_prefs(struct tsctx *x)
{
    return get_parsed(x, "/localapi/v0/prefs", "prefs", parse_prefs, &x->adv);
}

static int merge(struct tsctx *x, struct servecfg_result *r)
{
    char err[700];
    struct servecfg_input in = {x->svcs,
                                x->n,
                                x->st.magic_dns_suffix,
                                x->st.major,
                                x->st.minor,
                                (const char *const *)x->owned.v,
                                x->owned.n,
                                (const char *const *)x->adv.v,
                                x->adv.n};
    servecfg_result_free(r);
    memset(r, 0, sizeof *r);
    size_t sclen;
    const char *sc = localapi_reader_body(&x->sc, &sclen);
    if (servecfg_merge(sc, sclen, &in, r, err, sizeof err) < 0)
        return fail(x, "%s", err);
    return 0;
}

/* "+ advertise svc:x" / "- advertise svc:x" for each name that changes. */
static void print_advertise(const struct tsctx *x, const struct servecfg_result *r)
{
    for (size_t i = 0; i < r->advertise.n; i++)
        if (!list_has(&x->adv, r->advertise.v[i]))
            printf("+ advertise %s\n", r->advertise.v[i]);
    for (size_t i = 0; i < x->adv.n; i++)
        if (!list_has(&r->advertise, x->adv.v[i]))
            printf("- advertise %s\n", x->adv.v[i]);
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
    struct servecfg_result r = {0};
    int rc = define(x, true) < 0 || read_status(x) < 0 || read_prefs(x) < 0 || read_owned(x) < 0 ||
                     call(x, METHOD_GET, "/localapi/v0/serve-config", NULL, NULL, &x->sc, 200,
                          false) < 0 ||
                     merge(x, &r) < 0
                 ? 1
                 : 0;
    if (rc == 0) {
        fputs(r.plan, stdout);
        print_advertise(x, &r);
        if (r.changed || r.advertise_changed)
            printf("would change:%s%s (portico tailscale apply -c %s)\n",
                   r.changed ? " the serve config" : "",
                   r.advertise_changed
                       ? (r.changed ? " and AdvertiseServices" : " AdvertiseServices")
                       : "",
                   x->c->path);
        else
            printf("nothing to change: %zu %s published as configured\n", x->n,
                   log_plural(x->n, "service", "services"));
    }
    servecfg_result_free(&r);
    return rc;
}

static int cmd_apply(struct tsctx *x)
{
    struct servecfg_result r = {0};
    struct localapi_reader post = {0};
    char etag[LIMIT_LOCALAPI_ETAG_BYTES];
    bool written = false;
    int attempt = 0, rc = 0;
    if (define(x, false) < 0 || read_status(x) < 0 || read_prefs(x) < 0 || read_owned(x) < 0)
        return 1;
    /* Read, merge, write with If-Match; a 412 means another client wrote
     * in between: start again from what it wrote. */
    for (; rc == 0 && attempt < APPLY_ATTEMPTS; attempt++) {
        if (call(x, METHOD_GET, "/localapi/v0/serve-config", NULL, NULL, &x->sc, 200, false) < 0 ||
            merge(x, &r) < 0) {
            rc = -1;
            break;
        }
        if (!r.changed && !r.interim)
            break;
        const char *doc = r.interim ? r.interim : r.json;
        bool has_etag = localapi_reader_etag(&x->sc, etag, sizeof etag);
        if (call(x, METHOD_POST, "/localapi/v0/serve-config", has_etag ? etag : NULL, doc, &post,
                 200, true) < 0) {
            rc = -1;
            break;
        }
        if (post.resp.status == 412) {
            fprintf(stderr, "portico tailscale apply: another client changed the serve config; "
                            "reading it again\n");
            continue;
        }
        written = true;
        if (!r.interim)
            break; /* else: the interim step is written, merge again from it */
    }
    localapi_reader_free(&post);
    if (rc == 0 && attempt == APPLY_ATTEMPTS)
        rc = fail(x,
                  "the serve config changed under every one of %d attempts to write it; another "
                  "client keeps writing it, try again",
                  APPLY_ATTEMPTS);
    char *body = NULL;
    if (rc == 0 && r.advertise_changed) {
        body = tsjson_advertise_body((const char *const *)r.advertise.v, r.advertise.n);
        rc = body ? call(x, METHOD_PATCH, "/localapi/v0/prefs", NULL, body, &post, 200, false)
                  : fail(x, "out of memory");
        localapi_reader_free(&post);
    }
    free(body);
    if (rc == 0 && !lists_equal(&r.owned, &x->owned))
        rc = save_owned(x, &r.owned);
    if (rc == 0) {
        fputs(r.plan, stdout);
        print_advertise(x, &r);
        if (written || r.advertise_changed)
            printf("applied:%s%s; %zu %s published\n", written ? " serve config written" : "",
                   r.advertise_changed
                       ? (written ? ", AdvertiseServices set" : " AdvertiseServices set")
                       : "",
                   x->n, log_plural(x->n, "service", "services"));
        else
            printf("nothing changed: %zu %s already published as configured\n", x->n,
                   log_plural(x->n, "service", "services"));
    }
    servecfg_result_free(&r);
    return rc == 0 ? 0 : 1;
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
    if (read_status(x) < 0 || read_prefs(x) < 0 ||
        call(x, METHOD_GET, "/localapi/v0/serve-config", NULL, NULL, &x->sc, 200, false) < 0)
        return 1;
    size_t sclen;
    const char *sc = localapi_reader_body(&x->sc, &sclen);
    json_t *root = json_loadb(sc, sclen, JSON_DECODE_ANY, NULL);
    if (!root)
        return fail(x, "tailscaled's serve config is not JSON"), 1;
    printf("node %s (tailscaled %s), %zu %s configured%s\n", x->st.dns_name, x->st.version, x->n,
           log_plural(x->n, "service", "services"),
           x->ts->services ? "" : " (tailscale.services is false)");
    printf("%-24s %-13s %-11s %-9s %s\n", "SERVICE", "SERVE-CONFIG", "ADVERTISED", "APPROVED",
           "CERTIFICATE");
    size_t counts[4] = {0};
    for (size_t i = 0; i < x->n; i++) {
        char svc[4 + LIMIT_SERVICE_NAME + 1], fqdn[LIMIT_TS_STRING_BYTES + 80];
        snprintf(svc, sizeof svc, "svc:%s", x->svcs[i].name);
        snprintf(fqdn, sizeof fqdn, "%s.%s", x->svcs[i].name, x->st.magic_dns_suffix);
        bool v[4] = {in_serve_config(root, svc), list_has(&x->adv, svc), approved(&x->st, svc),
                     list_has(&x->st.cert_domains, fqdn)};
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

/* The services portico publishes: every HTTP service when
 * tailscale.services is true, none otherwise (so that apply then removes
 * what it published before). */
static int collect(struct tsctx *x)
{
    const struct config *c = x->c;
    x->svcs = calloc(c->nservices ? c->nservices : 1, sizeof *x->svcs);
    if (!x->svcs)
        return fail(x, "out of memory");
    for (size_t i = 0; x->ts->services && i < c->nservices; i++)
        if (c->services[i].upstream)
            x->svcs[x->n++] = (struct servecfg_service){c->services[i].name, SERVECFG_HTTP, 443,
                                                        x->ts->backend, false};
    return 0;
}

int tscli_run(const char *sub, const char *config_path)
{
    struct tsctx x = {.cmd = sub};
    char err[1024];
    x.c = config_load(config_path, err, sizeof err);
    if (!x.c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 1;
    x.ts = &x.c->tailscale;
    if (!x.ts->enabled)
        fail(&x, "%s has no tailscale: section (add one; see docs/tailscale.md)", config_path);
    else if (snprintf(x.state, sizeof x.state, "%s/" STATE_FILE, x.ts->state_dir) >=
             (int)sizeof x.state)
        fail(&x, "tailscale.state_dir is too long");
    else if (collect(&x) == 0)
        for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
            if (strcmp(sub, subcommands[i].name) == 0)
                rc = subcommands[i].run(&x);
    free(x.svcs);
    tsjson_status_free(&x.st);
    tsjson_strlist_free(&x.adv);
    tsjson_strlist_free(&x.owned);
    localapi_reader_free(&x.sc);
    config_unref(x.c);
    return rc;
}
