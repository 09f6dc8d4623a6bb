/* tsstatus.c - read tailscaled's status for main-loop modules, one read
 * shared by every module asking at the same time, with back-off (see
 * tsstatus.h). */
#include "tsstatus.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "localapi.h"
#include "loop.h"
#include "tsjson.h"

/* One LocalAPI client per loop and socket, shared by the handles asking
 * there: a handle that asks while its call is in flight gets that answer. */
struct reader {
    struct reader *next;
    struct loop *loop;
    char socket[PATH_MAX];
    struct localapi_client *client;
    struct tsstatus *handles; /* linked by next_handle */
    bool asking;              /* a call is in flight */
    bool dispatching;         /* handing an answer to the handles */
    /* Left by its last handle while handing out an answer: freed from the
     * loop, since a client is not freed from inside its own callback. */
    struct loop_timer unused;
};

struct tsstatus {
    struct loop *loop;
    tsstatus_fn fn;
    void *arg;
    struct reader *reader; /* of its socket; NULL before the first ask */
    struct tsstatus *next_handle;
    struct loop_timer retry;
    uint32_t backoff_ms;
    bool waiting;  /* for the reader's call in flight */
    bool deliver;  /* the answer being handed out is for it */
    bool stopped;  /* no call back until the next ask */
    bool own_time; /* tsstatus_ask_once: the module decides when to ask */
};

static struct reader *readers; /* the main thread's only */

static void back_off(struct tsstatus *s)
{
    loop_timer_arm(s->loop, &s->retry, s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > TIMEOUT_TS_PUBLISH_RETRY_MAX_MS
                        ? TIMEOUT_TS_PUBLISH_RETRY_MAX_MS
                        : s->backoff_ms * 2;
}

/* Hand one handle a status (st) or why there is none. */
static void deliver(struct tsstatus *s, const struct tsjson_status *st, const char *why)
{
    if (!st) {
        if (!s->own_time)
            back_off(s);
        s->fn(s->arg, NULL, why);
        return;
    }
    s->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    uint32_t again = s->fn(s->arg, st, NULL);
    if (again && !s->stopped && !s->own_time)
        loop_timer_arm(s->loop, &s->retry, again);
}

static void reader_free(struct reader *r)
{
    for (struct reader **pp = &readers; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    loop_timer_disarm(r->loop, &r->unused);
    localapi_client_free(r->client); /* its call, if any, is dropped with it */
    free(r);
}

static void on_answer(void *arg, const struct localapi_answer *a)
{
    struct reader *r = arg;
    char why[512];
    r->asking = false;
    struct tsjson_status st = {0};
    if (a->result != LOCALAPI_OK)
        snprintf(why, sizeof why, "%s", a->error);
    else if (tsjson_parse_status(a->body, a->body_len, &st, why, sizeof why) == 0)
        why[0] = '\0';
    for (struct tsstatus *s = r->handles; s; s = s->next_handle) {
        s->deliver = s->waiting && !s->stopped;
        s->waiting = false;
    }
    /* A module called back may ask again (a new call) or stop: the list is
     * walked again from its head after each one. */
    r->dispatching = true;
    for (;;) {
        struct tsstatus *s = r->handles;
        while (s && !s->deliver)
            s = s->next_handle;
        if (!s)
            break;
        s->deliver = false;
        deliver(s, why[0] ? NULL : &st, why);
    }
    r->dispatching = false;
    tsjson_status_free(&st);
    if (!r->handles)
        loop_timer_arm(r->loop, &r->unused, 0);
}

static void on_unused(struct loop *l, struct loop_timer *t)
{
    struct reader *r = container_of(t, struct reader, unused);
    if (!r->handles)
        reader_free(r);
}

/* The handle's ask failed before any call: told now, as a failed read. */
static void failed(struct tsstatus *s, const char *why)
{
    s->waiting = false;
    if (!s->own_time)
        back_off(s);
    s->fn(s->arg, NULL, why);
}

static void call(struct tsstatus *s)
{
    struct reader *r = s->reader;
    char err[512];
    if (s->waiting)
        return;
    s->waiting = true;
    if (r->asking)
        return;
    if (!r->client) {
        r->client =
            localapi_client_new(r->loop, r->socket, TIMEOUT_LOCALAPI_CLI_MS, NULL, err, sizeof err);
        if (!r->client) {
            failed(s, err);
            return;
        }
    }
    struct localapi_request req = {.method = METHOD_GET,
                                   .path = LOCALAPI_PREFIX "status?peers=false"};
    if (localapi_call(r->client, &req, on_answer, r, err, sizeof err) < 0) {
        failed(s, err);
        return;
    }
    r->asking = true;
}

static void on_retry(struct loop *l, struct loop_timer *t)
{
    struct tsstatus *s = container_of(t, struct tsstatus, retry);
    if (!s->stopped && s->reader)
        call(s);
}

struct tsstatus *tsstatus_new(struct loop *l, tsstatus_fn fn, void *arg)
{
    struct tsstatus *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = l;
    s->fn = fn;
    s->arg = arg;
    s->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    s->stopped = true;
    loop_timer_init(&s->retry, on_retry);
    return s;
}

/* A call nobody waits for any more is dropped (not while its answer is
 * being handed out: the loop calls back no one then anyway). */
static void drop_unwaited_call(struct reader *r)
{
    for (struct tsstatus *h = r->handles; h; h = h->next_handle)
        if (h->waiting)
            return;
    if (r->asking && !r->dispatching) {
        localapi_cancel(r->client, on_answer, r);
        r->asking = false;
    }
}

/* The handle leaves its reader, which goes when no handle is left. */
static void leave_reader(struct tsstatus *s)
{
    struct reader *r = s->reader;
    if (!r)
        return;
    for (struct tsstatus **pp = &r->handles; *pp; pp = &(*pp)->next_handle)
        if (*pp == s) {
            *pp = s->next_handle;
            break;
        }
    s->reader = NULL;
    s->next_handle = NULL;
    s->waiting = s->deliver = false;
    if (r->dispatching)
        return; /* on_answer frees it when no handle is left */
    if (!r->handles)
        reader_free(r);
    else
        drop_unwaited_call(r);
}

/* The handle on the reader of socket (made when none is there yet). */
static int join_reader(struct tsstatus *s, const char *socket)
{
    if (s->reader && strcmp(s->reader->socket, socket) == 0)
        return 0;
    leave_reader(s);
    struct reader *r = readers;
    while (r && (r->loop != s->loop || strcmp(r->socket, socket) != 0))
        r = r->next;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return -1;
        r->loop = s->loop;
        loop_timer_init(&r->unused, on_unused);
        snprintf(r->socket, sizeof r->socket, "%s", socket);
        r->next = readers;
        readers = r;
    }
    s->reader = r;
    s->next_handle = r->handles;
    r->handles = s;
    return 0;
}

static void ask(struct tsstatus *s, const char *socket, bool own_time)
{
    s->stopped = false;
    s->own_time = own_time;
    s->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    loop_timer_disarm(s->loop, &s->retry);
    if (join_reader(s, socket) < 0) {
        failed(s, "out of memory");
        return;
    }
    call(s);
}

void tsstatus_ask(struct tsstatus *s, const char *socket)
{
    ask(s, socket, false);
}

void tsstatus_ask_once(struct tsstatus *s, const char *socket)
{
    ask(s, socket, true);
}

void tsstatus_stop(struct tsstatus *s)
{
    s->stopped = true;
    loop_timer_disarm(s->loop, &s->retry);
    if (!s->waiting)
        return;
    s->waiting = false;
    drop_unwaited_call(s->reader);
}

void tsstatus_free(struct tsstatus *s)
{
    if (!s)
        return;
    loop_timer_disarm(s->loop, &s->retry);
    leave_reader(s);
    free(s);
}
