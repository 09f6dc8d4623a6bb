/* tunnel.c - bytes between the two sockets of an exchange without HTTP
 * framing: the two-way relay after a 101 upgrade. */
#include <errno.h>

#include "buf.h"
#include "exchange_int.h"
#include "relay.h"
#include "upstream.h"
#include "worker.h"

/* Request bytes queued before the upgrade (should the upstream have
 * answered 101 before reading the whole request) go before any tunnel
 * byte. 1: none left; 0: waiting for the upstream; -1: it broke. */
static int flush_request(struct exchange *ex)
{
    struct flow *f = &ex->rq;
    struct sock *u = &ex->u->s;
    if (!f->active)
        return 1;
    if (!u->writable)
        return 0;
    uint64_t wrote = 0;
    int r = sink_write(u, f, &wrote);
    if (wrote)
        ex_touch(ex);
    if (r < 0)
        return -1;
    if (r == 0) {
        u->writable = false;
        return 0;
    }
    ex->bytes_in += f->consumed;
    flow_finish(&ex_worker(ex)->bufs, f, ex->c->s.in);
    return 1;
}

enum ex_result tunnel_run(struct exchange *ex)
{
    struct worker *w = ex_worker(ex);
    struct sock *c = &ex->c->s, *u = &ex->u->s;
    for (;;) {
        uint64_t out = ex->tunnel_down.bytes, in = ex->tunnel_up.bytes;
        enum relay_result a = relay_pump(&ex->tunnel_down, u, c, &w->bufs);
        int q = a == RELAY_ERROR ? -1 : flush_request(ex);
        enum relay_result b = q < 0    ? RELAY_ERROR
                              : q == 0 ? RELAY_IDLE
                                       : relay_pump(&ex->tunnel_up, c, u, &w->bufs);
        ex->bytes_out += ex->tunnel_down.bytes - out;
        ex->bytes_in += ex->tunnel_up.bytes - in;
        if (ex->tunnel_down.bytes != out)
            ex->resp_started = true;
        if (a == RELAY_PROGRESS || b == RELAY_PROGRESS)
            ex_touch(ex);
        if (a == RELAY_ERROR || b == RELAY_ERROR)
            return ex_fail_hard(ex, 101, NULL);
        if (ex->tunnel_up.shut && ex->tunnel_down.shut) {
            /* Both sides said all they had to say. */
            ex->close_client = true;
            proxy_abort(ex);
            ex_log_and_count(ex);
            conn_close(ex->c); /* releases ex */
            return EX_ENDED;
        }
        if (a == RELAY_IDLE && b == RELAY_IDLE)
            return EX_CONTINUE;
    }
}
