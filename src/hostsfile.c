/* hostsfile.c - the marked block portico keeps in a hosts file: finding it,
 * rewriting it without touching the rest, and replacing the file
 * atomically (see hostsfile.h). */
#include "hostsfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"

/* A line is a marker when its text starts with the marker and nothing but
 * blanks (or the CR of a CRLF) follows: a marker with trailing spaces left
 * by an editor is still found, so a block is never appended twice. */
static bool is_marker(const char *p, size_t n, const char *marker)
{
    size_t m = strlen(marker);
    if (n < m || memcmp(p, marker, m) != 0)
        return false;
    if (strcmp(marker, HOSTSFILE_BEGIN) == 0)
        return n == m || p[m] == ' ' || p[m] == '\t' || p[m] == '\r';
    for (size_t i = m; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

/* "# BEGIN portico" followed by anything else is a damaged BEGIN (an
 * edited marker): refused rather than taken for an ordinary comment. */
static bool looks_like_begin(const char *p, size_t n)
{
    static const char stem[] = "# BEGIN portico";
    return n >= sizeof stem - 1 && memcmp(p, stem, sizeof stem - 1) == 0;
}

int hostsfile_find(const char *buf, size_t len, struct hostsfile_block *b, char *err, size_t errlen)
{
    bool found = false, open = false;
    unsigned line = 0;
    struct hostsfile_block at = {0};
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        size_t next = nl ? pos + n + 1 : len;
        line++;
        const char *p = buf + pos;
        if (is_marker(p, n, HOSTSFILE_BEGIN) || looks_like_begin(p, n)) {
            if (open) {
                snprintf(err, errlen,
                         "line %u: a second \"%s\" inside the portico block begun at line %u, "
                         "which has no \"%s\" before it; repair the block by hand or delete it",
                         line, HOSTSFILE_BEGIN, at.begin_line, HOSTSFILE_END);
                return -1;
            }
            if (found) {
                snprintf(err, errlen,
                         "line %u: a second portico block (the first begins at line %u); delete "
                         "one of them by hand",
                         line, at.begin_line);
                return -1;
            }
            if (!is_marker(p, n, HOSTSFILE_BEGIN)) {
                snprintf(err, errlen,
                         "line %u: a damaged portico marker (it should read \"%s\"); repair it "
                         "by hand or delete the block",
                         line, HOSTSFILE_BEGIN);
                return -1;
            }
            open = true;
            at.begin = pos;
            at.begin_line = line;
            at.crlf = n > 0 && p[n - 1] == '\r' && nl;
        } else if (is_marker(p, n, HOSTSFILE_END)) {
            if (!open) {
                snprintf(err, errlen,
                         "line %u: \"%s\" without a \"%s\" above it; delete the line or repair "
                         "the block by hand",
                         line, HOSTSFILE_END, HOSTSFILE_BEGIN);
                return -1;
            }
            open = false;
            found = true;
            at.end = next;
            at.terminated = nl != NULL;
            at.nlines = line - at.begin_line + 1;
        }
        pos = next;
    }
    if (open) {
        snprintf(err, errlen,
                 "line %u: the portico block begun here has no \"%s\" line; repair it by hand "
                 "or delete it",
                 at.begin_line, HOSTSFILE_END);
        return -1;
    }
    if (found)
        *b = at;
    return found;
}

/* The line break the file uses: its first line's, "\n" without one. */
static const char *file_eol(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    return nl && nl > buf && nl[-1] == '\r' ? "\r\n" : "\n";
}

int hostsfile_rewrite(const char *buf, size_t len, const char *const *lines, size_t nlines,
                      bool remove, char **out, size_t *outlen, char *err, size_t errlen)
{
    struct hostsfile_block b;
    int found = hostsfile_find(buf, len, &b, err, errlen);
    if (found < 0)
        return -1;
    size_t head, tail; /* keep [0, head) and [tail, len) */
    const char *eol;
    bool lead = false, terminated = true;
    if (found) {
        head = b.begin;
        tail = b.end;
        eol = b.crlf ? "\r\n" : "\n";
        terminated = b.terminated;
        /* A block without a final line break was added to a file that had
         * none: the line break before it goes with it. */
        if (remove && !b.terminated && head > 0)
            head -= b.crlf && head > 1 && buf[head - 2] == '\r' ? 2 : 1;
    } else {
        head = tail = len;
        eol = file_eol(buf, len);
        lead = len > 0 && buf[len - 1] != '\n';
        terminated = !lead;
    }
    size_t el = strlen(eol), need = head + (len - tail) + 1;
    if (!remove) {
        need += el + strlen(HOSTSFILE_BEGIN) + el + strlen(HOSTSFILE_END) + el;
        for (size_t i = 0; i < nlines; i++) {
            if (strpbrk(lines[i], "\r\n")) {
                snprintf(err, errlen, "a hosts line holds a line break");
                return -1;
            }
            need += strlen(lines[i]) + el;
        }
    }
    if (need > LIMIT_HOSTS_FILE_BYTES + 1) {
        snprintf(err, errlen, "the hosts file would be over %u bytes",
                 (unsigned)LIMIT_HOSTS_FILE_BYTES);
        return -1;
    }
    char *o = malloc(need), *w = o;
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(w, buf, head);
    w += head;
    if (!remove) {
        if (lead)
            w = stpcpy(w, eol);
        w = stpcpy(stpcpy(w, HOSTSFILE_BEGIN), eol);
        for (size_t i = 0; i < nlines; i++)
            w = stpcpy(stpcpy(w, lines[i]), eol);
        w = stpcpy(w, HOSTSFILE_END);
        if (terminated)
            w = stpcpy(w, eol);
    }
    memcpy(w, buf + tail, len - tail);
    w += len - tail;
    *w = '\0';
    *out = o;
    *outlen = (size_t)(w - o);
    return 0;
}

/* Read the whole file at fd (at most LIMIT_HOSTS_FILE_BYTES). */
static int read_all(int fd, const char *path, struct stat *stp, char **out, size_t *outlen,
                    char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)LIMIT_HOSTS_FILE_BYTES) {
        snprintf(err, errlen, "%s is %s", path,
                 S_ISREG(st.st_mode) ? "too large for a hosts file" : "not a regular file");
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (;;) {
        if (n == cap - 1) { /* it grew since fstat */
            if (cap > LIMIT_HOSTS_FILE_BYTES) {
                snprintf(err, errlen, "%s is too large for a hosts file", path);
                free(buf);
                return -1;
            }
            char *more = realloc(buf, cap * 2);
            if (!more) {
                snprintf(err, errlen, "out of memory");
                free(buf);
                return -1;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *stp = st;
    *out = buf;
    *outlen = n;
    return 0;
}

/* The file's real path (symbolic links followed, as rename must replace
 * the target and not the link), also when it does not exist yet. */
static int real_path(const char *path, char *out, bool *exists, char *err, size_t errlen)
{
    if (realpath(path, out)) {
        *exists = true;
        return 0;
    }
    if (errno != ENOENT || strlen(path) >= PATH_MAX) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    *exists = false;
    strcpy(out, path);
    return 0;
}

static void dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == path)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Put text at path through a temporary file beside it, with st's mode
 * and owner (or 0644 and ours when st is NULL). */
static int replace_file(const char *path, const char *text, size_t len, const struct stat *st,
                        char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    dir_of(path, dir, sizeof dir);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (snprintf(tmp, sizeof tmp, "%s/.%s.portico-XXXXXX", dir, base) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file in %s to replace %s: %s", dir, path,
                 strerror(errno));
        return -1;
    }
    const char *step = "write";
    if (fchmod(fd, st ? (st->st_mode & 07777) : 0644) < 0) {
        step = "set the mode of";
        goto fail;
    }
    if (st && (st->st_uid != geteuid() || st->st_gid != getegid()) &&
        fchown(fd, st->st_uid, st->st_gid) < 0) {
        step = "give the original owner to";
        goto fail;
    }
    if (write_all(fd, text, len) < 0 || fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        snprintf(err, errlen, "cannot replace %s: %s%s", path, strerror(e),
                 e == EBUSY ? " (a file mounted on its own, as /etc/hosts is in a container, "
                              "cannot be replaced: point tailscale.hairpin.hosts_file elsewhere)"
                            : "");
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* the rename itself durable; the file is in place either way */
        close(dfd);
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    snprintf(err, errlen, "cannot %s the temporary file %s: %s", step, tmp, strerror(e));
    return -1;
}

int hostsfile_update(const char *path, const char *const *lines, size_t nlines, bool remove,
                     char *err, size_t errlen)
{
    char real[PATH_MAX];
    bool exists;
    if (real_path(path, real, &exists, err, errlen) < 0)
        return -1;
    if (!exists && remove)
        return 0;
    char *cur = NULL, *next = NULL;
    size_t curlen = 0, nextlen = 0;
    struct stat st;
    if (exists) {
        int fd = open(real, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            return -1;
        }
        int r = read_all(fd, path, &st, &cur, &curlen, err, errlen);
        close(fd);
        if (r < 0)
            return -1;
    }
    char why[256];
    if (hostsfile_rewrite(cur ? cur : "", curlen, lines, nlines, remove, &next, &nextlen, why,
                          sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        free(cur);
        return -1;
    }
    int rc = 0;
    if (!exists || nextlen != curlen || memcmp(next, cur, curlen) != 0)
        rc = replace_file(real, next, nextlen, exists ? &st : NULL, err, errlen) < 0 ? -1 : 1;
    free(cur);
    free(next);
    return rc;
}

int hostsfile_check_writable(const char *path, char *err, size_t errlen)
{
    char real[PATH_MAX], dir[PATH_MAX];
    bool exists;
    if (real_path(path, real, &exists, err, errlen) < 0)
        return -1;
    dir_of(real, dir, sizeof dir);
    if (exists && faccessat(AT_FDCWD, real, R_OK | W_OK, AT_EACCESS) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (exists) { /* a damaged block would stop the daemon's first write */
        int fd = open(real, O_RDONLY | O_CLOEXEC);
        char *cur = NULL, why[256];
        size_t len = 0;
        struct stat st;
        struct hostsfile_block b;
        if (fd < 0 || read_all(fd, path, &st, &cur, &len, err, errlen) < 0) {
            if (fd < 0)
                snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            else
                close(fd);
            return -1;
        }
        close(fd);
        int r = hostsfile_find(cur, len, &b, why, sizeof why);
        free(cur);
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, why);
            return -1;
        }
    }
    /* The new file is made beside the old one and renamed over it. */
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0) {
        snprintf(err, errlen, "cannot replace %s: its directory %s is not writable (%s)", path, dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}
