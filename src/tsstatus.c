/* tsstatus.c - read tailscaled's status for a main-loop module, with
 * back-off (see tsstatus.h). */
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

struct tsstatus {
    struct loop *loop;
    tsstatus_fn fn;
    void *arg;
    struct localapi_client *client;
    char socket[PATH_MAX]; /* the client's; "" before the first ask */
    struct loop_timer retry;
    uint32_t backoff_ms;
    bool asking;  /* a call is in flight */
    bool stopped; /* no call back until the next ask */
};

static void back_off(struct tsstatus *s)
{
    loop_timer_arm(s->loop, &s->retry, s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > TIMEOUT_TS_PUBLISH_RETRY_MAX_MS
                        ? TIMEOUT_TS_PUBLISH_RETRY_MAX_MS
                        : s->backoff_ms * 2;
}

static void on_answer(void *arg, const struct localapi_answer *a)
{
    struct tsstatus *s = arg;
    char why[512];
    s->asking = false;
    if (s->stopped)
        return;
    struct tsjson_status st = {0};
    if (a->result != LOCALAPI_OK)
        snprintf(why, sizeof why, "%s", a->error);
    else if (tsjson_parse_status(a->body, a->body_len, &st, why, sizeof why) == 0)
        why[0] = '\0';
    if (why[0]) {
        tsjson_status_free(&st);
        back_off(s);
        s->fn(s->arg, NULL, why);
        return;
    }
    s->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    uint32_t again = s->fn(s->arg, &st, NULL);
    tsjson_status_free(&st);
    if (again && !s->stopped)
        loop_timer_arm(s->loop, &s->retry, again);
}

static void call(struct tsstatus *s)
{
    char err[512];
    if (s->asking)
        return;
    if (!s->client) {
        s->client =
            localapi_client_new(s->loop, s->socket, TIMEOUT_LOCALAPI_CLI_MS, NULL, err, sizeof err);
        if (!s->client) {
            back_off(s);
            s->fn(s->arg, NULL, err);
            return;
        }
    }
    struct localapi_request req = {.method = METHOD_GET,
                                   .path = LOCALAPI_PREFIX "status?peers=false"};
    if (localapi_call(s->client, &req, on_answer, s, err, sizeof err) < 0) {
        back_off(s);
        s->fn(s->arg, NULL, err);
        return;
    }
    s->asking = true;
}

static void on_retry(struct loop *l, struct loop_timer *t)
{
    struct tsstatus *s = container_of(t, struct tsstatus, retry);
    if (!s->stopped)
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

void tsstatus_ask(struct tsstatus *s, const char *socket)
{
    if (strcmp(s->socket, socket) != 0) {
        localapi_client_free(s->client); /* its call, if any, is dropped with it */
        s->client = NULL;
        s->asking = false;
        snprintf(s->socket, sizeof s->socket, "%s", socket);
    }
    s->stopped = false;
    s->backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MS;
    loop_timer_disarm(s->loop, &s->retry);
    call(s);
}

void tsstatus_stop(struct tsstatus *s)
{
    s->stopped = true;
    loop_timer_disarm(s->loop, &s->retry);
    if (s->client && s->asking)
        localapi_cancel(s->client, on_answer, s);
    s->asking = false;
}

void tsstatus_free(struct tsstatus *s)
{
    if (!s)
        return;
    loop_timer_disarm(s->loop, &s->retry);
    localapi_client_free(s->client);
    free(s);
}
