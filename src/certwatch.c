/* certwatch.c - noticing that a certificate or key file was renewed (see
 * certwatch.h). */
#include "certwatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF)

/* How a file looked when it was loaded; all zero when it could not be stat'ed. */
struct fingerprint {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct watched {
    char *path;
    const char *base; /* points into path: the name events carry */
    int wd;           /* watch on the file's directory; -1 if none */
    struct fingerprint fp;
};

struct certwatch {
    struct loop *loop;
    struct loop_io io;
    struct loop_timer timer;
    certwatch_fn fn;
    void *arg;
    struct watched *files;
    size_t nfiles;
    uint64_t first_change; /* loop time of the first event of the pending burst; 0: none */
    const char *named;     /* a configured file an event named in this burst, or NULL */
};

static void fingerprint_take(const char *path, struct fingerprint *fp)
{
    struct stat st;
    memset(fp, 0, sizeof *fp);
    if (stat(path, &st) < 0)
        return;
    fp->dev = st.st_dev;
    fp->ino = st.st_ino;
    fp->size = st.st_size;
    fp->mtime = st.st_mtim;
    fp->ctime = st.st_ctim;
}

static bool fingerprint_same(const struct fingerprint *a, const struct fingerprint *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The burst is over: tell the owner if a configured file really changed. */
static void on_timer(struct loop *l, struct loop_timer *t)
{
    struct certwatch *cw = container_of(t, struct certwatch, timer);
    const char *changed = cw->named;
    for (size_t i = 0; i < cw->nfiles && !changed; i++) {
        struct fingerprint now;
        fingerprint_take(cw->files[i].path, &now);
        if (!fingerprint_same(&now, &cw->files[i].fp))
            changed = cw->files[i].path;
    }
    cw->first_change = 0;
    cw->named = NULL;
    if (!changed)
        return;
    /* A copy: the callback reloads, and certwatch_set replaces cw->files. */
    char path[4096];
    snprintf(path, sizeof path, "%s", changed);
    cw->fn(cw->arg, path);
}

/* Is this event about one of the watched directories (or the queue)? Sets
 * cw->named when it names a configured file. */
static bool relevant(struct certwatch *cw, const struct inotify_event *ev)
{
    if (ev->mask & IN_IGNORED)
        return false; /* a watch went away (inotify_rm_watch, or its directory did) */
    if (ev->mask & IN_Q_OVERFLOW)
        return true; /* events were lost: compare the files */
    bool ours = false;
    for (size_t i = 0; i < cw->nfiles; i++) {
        if (cw->files[i].wd != ev->wd)
            continue;
        ours = true;
        if (ev->len && strcmp(ev->name, cw->files[i].base) == 0 && !cw->named)
            cw->named = cw->files[i].path;
    }
    return ours;
}

static void on_events(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct certwatch *cw = container_of(io, struct certwatch, io);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    for (;;) {
        ssize_t n = read(io->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            any = relevant(cw, ev) || any;
            p += sizeof *ev + ev->len;
        }
    }
    if (!any)
        return;
    uint64_t now = loop_now_ms(l);
    if (!cw->first_change)
        cw->first_change = now;
    /* Each event pushes the reload back, up to the cap after the first. */
    uint64_t waited = now - cw->first_change;
    uint64_t left = waited >= CERTWATCH_SETTLE_MAX_MS ? 0 : CERTWATCH_SETTLE_MAX_MS - waited;
    loop_timer_arm(l, &cw->timer, left < CERTWATCH_SETTLE_MS ? left : CERTWATCH_SETTLE_MS);
}

struct certwatch *certwatch_new(struct loop *l, certwatch_fn fn, void *arg)
{
    struct certwatch *cw = calloc(1, sizeof *cw);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (!cw || fd < 0 || loop_io_add(l, &cw->io, fd, EPOLLIN | EPOLLET, on_events) < 0) {
        log_msg(LOG_WARN, "cannot watch certificate files (inotify: %s); renewals need a SIGHUP",
                cw ? strerror(errno) : "out of memory");
        if (fd >= 0)
            close(fd);
        free(cw);
        return NULL;
    }
    cw->loop = l;
    cw->fn = fn;
    cw->arg = arg;
    loop_timer_init(&cw->timer, on_timer);
    return cw;
}

static void files_free(struct watched *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
}

/* Watch the directory of path; the watch descriptor, or -1. */
static int watch_dir_of(struct certwatch *cw, const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t dlen = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (dlen >= sizeof dir)
        return -1;
    memcpy(dir, slash ? path : ".", dlen);
    dir[dlen] = '\0';
    /* A directory watched already keeps its descriptor (the mask is the same). */
    int wd = inotify_add_watch(cw->io.fd, dir, WATCH_MASK);
    if (wd < 0)
        log_msg(LOG_WARN, "cannot watch %s for certificate renewals: %s", dir, strerror(errno));
    return wd;
}

void certwatch_set(struct certwatch *cw, const struct config *c)
{
    if (!cw)
        return;
    size_t n = c->tls ? 2 * c->ntls_certs : 0;
    struct watched *files = calloc(n ? n : 1, sizeof *files);
    if (!files)
        return; /* out of memory: keep watching the old set */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *path = i % 2 ? c->tls_certs[i / 2].key : c->tls_certs[i / 2].cert;
        struct watched *f = &files[k];
        f->path = strdup(path);
        if (!f->path)
            continue;
        const char *slash = strrchr(f->path, '/');
        f->base = slash ? slash + 1 : f->path;
        f->wd = watch_dir_of(cw, f->path);
        fingerprint_take(f->path, &f->fp);
        k++;
    }
    /* Only directories nobody needs any more are unwatched, so a directory
     * kept across a reload never misses an event. */
    for (size_t i = 0; i < cw->nfiles; i++) {
        int wd = cw->files[i].wd;
        bool kept = wd < 0;
        for (size_t j = 0; j < k && !kept; j++)
            kept = files[j].wd == wd;
        for (size_t j = 0; j < i && !kept; j++)
            kept = cw->files[j].wd == wd; /* seen already: removed then if at all */
        if (!kept)
            inotify_rm_watch(cw->io.fd, wd);
    }
    files_free(cw->files, cw->nfiles);
    cw->files = files;
    cw->nfiles = k;
    cw->named = NULL;
}

void certwatch_free(struct certwatch *cw)
{
    if (!cw)
        return;
    int fd = cw->io.fd;
    loop_io_del(cw->loop, &cw->io);
    close(fd);
    loop_timer_disarm(cw->loop, &cw->timer);
    files_free(cw->files, cw->nfiles);
    free(cw);
}
