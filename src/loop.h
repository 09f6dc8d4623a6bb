/* loop.h - a small epoll event loop: file events, timers, deferred tasks
 * and a thread-safe post queue.
 *
 * One loop runs per worker thread. File events are edge-triggered: the
 * owner records readiness and reads or writes until EAGAIN, so interest is
 * registered once per descriptor and never changed. Timers live in a
 * binary heap; the loop sleeps without a timeout when none is armed, which
 * is what keeps an idle portico at zero CPU. */
#ifndef PORTICO_LOOP_H
#define PORTICO_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

struct loop_io;
typedef void (*loop_io_fn)(struct loop *l, struct loop_io *io, uint32_t events);
struct loop_io {
    int fd;
    loop_io_fn fn;
};

struct loop_timer;
typedef void (*loop_timer_fn)(struct loop *l, struct loop_timer *t);
struct loop_timer {
    uint64_t deadline; /* loop_now_ms() time at which fn runs */
    size_t slot;       /* heap position + 1; 0 while disarmed */
    loop_timer_fn fn;
};

struct loop_task;
typedef void (*loop_task_fn)(struct loop *l, struct loop_task *t);
struct loop_task {
    struct loop_task *next;
    bool queued;
    loop_task_fn fn;
};

typedef void (*loop_post_fn)(struct loop *l, void *arg);

struct loop *loop_new(char *err, size_t errlen);
void loop_free(struct loop *l);

/* Register fd for events (EPOLLIN, EPOLLOUT, EPOLLET, ...). */
int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn);
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events);
/* Unregister; safe to call for an io that was never added (fd < 0). */
void loop_io_del(struct loop *l, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn);
/* (Re)arm to fire after ms milliseconds. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms);
void loop_timer_disarm(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t)
{
    return t->slot != 0;
}

void loop_task_init(struct loop_task *t, loop_task_fn fn);
/* Run t->fn from the loop before it next waits (once, however often queued). */
void loop_task_queue(struct loop *l, struct loop_task *t);
void loop_task_cancel(struct loop *l, struct loop_task *t);

/* Run fn(l, arg) on l's thread. Safe from any thread. Returns 0 or -ENOMEM. */
int loop_post(struct loop *l, loop_post_fn fn, void *arg);

/* Called each time the loop is about to wait (flush buffered logs, ...). */
void loop_set_before_wait(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg);

/* Milliseconds on the monotonic clock, as of the current loop iteration. */
uint64_t loop_now_ms(const struct loop *l);
/* Refresh the cached time (after a long computation). */
void loop_update_time(struct loop *l);

void loop_run(struct loop *l);
/* Make loop_run return after the current iteration (call on l's thread). */
void loop_stop(struct loop *l);

/* Owner of a struct embedded at a known member. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
