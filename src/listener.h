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
#include "limits.h"

struct listener {
    int fd;
    int refs;                 /* atomic */
    struct config_addr addr;  /* as configured; the port may be 0 */
    struct config_addr bound; /* as bound: the port the kernel chose for port 0 */
    /* Which kind of configuration entry owns it ("listen", "tcp.NAME",
     * "metrics"): a reload gives a port-0 listener back to the same kind.
     * It is also the socket's name in LISTEN_FDNAMES when the sockets are
     * handed to a new process, so it never contains ':'. */
    char owner[LIMIT_SERVICE_NAME + 8];
    /* Closing does not unlink a Unix socket's file: the socket was
     * inherited (its creator owns the file) or handed to a new process that
     * still listens on it. Atomic. */
    bool keep_path;
};

/* The listening sockets this process was given on start (systemd socket
 * activation, or an upgrading portico), by the sd_listen_fds(3) protocol:
 * LISTEN_PID is this process and LISTEN_FDS=N means fds 3..3+N-1, named
 * by the optional LISTEN_FDNAMES. The variables are removed from the
 * environment whatever they say, so no child inherits them. Each usable
 * socket becomes a listener (owner: its name, "" without one; addr: the
 * address it is bound to, with port 0 for an IP socket, so a port-0 entry
 * of the same owner can take it); an fd that is not a listening stream
 * socket is closed with a warning. Sets *out (NULL when there are none) and
 * returns the count. */
size_t listener_inherit(struct listener ***out);

/* The fd named by PORTICO_READY_FD when this process was started by an
 * upgrading portico (read and removed from the environment by
 * listener_inherit, only when LISTEN_PID is this process), else -1. The
 * process writes one byte to it once it serves. */
int listener_ready_fd(void);

/* Open, bind and listen (non-blocking) for the entry owner. A stale Unix
 * socket file is replaced. Port 0 binds a port the kernel chooses, once:
 * every worker shares this one socket. Returns NULL with a sentence in err. */
struct listener *listener_open(const struct config_addr *addr, const char *owner, char *err,
                               size_t errlen);
/* Give a Unix socket file the mode and group of addr (a no-op for other
 * families): at open, and again when a reload keeps the socket but changes
 * them. Returns 0 or -1 with a sentence in err. */
int listener_set_access(const struct config_addr *addr, char *err, size_t errlen);
struct listener *listener_ref(struct listener *l);
void listener_unref(struct listener *l);

/* Same socket address (so an existing listener can be kept on reload). */
bool listener_same_addr(const struct config_addr *a, const struct config_addr *b);

/* On a reload, whether l can stay for an entry asking for addr: l is bound
 * to addr (an unchanged address, or port 0 replaced by the port it got). */
bool listener_bound_to(const struct listener *l, const struct config_addr *addr);
/* Or addr has port 0 and l was opened for the same address and owner. */
bool listener_any_port_for(const struct listener *l, const struct config_addr *addr,
                           const char *owner);

/* The sockets a configuration asks for: its listen addresses, then its TCP
 * forwarders' (the order struct server keeps). */
size_t listener_config_count(const struct config *c);

/* Open the sockets c asks for, keeping sockets from old[], each at most
 * once: first every socket bound to an address asked for (unchanged, or a
 * port 0 written out as the port it got), then, in order, the K-th port-0
 * entry of an owner and address takes the K-th remaining port-0 socket of
 * that owner and address (so its port stays). Returns an array of
 * listener_config_count(c) references, or NULL with err set. */
struct listener **listener_open_all(const struct config *c, struct listener **old, size_t nold,
                                    char *err, size_t errlen);

/* A socket of pool (inherited on start) not taken yet that the entry for
 * addr and owner can use: one bound to addr, else for port 0 one of the
 * same address and owner. A new reference, or NULL. */
struct listener *listener_pool_take(struct listener **pool, size_t npool,
                                    const struct config_addr *addr, const char *owner);

/* Write "1.2.3.4", "::1" or "unix:" for a peer address into out. */
void listener_format_peer(const struct sockaddr_storage *sa, socklen_t len, char *out, size_t cap);

#endif
