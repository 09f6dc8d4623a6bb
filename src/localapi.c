/* localapi.c - the non-blocking LocalAPI client a worker runs in its loop.
 *
 * One connection to tailscaled, one call on it at a time, the rest in a
 * fixed ring of LIMIT_LOCALAPI_QUEUE calls. The only timer serves whatever
 * the client waits on: the call in flight (its deadline), an idle kept-alive
 * connection (TIMEOUT_LOCALAPI_IDLE_MS), or nothing. Callbacks run from a
 * loop task or from the socket's and timer's events, never from inside
 * localapi_call, so a caller never sees its callback run under its feet. */
#include "localapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "sock.h"

_Static_assert(LOCALAPI_NENDPOINTS == METRICS_LOCALAPI_ENDPOINTS, "metrics endpoint count");
_Static_assert(LOCALAPI_NRESULTS == METRICS_LOCALAPI_RESULTS, "metrics result count");

#define HEAD_CAP (LIMIT_LOCALAPI_PATH_BYTES + 512)

struct call {
    char *msg;       /* the request head and body; owned */
    size_t msg_len;  /* bytes of msg */
    size_t what_len; /* "METHOD /path" at the start of msg, for messages */
    enum http1_method method;
    enum localapi_endpoint ep;
    uint64_t deadline;
    localapi_done_fn fn; /* NULL once cancelled */
    void *arg;
};

struct localapi_client {
    struct loop *loop;
    struct metrics_worker *metrics;
    char path[108];
    uint32_t timeout_ms;
    struct sock s; /* fd -1 while not connected */
    bool busy;     /* calls[head] is on the wire */
    bool reused;   /* the connection served an answer before this call */
    bool retried;  /* the call in flight already retried once on a new connection */
    bool down;     /* the last attempt failed (logged once per outage) */
    size_t out_off;
    struct localapi_reader rd;
    struct loop_timer timer;
    struct loop_task task; /* runs pump() from the loop */
    uint64_t backoff_ms, retry_at;
    char last_error[256];
    struct call calls[LIMIT_LOCALAPI_QUEUE];
    size_t head, count;
};

static void pump(struct localapi_client *c);

static struct call *front(struct localapi_client *c)
{
    return &c->calls[c->head];
}

static void pop(struct localapi_client *c)
{
    free(front(c)->msg);
    front(c)->msg = NULL;
    c->head = (c->head + 1) % LIMIT_LOCALAPI_QUEUE;
    c->count--;
}

static void count(struct localapi_client *c, enum localapi_endpoint ep, enum localapi_result r)
{
    if (c->metrics)
        metrics_count_localapi(c->metrics, (int)ep, (int)r);
}

/* End the front call with a, count it, and call it back (unless cancelled). */
static void deliver(struct localapi_client *c, struct localapi_answer *a)
{
    struct call k = *front(c);
    front(c)->msg = NULL;
    pop(c);
    c->retried = false;
    count(c, k.ep, a->result);
    if (k.fn)
        k.fn(k.arg, a);
    free(k.msg);
}

static void fail_front(struct localapi_client *c, enum localapi_result r, const char *msg)
{
    struct localapi_answer a = {.result = r, .body = "", .error = msg};
    deliver(c, &a);
}

static void close_conn(struct localapi_client *c)
{
    sock_close(&c->s, c->loop, NULL);
    c->s.readable = c->s.writable = c->s.eof = c->s.rdhup = false;
    c->busy = c->reused = false;
    loop_timer_disarm(c->loop, &c->timer);
}

/* tailscaled is unreachable or misbehaving: wait before dialling again. */
static void back_off(struct localapi_client *c, const char *why)
{
    snprintf(c->last_error, sizeof c->last_error, "%s", why);
    c->retry_at = loop_now_ms(c->loop) + c->backoff_ms;
    if (!c->down)
        log_msg(LOG_WARN, "tailscale: %s; calls fail until it answers (next try in %llu ms)", why,
                (unsigned long long)c->backoff_ms);
    c->down = true;
    c->backoff_ms *= 2;
    if (c->backoff_ms > TIMEOUT_LOCALAPI_BACKOFF_MAX_MS)
        c->backoff_ms = TIMEOUT_LOCALAPI_BACKOFF_MAX_MS;
}

/* The connection failed under the call in flight. A kept-alive connection
 * that tailscaled closed before we wrote (no answer byte read) is the
 * usual idle-close race: a GET goes again once on a new connection. */
static void fail_conn(struct localapi_client *c, enum localapi_result r, const char *why)
{
    bool again = c->busy && c->reused && !c->retried && c->rd.len == 0 &&
                 front(c)->method == METHOD_GET && r == LOCALAPI_UNAVAILABLE;
    bool was_busy = c->busy;
    close_conn(c);
    if (again) {
        c->retried = true;
        pump(c);
        return;
    }
    back_off(c, why);
    if (was_busy)
        fail_front(c, r, c->last_error);
    pump(c);
}

static void complete(struct localapi_client *c)
{
    const struct call *k = front(c);
    struct localapi_answer a = {.status = c->rd.resp.status, .head = &c->rd.resp, .error = ""};
    a.body = localapi_reader_body(&c->rd, &a.body_len);
    char msg[512];
    if (a.status >= 200 && a.status <= 299) {
        a.result = LOCALAPI_OK;
    } else {
        a.result = LOCALAPI_HTTP_ERROR;
        localapi_status_error(&c->rd, k->msg, k->what_len, msg, sizeof msg);
        a.error = msg;
    }
    if (c->down)
        log_msg(LOG_INFO, "tailscale: LocalAPI at %s answers again", c->path);
    c->down = false;
    c->backoff_ms = TIMEOUT_LOCALAPI_BACKOFF_MS;
    c->busy = false;
    bool keep = c->rd.resp.keep_alive && !c->rd.extra;
    loop_timer_disarm(c->loop, &c->timer);
    deliver(c, &a);
    /* The answer's bytes are consumed: the connection is reusable now. */
    if (keep && c->s.io.fd >= 0) {
        c->reused = true;
    } else {
        close_conn(c);
    }
    pump(c);
}

static void on_readable(struct localapi_client *c)
{
    char err[256];
    for (;;) {
        size_t avail;
        char *p = localapi_reader_space(&c->rd, &avail, err, sizeof err);
        if (!p) {
            fail_conn(c, LOCALAPI_BAD_ANSWER, err);
            return;
        }
        ssize_t n = sock_recv(&c->s, p, avail);
        if (n < 0 && errno == EAGAIN) {
            c->s.readable = false;
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, sizeof err, "reading from tailscaled at %s: %s", c->path,
                     strerror(errno));
            fail_conn(c, LOCALAPI_UNAVAILABLE, err);
            return;
        }
        int f = localapi_reader_feed(&c->rd, (size_t)n, n == 0, err, sizeof err);
        if (f < 0) {
            fail_conn(c, n == 0 ? LOCALAPI_UNAVAILABLE : LOCALAPI_BAD_ANSWER, err);
            return;
        }
        if (f > 0) {
            complete(c);
            return;
        }
    }
}

static void on_writable(struct localapi_client *c)
{
    const struct call *k = front(c);
    int rc = sock_write_rest(&c->s, k->msg, k->msg_len, &c->out_off, false);
    if (rc < 0) {
        char err[256];
        snprintf(err, sizeof err, "writing to tailscaled at %s: %s", c->path, strerror(-rc));
        fail_conn(c, LOCALAPI_UNAVAILABLE, err);
    }
}

static void on_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct localapi_client *c = container_of(io, struct localapi_client, s.io);
    if (!sock_note_events(&c->s, events))
        return;
    if (!c->busy) {
        /* Nothing is expected on an idle connection: tailscaled closed it
         * (or sent bytes that answer nothing). Reconnect when needed. */
        if (sock_peek(&c->s) != 0)
            close_conn(c);
        return;
    }
    if (c->out_off < front(c)->msg_len && c->s.writable)
        on_writable(c);
    if (c->busy && c->s.io.fd >= 0 && c->out_off == front(c)->msg_len &&
        (c->s.readable || c->s.rdhup))
        on_readable(c);
}

static void on_timer(struct loop *l, struct loop_timer *t)
{
    struct localapi_client *c = container_of(t, struct localapi_client, timer);
    if (!c->busy) {
        close_conn(c); /* idle too long */
        return;
    }
    char err[256];
    const struct call *k = front(c);
    snprintf(err, sizeof err, "tailscaled did not answer %.*s within %u ms", (int)k->what_len,
             k->msg, c->timeout_ms);
    fail_conn(c, LOCALAPI_TIMEOUT, err);
}

static void on_task(struct loop *l, struct loop_task *t)
{
    pump(container_of(t, struct localapi_client, task));
}

/* Fail or drop what cannot go out, then put the front call on the wire. */
static void pump(struct localapi_client *c)
{
    while (!c->busy && c->count) {
        struct call *k = front(c);
        uint64_t now = loop_now_ms(c->loop);
        if (!k->fn) {
            pop(c);
            continue;
        }
        char err[400];
        if (now >= k->deadline) {
            snprintf(err, sizeof err, "%.*s waited %u ms for tailscaled and was dropped",
                     (int)k->what_len, k->msg, c->timeout_ms);
            fail_front(c, LOCALAPI_TIMEOUT, err);
            continue;
        }
        if (now < c->retry_at) {
            snprintf(err, sizeof err, "%s (next try in %llu ms)", c->last_error,
                     (unsigned long long)(c->retry_at - now));
            fail_front(c, LOCALAPI_UNAVAILABLE, err);
            continue;
        }
        if (c->s.io.fd < 0) {
            int fd = localapi_connect(c->path, err, sizeof err);
            if (fd >= 0 && sock_open(&c->s, c->loop, fd, on_io) < 0) {
                snprintf(err, sizeof err, "cannot watch the tailscaled socket: %s",
                         strerror(errno));
                close(fd);
                fd = -1;
            }
            if (fd < 0) {
                back_off(c, err);
                fail_front(c, LOCALAPI_UNAVAILABLE, c->last_error);
                continue;
            }
            c->reused = false;
        }
        c->busy = true;
        c->out_off = 0;
        localapi_reader_init(&c->rd, k->method);
        loop_timer_arm(c->loop, &c->timer, k->deadline - now);
        on_writable(c);
        return;
    }
    if (!c->busy && !c->count && c->s.io.fd >= 0)
        loop_timer_arm(c->loop, &c->timer, TIMEOUT_LOCALAPI_IDLE_MS);
}

struct localapi_client *localapi_client_new(struct loop *l, const char *path, uint32_t timeout_ms,
                                            struct metrics_worker *metrics, char *err,
                                            size_t errlen)
{
    if (!path)
        path = LOCALAPI_DEFAULT_SOCKET;
    struct localapi_client *c = calloc(1, sizeof *c);
    if (!c || strlen(path) >= sizeof c->path) {
        snprintf(err, errlen, c ? "tailscaled socket path %s is too long" : "out of memory", path);
        free(c);
        return NULL;
    }
    c->loop = l;
    c->metrics = metrics;
    strcpy(c->path, path);
    c->timeout_ms = timeout_ms ? timeout_ms : TIMEOUT_LOCALAPI_MS;
    c->s.io.fd = -1;
    c->backoff_ms = TIMEOUT_LOCALAPI_BACKOFF_MS;
    loop_timer_init(&c->timer, on_timer);
    loop_task_init(&c->task, on_task);
    return c;
}

void localapi_client_free(struct localapi_client *c)
{
    if (!c)
        return;
    close_conn(c);
    loop_task_cancel(c->loop, &c->task);
    while (c->count)
        pop(c);
    localapi_reader_free(&c->rd);
    free(c);
}

int localapi_call(struct localapi_client *c, const struct localapi_request *r, localapi_done_fn fn,
                  void *arg, char *err, size_t errlen)
{
    char head[HEAD_CAP];
    long hlen = localapi_build_request(r, head, sizeof head, err, errlen);
    if (hlen < 0)
        return -1;
    enum localapi_endpoint ep = localapi_endpoint_of(r->path);
    if (c->count == LIMIT_LOCALAPI_QUEUE) {
        count(c, ep, LOCALAPI_QUEUE_FULL);
        snprintf(err, errlen, "%d LocalAPI calls are waiting for tailscaled already",
                 LIMIT_LOCALAPI_QUEUE);
        return -1;
    }
    size_t blen = r->body ? r->body_len : 0;
    char *msg = malloc((size_t)hlen + blen);
    if (!msg) {
        snprintf(err, errlen, "out of memory queueing a LocalAPI call");
        return -1;
    }
    memcpy(msg, head, (size_t)hlen);
    if (blen)
        memcpy(msg + hlen, r->body, blen);
    struct call *k = &c->calls[(c->head + c->count) % LIMIT_LOCALAPI_QUEUE];
    *k = (struct call){
        .msg = msg,
        .msg_len = (size_t)hlen + blen,
        .what_len = strcspn(head, " ") + 1 + strlen(r->path),
        .method = r->method,
        .ep = ep,
        .deadline = loop_now_ms(c->loop) + c->timeout_ms,
        .fn = fn,
        .arg = arg,
    };
    c->count++;
    if (!c->busy)
        loop_task_queue(c->loop, &c->task);
    return 0;
}

void localapi_cancel(struct localapi_client *c, localapi_done_fn fn, const void *arg)
{
    for (size_t i = 0; i < c->count; i++) {
        struct call *k = &c->calls[(c->head + i) % LIMIT_LOCALAPI_QUEUE];
        if (k->fn == fn && k->arg == arg)
            k->fn = NULL;
    }
}

size_t localapi_pending(const struct localapi_client *c)
{
    return c->count;
}
