/* upgrade.c - SIGUSR2 binary upgrade and socket handover (see upgrade.h). */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "decimal.h"
#include "listener.h"
#include "log.h"
#include "metrics_http.h"
#include "worker.h"

void upgrade_init(struct upgrade *u, char **argv, const struct server *srv,
                  const struct metrics_http *metrics)
{
    *u = (struct upgrade){.srv = srv, .metrics = metrics, .argv = argv, .readyio = {.fd = -1}};
    ssize_t el = readlink("/proc/self/exe", u->exe, sizeof u->exe - 1);
    u->exe[el > 0 ? el : 0] = '\0';
}

/* In the child between fork and execve: only async-signal-safe calls. The
 * n fds go to 3..3+n-1 (through copies above them, so a move never
 * overwrites a descriptor still to be moved), which clears FD_CLOEXEC on
 * them alone; pidvar gets this process's pid. */
static void exec_child(const char *exe, char **argv, char **envp, const int *fds, int *tmp,
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
    pidvar[decimal_format_u64(pidvar, (uint64_t)getpid())] = '\0';
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

void upgrade_stop_watching(struct upgrade *u)
{
    if (u->readyio.fd < 0)
        return;
    int fd = u->readyio.fd;
    loop_io_del(u->loop, &u->readyio);
    close(fd);
    u->readyio.fd = -1;
}

/* The new process wrote to its ready pipe (it serves), or closed it. */
static void on_ready(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct upgrade *u = container_of(io, struct upgrade, readyio);
    char b[16];
    ssize_t r;
    while ((r = read(io->fd, b, sizeof b)) < 0 && errno == EINTR)
        ;
    if (r < 0 && errno == EAGAIN)
        return;
    upgrade_stop_watching(u);
    if (r > 0 && u->child) {
        log_msg(LOG_INFO, "new process %d serves on the same sockets: draining and exiting",
                (int)u->child);
        u->handed_over = true;
        /* The sockets stay open in the new process: leave their files. */
        for (size_t i = 0; i < u->srv->nlisteners; i++)
            __atomic_store_n(&u->srv->listeners[i]->keep_path, true, __ATOMIC_RELEASE);
        if (u->metrics->l)
            __atomic_store_n(&u->metrics->l->keep_path, true, __ATOMIC_RELEASE);
        loop_stop(l);
    }
    /* EOF without a byte: it failed; SIGCHLD tells how. */
}

/* Start this binary again with the listening sockets (the metrics one
 * last) as fds 3.. by the LISTEN_FDS protocol, plus the write end of a pipe
 * on which it says that it serves. */
void upgrade_start(struct upgrade *u)
{
    if (u->child) {
        log_msg(LOG_WARN, "SIGUSR2 ignored: new process %d is still starting", (int)u->child);
        return;
    }
    if (u->handed_over)
        return;
    if (getppid() == 1 && getenv("INVOCATION_ID")) {
        log_msg(LOG_WARN, "SIGUSR2 ignored: under systemd the unit stops when this process "
                          "exits; restart through socket activation (systemctl restart) instead");
        return;
    }
    if (!u->exe[0]) {
        log_msg(LOG_ERROR, "SIGUSR2 ignored: the path of this binary is unknown");
        return;
    }
    const struct server *srv = u->srv;
    size_t n = srv->nlisteners + (u->metrics->l ? 1 : 0);
    size_t envc = 0;
    while (environ[envc])
        envc++;
    int *fds = calloc(n + 1, sizeof *fds);
    int *tmp = calloc(n + 1, sizeof *tmp);
    char **envp = calloc(envc + 5, sizeof *envp);
    size_t namecap = 16 + (n + 1) * sizeof srv->listeners[0]->owner;
    char *names = malloc(namecap);
    char fdsvar[32], readyvar[48], pidvar[16 + DECIMAL_U64_DIGITS];
    int p[2] = {-1, -1};
    if (!fds || !tmp || !envp || !names || pipe2(p, O_CLOEXEC) < 0) {
        log_msg(LOG_ERROR, "SIGUSR2: cannot start a new process: %s",
                strerror(errno ? errno : ENOMEM));
        goto out;
    }
    size_t off = (size_t)snprintf(names, namecap, "LISTEN_FDNAMES=");
    for (size_t i = 0; i < n; i++) {
        const struct listener *ls = i < srv->nlisteners ? srv->listeners[i] : u->metrics->l;
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
        exec_child(u->exe, u->argv, envp, fds, tmp, n + 1, pidvar + strlen("LISTEN_PID="));
    if (pid < 0) {
        log_msg(LOG_ERROR, "SIGUSR2: cannot start a new process: fork: %s", strerror(errno));
        goto out;
    }
    close(p[1]);
    p[1] = -1;
    if (loop_io_add(u->loop, &u->readyio, p[0], EPOLLIN | EPOLLET, on_ready) < 0) {
        log_msg(LOG_ERROR, "SIGUSR2: cannot watch the new process: %s", strerror(errno));
        close(p[0]);
    }
    p[0] = -1;
    u->child = pid;
    log_msg(LOG_INFO,
            "SIGUSR2 received: started %s as process %d with %zu listening sockets; this "
            "process drains once it serves",
            u->exe, (int)pid, n);
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

/* Reap children; the new process exiting before it served is a failed
 * upgrade, and this process goes on serving. */
void upgrade_reap(struct upgrade *u)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid != u->child || u->handed_over)
            continue;
        if (u->readyio.fd >= 0)
            on_ready(u->loop, &u->readyio, EPOLLIN); /* a byte it wrote before it exited */
        if (u->handed_over)
            continue;
        upgrade_stop_watching(u);
        u->child = 0;
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

void upgrade_tell_ready(void)
{
    int ready = listener_ready_fd();
    if (ready >= 0) {
        ssize_t ignored = write(ready, "1", 1);
        (void)ignored;
        close(ready);
    }
}
