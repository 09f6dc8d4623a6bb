"""End-to-end tests: upstream failures."""

from common import *  # noqa: F401,F403


@test()
def test_502_when_upstream_refuses(ctx):
    # A refused connect is a 502 at once, long before connect_timeout (60 s).
    p = ctx.portico({"v": svc("http://127.0.0.1:%d" % ctx.dead_port(), connect_timeout="60s",
                              timeout="60s")})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for i in range(2):
        t0 = time.time()
        r = request(p.port, "GET", "/", conn=conn)
        dt = time.time() - t0
        eq(r.status, 502, "status")
        expect(dt < 10 * SCALE, "502 took %.2fs (connect_timeout 60s)" % dt)
        expect(r.body.startswith(b"bad gateway"), "body %r" % r.body)
        expect(r.body.strip().count(b"\n") == 0, "body not one line: %r" % r.body)
    conn.close()


@test()
def test_504_when_upstream_silent(ctx):
    o = ctx.origin("silent")
    p = ctx.portico({"v": svc(o, timeout="1s")})
    t0 = time.time()
    r = request(p.port, "GET", "/?do=silent", timeout=10 * SCALE)
    dt = time.time() - t0
    eq(r.status, 504, "status")
    expect(0.9 <= dt < 1 + 8 * SCALE, "504 after %.2fs (timeout 1s)" % dt)
    expect(r.body.startswith(b"gateway timeout"), "body %r" % r.body)


@test()
def test_retry_when_pooled_connection_closed_by_upstream(ctx):
    o = ctx.origin("dropper", drop_reused=True)
    p = ctx.portico({"v": svc(o, timeout="5s")})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
    for i in range(5):
        r = request(p.port, "GET", "/r%d" % i, conn=conn)
        eq(r.status, 200, "request %d (body %r)" % (i, r.body[:100]))
        eq(r.json()["target"], "/r%d" % i, "target %d" % i)
        time.sleep(0.1)
    conn.close()
    dropped = [r for r in o.requests if r.idx >= 1]
    expect(dropped, "no request was sent on a reused upstream connection (no pooling), retry not exercised")


@test()
def test_no_retry_of_post_on_closed_pooled_connection(ctx):
    o = ctx.origin("dropper", drop_reused=True)
    p = ctx.portico({"v": svc(o, timeout="5s")})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
    eq(request(p.port, "GET", "/first", conn=conn).status, 200, "first request")
    time.sleep(0.1)
    r = request(p.port, "POST", "/post", body=b"payload", conn=conn)
    conn.close()
    posts = [q for q in o.requests if q.method == "POST"]
    if posts and posts[0].idx == 0:
        raise AssertionError("POST went to a fresh upstream connection; shape not exercised")
    eq(len(posts), 1, "times the POST reached the upstream")
    eq(r.status, 502, "status of a POST whose pooled connection was closed")


@test()
def test_upstream_closes_mid_response(ctx):
    o = ctx.origin("cut")
    p = ctx.portico({"v": svc(o)})
    # The head (Content-Length: 100) was relayed before the upstream left, so
    # the client gets it, the 10 bytes that came, and then a close: a
    # response visibly shorter than it announced, never a padded one.
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /?do=closehead HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_head()
        eq((r.status, r.header("content-length")), (200, "100"), "head relayed")
        expect(c.closed_within(5 * SCALE), "client connection left open after a truncated body")
        eq(bytes(c.buf), b"0123456789", "body bytes before the close")
    eq(get_json(p.port, "/ok")["origin"], "cut", "next request")

    # The same with a chunked response: the client must not get the last
    # chunk (0) that would make the cut response look complete.
    def handler(s):
        f = s.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.1)
        s.close()
    srv = TcpServer(handler)
    q = ctx.portico({"v": svc("http://127.0.0.1:%d" % srv.port)}, name="chunked")
    with RawConn(q.port, timeout=5 * SCALE) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_head()
        eq((r.status, r.header("transfer-encoding")), (200, "chunked"), "chunked head relayed")
        expect(c.closed_within(5 * SCALE), "client connection left open after a cut chunked body")
        eq(bytes(c.buf), b"5\r\nhello\r\n", "chunked body bytes before the close")
    srv.close()


@test()
def test_large_content_length_body_cut_by_upstream_closes_client(ctx):
    # Large enough for the spliced path: the upstream promises 2 MiB, sends 600 KiB, leaves.
    def handler(c):
        f = c.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * MiB))
        c.sendall(b"q" * (600 * 1024))
        f.close()
        c.close()
    srv = TcpServer(handler)
    p = ctx.portico({"v": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port}})
    with RawConn(p.port, timeout=10 * SCALE) as c:
        c.send(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_head()
        eq(r.status, 200, "status")
        expect(c.closed_within(5 * SCALE), "client connection left open after a cut body")
        eq(len(c.buf), 600 * 1024, "body bytes passed on before the cut")
    srv.close()


def _scripted_upstream(reply, linger=2.0):
    """An origin that reads one request head and sends `reply` (bytes), then lingers."""
    def handler(c):
        f = c.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        try:
            c.sendall(reply)
            time.sleep(linger)
        except OSError:
            pass
        f.close()
        c.close()
    return TcpServer(handler)


@test()
def test_malformed_chunked_response_from_first_byte_gets_502(ctx):
    # The head and a broken first chunk-size line arrive together: nothing
    # has reached the client yet, so it must get a real 502, not a cut.
    srv = _scripted_upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")
    p = ctx.portico({"v": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port}})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /chunks HTTP/1.1\r\nHost: a.test\r\n\r\n")
        try:
            r = c.read_response()
        except EOFError:
            raise AssertionError("client connection closed with %d bytes and no response"
                                 % len(c.buf))
        eq(r.status, 502, "status")
        expect(r.body.startswith(b"bad gateway"), "body %r" % r.body)
    expect(p.wait_line(lambda l: "malformed chunked body" in l and "502 sent" in l, 3 * SCALE),
           "no log line saying why: %s" % p.stderr()[-4:])
    srv.close()


@test()
def test_interim_responses_capped_then_502(ctx):
    # 2,000 "100 Continue" from the upstream: a few are relayed, then a 502.
    srv = _scripted_upstream(b"HTTP/1.1 100 Continue\r\n\r\n" * 2000
                             + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    p = ctx.portico({"v": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port}})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /early HTTP/1.1\r\nHost: a.test\r\n\r\n")
        interim = 0
        while True:
            r = c.read_head()
            if r.status >= 200:
                break
            interim += 1
            expect(interim <= 16, "more than 16 interim responses relayed")
        eq(r.status, 502, "final status after an endless stream of 100 Continue")
        expect(interim >= 1, "the first interim responses are relayed (got %d)" % interim)
    expect(p.wait_line(lambda l: "interim" in l and "more than" in l, 3 * SCALE),
           "no log line saying why: %s" % p.stderr()[-4:])
    srv.close()


@test()
def test_upstream_closing_after_interim_response_gets_502(ctx):
    # A relayed 100 Continue is not the response head: a 502 can still follow it.
    srv = _scripted_upstream(b"HTTP/1.1 100 Continue\r\n\r\n", linger=0.2)
    p = ctx.portico({"v": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port}})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /gone HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_head().status, 100, "interim response relayed")
        try:
            r = c.read_response()
        except EOFError:
            raise AssertionError("connection cut after the interim response, no final response")
        eq(r.status, 502, "final status")
    srv.close()
