"""End-to-end tests: long-polls, responses cut on the upstream's side, and
clients that leave while portico waits on the upstream."""

from common import *  # noqa: F401,F403


def _wait_access(p, n0, path, timeout=3.0):
    end = time.time() + timeout * SCALE
    while time.time() < end:
        found = [f for f in (logfmt_parse(l) for l in p.stderr()[n0:])
                 if f.get("path") == path and "status" in f]
        if found:
            return found
        time.sleep(0.05)
    return []


def _active(o):
    with o.lock:
        return len(o.active)


@test(timeout=150)
def test_long_poll_answered_after_70s_with_the_defaults(ctx):
    # Syncthing's /rest/events holds a request for up to 60 s; with the
    # defaults a response that takes 70 s still arrives whole.
    o = ctx.origin("poll")
    p = ctx.portico({"app": svc(o)})
    t0 = time.time()
    r = request(p.port, "GET", "/rest/events?do=slow&delay=70", timeout=120 * SCALE)
    eq(r.status, 200, "status after %.0fs" % (time.time() - t0))
    eq(r.json()["target"], "/rest/events?do=slow&delay=70", "echo")


@test()
def test_response_cut_by_idle_timeout_is_logged_and_counted_as_an_error(ctx):
    o = ctx.origin("sse")
    p = ctx.portico({"app": svc(o, idle_timeout="1s")}, metrics=True)
    n0 = p.nlines()
    with RawConn(p.port, timeout=10 * SCALE) as c:
        c.send(b"GET /ev?do=sse&gap=4 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_head().status, 200, "head")
        expect(c.closed_within(4 * SCALE), "the cut response was not closed")
    lines = _wait_access(p, n0, "/ev?do=sse&gap=4")
    eq(len(lines), 1, "access lines")
    eq(lines[0]["status"], "200", "status the client got")
    expect("idle_timeout" in lines[0].get("reason", ""), "reason %r" % lines[0])
    ms = _scrape(p.metrics_port)
    eq(ms.get(("portico_responses_incomplete_total", (("service", "app"),))), 1.0,
       "portico_responses_incomplete_total")
    eq(ms.get(("portico_upstream_timeouts_total", (("service", "app"),))), 1.0,
       "portico_upstream_timeouts_total")
    # A complete event stream is not counted.
    with RawConn(p.port, timeout=10 * SCALE) as c:
        c.send(b"GET /ok?do=sse&gap=0.2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "short stream")
        expect(r.body.endswith(b"data: two\n\n"), "short stream body %r" % r.body)
    ms = _scrape(p.metrics_port)
    eq(ms.get(("portico_responses_incomplete_total", (("service", "app"),))), 1.0,
       "a complete response counted as incomplete")


def _client_leaves(ctx, p, o, connect):
    n0 = p.nlines()
    s = connect()
    s.sendall(b"GET /poll?do=silent HTTP/1.1\r\nHost: a.test\r\n\r\n")
    end = time.time() + 5 * SCALE
    while time.time() < end and not o.requests:
        time.sleep(0.02)
    expect(o.requests and _active(o) == 1, "the request did not reach the upstream")
    s.close()
    t0 = time.time()
    while time.time() - t0 < 10 * SCALE and _active(o):
        time.sleep(0.02)
    dt = time.time() - t0
    eq(_active(o), 0, "upstream connection still open %.1fs after the client left" % dt)
    ctx.notes.append("note: upstream saw EOF %.2fs after the client closed" % dt)
    lines = _wait_access(p, n0, "/poll?do=silent")
    eq(len(lines), 1, "access lines")
    eq(lines[0]["status"], "499", "logged status")
    expect("client closed" in lines[0].get("reason", ""), "reason %r" % lines[0])
    expect(float(lines[0]["ms"]) < 10000 * SCALE, "logged duration %s" % lines[0]["ms"])


@test()
def test_client_leaving_a_long_poll_aborts_the_upstream_request(ctx):
    o = ctx.origin("poll")
    p = ctx.portico({"app": svc(o)})
    _client_leaves(ctx, p, o, lambda: socket.create_connection(("127.0.0.1", p.port)))
    # The worker is fine afterwards.
    eq(get_json(p.port, "/after")["target"], "/after", "next request")


@test()
def test_client_leaving_a_long_poll_over_tls_aborts_the_upstream_request(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("poll")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"app": svc(o)})
    _client_leaves(ctx, p, o, lambda: _tls_connect(p.port, "a.test", ca.crt))


@test()
def test_pipelined_request_before_half_close_is_still_answered(ctx):
    # A plain client that pipelines and then half-closes keeps its
    # answers: only a client with nothing more to say is taken as gone.
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o)})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10 * SCALE)
    s.sendall(b"GET /one?do=slow&delay=0.5 HTTP/1.1\r\nHost: a.test\r\n\r\n"
              b"GET /two HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    eq(data.count(b"HTTP/1.1 200"), 2, "answers %r" % data[:200])
