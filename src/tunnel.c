/* tunnel.c - bytes between the two sockets of an exchange without HTTP
 * framing: a Content-Length response body through a pipe with splice(2),
 * and the two-way relay after a 101 upgrade. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "buf.h"
#include "exchange_int.h"
#include "upstream.h"
#include "worker.h"

#define SPLICE_MIN_BODY   (256u << 10) /* smaller bodies are not worth a pipe */
#define SPLICE_PIPE_BYTES (256u << 10) /* pipe capacity asked for; 64 KiB if refused */

/* Whether the rest of the response body can bypass user space: a
 * Content-Length body sent on as it is, to a client without TLS, with no
 * body bytes already read into the buffer. */
bool tunnel_splice_eligible(const struct exchange *ex)
{
    const struct upconn *u = ex->u;
    return ex->rsb.in == HTTP_BODY_LENGTH && ex->rsb.out == HTTP_BODY_LENGTH && !ex->rsb.done &&
           !ex->c->s.ssl && !u->s.ssl && !ex->rs.active && (!u->s.in || buf_len(u->s.in) == 0) &&
           (ex->pipe[0] >= 0 || ex->rsb.remaining >= SPLICE_MIN_BODY);
}

enum pump tunnel_splice_body(struct exchange *ex)
{
    struct conn *c = ex->c;
    struct upconn *u = ex->u;
    enum pump progress = PUMP_IDLE;
    if (ex->pipe[0] < 0) {
        if (pipe2(ex->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
            ex->pipe[0] = ex->pipe[1] = -1;
            return PUMP_IDLE; /* no pipe: the copying path takes over */
        }
        int sz = fcntl(ex->pipe[1], F_SETPIPE_SZ, (int)SPLICE_PIPE_BYTES);
        ex->pipe_cap = sz > 0 ? (size_t)sz : 65536;
    }
    for (;;) {
        if (ex->piped && c->s.writable) {
            ssize_t n = splice(ex->pipe[0], NULL, c->s.io.fd, NULL, ex->piped,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                ex->piped -= (size_t)n;
                ex->bytes_out += (uint64_t)n;
                ex->resp_started = true;
                progress = PUMP_PROGRESS;
                ex_touch(ex);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN)
                return ex_pump_result(
                    ex_fail_hard(ex, 499, "client connection failed while the response was sent"));
            c->s.writable = false;
            ex_arm_timer(ex);
        }
        if (ex->rsb.remaining && u->s.readable && ex->piped < ex->pipe_cap) {
            size_t want = ex->pipe_cap - ex->piped;
            if (want > ex->rsb.remaining)
                want = (size_t)ex->rsb.remaining;
            ssize_t n = splice(u->s.io.fd, NULL, ex->pipe[1], NULL, want,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                ex->piped += (size_t)n;
                ex->rsb.remaining -= (uint64_t)n;
                progress = PUMP_PROGRESS;
                ex_touch(ex);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0 || errno != EAGAIN)
                return ex_pump_result(h1client_body_cut(ex));
            if (ex->piped == 0) /* else the pipe may be what is full */
                u->s.readable = false;
        }
        if (ex->rsb.remaining == 0 && ex->piped == 0) {
            ex->rsb.done = true;
            return PUMP_PROGRESS;
        }
        return progress;
    }
}

/* What one direction of a tunnel did. */
enum relay { RELAY_IDLE, RELAY_PROGRESS, RELAY_BROKEN };

/* One direction of a tunnel: src bytes to dst, then propagate its EOF. */
static enum relay relay(struct exchange *ex, bool up_to_client)
{
    struct conn *c = ex->c;
    struct worker *w = c->w;
    struct upconn *u = ex->u;
    struct flow *f = up_to_client ? &ex->rs : &ex->rq;
    bool *src_eof = up_to_client ? &ex->tunnel.u_eof : &ex->tunnel.c_eof;
    bool *shut = up_to_client ? &ex->tunnel.c_shut : &ex->tunnel.u_shut;
    enum relay progress = RELAY_IDLE;
    for (;;) {
        struct buf *src = up_to_client ? u->s.in : c->s.in;
        if (f->active) {
            bool *writable = up_to_client ? &c->s.writable : &u->s.writable;
            if (!*writable)
                return progress;
            uint64_t wrote = 0;
            struct sink to = {.c = up_to_client ? c : NULL, .u = up_to_client ? NULL : u};
            int r = sink_write(to, f, &wrote);
            if (wrote) {
                if (up_to_client) {
                    ex->bytes_out += wrote;
                    ex->resp_started = true;
                }
                progress = RELAY_PROGRESS;
                ex_touch(ex);
            }
            if (r < 0)
                return RELAY_BROKEN;
            if (r == 0) {
                *writable = false;
                return progress;
            }
            if (!up_to_client)
                ex->bytes_in += f->consumed;
            flow_finish(&w->bufs, f, src);
        }
        if (src && buf_len(src)) {
            flow_push(f, buf_rptr(src), buf_len(src));
            f->consumed = buf_len(src);
            continue;
        }
        if (*src_eof) {
            if (!*shut) {
                if (up_to_client)
                    conn_shutdown_write(c);
                else
                    upstream_shutdown_write(u);
                *shut = true;
                progress = RELAY_PROGRESS;
            }
            return progress;
        }
        long n;
        if (up_to_client) {
            if (!u->s.readable)
                return progress;
            n = h1client_read(u, true);
            if (n < 0)
                *src_eof = true;
        } else {
            if (!c->s.readable)
                return progress;
            n = conn_read(c);
            if (n < 0)
                *src_eof = true;
        }
        if (n > 0) {
            progress = RELAY_PROGRESS;
            ex_touch(ex);
        } else if (n == 0) {
            return progress;
        }
    }
}

enum ex_result tunnel_run(struct exchange *ex)
{
    for (;;) {
        enum relay a = relay(ex, true);
        enum relay b = a == RELAY_BROKEN ? RELAY_BROKEN : relay(ex, false);
        if (a == RELAY_BROKEN || b == RELAY_BROKEN)
            return ex_fail_hard(ex, 101, NULL);
        if (ex->tunnel.c_shut && ex->tunnel.u_shut) {
            /* Both sides said all they had to say. */
            ex->close_client = true;
            proxy_abort(ex);
            ex_log_and_count(ex);
            struct conn *c = ex->c;
            proxy_release(ex);
            conn_close(c);
            return EX_ENDED;
        }
        if (a == RELAY_IDLE && b == RELAY_IDLE)
            return EX_CONTINUE;
    }
}
