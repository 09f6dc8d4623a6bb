/* main.c - the portico command: run, check, version.
 *
 * The main thread owns everything that is not per request: the command
 * line, signals (through a signalfd, so handlers never run inside library
 * code), loading and swapping configuration snapshots, the listening
 * sockets, and the /metrics endpoint. Workers do all request work. */
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

#include "certwatch.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "resolve.h"
#include "worker.h"

#ifndef PORTICO_YAML_BUILT
#define PORTICO_YAML_BUILT "unknown" /* set by the Makefile from pkg-config */
#endif

#define DEFAULT_CONFIG      "/etc/portico/portico.yaml"
#define METRICS_TIMEOUT_MS  5000 /* a scrape must send its request within this */
#define METRICS_CLIENTS_MAX 64   /* concurrent scrapes */

static void usage(FILE *f)
{
    fprintf(f, "usage: portico run [-c FILE]     serve until SIGTERM/SIGINT; SIGHUP reloads;\n"
               "                                 SIGUSR2 restarts in place on the same sockets\n"
               "       portico check -c FILE     validate a configuration\n"
               "       portico version           version and libraries\n"
               "default FILE: " DEFAULT_CONFIG "\n");
}

/* The libraries portico runs with, and (when it differs) the version it
 * was built against: a distribution upgrade changes the first. */
static void print_version(void)
{
    unsigned long v = http_parser_version();
    char hp_run[32], hp_built[32];
    snprintf(hp_run, sizeof hp_run, "%lu.%lu.%lu", (v >> 16) & 255, (v >> 8) & 255, v & 255);
    snprintf(hp_built, sizeof hp_built, "%d.%d.%d", HTTP_PARSER_VERSION_MAJOR,
             HTTP_PARSER_VERSION_MINOR, HTTP_PARSER_VERSION_PATCH);
    printf("portico %s\n", PORTICO_VERSION);
    printf("%s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
    printf("libyaml %s (built with %s)\n", yaml_get_version_string(), PORTICO_YAML_BUILT);
    printf("http-parser %s (built with %s)\n", hp_run, hp_built);
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
    /* SIGUSR2: a new process of this binary takes over the listening
     * sockets; once it serves, this one drains and exits. */
    char exe[4096]; /* this binary, as its path read on start */
    char **argv;
    pid_t child;            /* the new process while it starts; 0 when none */
    struct loop_io readyio; /* read end of its ready pipe */
    bool handed_over;       /* it serves: this process drains and exits */
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

/* The kind of entry that owns listener i of c: "listen", or "tcp.NAME" for
 * a forwarder. */
static void listener_owner(const struct config *c, size_t i, char *out, size_t cap)
{
    if (i < c->nlistens)
        snprintf(out, cap, "listen");
    else
        snprintf(out, cap, "tcp.%s", c->tcp_services[i - c->nlistens]->name);
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

/* A socket of pool (inherited on start) not taken yet that c's entry for
 * addr and owner can use: one bound to addr, else for port 0 one of the
 * same address and owner. A new reference, or NULL. */
static struct listener *pool_take(struct listener **pool, size_t npool,
                                  const struct config_addr *addr, const char *owner)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < npool; k++) {
            bool fits = pass == 0 ? listener_bound_to(pool[k], addr)
                                  : listener_any_port_for(pool[k], addr, owner);
            if (fits && __atomic_load_n(&pool[k]->refs, __ATOMIC_RELAXED) == 1)
                return listener_ref(pool[k]);
        }
    return NULL;
}

static int metrics_open(struct mainctx *m, const struct config *c, struct listener **pool,
                        size_t npool, char *err, size_t errlen)
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
    struct listener *l = pool_take(pool, npool, &c->metrics_listen, "metrics");
    if (!l)
        l = listener_open(&c->metrics_listen, "metrics", err, errlen);
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
    if (metrics_assign_slots(c) < 0 || metrics_open(m, c, NULL, 0, err, sizeof err) < 0 ||
        (err[0] = '\0', resolve_bind(c, TIMEOUT_RESOLVE_WAIT_MS) < 0)) {
        log_msg(LOG_ERROR, "reload refused: %s", err[0] ? err : "out of memory");
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
    log_msg(LOG_INFO, "configuration reloaded from %s: %zu %s, %zu %s", m->path, c->nservices,
            log_plural(c->nservices, "service", "services"), listener_count(c),
            log_plural(listener_count(c), "listener", "listeners"));
}

/* ---- upgrades (SIGUSR2) --------------------------------------------------- */

#define ENV_PID_DIGITS 20 /* room for LISTEN_PID's value, filled in by the child */

/* In the child between fork and execve: only async-signal-safe calls. The
 * n fds go to 3..3+n-1 (through copies above them, so a move never
 * overwrites a descriptor still to be moved), which clears FD_CLOEXEC on
 * them alone; pidvar gets this process's pid. */
static void upgrade_exec_child(const char *exe, char **argv, char **envp, const int *fds, int *tmp,
                               size_t n, char *pidvar)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, NULL); /* signal(2) is not async-signal-safe */
    for (size_t i = 0; i < n; i++)
        if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, (int)(3 + n))) < 0)
            _exit(126);
    for (size_t i = 0; i < n; i++)
        if (dup2(tmp[i], (int)(3 + i)) < 0)
            _exit(126);
    char digits[ENV_PID_DIGITS];
    size_t nd = 0;
    for (unsigned long v = (unsigned long)getpid(); nd == 0 || v; v /= 10)
        digits[nd++] = (char)('0' + v % 10);
    for (size_t i = 0; i < nd; i++)
        pidvar[i] = digits[nd - 1 - i];
    pidvar[nd] = '\0';
    execve(exe, argv, envp);
    static const char msg[] = "portico: upgrade: cannot execute the new binary\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

static bool env_is_handover(const char *e)
{
    static const char *const names[] = {
        "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "PORTICO_READY_FD="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(e, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

static void on_ready(struct loop *l, struct loop_io *io, uint32_t events);

static void upgrade_stop_watching(struct mainctx *m)
{
    if (m->readyio.fd < 0)
        return;
    int fd = m->readyio.fd;
    loop_io_del(m->loop, &m->readyio);
    close(fd);
    m->readyio.fd = -1;
}

/* Start this binary again with the listening sockets (the metrics one
 * last) as fds 3.. by the LISTEN_FDS protocol, plus the write end of a pipe
 * on which it says that it serves. */
static void upgrade_start(struct mainctx *m)
{
    if (m->child) {
        log_msg(LOG_WARN, "SIGUSR2 ignored: new process %d is still starting", (int)m->child);
        return;
    }
    if (m->handed_over)
        return;
    if (getppid() == 1 && getenv("INVOCATION_ID")) {
        log_msg(LOG_WARN, "SIGUSR2 ignored: under systemd the unit stops when this process "
                          "exits; restart through socket activation (systemctl restart) instead");
        return;
    }
    if (!m->exe[0]) {
        log_msg(LOG_ERROR, "SIGUSR2 ignored: the path of this binary is unknown");
        return;
    }
    size_t n = m->srv.nlisteners + (m->metrics_on ? 1 : 0);
    size_t envc = 0;
    while (environ[envc])
        envc++;
    int *fds = calloc(n + 1, sizeof *fds);
    int *tmp = calloc(n + 1, sizeof *tmp);
    char **envp = calloc(envc + 5, sizeof *envp);
    size_t namecap = 16 + (n + 1) * sizeof m->srv.listeners[0]->owner;
    char *names = malloc(namecap);
    char fdsvar[32], readyvar[48], pidvar[16 + ENV_PID_DIGITS];
    int p[2] = {-1, -1};
    if (!fds || !tmp || !envp || !names || pipe2(p, O_CLOEXEC) < 0) {
        log_msg(LOG_ERROR, "SIGUSR2: cannot start a new process: %s",
                strerror(errno ? errno : ENOMEM));
        goto out;
    }
    size_t off = (size_t)snprintf(names, namecap, "LISTEN_FDNAMES=");
    for (size_t i = 0; i < n; i++) {
        const struct listener *ls = i < m->srv.nlisteners ? m->srv.listeners[i] : m->metrics.l;
        fds[i] = ls->fd;
        off += (size_t)snprintf(names + off, namecap - off, "%s%s", i ? ":" : "", ls->owner);
    }
    fds[n] = p[1];
    snprintf(fdsvar, sizeof fdsvar, "LISTEN_FDS=%zu", n);
    snprintf(readyvar, sizeof readyvar, "PORTICO_READY_FD=%zu", 3 + n);
    snprintf(pidvar, sizeof pidvar, "LISTEN_PID=");
    size_t k = 0;
    for (size_t i = 0; i < envc; i++)
        if (!env_is_handover(environ[i]))
            envp[k++] = environ[i];
    envp[k++] = fdsvar;
    envp[k++] = names;
    envp[k++] = readyvar;
    envp[k++] = pidvar;
    pid_t pid = fork();
    if (pid == 0)
        upgrade_exec_child(m->exe, m->argv, envp, fds, tmp, n + 1, pidvar + strlen("LISTEN_PID="));
    if (pid < 0) {
        log_msg(LOG_ERROR, "SIGUSR2: cannot start a new process: fork: %s", strerror(errno));
        goto out;
    }
    close(p[1]);
    p[1] = -1;
    if (loop_io_add(m->loop, &m->readyio, p[0], EPOLLIN | EPOLLET, on_ready) < 0) {
        log_msg(LOG_ERROR, "SIGUSR2: cannot watch the new process: %s", strerror(errno));
        close(p[0]);
    }
    p[0] = -1;
    m->child = pid;
    log_msg(LOG_INFO,
            "SIGUSR2 received: started %s as process %d with %zu listening sockets; this "
            "process drains once it serves",
            m->exe, (int)pid, n);
out:
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    free(fds);
    free(tmp);
    free(envp);
    free(names);
}

/* The new process wrote to its ready pipe (it serves), or closed it. */
static void on_ready(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct mainctx *m = container_of(io, struct mainctx, readyio);
    char b[16];
    ssize_t r;
    while ((r = read(io->fd, b, sizeof b)) < 0 && errno == EINTR)
        ;
    if (r < 0 && errno == EAGAIN)
        return;
    upgrade_stop_watching(m);
    if (r > 0 && m->child) {
        log_msg(LOG_INFO, "new process %d serves on the same sockets: draining and exiting",
                (int)m->child);
        m->handed_over = true;
        /* The sockets stay open in the new process: leave their files. */
        for (size_t i = 0; i < m->srv.nlisteners; i++)
            __atomic_store_n(&m->srv.listeners[i]->keep_path, true, __ATOMIC_RELEASE);
        if (m->metrics_on)
            __atomic_store_n(&m->metrics.l->keep_path, true, __ATOMIC_RELEASE);
        loop_stop(l);
    }
    /* EOF without a byte: it failed; SIGCHLD tells how. */
}

/* Reap children; the new process exiting before it served is a failed
 * upgrade, and this process goes on serving. */
static void on_child(struct mainctx *m)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid != m->child || m->handed_over)
            continue;
        if (m->readyio.fd >= 0)
            on_ready(m->loop, &m->readyio, EPOLLIN); /* a byte it wrote before it exited */
        if (m->handed_over)
            continue;
        upgrade_stop_watching(m);
        m->child = 0;
        if (WIFEXITED(st))
            log_msg(LOG_ERROR,
                    "upgrade failed: new process %d exited with status %d before serving (its "
                    "messages are above); still serving",
                    (int)pid, WEXITSTATUS(st));
        else
            log_msg(LOG_ERROR,
                    "upgrade failed: new process %d was killed by signal %d before serving; "
                    "still serving",
                    (int)pid, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
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
            upgrade_start(m);
        } else if (si.ssi_signo == SIGCHLD) {
            on_child(m);
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

static int cmd_run(const char *path, char **argv)
{
    char err[1024];
    struct mainctx m = {.path = path,
                        .sigio = {.fd = -1},
                        .metrics = {.io = {.fd = -1}},
                        .readyio = {.fd = -1},
                        .argv = argv};
    g_main = &m;
    /* Read now: an upgrade starts the binary at this path even once a
     * package has replaced the file. */
    ssize_t el = readlink("/proc/self/exe", m.exe, sizeof m.exe - 1);
    m.exe[el > 0 ? el : 0] = '\0';

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
    /* Sockets handed over by systemd or by the portico this one replaces
     * take the place of binding (so no connection is refused in between). */
    struct listener **pool = NULL;
    size_t npool = listener_inherit(&pool);
    m.srv.listeners = open_listeners(c, pool, npool, err, sizeof err);
    if (!m.srv.listeners) {
        log_msg(LOG_ERROR, "cannot start: %s", err);
        for (size_t i = 0; i < npool; i++)
            listener_unref(pool[i]);
        free(pool);
        loop_free(m.loop);
        config_unref(c);
        return 1;
    }
    m.srv.nlisteners = listener_count(c);
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
    if (metrics_open(&m, c, pool, npool, err, sizeof err) < 0) {
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
             listener_count(c), log_plural(listener_count(c), "listener", "listeners"),
             m.srv.nworkers, log_plural(m.srv.nworkers, "worker", "workers"));
    snprintf(pidtext, sizeof pidtext, "%d", (int)getpid());
    const char *kv[] = {"pid", pidtext};
    log_fields(LOG_INFO, serving, kv, 1);
    int ready = listener_ready_fd();
    if (ready >= 0) {
        /* Tell the process this one replaces that it may drain now. */
        ssize_t ignored = write(ready, "1", 1);
        (void)ignored;
        close(ready);
    }
    loop_run(m.loop);
    resolve_stop();
    worker_stop_all(&m.srv);
    log_msg(LOG_INFO, "stopped");
    rc = 0;
out:
    certwatch_free(m.certs);
    for (size_t i = 0; i < npool; i++)
        listener_unref(pool[i]);
    free(pool);
    upgrade_stop_watching(&m);
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
    resolve_stop(); /* when start-up failed */
    resolve_free();
    config_unref(m.srv.cfg);
    loop_free(m.loop);
    metrics_registry_free();
    return rc;
}

/* check: a name that does not resolve now is a warning, not an error; it
 * may resolve by the time portico runs, which looks it up again anyway. */
static void check_name(struct config_addr *a, void *arg)
{
    const char *path = arg;
    char port[8];
    snprintf(port, sizeof port, "%u", a->port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc == 0) {
        freeaddrinfo(res);
        return;
    }
    fprintf(stderr,
            "%s:%d: warning: %s %s: upstream host \"%s\" does not resolve now (%s); portico "
            "starts anyway, answers 502 for it and retries\n",
            path, a->line, a->owner_kind, a->owner, a->host,
            rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
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
    config_each_named(c, check_name, (void *)path);
    size_t nl = c->nlistens + c->ntcp;
    printf("ok: %zu %s, %zu %s\n", c->nservices, log_plural(c->nservices, "service", "services"),
           nl, log_plural(nl, "listener", "listeners"));
    config_unref(c);
    return 0;
}

/* "-c FILE" after the command; returns the file or def, NULL (after a
 * usage message) on bad usage. */
static const char *config_arg(int argc, char **argv, const char *def)
{
    const char *path = def;
    for (int i = 2; i < argc; i++) {
        bool opt = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0;
        if (opt && i + 1 < argc && argv[i + 1][0] != '\0') {
            path = argv[++i];
            continue;
        }
        if (opt)
            fprintf(stderr, "portico %s: %s needs a file name: portico %s %s FILE\n", argv[1],
                    argv[i], argv[1], argv[i]);
        else
            fprintf(stderr, "portico %s: unexpected argument \"%s\"\n", argv[1], argv[i]);
        usage(stderr);
        return NULL;
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
        return path ? cmd_run(path, argv) : 2;
    }
    if (strcmp(cmd, "check") == 0) {
        if (argc == 2) {
            fprintf(stderr, "portico check: which file? portico check -c FILE\n");
            usage(stderr);
            return 2;
        }
        const char *path = config_arg(argc, argv, NULL);
        if (!path)
            return 2;
        return cmd_check(path);
    }
    fprintf(stderr, "portico: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
