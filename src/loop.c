/* loop.c - the epoll event loop (see loop.h). */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_EVENTS 256

struct post {
    struct post *next;
    loop_post_fn fn;
    void *arg;
};

struct loop {
    int epfd;
    struct loop_io wake; /* eventfd that loop_post writes to */
    uint64_t now;
    bool stop;
    struct loop_timer **heap;
    size_t nheap, capheap;
    struct loop_task *tasks, **tasks_tail;
    pthread_mutex_t post_mu;
    struct post *posts, **posts_tail;
    void (*before_wait)(struct loop *l, void *arg);
    void *before_wait_arg;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now;
}

void loop_update_time(struct loop *l)
{
    l->now = monotonic_ms();
}

static void run_posts(struct loop *l, struct loop_io *io, uint32_t events)
{
    uint64_t n;
    while (read(io->fd, &n, sizeof n) > 0)
        ;
    pthread_mutex_lock(&l->post_mu);
    struct post *p = l->posts;
    l->posts = NULL;
    l->posts_tail = &l->posts;
    pthread_mutex_unlock(&l->post_mu);
    while (p) {
        struct post *next = p->next;
        p->fn(l, p->arg);
        free(p);
        p = next;
    }
}

struct loop *loop_new(char *err, size_t errlen)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || efd < 0) {
        snprintf(err, errlen, "cannot create event loop: %s", strerror(errno));
        if (l->epfd >= 0)
            close(l->epfd);
        if (efd >= 0)
            close(efd);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->post_mu, NULL);
    l->posts_tail = &l->posts;
    l->tasks_tail = &l->tasks;
    l->now = monotonic_ms();
    l->wake.fd = -1;
    if (loop_io_add(l, &l->wake, efd, EPOLLIN, run_posts) < 0) {
        snprintf(err, errlen, "cannot watch eventfd: %s", strerror(errno));
        close(efd);
        loop_free(l);
        return NULL;
    }
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->wake.fd >= 0)
        close(l->wake.fd);
    close(l->epfd);
    struct post *p = l->posts;
    while (p) {
        struct post *next = p->next;
        free(p);
        p = next;
    }
    pthread_mutex_destroy(&l->post_mu);
    free(l->heap);
    free(l);
}

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    io->fd = fd;
    io->fn = fn;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    return 0;
}

int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
    if (io->fd >= 0)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* ---- timers: binary min-heap on deadline -------------------------------- */

static void heap_place(struct loop *l, size_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (l->heap[parent]->deadline <= t->deadline)
            break;
        heap_place(l, i, l->heap[parent]);
        i = parent;
    }
    heap_place(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && l->heap[c + 1]->deadline < l->heap[c]->deadline)
            c++;
        if (t->deadline <= l->heap[c]->deadline)
            break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn)
{
    t->deadline = 0;
    t->slot = 0;
    t->fn = fn;
}

void loop_timer_disarm(struct loop *l, struct loop_timer *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct loop_timer *last = l->heap[--l->nheap];
    if (i == l->nheap)
        return;
    heap_place(l, i, last);
    if (i > 0 && l->heap[(i - 1) / 2]->deadline > last->deadline)
        heap_up(l, i);
    else
        heap_down(l, i);
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms)
{
    uint64_t deadline = l->now + ms;
    if (t->slot) {
        uint64_t old = t->deadline;
        t->deadline = deadline;
        if (deadline < old)
            heap_up(l, t->slot - 1);
        else
            heap_down(l, t->slot - 1);
        return;
    }
    if (l->nheap == l->capheap) {
        size_t cap = l->capheap ? l->capheap * 2 : 64;
        struct loop_timer **h = realloc(l->heap, cap * sizeof *h);
        if (!h) {
            /* Out of memory: fire at once rather than never, so nothing waits forever. */
            t->deadline = l->now;
            t->fn(l, t);
            return;
        }
        l->heap = h;
        l->capheap = cap;
    }
    t->deadline = deadline;
    l->heap[l->nheap] = t;
    t->slot = ++l->nheap;
    heap_up(l, l->nheap - 1);
}

static void run_timers(struct loop *l)
{
    while (l->nheap && l->heap[0]->deadline <= l->now) {
        struct loop_timer *t = l->heap[0];
        loop_timer_disarm(l, t);
        t->fn(l, t);
    }
}

/* ---- tasks ----------------------------------------------------------------- */

void loop_task_init(struct loop_task *t, loop_task_fn fn)
{
    t->next = NULL;
    t->queued = false;
    t->fn = fn;
}

void loop_task_queue(struct loop *l, struct loop_task *t)
{
    if (t->queued)
        return;
    t->queued = true;
    t->next = NULL;
    *l->tasks_tail = t;
    l->tasks_tail = &t->next;
}

void loop_task_cancel(struct loop *l, struct loop_task *t)
{
    if (!t->queued)
        return;
    for (struct loop_task **pp = &l->tasks; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            if (l->tasks_tail == &t->next)
                l->tasks_tail = pp;
            break;
        }
    }
    t->queued = false;
    t->next = NULL;
}

static void run_tasks(struct loop *l)
{
    /* Tasks queued while running wait for the next round, so a task that
     * re-queues itself cannot starve the event loop. */
    struct loop_task *t = l->tasks;
    l->tasks = NULL;
    l->tasks_tail = &l->tasks;
    while (t) {
        struct loop_task *next = t->next;
        t->queued = false;
        t->next = NULL;
        t->fn(l, t);
        t = next;
    }
}

/* ---- cross-thread posts ------------------------------------------------------ */

int loop_post(struct loop *l, loop_post_fn fn, void *arg)
{
    struct post *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->post_mu);
    *l->posts_tail = p;
    l->posts_tail = &p->next;
    pthread_mutex_unlock(&l->post_mu);
    uint64_t one = 1;
    ssize_t w = write(l->wake.fd, &one, sizeof one);
    (void)w; /* EAGAIN means a wake-up is already pending */
    return 0;
}

void loop_set_before_wait(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg)
{
    l->before_wait = fn;
    l->before_wait_arg = arg;
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

void loop_run(struct loop *l)
{
    struct epoll_event evs[LOOP_EVENTS];
    l->stop = false;
    while (!l->stop) {
        while (l->tasks)
            run_tasks(l);
        if (l->before_wait)
            l->before_wait(l, l->before_wait_arg);
        int timeout = -1;
        if (l->tasks) {
            timeout = 0;
        } else if (l->nheap) {
            uint64_t d = l->heap[0]->deadline;
            timeout = d <= l->now ? 0 : (d - l->now > 86400000u ? 86400000 : (int)(d - l->now));
        }
        int n = epoll_wait(l->epfd, evs, LOOP_EVENTS, timeout);
        l->now = monotonic_ms();
        for (int i = 0; i < n; i++) {
            struct loop_io *io = evs[i].data.ptr;
            io->fn(l, io, evs[i].events);
        }
        run_timers(l);
    }
}
