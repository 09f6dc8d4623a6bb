/* sdnotify.h - telling systemd what portico is doing (the sd_notify(3)
 * protocol), without libsystemd.
 *
 * The protocol is one datagram per message to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@'),
 * holding newline-separated KEY=VALUE lines: READY=1, RELOADING=1 with
 * MONOTONIC_USEC=, STOPPING=1, STATUS=, WATCHDOG=1, MAINPID=. systemd
 * documents it as a stable interface. Without $NOTIFY_SOCKET every call
 * here does nothing. A failed send is logged once and never stops portico:
 * readiness is systemd's business, serving is ours.
 *
 * The parsers and formatters are pure, for the unit tests; sdnotify_init
 * and sdnotify_send do the I/O. */
#ifndef PORTICO_SDNOTIFY_H
#define PORTICO_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct sdnotify {
    int fd; /* -1 when there is nobody to tell */
    struct sockaddr_un addr;
    socklen_t addrlen;
    char name[128];         /* $NOTIFY_SOCKET as given, for messages (sun_path is 108 bytes) */
    bool send_failed;       /* a send failed and was logged: later failures are not */
    uint64_t watchdog_usec; /* WATCHDOG_USEC meant for this process; 0: no watchdog */
};

/* $NOTIFY_SOCKET's value into an address for sendmsg: a path (starting
 * with '/') or an abstract name ('@' becomes the leading NUL byte; the
 * length covers the name only, as the kernel compares all of it). Returns
 * 0, or -1 with a sentence in err. */
int sdnotify_parse_socket(const char *value, struct sockaddr_un *sa, socklen_t *len, char *err,
                          size_t errlen);

/* $WATCHDOG_USEC and $WATCHDOG_PID (NULL when unset) as sd_watchdog_enabled
 * reads them for the process self: *usec is the interval, or 0 when the
 * watchdog is off or meant for another process. Returns 0, or -1 with a
 * sentence in err when a value is not a positive decimal number. */
int sdnotify_parse_watchdog(const char *usec, const char *pid, long self, uint64_t *out, char *err,
                            size_t errlen);

/* One message into out (cap bytes): the fixed lines in state (e.g.
 * "READY=1"), then, when status is not NULL, a STATUS= line with its
 * control characters turned into spaces and cut at
 * LIMIT_SDNOTIFY_STATUS_BYTES (and at what fits). Returns the length. */
size_t sdnotify_format(char *out, size_t cap, const char *state, const char *status);

/* What STATUS= says while portico runs. */
struct sdnotify_summary {
    size_t services, listeners;
    unsigned workers;
    uint32_t connections;
    /* The last reload: 0 none yet, 1 done, -1 refused (and why). */
    int reload;
    const char *reload_error;
};

/* "3 services, 2 listeners, 2 workers, 5 connections; last reload
 * refused: ..." into out (cap bytes). Returns the length. */
size_t sdnotify_format_summary(char *out, size_t cap, const struct sdnotify_summary *s);

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, and open the
 * socket. Call on start, before any thread: it may unset WATCHDOG_PID (see
 * sdnotify.c). Bad values are logged; n is then off (or without a
 * watchdog). */
void sdnotify_init(struct sdnotify *n);

/* Send one message (sdnotify_format's output). Does nothing when n is off. */
void sdnotify_send(struct sdnotify *n, const char *msg);

static inline bool sdnotify_on(const struct sdnotify *n)
{
    return n->fd >= 0;
}

void sdnotify_close(struct sdnotify *n);

#endif
