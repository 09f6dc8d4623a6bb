/* metrics_http.c - the /metrics endpoint (see metrics_http.h): accept,
 * read one request head, answer with metrics_render's text, close. */
#include "metrics_http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "listener.h"
#include "metrics.h"
#include "status.h"
#include "worker.h"

#define METRICS_TIMEOUT_MS  5000 /* a scrape must send its request within this */
#define METRICS_CLIENTS_MAX 64   /* concurrent scrapes */

struct metrics_client {
    struct loop_io io;
    struct loop_timer timer;
    struct metrics_http *mh;
    char req[LIMIT_METRICS_REQUEST_BYTES];
    size_t reqlen;
    char *resp; /* malloc'd once the request is complete */
    size_t resplen, respoff;
};

static void client_free(struct metrics_client *mc)
{
    struct loop *l = mc->mh->loop;
    loop_io_del(l, &mc->io);
    loop_timer_disarm(l, &mc->timer);
    close(mc->io.fd);
    free(mc->resp);
    mc->mh->nclients--;
    free(mc);
}

static void client_timeout(struct loop *l, struct loop_timer *t)
{
    client_free(container_of(t, struct metrics_client, timer));
}

static int client_build_response(struct metrics_client *mc)
{
    const struct server *srv = mc->mh->srv;
    const char *status = "200 OK";
    char *body = NULL;
    size_t blen = 0;
    char small[128];
    bool get = mc->reqlen >= 4 && memcmp(mc->req, "GET ", 4) == 0;
    bool head = mc->reqlen >= 5 && memcmp(mc->req, "HEAD ", 5) == 0;
    const char *target = mc->req + (get ? 4 : 5);
    enum { PAGE_NONE, PAGE_METRICS, PAGE_STATUS_HTML, PAGE_STATUS_JSON } page = PAGE_NONE;
    if (strncmp(target, "/metrics ", 9) == 0 || strncmp(target, "/metrics?", 9) == 0)
        page = PAGE_METRICS;
    else if (strncmp(target, "/ ", 2) == 0 || strncmp(target, "/?", 2) == 0)
        page = PAGE_STATUS_HTML;
    else if (strncmp(target, "/status.json ", 13) == 0 || strncmp(target, "/status.json?", 13) == 0)
        page = PAGE_STATUS_JSON;
    const char *ctype = "text/plain";
    if (!get && !head) {
        status = "405 Method Not Allowed";
        blen = (size_t)snprintf(small, sizeof small,
                                "method not allowed: use GET /metrics, / or /status.json\n");
    } else if (page == PAGE_NONE) {
        status = "404 Not Found";
        blen = (size_t)snprintf(small, sizeof small,
                                "not found: metrics are at /metrics, the status page at /\n");
    } else if (page == PAGE_STATUS_HTML) {
        body = strdup(status_page_html);
        blen = body ? strlen(body) : 0;
        ctype = "text/html; charset=utf-8";
    } else if (page == PAGE_STATUS_JSON) {
        body = status_render_json(srv, &blen);
        ctype = "application/json";
    } else {
        struct metrics_worker *ws[LIMIT_WORKERS_MAX];
        for (unsigned i = 0; i < srv->nworkers; i++)
            ws[i] = &srv->workers[i].metrics;
        body = metrics_render(ws, srv->nworkers, &blen);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    if ((get || head) && page != PAGE_NONE && !body) {
        status = "500 Internal Server Error";
        blen = (size_t)snprintf(small, sizeof small, "out of memory\n");
        ctype = "text/plain";
    }
    char head_buf[256];
    int hl = snprintf(head_buf, sizeof head_buf,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                      status, ctype, blen);
    size_t total = (size_t)hl + (head ? 0 : blen);
    mc->resp = malloc(total);
    if (!mc->resp) {
        free(body);
        return -1;
    }
    memcpy(mc->resp, head_buf, (size_t)hl);
    if (!head)
        memcpy(mc->resp + hl, body ? body : small, blen);
    free(body);
    mc->resplen = total;
    return 0;
}

static void client_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct metrics_client *mc = container_of(io, struct metrics_client, io);
    if (!mc->resp) {
        for (;;) {
            if (mc->reqlen == sizeof mc->req - 1) {
                client_free(mc);
                return;
            }
            ssize_t n = read(io->fd, mc->req + mc->reqlen, sizeof mc->req - 1 - mc->reqlen);
            if (n > 0) {
                mc->reqlen += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            client_free(mc); /* EOF or error before a whole request */
            return;
        }
        mc->req[mc->reqlen] = '\0';
        if (!strstr(mc->req, "\r\n\r\n") && !strstr(mc->req, "\n\n"))
            return;
        if (client_build_response(mc) < 0) {
            client_free(mc);
            return;
        }
    }
    while (mc->respoff < mc->resplen) {
        ssize_t n = send(io->fd, mc->resp + mc->respoff, mc->resplen - mc->respoff, MSG_NOSIGNAL);
        if (n > 0) {
            mc->respoff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break;
    }
    client_free(mc);
}

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct metrics_http *mh = container_of(io, struct metrics_http, io);
    for (;;) { /* edge-triggered: until EAGAIN */
        int fd = accept4(mh->l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct metrics_client *mc =
            mh->nclients < METRICS_CLIENTS_MAX ? calloc(1, sizeof *mc) : NULL;
        if (!mc) {
            close(fd);
            continue;
        }
        mc->mh = mh;
        mh->nclients++;
        loop_timer_init(&mc->timer, client_timeout);
        if (loop_io_add(l, &mc->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, client_io) < 0) {
            mc->io.fd = fd;
            client_free(mc);
            continue;
        }
        loop_timer_arm(l, &mc->timer, METRICS_TIMEOUT_MS);
    }
}

void metrics_http_init(struct metrics_http *mh, struct loop *loop, const struct server *srv)
{
    *mh = (struct metrics_http){.io = {.fd = -1}, .loop = loop, .srv = srv};
}

int metrics_http_apply(struct metrics_http *mh, const struct config *c, struct listener **pool,
                       size_t npool, char *err, size_t errlen)
{
    struct listener *old = mh->l;
    if (!c->metrics_enabled) {
        metrics_http_close(mh);
        return 0;
    }
    if (old && (listener_bound_to(old, &c->metrics_listen) ||
                listener_any_port_for(old, &c->metrics_listen, "metrics")))
        return 0;
    struct listener *l = listener_pool_take(pool, npool, &c->metrics_listen, "metrics");
    if (!l)
        l = listener_open(&c->metrics_listen, "metrics", err, errlen);
    if (!l)
        return -1;
    metrics_http_close(mh);
    mh->l = l;
    if (loop_io_add(mh->loop, &mh->io, l->fd, EPOLLIN | EPOLLET, on_accept) < 0) {
        snprintf(err, errlen, "metrics listener %s: %s", l->bound.text, strerror(errno));
        return -1;
    }
    return 0;
}

void metrics_http_close(struct metrics_http *mh)
{
    if (!mh->l)
        return;
    loop_io_del(mh->loop, &mh->io);
    listener_unref(mh->l);
    mh->l = NULL;
}
