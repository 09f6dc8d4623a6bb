/* run.c - the main thread of `portico run`.
 *
 * The main thread owns everything that is not per request: signals
 * (through a signalfd, so handlers never run inside library code), loading
 * and swapping configuration snapshots, the listening sockets, the
 * /metrics endpoint (metrics_http.c) and upgrades (upgrade.c). Workers do
 * all request work. */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "certwatch.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "metrics_http.h"
#include "resolve.h"
#include "tscert.h"
#include "tspublish.h"
#include "upgrade.h"
#include "worker.h"

struct mainctx {
    struct loop *loop;
    struct server srv;
    struct loop_io sigio;
    const char *path;
    struct metrics_http metrics;
    /* Certificate files are watched so a renewal applies without a SIGHUP. */
    struct certwatch *certs;
    /* Certificates from tailscaled (tls.tailscale), fetched on this loop. */
    struct tscert *tscert;
    struct upgrade upgrade;
    /* Publishes the services as Tailscale Services on start and reload. */
    struct tspublish *publish;
};

/* One "listening" line per socket with the address it is bound to (the
 * port the kernel chose where the configuration says port 0), after start
 * and after every reload, so a supervisor or a test can read its ports. */
static void log_listeners(const struct mainctx *m, const struct config *c)
{
    for (size_t i = 0; i < listener_config_count(c); i++) {
        const struct listener *l = m->srv.listeners[i];
        if (i < c->nlistens) {
            const char *kv[] = {"listener", c->listens[i].tailnet ? "tailnet" : "http",
                                "addr",     l->bound.text,
                                "tls",      c->listens[i].tls ? "true" : "false"};
            log_fields(LOG_INFO, "listening", kv, 3);
        } else {
            const struct config_service *svc = c->tcp_services[i - c->nlistens];
            const char *kv[] = {"listener", "tcp",     "addr",     l->bound.text,
                                "name",     svc->name, "upstream", svc->tcp->upstream.text};
            log_fields(LOG_INFO, "listening", kv, 4);
        }
    }
    if (m->metrics.l) {
        const char *kv[] = {"listener", "metrics", "addr", m->metrics.l->bound.text};
        log_fields(LOG_INFO, "listening", kv, 2);
    }
}

/* Each "FILE:LINE: warning: ..." line of a configuration, in the log. */
static void log_config_warnings(const struct config *c)
{
    for (const char *w = c->warnings; w && *w;) {
        size_t n = strcspn(w, "\n");
        log_msg(LOG_WARN, "%.*s", (int)n, w);
        w += n + (w[n] == '\n');
    }
}

static void reload(struct mainctx *m)
{
    char err[1024];
    struct config *c = config_load(m->path, err, sizeof err);
    if (!c) {
        log_msg(LOG_ERROR, "reload refused: %s", err);
        certwatch_set(m->certs, m->srv.cfg); /* what failed to load is not a change any more */
        return;
    }
    log_config_warnings(c);
    if (c->workers != m->srv.nworkers)
        log_msg(LOG_WARN, "workers changed from %u to %u; this takes effect on restart",
                m->srv.nworkers, c->workers);
    struct listener **ls =
        listener_open_all(c, m->srv.listeners, m->srv.nlisteners, err, sizeof err);
    if (!ls) {
        log_msg(LOG_ERROR, "reload refused: %s", err);
        config_unref(c);
        certwatch_set(m->certs, m->srv.cfg);
        return;
    }
    if (metrics_assign_slots(c) < 0 ||
        metrics_http_apply(&m->metrics, c, NULL, 0, err, sizeof err) < 0 ||
        (err[0] = '\0', resolve_bind(c, TIMEOUT_RESOLVE_WAIT_MS) < 0)) {
        log_msg(LOG_ERROR, "reload refused: %s", err[0] ? err : "out of memory");
        for (size_t i = 0; i < listener_config_count(c); i++)
            listener_unref(ls[i]);
        free(ls);
        config_unref(c);
        certwatch_set(m->certs, m->srv.cfg);
        return;
    }
    for (size_t i = 0; i < m->srv.nlisteners; i++)
        listener_unref(m->srv.listeners[i]);
    free(m->srv.listeners);
    m->srv.listeners = ls;
    m->srv.nlisteners = listener_config_count(c);
    config_unref(m->srv.cfg);
    m->srv.cfg = c;
    tscert_set(m->tscert, c);
    worker_reload_all(&m->srv);
    certwatch_set(m->certs, c);
    log_listeners(m, c);
    log_msg(LOG_INFO, "configuration reloaded from %s: %zu %s, %zu %s", m->path, c->nservices,
            log_plural(c->nservices, "service", "services"), listener_config_count(c),
            log_plural(listener_config_count(c), "listener", "listeners"));
    tspublish_set(m->publish, c);
}

static void on_cert_change(void *arg, const char *path)
{
    log_msg(LOG_INFO, "certificate file %s changed: reloading", path);
    reload(arg);
}

static void on_signal(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct mainctx *m = container_of(io, struct mainctx, sigio);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            /* Says which reload outcome below is this signal's (a certificate
             * renewal also reloads). */
            log_msg(LOG_INFO, "SIGHUP received: reloading %s", m->path);
            reload(m);
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_msg(LOG_INFO, "%s received: draining connections",
                    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            loop_stop(l);
        } else if (si.ssi_signo == SIGUSR2) {
            upgrade_start(&m->upgrade);
        } else if (si.ssi_signo == SIGCHLD) {
            upgrade_reap(&m->upgrade);
        }
    }
}

static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &r) < 0)
            log_msg(LOG_WARN, "cannot raise the open-file limit: %s", strerror(errno));
    }
}

int run_serve(const char *path, char **argv)
{
    char err[1024];
    struct mainctx m = {.path = path, .sigio = {.fd = -1}};
    /* First: the path of this binary is read before a package can replace it. */
    upgrade_init(&m.upgrade, argv, &m.srv, &m.metrics);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    /* Blocked before any thread starts, so workers inherit the mask and
     * only the signalfd ever sees these signals. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    /* Start-up errors are log lines like all the others, so whatever
     * collects the log sees why portico did not start. */
    struct config *c = config_load(path, err, sizeof err);
    if (!c) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        return 1;
    }
    log_config_warnings(c);
    m.srv.cfg = c;
    m.srv.nworkers = c->workers;
    if (metrics_assign_slots(c) < 0) {
        log_msg(LOG_ERROR, "cannot start: out of memory");
        config_unref(c);
        return 1;
    }
    m.loop = loop_new(err, sizeof err);
    if (!m.loop) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        config_unref(c);
        return 1;
    }
    metrics_http_init(&m.metrics, m.loop, &m.srv);
    m.upgrade.loop = m.loop;
    /* Sockets handed over by systemd or by the portico this one replaces
     * take the place of binding (so no connection is refused in between). */
    struct listener **pool = NULL;
    size_t npool = listener_inherit(&pool);
    m.srv.listeners = listener_open_all(c, pool, npool, err, sizeof err);
    if (!m.srv.listeners) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        for (size_t i = 0; i < npool; i++)
            listener_unref(pool[i]);
        free(pool);
        loop_free(m.loop);
        config_unref(c);
        return 1;
    }
    m.srv.nlisteners = listener_config_count(c);
    int rc = 1;
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_add(m.loop, &m.sigio, sfd, EPOLLIN | EPOLLET, on_signal) < 0) {
        log_msg(LOG_ERROR, "cannot start: signalfd: %s", strerror(errno));
        goto out;
    }
    /* Upstream names are looked up in the background; the first answers are
     * awaited briefly so that traffic does not start with 502s. */
    err[0] = '\0';
    if (resolve_start(err, sizeof err) < 0 || resolve_bind(c, TIMEOUT_RESOLVE_WAIT_MS) < 0) {
        log_msg(LOG_ERROR, "cannot start: %s", err[0] ? err : "out of memory");
        goto out;
    }
    m.certs = certwatch_new(m.loop, on_cert_change, &m);
    certwatch_set(m.certs, c);
    m.publish = tspublish_new(m.loop);
    if (!m.publish) {
        log_msg(LOG_ERROR, "cannot start: out of memory");
        goto out;
    }
    /* Before the workers accept: cached certificates are served at once. */
    m.tscert = tscert_new(m.loop);
    if (!m.tscert) {
        log_msg(LOG_ERROR, "cannot start: out of memory");
        goto out;
    }
    tscert_set(m.tscert, c);
    if (metrics_http_apply(&m.metrics, c, pool, npool, err, sizeof err) < 0) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        goto out;
    }
    for (size_t i = 0; i < npool; i++) {
        if (__atomic_load_n(&pool[i]->refs, __ATOMIC_RELAXED) == 1)
            log_msg(LOG_WARN, "inherited socket %s (fd %d) is not in the configuration; closing it",
                    pool[i]->bound.text, pool[i]->fd);
        listener_unref(pool[i]);
    }
    free(pool);
    pool = NULL;
    npool = 0;
    if (worker_start_all(&m.srv, err, sizeof err) < 0) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        goto out;
    }
    log_listeners(&m, c);
    /* Last: once this line is out, every listener above accepts. */
    char serving[160], pidtext[16];
    snprintf(serving, sizeof serving, "portico %s serving %zu %s on %zu %s with %u %s",
             PORTICO_VERSION, c->nservices, log_plural(c->nservices, "service", "services"),
             listener_config_count(c),
             log_plural(listener_config_count(c), "listener", "listeners"), m.srv.nworkers,
             log_plural(m.srv.nworkers, "worker", "workers"));
    snprintf(pidtext, sizeof pidtext, "%d", (int)getpid());
    const char *kv[] = {"pid", pidtext};
    log_fields(LOG_INFO, serving, kv, 1);
    upgrade_tell_ready();
    /* After the listeners: tailscaled being slow or away never holds them up. */
    tspublish_set(m.publish, c);
    loop_run(m.loop);
    resolve_stop();
    worker_stop_all(&m.srv);
    log_msg(LOG_INFO, "stopped");
    rc = 0;
out:
    tspublish_free(m.publish);
    tscert_free(m.tscert);
    certwatch_free(m.certs);
    for (size_t i = 0; i < npool; i++)
        listener_unref(pool[i]);
    free(pool);
    upgrade_stop_watching(&m.upgrade);
    metrics_http_close(&m.metrics);
    if (m.sigio.fd >= 0)
        loop_io_del(m.loop, &m.sigio);
    if (sfd >= 0)
        close(sfd);
    for (size_t i = 0; i < m.srv.nlisteners; i++)
        listener_unref(m.srv.listeners[i]);
    free(m.srv.listeners);
    free(m.srv.workers);
    resolve_stop(); /* when start-up failed */
    resolve_free();
    config_unref(m.srv.cfg);
    loop_free(m.loop);
    metrics_registry_free();
    return rc;
}
