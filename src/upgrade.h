/* upgrade.h - SIGUSR2: start this binary again on the same listening
 * sockets, then drain and exit once the new process serves.
 *
 * The sockets go to the new process by the LISTEN_FDS protocol (the one
 * systemd socket activation uses, read by listener_inherit), so no
 * connection is refused in between. The new process says that it serves
 * by writing a byte to a pipe; if it exits first, the upgrade failed and
 * this process goes on serving. */
#ifndef PORTICO_UPGRADE_H
#define PORTICO_UPGRADE_H

#include <stdbool.h>
#include <sys/types.h>

#include "loop.h"

struct metrics_http;
struct server;

struct upgrade {
    struct loop *loop;
    const struct server *srv;           /* its listeners are handed over */
    const struct metrics_http *metrics; /* and the metrics socket, last */
    char exe[4096];                     /* this binary, as its path read on start */
    char **argv;
    pid_t child;            /* the new process while it starts; 0 when none */
    struct loop_io readyio; /* read end of its ready pipe */
    bool handed_over;       /* it serves: this process drains and exits */
};

/* On start, before anything else: remember this binary's path and
 * arguments (an upgrade starts the binary at this path even once a package
 * has replaced the file). The pointers are kept; loop is set before the
 * first upgrade_start. */
void upgrade_init(struct upgrade *u, char **argv, const struct server *srv,
                  const struct metrics_http *metrics);

/* SIGUSR2: start the new process, unless one is starting already (or under
 * systemd, whose unit would stop with this process). Logs what it did. */
void upgrade_start(struct upgrade *u);

/* SIGCHLD: reap children; the new process exiting before it served is a
 * failed upgrade, logged. */
void upgrade_reap(struct upgrade *u);

/* Stop watching the new process's ready pipe (at exit). */
void upgrade_stop_watching(struct upgrade *u);

/* Once this process serves: tell the portico it replaces, if any, that it
 * may drain now. */
void upgrade_tell_ready(void);

#endif
