/* listener.c - listening sockets, and the set a configuration asks for,
 * opened or kept across reloads (see listener.h). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"

/* Accepted TCP sockets inherit TCP_NODELAY from the listening socket
 * (Linux copies a listener's TCP options into every connection it
 * accepts): set once here, not once per connection. */
static void set_nodelay(int fd, int family)
{
    int one = 1;
    if (family == AF_INET || family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The address the kernel bound, as text: "127.0.0.1:43211", "[::1]:43211". */
static void bound_address(int fd, const struct config_addr *addr, struct config_addr *out)
{
    *out = *addr;
    int family = addr->sa.ss_family;
    if (family != AF_INET && family != AF_INET6)
        return;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return; /* keep the configured address; bind just succeeded, so unreachable */
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
    if (family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        ((struct sockaddr_in *)&out->sa)->sin_port = in->sin_port;
        port = ntohs(in->sin_port);
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        ((struct sockaddr_in6 *)&out->sa)->sin6_port = in6->sin6_port;
        port = ntohs(in6->sin6_port);
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "[%s]:%u", ip, port);
    }
}

int listener_set_access(const struct config_addr *addr, char *err, size_t errlen)
{
    if (addr->sa.ss_family != AF_UNIX)
        return 0;
    const char *path = ((const struct sockaddr_un *)&addr->sa)->sun_path;
    /* AT_SYMLINK_NOFOLLOW: if the file was swapped for a link, the link
     * gets the group, not its target. */
    if (addr->unix_gid >= 0 &&
        fchownat(AT_FDCWD, path, (uid_t)-1, (gid_t)addr->unix_gid, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(err, errlen, "listen %s: cannot give the socket group %ld: %s", addr->text,
                 addr->unix_gid, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "listen %s: %s is no longer our socket", addr->text, path);
        return -1;
    }
    if (chmod(path, (mode_t)addr->unix_mode) < 0) {
        snprintf(err, errlen, "listen %s: cannot set mode %04o: %s", addr->text, addr->unix_mode,
                 strerror(errno));
        return -1;
    }
    return 0;
}

struct listener *listener_open(const struct config_addr *addr, const char *owner, char *err,
                               size_t errlen)
{
    int family = addr->sa.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen %s: cannot create socket: %s", addr->text, strerror(errno));
        return NULL;
    }
    int one = 1;
    if (family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&addr->sa;
        struct stat st;
        /* Replace a socket file left by an earlier run; never anything else. */
        if (lstat(un->sun_path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                snprintf(err, errlen, "listen %s: %s exists and is not a socket", addr->text,
                         un->sun_path);
                close(fd);
                return NULL;
            }
            unlink(un->sun_path);
        }
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        set_nodelay(fd, family);
    }
    /* A Unix socket file is created with the mode asked for, not widened
     * after: the umask is only changed around bind, in the main thread. */
    mode_t mask = family == AF_UNIX ? umask(~(mode_t)addr->unix_mode & 0777) : 0;
    int rc = bind(fd, (const struct sockaddr *)&addr->sa, addr->salen);
    int bind_errno = errno;
    if (family == AF_UNIX)
        umask(mask);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s: cannot bind: %s", addr->text, strerror(bind_errno));
        close(fd);
        return NULL;
    }
    /* Before listen(): nobody can connect until the access is right. */
    if (family == AF_UNIX && listener_set_access(addr, err, errlen) < 0) {
        close(fd);
        return NULL;
    }
    if (listen(fd, LIMIT_LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "listen %s: %s", addr->text, strerror(errno));
        close(fd);
        return NULL;
    }
    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "listen %s: out of memory", addr->text);
        close(fd);
        return NULL;
    }
    l->fd = fd;
    l->refs = 1;
    l->addr = *addr;
    bound_address(fd, addr, &l->bound);
    snprintf(l->owner, sizeof l->owner, "%s", owner);
    return l;
}

struct listener *listener_ref(struct listener *l)
{
    __atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
    return l;
}

void listener_unref(struct listener *l)
{
    if (!l || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    close(l->fd);
    if (l->addr.sa.ss_family == AF_UNIX && !__atomic_load_n(&l->keep_path, __ATOMIC_ACQUIRE))
        unlink(((const struct sockaddr_un *)&l->addr.sa)->sun_path);
    free(l);
}

bool listener_same_addr(const struct config_addr *a, const struct config_addr *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

bool listener_bound_to(const struct listener *l, const struct config_addr *addr)
{
    return listener_same_addr(&l->bound, addr);
}

bool listener_any_port_for(const struct listener *l, const struct config_addr *addr,
                           const char *owner)
{
    return config_addr_any_port(addr) && listener_same_addr(&l->addr, addr) &&
           strcmp(l->owner, owner) == 0;
}

void listener_format_peer(const struct sockaddr_storage *sa, socklen_t len, char *out, size_t cap)
{
    if (sa->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
    } else {
        snprintf(out, cap, "unix:");
    }
}

/* ---- inherited sockets ------------------------------------------------------ */

static int g_ready_fd = -1;

int listener_ready_fd(void)
{
    return g_ready_fd;
}

/* A whole non-negative decimal number below max, else -1. */
static long parse_count(const char *s, long max)
{
    if (!s || !*s)
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > max)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v <= max ? v : -1;
}

/* The address fd is bound to, in the form the configuration writes it
 * (only the fields that identify an endpoint), and whether it is a
 * listening stream socket of a family portico serves. */
static bool inherited_addr(int fd, struct config_addr *out, char *why, size_t whylen)
{
    int type = 0, acc = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        snprintf(why, whylen, "not a socket (%s)", strerror(errno));
        return false;
    }
    len = sizeof acc;
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        snprintf(why, whylen, "not a listening stream socket");
        return false;
    }
    struct sockaddr_storage ss;
    len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(why, whylen, "getsockname: %s", strerror(errno));
        return false;
    }
    memset(out, 0, sizeof *out);
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        struct sockaddr_in *o = (struct sockaddr_in *)&out->sa;
        o->sin_family = AF_INET;
        o->sin_port = in->sin_port;
        o->sin_addr = in->sin_addr;
        out->salen = sizeof *o;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "%s:%u", ip, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        struct sockaddr_in6 *o = (struct sockaddr_in6 *)&out->sa;
        o->sin6_family = AF_INET6;
        o->sin6_port = in6->sin6_port;
        o->sin6_addr = in6->sin6_addr;
        o->sin6_scope_id = in6->sin6_scope_id;
        out->salen = sizeof *o;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        size_t max = len > offsetof(struct sockaddr_un, sun_path)
                         ? len - offsetof(struct sockaddr_un, sun_path)
                         : 0;
        size_t plen = strnlen(un->sun_path, max);
        if (plen == 0 || plen >= sizeof un->sun_path) {
            snprintf(why, whylen, "an unnamed or abstract Unix socket");
            return false;
        }
        struct sockaddr_un *o = (struct sockaddr_un *)&out->sa;
        o->sun_family = AF_UNIX;
        memcpy(o->sun_path, un->sun_path, plen);
        out->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
        snprintf(out->text, sizeof out->text, "unix:%s", o->sun_path);
    } else {
        snprintf(why, whylen, "a socket of address family %d", ss.ss_family);
        return false;
    }
    return true;
}

size_t listener_inherit(struct listener ***out)
{
    *out = NULL;
    char pid_s[32] = "", fds_s[32] = "", ready_s[32] = "";
    char *names = NULL;
    const char *v;
    if ((v = getenv("LISTEN_PID")))
        snprintf(pid_s, sizeof pid_s, "%s", v);
    if ((v = getenv("LISTEN_FDS")))
        snprintf(fds_s, sizeof fds_s, "%s", v);
    if ((v = getenv("LISTEN_FDNAMES")))
        names = strdup(v);
    if ((v = getenv("PORTICO_READY_FD")))
        snprintf(ready_s, sizeof ready_s, "%s", v);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    unsetenv("PORTICO_READY_FD");
    long pid = parse_count(pid_s, 1L << 30);
    if (pid != (long)getpid()) {
        if (pid_s[0] && fds_s[0])
            log_msg(LOG_INFO, "LISTEN_FDS is for process %s, not this one; ignored", pid_s);
        free(names);
        return 0;
    }
    long ready = parse_count(ready_s, 1L << 20);
    if (ready >= 3 && fcntl((int)ready, F_SETFD, FD_CLOEXEC) == 0)
        g_ready_fd = (int)ready;
    long n = parse_count(fds_s, LIMIT_INHERITED_FDS);
    if (n < 0) {
        log_msg(LOG_WARN, "LISTEN_FDS=\"%s\" is not a count up to %d; no socket inherited", fds_s,
                LIMIT_INHERITED_FDS);
        free(names);
        return 0;
    }
    struct listener **ls = calloc(n ? (size_t)n : 1, sizeof *ls);
    size_t k = 0;
    char *save = NULL;
    char *name = names ? strtok_r(names, ":", &save) : NULL;
    for (long i = 0; i < n; i++, name = name ? strtok_r(NULL, ":", &save) : NULL) {
        int fd = (int)(3 + i);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        struct config_addr a;
        char why[128];
        if (!inherited_addr(fd, &a, why, sizeof why)) {
            log_msg(LOG_WARN, "inherited fd %d is %s; closing it", fd, why);
            close(fd);
            continue;
        }
        struct listener *l = ls ? calloc(1, sizeof *l) : NULL;
        if (!l) {
            log_msg(LOG_ERROR, "inherited socket %s: out of memory; closing it", a.text);
            close(fd);
            continue;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        set_nodelay(fd, a.sa.ss_family);
        l->fd = fd;
        l->refs = 1;
        l->keep_path = true;
        l->bound = a;
        l->addr = a;
        if (a.sa.ss_family == AF_INET)
            ((struct sockaddr_in *)&l->addr.sa)->sin_port = 0;
        else if (a.sa.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&l->addr.sa)->sin6_port = 0;
        snprintf(l->owner, sizeof l->owner, "%s", name && strcmp(name, "unknown") ? name : "");
        ls[k++] = l;
    }
    free(names);
    if (!k) {
        free(ls);
        return 0;
    }
    *out = ls;
    return k;
}

/* ---- the set of sockets a configuration asks for ------------------------------ */

size_t listener_config_count(const struct config *c)
{
    return c->nlistens + c->ntcp;
}

/* The address of socket i of c. */
static const struct config_addr *config_addr_at(const struct config *c, size_t i)
{
    return i < c->nlistens ? &c->listens[i].addr : &c->tcp_services[i - c->nlistens]->tcp->listen;
}

/* The kind of entry that owns listener i of c: "listen", or "tcp.NAME" for
 * a forwarder. */
static void config_owner(const struct config *c, size_t i, char *out, size_t cap)
{
    if (i < c->nlistens)
        snprintf(out, cap, "listen");
    else
        snprintf(out, cap, "tcp.%s", c->tcp_services[i - c->nlistens]->name);
}

struct listener **listener_open_all(const struct config *c, struct listener **old, size_t nold,
                                    char *err, size_t errlen)
{
    size_t n = listener_config_count(c);
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
            const struct config_addr *a = config_addr_at(c, i);
            char owner[sizeof old[0]->owner];
            config_owner(c, i, owner, sizeof owner);
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
        config_owner(c, i, owner, sizeof owner);
        bool failed;
        if (ls[i]) /* kept: a reload may change a Unix socket's mode or group */
            failed = listener_set_access(config_addr_at(c, i), err, errlen) < 0;
        else
            failed = !(ls[i] = listener_open(config_addr_at(c, i), owner, err, errlen));
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

struct listener *listener_pool_take(struct listener **pool, size_t npool,
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
