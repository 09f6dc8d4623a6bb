/* listener.c - listening sockets (see listener.h). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "limits.h"

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
    if (l->addr.sa.ss_family == AF_UNIX)
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
