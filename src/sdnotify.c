/* sdnotify.c - the systemd notify protocol (see sdnotify.h). */
#include "sdnotify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"

int sdnotify_parse_socket(const char *value, struct sockaddr_un *sa, socklen_t *len, char *err,
                          size_t errlen)
{
    size_t n = strlen(value);
    if (value[0] != '/' && value[0] != '@') {
        snprintf(err, errlen,
                 "NOTIFY_SOCKET=%.100s is neither a path (starting with '/') nor an abstract "
                 "socket name (starting with '@')",
                 value);
        return -1;
    }
    /* A path needs room for its NUL; an abstract name has none but the
     * same limit keeps one rule for both. */
    if (n >= sizeof sa->sun_path) {
        snprintf(err, errlen, "NOTIFY_SOCKET is %zu bytes long; a socket address holds at most %zu",
                 n, sizeof sa->sun_path - 1);
        return -1;
    }
    if (n < 2) {
        snprintf(err, errlen, "NOTIFY_SOCKET=%s names no socket", value);
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, value, n);
    if (value[0] == '@')
        sa->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
}

/* A decimal number without sign, spaces or overflow; false otherwise. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int sdnotify_parse_watchdog(const char *usec, const char *pid, long self, uint64_t *out, char *err,
                            size_t errlen)
{
    *out = 0;
    if (!usec)
        return 0;
    uint64_t v, p;
    if (!parse_u64(usec, &v) || v == 0) {
        snprintf(err, errlen, "WATCHDOG_USEC=%.40s is not a positive number of microseconds", usec);
        return -1;
    }
    if (pid) {
        if (!parse_u64(pid, &p) || p == 0) {
            snprintf(err, errlen, "WATCHDOG_PID=%.40s is not a process id", pid);
            return -1;
        }
        if (p != (uint64_t)self)
            return 0; /* the watchdog is another process's (a parent's) */
    }
    *out = v;
    return 0;
}

size_t sdnotify_format(char *out, size_t cap, const char *state, const char *status)
{
    if (cap == 0)
        return 0;
    size_t len = strlen(state);
    if (len >= cap)
        len = cap - 1;
    memcpy(out, state, len);
    static const char key[] = "\nSTATUS=";
    if (status && len + sizeof key < cap) {
        memcpy(out + len, key, sizeof key - 1);
        len += sizeof key - 1;
        /* One line: a newline inside would start a new KEY=VALUE. */
        for (size_t i = 0; i < LIMIT_SDNOTIFY_STATUS_BYTES && status[i] && len + 1 < cap; i++) {
            unsigned char c = (unsigned char)status[i];
            out[len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
    }
    out[len] = '\0';
    return len;
}

size_t sdnotify_format_summary(char *out, size_t cap, const struct sdnotify_summary *s)
{
    if (cap == 0)
        return 0;
    int n = snprintf(out, cap, "%zu %s, %zu %s, %u %s, %u %s", s->services,
                     log_plural(s->services, "service", "services"), s->listeners,
                     log_plural(s->listeners, "listener", "listeners"), s->workers,
                     log_plural(s->workers, "worker", "workers"), (unsigned)s->connections,
                     log_plural(s->connections, "connection", "connections"));
    size_t len = n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
    if (s->reload > 0)
        n = snprintf(out + len, cap - len, "; last reload done");
    else if (s->reload < 0)
        n = snprintf(out + len, cap - len, "; last reload refused: %s",
                     s->reload_error ? s->reload_error : "see the log");
    else
        n = 0;
    len += n < 0 ? 0 : (size_t)n >= cap - len ? cap - len - 1 : (size_t)n;
    return len;
}

void sdnotify_init(struct sdnotify *n)
{
    *n = (struct sdnotify){.fd = -1};
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock)
        return;
    /* The variable stays set (unlike sd_notify's unset_environment): the
     * process a SIGUSR2 upgrade starts tells the same socket that it
     * serves. */
    snprintf(n->name, sizeof n->name, "%s", sock);
    char err[256];
    if (sdnotify_parse_socket(sock, &n->addr, &n->addrlen, err, sizeof err) < 0) {
        log_msg(LOG_WARN, "systemd will not hear from this process: %s", err);
        return;
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        log_msg(LOG_WARN, "systemd will not hear from this process: socket: %s", strerror(errno));
        return;
    }
    const char *pid = getenv("WATCHDOG_PID");
    if (sdnotify_parse_watchdog(getenv("WATCHDOG_USEC"), pid, (long)getpid(), &n->watchdog_usec,
                                err, sizeof err) < 0) {
        log_msg(LOG_WARN, "no watchdog pings: %s", err);
        return;
    }
    /* The watchdog is this process's: without WATCHDOG_PID, the process a
     * SIGUSR2 upgrade starts with this environment takes it over, as it
     * takes over as the main process. */
    if (n->watchdog_usec && pid)
        unsetenv("WATCHDOG_PID");
}

void sdnotify_send(struct sdnotify *n, const char *msg)
{
    if (n->fd < 0)
        return;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
    struct msghdr mh = {
        .msg_name = &n->addr, .msg_namelen = n->addrlen, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t r;
    while ((r = sendmsg(n->fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (r >= 0 || n->send_failed)
        return;
    n->send_failed = true;
    log_msg(LOG_WARN, "cannot notify systemd at %s: %s (further failures are not logged)", n->name,
            strerror(errno));
}

void sdnotify_close(struct sdnotify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
