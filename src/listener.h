/* listener.h - listening sockets, shared by all workers.
 *
 * The main thread opens each socket once; every worker watches it with
 * EPOLLEXCLUSIVE so one accept wakes one worker. A listener is
 * reference-counted: a reload that keeps an address keeps its socket (no
 * connection is refused during a reload), and a socket that left the
 * configuration closes once every worker has stopped watching it. */
#ifndef PORTICO_LISTENER_H
#define PORTICO_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct listener {
    int fd;
    int refs; /* atomic */
    struct config_addr addr;
};

/* Open, bind and listen (non-blocking). A stale Unix socket file is
 * replaced. Returns NULL with a sentence in err. */
struct listener *listener_open(const struct config_addr *addr, char *err, size_t errlen);
struct listener *listener_ref(struct listener *l);
void listener_unref(struct listener *l);

/* Same socket address (so an existing listener can be kept on reload). */
bool listener_same_addr(const struct config_addr *a, const struct config_addr *b);

/* Write "1.2.3.4", "::1" or "unix:" for a peer address into out. */
void listener_format_peer(const struct sockaddr_storage *sa, socklen_t len, char *out, size_t cap);

#endif
