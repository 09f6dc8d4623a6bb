"""End-to-end tests: the client, upstream and tunnel timeouts (limits.* and a
service's connect_timeout). Each one is set short and every other timeout
long, so a timeout that fires on the wrong clock fails the test."""

from common import *  # noqa: F401,F403


def _closed_after(c, lo, hi):
    """The peer closes c between lo and hi seconds from now (ignoring data)."""
    t0 = time.time()
    expect(c.closed_within(hi), "connection still open after %.1fs" % hi)
    dt = time.time() - t0
    expect(dt >= lo, "connection closed after %.2fs, before the %.1fs timeout" % (dt, lo))
    return dt


class Unaccepting:
    """A loopback listener whose accept queue is full: a new connect to it
    gets no SYN-ACK and stays in progress (a connect that is never accepted).
    It keeps its port bound, so nothing else can take it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fill = []
        for _ in range(16):
            s = socket.socket()
            s.settimeout(0.3)
            try:
                s.connect(("127.0.0.1", self.port))
            except socket.timeout:
                s.close()
                return
            self.fill.append(s)
        raise AssertionError("could not fill the accept queue of a listen(0) socket")

    def close(self):
        for s in self.fill:
            s.close()
        self.sock.close()


@test()
def test_body_timeout_408_when_client_stalls_mid_body(ctx):
    o = ctx.origin("body")
    p = ctx.portico({"v": svc(o)}, limits={"body_timeout": "1s", "header_timeout": "10s",
                                           "keepalive_timeout": "30s", "send_timeout": "30s"})
    with RawConn(p.port, timeout=10 * SCALE) as c:
        c.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        t0 = time.time()
        c.sock.settimeout(2 + 3 * SCALE)
        try:
            r = c.read_response()
        except (socket.timeout, EOFError) as e:
            raise AssertionError("no 408 within %.1fs of a stalled body (%r)" % (time.time() - t0, e))
        dt = time.time() - t0
        eq(r.status, 408, "status for a body that stopped arriving")
        expect(dt >= 0.8, "408 after %.2fs, before body_timeout (1s)" % dt)
        expect(c.closed_within(2 * SCALE), "connection not closed after the 408")
    eq(o.completed, 0, "requests the upstream received whole")


@test()
def test_keepalive_timeout_closes_idle_client_connection(ctx):
    o = ctx.origin("ka")
    p = ctx.portico({"v": svc(o)}, limits={"keepalive_timeout": "1s", "header_timeout": "10s",
                                           "body_timeout": "30s", "send_timeout": "30s"})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "first request")
        # Activity restarts the clock: a second request at 0.5s still works.
        time.sleep(0.5)
        c.send(b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "second request within keepalive_timeout")
        _closed_after(c, 0.8, 1 + 3 * SCALE)


@test()
def test_connect_timeout_504_when_connect_never_accepted(ctx):
    un = Unaccepting()
    try:
        p = ctx.portico({"v": svc("http://127.0.0.1:%d" % un.port, connect_timeout="1s",
                                  timeout="20s")},
                        limits={"send_timeout": "20s", "body_timeout": "20s"}, metrics=True)
        t0 = time.time()
        r = request(p.port, "GET", "/", timeout=2 + 3 * SCALE)
        dt = time.time() - t0
        eq(r.status, 504, "status when the upstream never accepts the connect")
        expect(dt >= 0.8, "504 after %.2fs, before connect_timeout (1s)" % dt)
        expect(p.wait_line("timed out", 2 * SCALE), "no 'connect ... timed out' log line")
        ms = _scrape(p.metrics_port)
        eq(ms.get(("portico_upstream_timeouts_total", (("service", "v"),))), 1.0,
           "portico_upstream_timeouts_total{service=v}")
    finally:
        un.close()


@test()
def test_connect_timeout_tcp_forwarder_logs_504(ctx):
    un = Unaccepting()
    try:
        p = ctx.portico({"fwd": {"tcp": {"listen": "127.0.0.1:0",
                                         "upstream": "127.0.0.1:%d" % un.port},
                                 "connect_timeout": "1s"}},
                        limits={"tunnel_timeout": "30s"})
        s = socket.create_connection(("127.0.0.1", p.tcp_ports["fwd"]), timeout=5 * SCALE)
        t0 = time.time()
        s.settimeout(2 + 3 * SCALE)
        try:
            data = s.recv(10)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise AssertionError("forwarder client still open %.1fs after a 1s connect_timeout"
                                 % (time.time() - t0))
        dt = time.time() - t0
        s.close()
        eq(data, b"", "bytes from a forwarder whose upstream never accepts")
        expect(dt >= 0.8, "closed after %.2fs, before connect_timeout (1s)" % dt)
        line = p.wait_line(lambda l: "method=TCP" in l, 3 * SCALE)
        expect(line, "no access-log line for the forwarder connection")
        eq(logfmt_parse(line).get("status"), "504", "status in %r" % line)
    finally:
        un.close()


def _send_timeout(ctx, mode):
    o = ctx.origin("send")
    p = ctx.portico({"v": svc(o, timeout="30s")},
                    limits={"send_timeout": "1s", "body_timeout": "30s", "keepalive_timeout": "30s",
                            "tunnel_timeout": "30s"})
    n = 64 * MiB   # far more than the socket buffers and the pipe hold
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(10 * SCALE)
    s.connect(("127.0.0.1", p.port))
    try:
        s.sendall(b"GET /big?do=download&mode=%s&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
                  % (mode.encode(), n))
        time.sleep(1 + 2 * SCALE)   # not reading: portico's writes block
        got = 0
        while True:
            try:
                d = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not d:
                break
            got += len(d)
            if got > n:
                break
        expect(got < n, "the whole %d-byte %s body arrived: send_timeout did not close a client "
               "that stopped reading" % (n, mode))
    finally:
        s.close()
    expect(p.wait_line(lambda l: "path=\"/big" in l, 3 * SCALE), "no access-log line")


@test(timeout=60)
def test_send_timeout_closes_client_not_reading_spliced(ctx):
    _send_timeout(ctx, "cl")


@test(timeout=60)
def test_send_timeout_closes_client_not_reading_copied(ctx):
    _send_timeout(ctx, "chunked")


@test()
def test_tunnel_timeout_closes_idle_upgraded_connection(ctx):
    o = ctx.origin("tun")
    p = ctx.portico({"v": svc(o, timeout="30s", upgrade=["echo"])},
                    limits={"tunnel_timeout": "1s", "send_timeout": "30s", "body_timeout": "30s",
                            "keepalive_timeout": "30s"})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /u?do=upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
               b"Upgrade: echo\r\n\r\n")
        r = c.read_head()
        eq(r.status, 101, "upgrade status")
        for i in range(4):   # traffic keeps it open past the timeout
            if i:
                time.sleep(0.4)
            c.send(b"ping%d" % i)
            eq(c.exact(5), b"ping%d" % i, "echo through the tunnel")
        _closed_after(c, 0.8, 1 + 3 * SCALE)


@test()
def test_upstream_pool_keeps_at_most_upstream_keepalive_idle(ctx):
    o = ctx.origin("pool")
    p = ctx.portico({"v": svc(o)}, workers=1,
                    limits={"upstream_keepalive": 2, "upstream_keepalive_timeout": "30s"})
    out = []

    def slow(i):
        out.append(request(p.port, "GET", "/s%d?do=slow&delay=1" % i, timeout=10 * SCALE).status)
    ths = [threading.Thread(target=slow, args=(i,)) for i in range(4)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    eq(out, [200] * 4, "statuses")
    opened = o.connections   # 4, or 3 if a thread started after another request ended
    expect(opened >= 3, "only %d upstream connections for 4 concurrent requests" % opened)
    # Those beyond upstream_keepalive stay pooled for 5 s unused, then close.
    t0 = time.time()
    end = t0 + 5 + 3 * SCALE
    while len(o.active) > 2 and time.time() < end:
        time.sleep(0.05)
    dt = time.time() - t0
    time.sleep(0.2)
    eq(len(o.active), 2, "upstream connections kept open with upstream_keepalive: 2")
    expect(dt >= 4, "connections beyond upstream_keepalive closed after %.1fs, before the 5 s "
           "they stay pooled" % dt)
    for i in range(3):
        get_json(p.port, "/again%d" % i)
    eq(o.connections, opened, "upstream connections after 3 more sequential requests (pooled ones reused)")


@test()
def test_upstream_pool_idle_timeout_closes_pooled_connection(ctx):
    o = ctx.origin("poolidle")
    p = ctx.portico({"v": svc(o)}, workers=1,
                    limits={"upstream_keepalive_timeout": "1s", "keepalive_timeout": "30s"})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    d = get_json(p.port, "/1", conn=conn)
    eq(len(o.active), 1, "upstream connections open after one request")
    t0 = time.time()
    end = t0 + 1 + 3 * SCALE
    while o.active and time.time() < end:
        time.sleep(0.02)
    dt = time.time() - t0
    expect(not o.active, "pooled upstream connection still open %.1fs after a 1s "
           "upstream_keepalive_timeout" % dt)
    expect(dt >= 0.8, "pooled connection closed after %.2fs, before the timeout" % dt)
    d2 = get_json(p.port, "/2", conn=conn)
    expect(d2["conn"] != d["conn"], "request after the idle timeout used the closed connection")
    conn.close()
