/* test_localapi.c - the LocalAPI client without tailscaled: the
 * non-blocking client in a real event loop against a scripted server on a
 * Unix socket in a temporary directory (keep-alive reuse, chunked answers,
 * errors, timeouts, a missing socket and its back-off, a full queue,
 * cancel, the retry after a kept-alive connection was closed), and the
 * blocking call. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "localapi.h"
#include "loop.h"
#include "metrics.h"

static char err[512];

/* ---- the client against a scripted server --------------------------------- */

struct server {
    struct loop *loop;
    struct loop_io lio, cio;
    char path[108];
    int accepts, requests;
    char got[8192];
    size_t got_len;
    const char *replies[8]; /* one per request; NULL: say nothing */
    bool close_after_reply;
};

static struct server srv;
static const char CLOSE[] = "close";

static void on_server_conn(struct loop *l, struct loop_io *io, uint32_t events)
{
    for (;;) {
        ssize_t n = read(io->fd, srv.got + srv.got_len, sizeof srv.got - 1 - srv.got_len);
        if (n <= 0)
            break;
        srv.got_len += (size_t)n;
        srv.got[srv.got_len] = '\0';
    }
    /* One request per head (these tests send GETs and one small POST). */
    char *end;
    while ((end = strstr(srv.got, "\r\n\r\n")) != NULL) {
        size_t used = (size_t)(end + 4 - srv.got);
        const char *cl = strstr(srv.got, "Content-Length: ");
        if (cl && cl < end)
            used += (size_t)atoi(cl + 16);
        if (used > srv.got_len)
            return;
        const char *reply = srv.replies[srv.requests++];
        memmove(srv.got, srv.got + used, srv.got_len - used + 1);
        srv.got_len -= used;
        if (reply == CLOSE) { /* tailscaled closed the idle connection as the call came */
            loop_io_del(l, io);
            close(io->fd);
            io->fd = -1;
            return;
        }
        if (reply) {
            assert_int_equal(write(io->fd, reply, strlen(reply)), strlen(reply));
            if (srv.close_after_reply) {
                loop_io_del(l, io);
                close(io->fd);
                io->fd = -1;
                return;
            }
        }
    }
}

static void on_server_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    srv.accepts++;
    if (srv.cio.fd >= 0) {
        loop_io_del(l, &srv.cio);
        close(srv.cio.fd);
    }
    loop_io_add(l, &srv.cio, fd, EPOLLIN | EPOLLET, on_server_conn);
}

static void server_start(void)
{
    memset(&srv, 0, sizeof srv);
    srv.cio.fd = srv.lio.fd = -1;
    srv.loop = loop_new(err, sizeof err);
    assert_non_null(srv.loop);
    char dir[] = "/tmp/portico-localapi-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(srv.path, sizeof srv.path, "%s/ts.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, srv.path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    loop_io_add(srv.loop, &srv.lio, fd, EPOLLIN | EPOLLET, on_server_accept);
}

static void server_stop(void)
{
    if (srv.cio.fd >= 0) {
        loop_io_del(srv.loop, &srv.cio);
        close(srv.cio.fd);
    }
    if (srv.lio.fd >= 0) {
        loop_io_del(srv.loop, &srv.lio);
        close(srv.lio.fd);
    }
    unlink(srv.path);
    *strrchr(srv.path, '/') = '\0';
    rmdir(srv.path);
    loop_free(srv.loop);
}

/* What the client's callbacks heard. */
struct heard {
    int calls;
    enum localapi_result result;
    int status;
    char body[256];
    char error[512];
    char etag[80];
};

static int stop_after; /* stop the loop when this many answers came */
static int answers;
/* loop_stop from a task takes effect only after the next wait: a timer
 * due at once makes that wait short. */
static struct loop_timer stopper;
static void on_stopper(struct loop *l, struct loop_timer *t)
{
    loop_stop(l);
}

static void on_answer(void *arg, const struct localapi_answer *a)
{
    struct heard *h = arg;
    h->calls++;
    h->result = a->result;
    h->status = a->status;
    snprintf(h->body, sizeof h->body, "%s", a->body);
    snprintf(h->error, sizeof h->error, "%s", a->error);
    const struct http_header *e =
        a->head ? http_find_header(a->head->headers, a->head->nheaders, "Etag") : NULL;
    snprintf(h->etag, sizeof h->etag, "%.*s", e ? (int)e->value.len : 0, e ? e->value.p : "");
    if (++answers == stop_after)
        loop_timer_arm(srv.loop, &stopper, 0);
}

static void on_guard(struct loop *l, struct loop_timer *t)
{
    loop_stop(l); /* a test that hangs fails on its counts instead */
}

/* Run the loop until n answers came (or 10 s passed). */
static void run_until(int n)
{
    struct loop_timer guard;
    answers = 0;
    stop_after = n;
    loop_timer_init(&guard, on_guard);
    loop_timer_init(&stopper, on_stopper);
    loop_timer_arm(srv.loop, &guard, 10000);
    loop_run(srv.loop);
    loop_timer_disarm(srv.loop, &guard);
}

static struct metrics_worker mw;

static struct localapi_client *client(const char *path, uint32_t timeout_ms)
{
    memset(&mw, 0, sizeof mw);
    struct localapi_client *c =
        localapi_client_new(srv.loop, path, timeout_ms, &mw, err, sizeof err);
    assert_non_null(c);
    return c;
}

static void call(struct localapi_client *c, const char *path, struct heard *h)
{
    struct localapi_request r = {.method = METHOD_GET, .path = path};
    assert_int_equal(localapi_call(c, &r, on_answer, h, err, sizeof err), 0);
}

#define OK_JSON "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"

static void test_localapi_client_reuses_one_connection(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 2000);
    srv.replies[0] = OK_JSON "{\"Node\":null}";
    srv.replies[1] = "HTTP/1.1 200 OK\r\nEtag: \"e1\"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
    struct heard a = {0}, b = {0};
    call(c, "/localapi/v0/whois?addr=100.64.0.2", &a);
    call(c, "/localapi/v0/status", &b);
    assert_int_equal(a.calls, 0); /* never called back from inside localapi_call */
    run_until(2);
    assert_int_equal(a.result, LOCALAPI_OK);
    assert_string_equal(a.body, "{\"Node\":null}");
    assert_int_equal(b.result, LOCALAPI_OK);
    assert_string_equal(b.body, "{\"a\":1}");
    assert_string_equal(b.etag, "\"e1\"");
    assert_int_equal(srv.accepts, 1);
    assert_int_equal(srv.requests, 2);
    assert_int_equal(mw.localapi[LOCALAPI_EP_WHOIS][LOCALAPI_OK], 1);
    assert_int_equal(mw.localapi[LOCALAPI_EP_STATUS][LOCALAPI_OK], 1);
    assert_int_equal(localapi_pending(c), 0);
    struct metrics_worker *w = &mw;
    size_t len;
    char *text = metrics_render(&w, 1, &len);
    assert_non_null(
        strstr(text, "\nportico_localapi_calls_total{endpoint=\"whois\",result=\"ok\"} 1\n"));
    assert_null(strstr(text, "result=\"timeout\""));
    free(text);
    memset(&mw, 0, sizeof mw); /* before any call: the families are left out */
    text = metrics_render(&w, 1, &len);
    assert_null(strstr(text, "portico_localapi_calls_total"));
    free(text);
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_error_status_has_a_sentence(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 2000);
    srv.replies[0] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
                     "\r\nno match for 100.64.0.9\n";
    srv.replies[1] = OK_JSON "{\"Node\":null}";
    struct heard a = {0}, b = {0};
    call(c, "/localapi/v0/whois?addr=100.64.0.9", &a);
    call(c, "/localapi/v0/whois?addr=100.64.0.2", &b);
    run_until(2);
    assert_int_equal(a.result, LOCALAPI_HTTP_ERROR);
    assert_int_equal(a.status, 404);
    assert_string_equal(a.error, "tailscaled answered 404 to GET "
                                 "/localapi/v0/whois?addr=100.64.0.9: no match for 100.64.0.9");
    /* An error answer is still an answer: the connection stays in use. */
    assert_int_equal(b.result, LOCALAPI_OK);
    assert_int_equal(srv.accepts, 1);
    assert_int_equal(mw.localapi[LOCALAPI_EP_WHOIS][LOCALAPI_HTTP_ERROR], 1);
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_reconnects_after_server_closes(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 2000);
    srv.close_after_reply = true;
    srv.replies[0] = OK_JSON "{\"Node\":null}";
    srv.replies[1] = OK_JSON "{\"Node\":null}";
    struct heard a = {0}, b = {0};
    call(c, "/localapi/v0/status", &a);
    run_until(1);
    call(c, "/localapi/v0/status", &b);
    run_until(1);
    assert_int_equal(a.result, LOCALAPI_OK);
    assert_int_equal(b.result, LOCALAPI_OK);
    assert_int_equal(srv.accepts, 2);
    localapi_client_free(c);
    server_stop();
}

/* A kept-alive connection closed by tailscaled just as a call goes out,
 * before any answer: a GET goes again, once, on a new connection (each
 * call may do so, even queued behind another); a POST is not repeated. */
static void test_localapi_client_get_retried_once_on_closed_connection(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 2000);
    const char *script[] = {OK_JSON "{\"Node\":null}", CLOSE, OK_JSON "{\"Node\":null}", CLOSE,
                            OK_JSON "{\"Node\":null}", CLOSE};
    memcpy(srv.replies, script, sizeof script);
    struct heard a = {0}, b = {0}, d = {0}, p = {0};
    call(c, "/localapi/v0/status", &a);
    run_until(1);
    call(c, "/localapi/v0/status", &b);
    call(c, "/localapi/v0/status", &d);
    run_until(2);
    assert_int_equal(b.result, LOCALAPI_OK);
    assert_int_equal(d.result, LOCALAPI_OK);
    assert_int_equal(srv.accepts, 3);
    struct localapi_request r = {
        .method = METHOD_POST, .path = "/localapi/v0/serve-config", .body = "{}", .body_len = 2};
    assert_int_equal(localapi_call(c, &r, on_answer, &p, err, sizeof err), 0);
    run_until(1);
    assert_int_equal(p.result, LOCALAPI_UNAVAILABLE);
    assert_non_null(strstr(p.error, "closed the connection without answering"));
    assert_int_equal(srv.requests, 6);
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_missing_socket_fails_then_backs_off(void **state)
{
    server_start();
    char path[200];
    snprintf(path, sizeof path, "%s.missing", srv.path);
    struct localapi_client *c = client(path, 2000);
    struct heard a = {0}, b = {0};
    call(c, "/localapi/v0/whois?addr=100.64.0.2", &a);
    run_until(1);
    assert_int_equal(a.result, LOCALAPI_UNAVAILABLE);
    assert_non_null(strstr(a.error, "tailscaled is not running: there is no socket at"));
    assert_non_null(strstr(a.error, "set tailscale.socket to the socket it uses"));
    /* Within the back-off no connect is tried: the call fails at once
     * with the last error and when the next try comes. */
    call(c, "/localapi/v0/whois?addr=100.64.0.2", &b);
    run_until(1);
    assert_int_equal(b.result, LOCALAPI_UNAVAILABLE);
    assert_non_null(strstr(b.error, "next try in"));
    assert_int_equal(mw.localapi[LOCALAPI_EP_WHOIS][LOCALAPI_UNAVAILABLE], 2);
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_recovers_when_tailscaled_comes_back(void **state)
{
    server_start();
    char path[200];
    snprintf(path, sizeof path, "%s.late", srv.path);
    struct localapi_client *c = client(path, 2000);
    srv.replies[0] = OK_JSON "{\"Node\":null}";
    struct heard a = {0}, b = {0};
    call(c, "/localapi/v0/status", &a);
    run_until(1);
    assert_int_equal(a.result, LOCALAPI_UNAVAILABLE);
    /* tailscaled starts: its socket appears where the client looks. */
    assert_int_equal(rename(srv.path, path), 0);
    usleep((TIMEOUT_LOCALAPI_BACKOFF_MS + 50) * 1000);
    loop_update_time(srv.loop);
    call(c, "/localapi/v0/status", &b);
    run_until(1);
    assert_int_equal(b.result, LOCALAPI_OK);
    assert_int_equal(srv.accepts, 1);
    assert_int_equal(rename(path, srv.path), 0);
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_silent_server_times_out(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 150);
    struct heard a = {0};
    call(c, "/localapi/v0/status", &a);
    run_until(1);
    assert_int_equal(a.result, LOCALAPI_TIMEOUT);
    assert_string_equal(a.error, "tailscaled did not answer GET /localapi/v0/status within 150 ms");
    assert_int_equal(mw.localapi[LOCALAPI_EP_STATUS][LOCALAPI_TIMEOUT], 1);
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_garbage_answer_is_bad_answer(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 2000);
    srv.replies[0] = "hello, this is not HTTP\r\n\r\n";
    struct heard a = {0};
    call(c, "/localapi/v0/status", &a);
    run_until(1);
    assert_int_equal(a.result, LOCALAPI_BAD_ANSWER);
    assert_non_null(strstr(a.error, "not a valid HTTP/1.1 response"));
    localapi_client_free(c);
    server_stop();
}

static void test_localapi_client_queue_is_bounded_and_cancel_drops(void **state)
{
    server_start();
    struct localapi_client *c = client(srv.path, 2000);
    static struct heard h[LIMIT_LOCALAPI_QUEUE + 1];
    memset(h, 0, sizeof h);
    for (int i = 0; i < LIMIT_LOCALAPI_QUEUE; i++)
        call(c, "/localapi/v0/status", &h[i]);
    struct localapi_request r = {.method = METHOD_GET, .path = "/localapi/v0/status"};
    assert_int_equal(localapi_call(c, &r, on_answer, &h[LIMIT_LOCALAPI_QUEUE], err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "calls are waiting for tailscaled already"));
    assert_int_equal(mw.localapi[LOCALAPI_EP_STATUS][LOCALAPI_QUEUE_FULL], 1);
    for (int i = 1; i < LIMIT_LOCALAPI_QUEUE; i++)
        localapi_cancel(c, on_answer, &h[i]);
    srv.replies[0] = OK_JSON "{\"Node\":null}";
    srv.replies[1] = OK_JSON "{\"Node\":null}";
    run_until(1);
    assert_int_equal(h[0].result, LOCALAPI_OK);
    struct heard after = {0};
    call(c, "/localapi/v0/status", &after);
    run_until(1);
    assert_int_equal(after.result, LOCALAPI_OK);
    for (int i = 1; i < LIMIT_LOCALAPI_QUEUE; i++)
        assert_int_equal(h[i].calls, 0);
    assert_int_equal(srv.requests, 2);
    localapi_client_free(c);
    server_stop();
}

/* ---- the blocking call ----------------------------------------------------- */

static void *serve_once(void *arg)
{
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    char buf[4096] = "";
    size_t got = 0;
    while (!strstr(buf, "\r\n\r\n{}") && got < sizeof buf - 1) {
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    const char *reply = "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 14\r\n\r\n"
                        "etag mismatch\n";
    if (write(fd, reply, strlen(reply)) < 0)
        perror("write");
    close(fd);
    return NULL;
}

static void test_localapi_blocking_call_gets_status_and_body(void **state)
{
    server_start();
    /* This server is a thread that blocks in accept: no loop here. */
    loop_io_del(srv.loop, &srv.lio);
    int lfd = srv.lio.fd;
    assert_int_equal(fcntl(lfd, F_SETFL, 0), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve_once, &lfd), 0);
    struct localapi_request r = {.method = METHOD_POST,
                                 .path = "/localapi/v0/serve-config",
                                 .if_match = "\"x\"",
                                 .body = "{}",
                                 .body_len = 2};
    struct localapi_reader out;
    int rc = localapi_call_blocking(srv.path, &r, 3000, &out, err, sizeof err);
    pthread_join(t, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(out.resp.status, 412);
    size_t len;
    assert_string_equal(localapi_reader_body(&out, &len), "etag mismatch\n");
    localapi_reader_free(&out);
    assert_int_equal(localapi_call_blocking("/nonexistent/ts.sock", &r, 300, &out, err, sizeof err),
                     -1);
    assert_string_equal(err,
                        "tailscaled is not running: there is no socket at /nonexistent/ts.sock "
                        "(start tailscaled, or set tailscale.socket to the socket it uses)");
    assert_int_equal(errno, ENOENT);
    server_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localapi_client_reuses_one_connection),
        cmocka_unit_test(test_localapi_client_error_status_has_a_sentence),
        cmocka_unit_test(test_localapi_client_reconnects_after_server_closes),
        cmocka_unit_test(test_localapi_client_get_retried_once_on_closed_connection),
        cmocka_unit_test(test_localapi_client_missing_socket_fails_then_backs_off),
        cmocka_unit_test(test_localapi_client_recovers_when_tailscaled_comes_back),
        cmocka_unit_test(test_localapi_client_silent_server_times_out),
        cmocka_unit_test(test_localapi_client_garbage_answer_is_bad_answer),
        cmocka_unit_test(test_localapi_client_queue_is_bounded_and_cancel_drops),
        cmocka_unit_test(test_localapi_blocking_call_gets_status_and_body),
    };
    return cmocka_run_group_tests_name("localapi", tests, NULL, NULL);
}
