/* sockowner.c - which program listens on a TCP address (see sockowner.h). */
#include "sockowner.h"

#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define TCP_LISTEN     0x0A /* include/net/tcp_states.h TCP_LISTEN, as /proc/net/tcp shows it */
#define MAX_INODES     16
#define MAX_FD_SCANNED 65536 /* per process: bounded, as every loop here */

/* A hex word of /proc/net/tcp*: the kernel prints the 32-bit words of the
 * address as they lie in memory, so they compare with the sockaddr's own. */
static int hex_word(const char *s, uint32_t *out)
{
    char buf[9];
    memcpy(buf, s, 8);
    buf[8] = '\0';
    char *end;
    unsigned long v = strtoul(buf, &end, 16);
    if (*end)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Does the "ADDR:PORT" of a /proc/net/tcp* line hold a's port, on a's
 * address or on the wildcard (which holds every address)? */
static bool line_matches(const char *local, const struct config_addr *a, bool v6)
{
    size_t words = v6 ? 4 : 1;
    if (strlen(local) != words * 8 + 5 || local[words * 8] != ':')
        return false;
    uint32_t w[4] = {0}, want[4] = {0};
    for (size_t i = 0; i < words; i++)
        if (hex_word(local + i * 8, &w[i]) < 0)
            return false;
    unsigned port = (unsigned)strtoul(local + words * 8 + 1, NULL, 16);
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        if (port != ntohs(in->sin_port))
            return false;
        if (!v6)
            return w[0] == in->sin_addr.s_addr || w[0] == 0;
        return (w[0] | w[1] | w[2] | w[3]) == 0; /* [::] takes IPv4 too unless v6only */
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
    if (!v6 || port != ntohs(in6->sin6_port))
        return false;
    memcpy(want, &in6->sin6_addr, sizeof want);
    return memcmp(w, want, sizeof w) == 0 || (w[0] | w[1] | w[2] | w[3]) == 0;
}

/* The inodes of the listening sockets that hold a's address. */
static size_t listen_inodes(const struct config_addr *a, unsigned long *out, size_t cap)
{
    size_t n = 0;
    for (int v6 = 0; v6 < 2; v6++) {
        FILE *f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
        if (!f)
            continue;
        char line[512], local[64], st[8];
        unsigned long inode;
        while (fgets(line, sizeof line, f) && n < cap) {
            if (sscanf(line, " %*s %63s %*s %7s %*s %*s %*s %*s %*s %lu", local, st, &inode) != 3)
                continue;
            if (strtoul(st, NULL, 16) == TCP_LISTEN && inode && line_matches(local, a, v6))
                out[n++] = inode;
        }
        fclose(f);
    }
    return n;
}

/* The name of the program pid runs ("portico"), without " (deleted)"
 * after an upgrade replaced the file. */
static bool exe_name(const char *pid, char *out, size_t cap)
{
    char path[300], target[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%s/exe", pid);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0)
        return false;
    target[n] = '\0';
    char *del = strstr(target, " (deleted)");
    if (del)
        *del = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t len = strlen(base);
    if (len >= cap)
        return false;
    memcpy(out, base, len + 1);
    return true;
}

/* Does pid hold a descriptor to one of the inodes? */
static bool holds(const char *pid, const unsigned long *inodes, size_t n)
{
    char dir[300];
    snprintf(dir, sizeof dir, "/proc/%s/fd", pid);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    for (size_t seen = 0; !found && seen < MAX_FD_SCANNED && (e = readdir(d)); seen++) {
        char path[600], target[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) != 1)
            continue;
        for (size_t i = 0; i < n && !found; i++)
            found = ino == inodes[i];
    }
    closedir(d);
    return found;
}

bool sockowner_is_portico(const struct config_addr *a)
{
    unsigned long inodes[MAX_INODES];
    size_t n = listen_inodes(a, inodes, MAX_INODES);
    char self[NAME_MAX + 1], other[NAME_MAX + 1];
    if (!n || !exe_name("self", self, sizeof self))
        return false;
    DIR *d = opendir("/proc");
    if (!d)
        return false;
    bool portico = false, other_holder = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !holds(e->d_name, inodes, n))
            continue;
        if (exe_name(e->d_name, other, sizeof other) && strcmp(other, self) == 0)
            portico = true;
        else
            other_holder = true;
    }
    closedir(d);
    return portico && !other_holder;
}
