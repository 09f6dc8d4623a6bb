/* run.c - the main thread of `portico run`.
 *
 * The main thread owns everything that is not per request: signals
 * (through a signalfd, so handlers never run inside library code), loading
 * and swapping configuration snapshots, the listening sockets, the
 * /metrics endpoint (metrics_http.c), upgrades (upgrade.c) and what systemd
 * is told (sdnotify.c). Workers do all request work. */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "certwatch.h"
#include "config.h"
#include "dnsserver.h"
#include "hairpin.h"
#include "limits.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "metrics_http.h"
#include "resolve.h"
#include "sdnotify.h"
#include "tls.h"
#include "tscert.h"
#include "tsdefine.h"
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
    struct sdnotify notify;
    /* Sends WATCHDOG=1 from this loop, so a stuck loop stops the pings. */
    struct loop_timer watchdog;
    bool watchdog_withheld; /* a worker did not answer: said once until all answer again */
    /* The last reload for STATUS=: 0 none, 1 done, -1 refused for reload_error. */
    int last_reload;
    char reload_error[LIMIT_SDNOTIFY_STATUS_BYTES];
    /* Defines them in the tailnet (tailscale.api) before publishing them. */
    struct tsdefine *define;
    /* Keeps the tailscale.hairpin block in the hosts file. */
    struct hairpin *hairpin;
    /* The DNS responder of split-DNS mode ("dns:"). */
    struct dnsserver *dns;
};

/* One "listening" line per socket with the address it is bound to (the
 * port the kernel chose where the configuration says port 0), after start
 * and after every reload, so a supervisor or a test can read its ports. */
static void log_listeners(const struct mainctx *m, const struct config *c)
{
    for (size_t i = 0; i < listener_config_count(c); i++) {
        const struct listener *l = m->srv.listeners[i];
        if (i < c->nlistens) {
            /* On a TLS listener: whether the kernel writes the records
             * (and can take spliced response bodies), and if not why. */
            const char *why = NULL;
            bool ktls = tls_kernel_available(&why);
            const char *kv[] = {
                "listener",
                c->listens[i].tailnet ? "tailnet" : c->listens[i].local ? "hairpin" : "http",
                "addr",
                l->bound.text,
                "tls",
                c->listens[i].tls ? "true" : "false",
                "ktls",
                ktls ? "on" : "off",
                "ktls_missing",
                why};
            size_t nkv = !c->listens[i].tls ? 3 : ktls ? 4 : 5;
            log_fields(LOG_INFO, "listening", kv, nkv);
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
    dnsserver_log_listeners(m->dns);
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

/* A proxied connection holds two descriptors (the client's and one to its
 * upstream), so max_connections needs twice as many, and more for the
 * listeners, pools and logs. Said once at start and at each reload: when
 * they run out, accepts pause (worker.c), which looks like a hang to
 * clients unless the log says why. */
static void warn_fd_limit(const struct config *c)
{
    struct rlimit r;
    uint64_t need = 2 * (uint64_t)c->limits.max_connections + LIMIT_FDS_RESERVED;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0 || r.rlim_cur == RLIM_INFINITY || r.rlim_cur >= need)
        return;
    log_msg(LOG_WARN,
            "the open-file limit is %llu, but limits.max_connections %u with an upstream "
            "connection each needs about %llu; beyond the limit new connections wait (accepts "
            "pause); raise it (LimitNOFILE= in the unit, ulimit -n) or lower "
            "limits.max_connections",
            (unsigned long long)r.rlim_cur, c->limits.max_connections, (unsigned long long)need);
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

/* Tell systemd state (READY=1, ...) with status, or the summary of what
 * runs when status is NULL. */
static void notify(struct mainctx *m, const char *state, const char *status)
{
    if (!sdnotify_on(&m->notify))
        return;
    char summary[LIMIT_SDNOTIFY_STATUS_BYTES], msg[LIMIT_SDNOTIFY_MSG_BYTES];
    if (!status) {
        const struct config *c = m->srv.cfg;
        struct sdnotify_summary s = {
            .services = c->nservices,
            .listeners = listener_config_count(c),
            .workers = m->srv.nworkers,
            .connections = __atomic_load_n(&m->srv.nconns, __ATOMIC_RELAXED),
            .reload = m->last_reload,
            .reload_error = m->reload_error,
        };
        sdnotify_format_summary(summary, sizeof summary, &s);
        status = summary;
    }
    sdnotify_format(msg, sizeof msg, state, status);
    sdnotify_send(&m->notify, msg);
}

/* Load the configuration again and put it in place. Returns 0, or -1 with
 * why in err, the running configuration left as it was. */
static int reload_apply(struct mainctx *m, char *err, size_t errlen)
{
    struct config *c = config_load(m->path, err, errlen);
    if (!c)
        return -1;
    log_config_warnings(c);
    warn_fd_limit(c);
    if (c->workers != m->srv.nworkers)
        log_msg(LOG_WARN, "workers changed from %u to %u; this takes effect on restart",
                m->srv.nworkers, c->workers);
    struct listener **ls = listener_open_all(c, m->srv.listeners, m->srv.nlisteners, err, errlen);
    if (!ls) {
        config_unref(c);
        return -1;
    }
    if (metrics_assign_slots(c) < 0 ||
        metrics_http_apply(&m->metrics, c, NULL, 0, err, errlen) < 0 ||
        (err[0] = '\0', resolve_bind(c, TIMEOUT_RESOLVE_WAIT_MS) < 0) ||
        dnsserver_apply(m->dns, c, err, errlen) < 0) {
        if (!err[0])
            snprintf(err, errlen, "out of memory");
        for (size_t i = 0; i < listener_config_count(c); i++)
            listener_unref(ls[i]);
        free(ls);
        config_unref(c);
        return -1;
    }
    for (size_t i = 0; i < m->srv.nlisteners; i++)
        listener_unref(m->srv.listeners[i]);
    free(m->srv.listeners);
    m->srv.listeners = ls;
    m->srv.nlisteners = listener_config_count(c);
    config_unref(m->srv.cfg);
    m->srv.cfg = c;
    log_set_format(c->log_format); /* from the listening lines of this reload on */
    tscert_set(m->tscert, c);
    worker_reload_all(&m->srv);
    certwatch_set(m->certs, c);
    log_listeners(m, c);
    log_msg(LOG_INFO, "configuration reloaded from %s: %zu %s, %zu %s", m->path, c->nservices,
            log_plural(c->nservices, "service", "services"), listener_config_count(c),
            log_plural(listener_config_count(c), "listener", "listeners"));
    tsdefine_set(m->define, c);
    hairpin_set(m->hairpin, c);
    return 0;
}

/* systemd hears RELOADING=1 (with the time it started, which
 * Type=notify-reload requires) before, and READY=1 after, a refused reload
 * as well: the old configuration serves again. */
static void reload(struct mainctx *m)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char state[64];
    snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000);
    notify(m, state, "reloading the configuration");
    char err[1024];
    if (reload_apply(m, err, sizeof err) < 0) {
        log_msg(LOG_ERROR, "reload refused: %s", err);
        certwatch_set(m->certs, m->srv.cfg); /* what failed to load is not a change any more */
        m->last_reload = -1;
        /* Cut to what STATUS= shows anyway. */
        size_t n = strnlen(err, sizeof m->reload_error - 1);
        memcpy(m->reload_error, err, n);
        m->reload_error[n] = '\0';
    } else {
        m->last_reload = 1;
    }
    notify(m, "READY=1", NULL);
}

/* Every half WATCHDOG_USEC: WATCHDOG=1 (with a fresh STATUS=) if every
 * worker answered the previous round's ping, so a worker stuck in a loop
 * stops the pings as a stuck main loop does; then ping them again. */
static void on_watchdog(struct loop *l, struct loop_timer *t)
{
    struct mainctx *m = container_of(t, struct mainctx, watchdog);
    int silent = worker_first_silent(&m->srv);
    if (silent < 0) {
        if (m->watchdog_withheld)
            log_msg(LOG_INFO, "every worker answers again: watchdog pings resumed");
        m->watchdog_withheld = false;
        notify(m, "WATCHDOG=1", NULL);
    } else if (!m->watchdog_withheld) {
        m->watchdog_withheld = true;
        log_msg(LOG_ERROR,
                "worker %d has not answered for %llu ms: watchdog pings withheld until it does",
                silent, (unsigned long long)(m->notify.watchdog_usec / 2000));
    }
    worker_ping_all(&m->srv);
    uint64_t ms = m->notify.watchdog_usec / 2000;
    loop_timer_arm(l, t, ms ? ms : 1);
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
            if (!m->upgrade.handed_over)
                notify(m, "STOPPING=1", "draining connections");
            loop_stop(l);
        } else if (si.ssi_signo == SIGUSR2) {
            upgrade_start(&m->upgrade);
        } else if (si.ssi_signo == SIGCHLD) {
            upgrade_reap(&m->upgrade);
        }
    }
}

int run_serve(const char *path, char **argv)
{
    char err[1024];
    struct mainctx m = {.path = path, .sigio = {.fd = -1}};
    /* First: the path of this binary is read before a package can replace it. */
    upgrade_init(&m.upgrade, argv, &m.srv, &m.metrics);
    /* Before any thread: it may change the environment. */
    sdnotify_init(&m.notify);
    loop_timer_init(&m.watchdog, on_watchdog);

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
    log_set_format(c->log_format);
    log_config_warnings(c);
    warn_fd_limit(c);
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
    m.hairpin = hairpin_new(m.loop);
    m.dns = dnsserver_new(m.loop);
    if (!m.publish || !m.hairpin || !m.dns) {
        log_msg(LOG_ERROR, "cannot start: out of memory");
        goto out;
    }
    m.define = tsdefine_new(m.loop, m.publish, err, sizeof err);
    if (!m.define) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        goto out;
    }
    /* Before the workers accept: cached certificates are served at once. */
    m.tscert = tscert_new(m.loop);
    if (!m.tscert) {
        log_msg(LOG_ERROR, "cannot start: out of memory");
        goto out;
    }
    tscert_set(m.tscert, c);
    if (metrics_http_apply(&m.metrics, c, pool, npool, err, sizeof err) < 0 ||
        dnsserver_apply(m.dns, c, err, sizeof err) < 0) {
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
    /* A process started by a SIGUSR2 upgrade becomes the main one: a
     * manager that accepts it (NotifyAccess=all) follows the new pid. */
    char state[48];
    if (listener_ready_fd() >= 0)
        snprintf(state, sizeof state, "MAINPID=%d\nREADY=1", (int)getpid());
    else
        snprintf(state, sizeof state, "READY=1");
    notify(&m, state, NULL);
    if (m.notify.watchdog_usec) {
        loop_update_time(m.loop); /* start-up took a while: the first interval starts now */
        on_watchdog(m.loop, &m.watchdog);
    }
    upgrade_tell_ready();
    /* After the listeners: tailscaled being slow or away never holds them up. */
    tsdefine_set(m.define, c);
    hairpin_set(m.hairpin, c);
    loop_run(m.loop);
    /* Stopping or handed over: the new process answers DNS from now on. */
    dnsserver_free(m.dns);
    m.dns = NULL;
    resolve_stop();
    worker_stop_all(&m.srv);
    log_msg(LOG_INFO, "stopped");
    rc = 0;
out:
    if (m.loop)
        loop_timer_disarm(m.loop, &m.watchdog);
    sdnotify_close(&m.notify);
    tsdefine_free(m.define);
    tspublish_free(m.publish);
    tscert_free(m.tscert);
    /* A clean stop takes the names out of the hosts file; after an upgrade
     * the new process serves them and has written the block itself. */
    hairpin_free(m.hairpin, !m.upgrade.handed_over);
    dnsserver_free(m.dns);
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
