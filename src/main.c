/* main.c - the portico command: run, check, version.
 *
 * The main thread owns everything that is not per request: the command
 * line, signals (through a signalfd, so handlers never run inside library
 * code), loading and swapping configuration snapshots, the listening
 * sockets, and the /metrics endpoint. Workers do all request work. */
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml.h>

#include "certwatch.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "worker.h"

#define DEFAULT_CONFIG      "/etc/portico/portico.yaml"
#define METRICS_TIMEOUT_MS  5000 /* a scrape must send its request within this */
#define METRICS_CLIENTS_MAX 64   /* concurrent scrapes */

static void usage(FILE *f)
{
    fprintf(f, "usage: portico run [-c FILE]     serve until SIGTERM/SIGINT; SIGHUP reloads\n"
               "       portico check -c FILE     validate a configuration\n"
               "       portico version           version and libraries\n"
               "default FILE: " DEFAULT_CONFIG "\n");
}

static void print_version(void)
{
    unsigned long v = http_parser_version();
    printf("portico %s\n", PORTICO_VERSION);
    printf("http-parser %lu.%lu.%lu\n", (v >> 16) & 255, (v >> 8) & 255, v & 255);
    printf("libyaml %s\n", yaml_get_version_string());
}

/* ---- the main thread's own state ----------------------------------------- */

struct metrics_client {
    struct loop_io io;
    struct loop_timer timer;
    struct metrics_server *ms;
    char req[LIMIT_METRICS_REQUEST_BYTES];
    size_t reqlen;
    char *resp; /* malloc'd once the request is complete */
    size_t resplen, respoff;
};

struct metrics_server {
    struct loop_io io;
    struct listener *l;
    size_t nclients;
};

struct mainctx {
    struct loop *loop;
    struct server srv;
    struct loop_io sigio;
    const char *path;
    struct metrics_server metrics;
    bool metrics_on;
    int exit_code;
    /* Certificate files are watched so a renewal applies without a SIGHUP. */
    struct certwatch *certs;
};

static struct mainctx *g_main; /* for the metrics renderer, which needs the workers */

static void metrics_client_free(struct metrics_client *mc)
{
    struct loop *l = g_main->loop;
    loop_io_del(l, &mc->io);
    loop_timer_disarm(l, &mc->timer);
    close(mc->io.fd);
    free(mc->resp);
    mc->ms->nclients--;
    free(mc);
}

static void metrics_client_timeout(struct loop *l, struct loop_timer *t)
{
    metrics_client_free(container_of(t, struct metrics_client, timer));
}

static int metrics_build_response(struct metrics_client *mc)
{
    const char *status = "200 OK";
    char *body = NULL;
    size_t blen = 0;
    char small[128];
    bool get = mc->reqlen >= 4 && memcmp(mc->req, "GET ", 4) == 0;
    bool head = mc->reqlen >= 5 && memcmp(mc->req, "HEAD ", 5) == 0;
    const char *target = mc->req + (get ? 4 : 5);
    bool path_ok = (get || head) &&
                   (strncmp(target, "/metrics ", 9) == 0 || strncmp(target, "/metrics?", 9) == 0);
    if (!get && !head) {
        status = "405 Method Not Allowed";
        blen = (size_t)snprintf(small, sizeof small, "method not allowed: use GET /metrics\n");
    } else if (!path_ok) {
        status = "404 Not Found";
        blen = (size_t)snprintf(small, sizeof small, "not found: metrics are at /metrics\n");
    } else {
        struct metrics_worker *ws[LIMIT_WORKERS_MAX];
        for (unsigned i = 0; i < g_main->srv.nworkers; i++)
            ws[i] = &g_main->srv.workers[i].metrics;
        body = metrics_render(ws, g_main->srv.nworkers, &blen);
        if (!body) {
            status = "500 Internal Server Error";
            blen = (size_t)snprintf(small, sizeof small, "out of memory\n");
        }
    }
    const char *ctype = body ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain";
    char head_buf[256];
    int hl = snprintf(head_buf, sizeof head_buf,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, ctype, blen);
    size_t total = (size_t)hl + (head ? 0 : blen);
    mc->resp = malloc(total);
    if (!mc->resp) {
        free(body);
        return -1;
    }
    memcpy(mc->resp, head_buf, (size_t)hl);
    if (!head)
        memcpy(mc->resp + hl, body ? body : small, blen);
    free(body);
    mc->resplen = total;
    return 0;
}

static void metrics_client_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct metrics_client *mc = container_of(io, struct metrics_client, io);
    if (!mc->resp) {
        for (;;) {
            if (mc->reqlen == sizeof mc->req - 1) {
                metrics_client_free(mc);
                return;
            }
            ssize_t n = read(io->fd, mc->req + mc->reqlen, sizeof mc->req - 1 - mc->reqlen);
            if (n > 0) {
                mc->reqlen += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            metrics_client_free(mc); /* EOF or error before a whole request */
            return;
        }
        mc->req[mc->reqlen] = '\0';
        if (!strstr(mc->req, "\r\n\r\n") && !strstr(mc->req, "\n\n"))
            return;
        if (metrics_build_response(mc) < 0) {
            metrics_client_free(mc);
            return;
        }
    }
    while (mc->respoff < mc->resplen) {
        ssize_t n = send(io->fd, mc->resp + mc->respoff, mc->resplen - mc->respoff, MSG_NOSIGNAL);
        if (n > 0) {
            mc->respoff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break;
    }
    metrics_client_free(mc);
}

static void metrics_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct metrics_server *ms = container_of(io, struct metrics_server, io);
    for (;;) { /* edge-triggered: until EAGAIN */
        int fd = accept4(ms->l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct metrics_client *mc =
            ms->nclients < METRICS_CLIENTS_MAX ? calloc(1, sizeof *mc) : NULL;
        if (!mc) {
            close(fd);
            continue;
        }
        mc->ms = ms;
        ms->nclients++;
        loop_timer_init(&mc->timer, metrics_client_timeout);
        if (loop_io_add(l, &mc->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                        metrics_client_io) < 0) {
            mc->io.fd = fd;
            metrics_client_free(mc);
            continue;
        }
        loop_timer_arm(l, &mc->timer, METRICS_TIMEOUT_MS);
    }
}

/* ---- listeners and reloads ------------------------------------------------ */

/* The address of listener i of c: the listen addresses, then the TCP
 * forwarders' (the order struct server keeps). */
static const struct config_addr *listener_addr(const struct config *c, size_t i)
{
    return i < c->nlistens ? &c->listens[i].addr : &c->tcp_services[i - c->nlistens]->tcp->listen;
}

static size_t listener_count(const struct config *c)
{
    return c->nlistens + c->ntcp;
}

/* The kind of entry that owns listener i of c: "listen", or "tcp:NAME" for
 * a forwarder. */
static void listener_owner(const struct config *c, size_t i, char *out, size_t cap)
{
    if (i < c->nlistens)
        snprintf(out, cap, "listen");
    else
        snprintf(out, cap, "tcp:%s", c->tcp_services[i - c->nlistens]->name);
}

/* Open the listeners c asks for, keeping sockets from old[], each at most
 * once: first every socket bound to an address asked for (unchanged, or a
 * port 0 written out as the port it got), then, in order, the K-th port-0
 * entry of an owner and address takes the K-th remaining port-0 socket of
 * that owner and address (so its port stays). Returns an array of
 * references, or NULL with err set. */
static struct listener **open_listeners(const struct config *c, struct listener **old, size_t nold,
                                        char *err, size_t errlen)
{
    size_t n = listener_count(c);
    struct listener **ls = calloc(n ? n : 1, sizeof *ls);
    bool *taken = calloc(nold ? nold : 1, sizeof *taken);
    if (!ls || !taken) {
        free(ls);
        free(taken);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct config_addr *a = listener_addr(c, i);
            char owner[sizeof old[0]->owner];
            listener_owner(c, i, owner, sizeof owner);
            for (size_t k = 0; k < nold && !ls[i]; k++) {
                bool keep = pass == 0 ? listener_bound_to(old[k], a)
                                      : listener_any_port_for(old[k], a, owner);
                if (!taken[k] && keep) {
                    taken[k] = true;
                    ls[i] = listener_ref(old[k]);
                }
            }
        }
    }
    free(taken);
    for (size_t i = 0; i < n; i++) {
        char owner[sizeof old[0]->owner];
        listener_owner(c, i, owner, sizeof owner);
        bool failed;
        if (ls[i]) /* kept: a reload may change a Unix socket's mode or group */
            failed = listener_set_access(listener_addr(c, i), err, errlen) < 0;
        else
            failed = !(ls[i] = listener_open(listener_addr(c, i), owner, err, errlen));
        if (failed) {
            for (size_t k = 0; k < n; k++)
                if (ls[k])
                    listener_unref(ls[k]);
            free(ls);
            return NULL;
        }
    }
    return ls;
}

static int metrics_open(struct mainctx *m, const struct config *c, char *err, size_t errlen)
{
    struct listener *old = m->metrics_on ? m->metrics.l : NULL;
    if (!c->metrics_enabled) {
        if (old) {
            loop_io_del(m->loop, &m->metrics.io);
            listener_unref(old);
            m->metrics_on = false;
            m->metrics.l = NULL;
        }
        return 0;
    }
    if (old && (listener_bound_to(old, &c->metrics_listen) ||
                listener_any_port_for(old, &c->metrics_listen, "metrics")))
        return 0;
    struct listener *l = listener_open(&c->metrics_listen, "metrics", err, errlen);
    if (!l)
        return -1;
    if (old) {
        loop_io_del(m->loop, &m->metrics.io);
        listener_unref(old);
    }
    m->metrics.l = l;
    m->metrics_on = true;
    if (loop_io_add(m->loop, &m->metrics.io, l->fd, EPOLLIN | EPOLLET, metrics_accept) < 0) {
        snprintf(err, errlen, "metrics listener %s: %s", l->bound.text, strerror(errno));
        return -1;
    }
    return 0;
}

/* One "listening" line per socket with the address it is bound to (the
 * port the kernel chose where the configuration says port 0), after start
 * and after every reload, so a supervisor or a test can read its ports. */
static void log_listeners(const struct mainctx *m, const struct config *c)
{
    for (size_t i = 0; i < listener_count(c); i++) {
        const struct listener *l = m->srv.listeners[i];
        if (i < c->nlistens) {
            const char *kv[] = {"listener",    "http", "addr",
                                l->bound.text, "tls",  c->listens[i].tls ? "true" : "false"};
            log_fields(LOG_INFO, "listening", kv, 3);
        } else {
            const struct config_service *svc = c->tcp_services[i - c->nlistens];
            const char *kv[] = {"listener", "tcp",     "addr",     l->bound.text,
                                "name",     svc->name, "upstream", svc->tcp->upstream.text};
            log_fields(LOG_INFO, "listening", kv, 4);
        }
    }
    if (m->metrics_on) {
        const char *kv[] = {"listener", "metrics", "addr", m->metrics.l->bound.text};
        log_fields(LOG_INFO, "listening", kv, 2);
    }
}

static void reload(struct mainctx *m);

static void on_cert_change(void *arg, const char *path)
{
    log_msg(LOG_INFO, "certificate file %s changed: reloading", path);
    reload(arg);
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
    struct listener **ls = open_listeners(c, m->srv.listeners, m->srv.nlisteners, err, sizeof err);
    if (!ls) {
        log_msg(LOG_ERROR, "reload refused: %s", err);
        config_unref(c);
        certwatch_set(m->certs, m->srv.cfg);
        return;
    }
    if (metrics_assign_slots(c) < 0 || metrics_open(m, c, err, sizeof err) < 0) {
        log_msg(LOG_ERROR, "reload refused: %s", c->metrics_enabled ? err : "out of memory");
        for (size_t i = 0; i < listener_count(c); i++)
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
    m->srv.nlisteners = listener_count(c);
    config_unref(m->srv.cfg);
    m->srv.cfg = c;
    worker_reload_all(&m->srv);
    certwatch_set(m->certs, c);
    log_listeners(m, c);
    log_msg(LOG_INFO, "configuration reloaded from %s: %zu services, %zu listeners", m->path,
            c->nservices, listener_count(c));
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

static int cmd_run(const char *path)
{
    char err[1024];
    struct mainctx m = {.path = path, .sigio = {.fd = -1}, .metrics = {.io = {.fd = -1}}};
    g_main = &m;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Blocked before any thread starts, so workers inherit the mask and
     * only the signalfd ever sees these signals. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct config *c = config_load(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    log_config_warnings(c);
    m.srv.cfg = c;
    m.srv.nworkers = c->workers;
    if (metrics_assign_slots(c) < 0) {
        fprintf(stderr, "out of memory\n");
        config_unref(c);
        return 1;
    }
    m.loop = loop_new(err, sizeof err);
    if (!m.loop) {
        fprintf(stderr, "portico: %s\n", err);
        config_unref(c);
        return 1;
    }
    m.srv.listeners = open_listeners(c, NULL, 0, err, sizeof err);
    if (!m.srv.listeners) {
        fprintf(stderr, "portico: %s\n", err);
        loop_free(m.loop);
        config_unref(c);
        return 1;
    }
    m.srv.nlisteners = listener_count(c);
    int rc = 1;
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_add(m.loop, &m.sigio, sfd, EPOLLIN | EPOLLET, on_signal) < 0) {
        fprintf(stderr, "portico: signalfd: %s\n", strerror(errno));
        goto out;
    }
    m.certs = certwatch_new(m.loop, on_cert_change, &m);
    certwatch_set(m.certs, c);
    if (metrics_open(&m, c, err, sizeof err) < 0) {
        fprintf(stderr, "portico: %s\n", err);
        goto out;
    }
    if (worker_start_all(&m.srv, err, sizeof err) < 0) {
        fprintf(stderr, "portico: %s\n", err);
        goto out;
    }
    log_listeners(&m, c);
    /* Last: once this line is out, every listener above accepts. */
    log_msg(LOG_INFO, "portico %s serving %zu services on %zu listeners with %u workers",
            PORTICO_VERSION, c->nservices, listener_count(c), m.srv.nworkers);
    loop_run(m.loop);
    worker_stop_all(&m.srv);
    log_msg(LOG_INFO, "stopped");
    rc = 0;
out:
    certwatch_free(m.certs);
    if (m.metrics_on) {
        loop_io_del(m.loop, &m.metrics.io);
        listener_unref(m.metrics.l);
    }
    if (m.sigio.fd >= 0)
        loop_io_del(m.loop, &m.sigio);
    if (sfd >= 0)
        close(sfd);
    for (size_t i = 0; i < m.srv.nlisteners; i++)
        listener_unref(m.srv.listeners[i]);
    free(m.srv.listeners);
    free(m.srv.workers);
    config_unref(m.srv.cfg);
    loop_free(m.loop);
    metrics_registry_free();
    return rc;
}

static int cmd_check(const char *path)
{
    char err[1024];
    struct config *c = config_load(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (c->warnings)
        fputs(c->warnings, stderr);
    printf("ok: %zu services, %zu listeners\n", c->nservices, c->nlistens + c->ntcp);
    config_unref(c);
    return 0;
}

/* "-c FILE" after the command; returns the file or def, NULL on bad usage. */
static const char *config_arg(int argc, char **argv, const char *def)
{
    const char *path = def;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "portico: unexpected argument \"%s\"\n", argv[i]);
            return NULL;
        }
    }
    return path;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        const char *path = config_arg(argc, argv, DEFAULT_CONFIG);
        return path ? cmd_run(path) : 2;
    }
    if (strcmp(cmd, "check") == 0) {
        const char *path = config_arg(argc, argv, NULL);
        if (!path) {
            if (argc == 2)
                fprintf(stderr, "portico: check needs -c FILE\n");
            return 2;
        }
        return cmd_check(path);
    }
    fprintf(stderr, "portico: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
