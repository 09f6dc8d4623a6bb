"""End-to-end tests: hostile input."""

from common import *  # noqa: F401,F403


def _smuggle(ctx, payload, statuses=(400,), must_close=True):
    o = ctx.origin("victim")
    p = ctx.portico({"v": svc(o, ["a.test", "b.test"])}, limits={"header_timeout": "%ds" % int(3 * SCALE)})
    data, closed = raw_exchange(p.port, payload, timeout=4 * SCALE)
    st = status_of(data)
    expect(st in statuses, "status %r (want %s); got %r" % (st, "/".join(map(str, statuses)), data[:200]))
    if must_close:
        expect(closed, "connection not closed after %d; got %r" % (st, data[:300]))
    nresp = len(re.findall(rb"(?:^|\r\n)HTTP/1\.[01] \d{3} ", data))
    eq(nresp, 1, "responses on the connection (%r)" % data[:400])
    time.sleep(0.2)
    raw = o.all_raw()
    expect(b"/smuggled" not in raw, "smuggled request reached the upstream: %r" % raw[:300])
    eq(o.bytes_received, 0, "bytes reaching the upstream (%r)" % raw[:300])
    # portico still serves
    eq(get_json(p.port, "/health", host="a.test")["origin"], "victim", "healthy afterwards")
    return o


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"


@test()
def test_smuggling_cl_te_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED)


@test()
def test_smuggling_te_cl_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 44\r\n\r\n0\r\n\r\n" + SMUGGLED)


@test()
def test_smuggling_repeated_content_length_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Content-Length: 6\r\n\r\nhello!" + SMUGGLED)


@test()
def test_smuggling_repeated_identical_content_length_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Content-Length: 5\r\n\r\nhello" + SMUGGLED)


def _variants(ctx, make, statuses=(400,)):
    fails = []
    for v in make:
        sub = Ctx(ctx.binary, ctx.name)
        try:
            _smuggle(sub, v, statuses=statuses)
            ctx.notes += sub.notes
        except AssertionError as e:
            fails.append("%r: %s" % (v[:90], e))
        finally:
            probs = sub.cleanup()
            if probs:
                fails.append("teardown: %s" % probs)
    expect(not fails, "; ".join(fails))


@test(timeout=60)
def test_smuggling_non_numeric_content_length_rejected(ctx):
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: %s\r\n\r\nhello" % v + SMUGGLED
                    for v in (b"abc", b"+5", b"0x5", b"5 5", b"-5", b"5a")])


@test()
def test_content_length_with_trailing_ows_accepted(ctx):
    # RFC 9110 5.5: OWS around a value is not part of it; "5 \t" is 5.
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)})
    for cl in (b"5 \t", b"5\t", b"\t5\t "):
        data, _ = raw_exchange(p.port, b"POST /?do=echo HTTP/1.1\r\nHost: a.test\r\nContent-Length:"
                               + cl + b"\r\nConnection: close\r\n\r\nhello", timeout=3 * SCALE)
        eq(status_of(data), 200, "status for Content-Length %r (%r)" % (cl, data[:120]))
        doc = json.loads(data.split(b"\r\n\r\n", 1)[1])
        eq(hdrs(doc, "content-length"), ["5"], "Content-Length the upstream saw")
        eq(doc["body_len"], 5, "body bytes the upstream saw")


@test()
def test_smuggling_te_chunked_then_identity_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)


@test(timeout=60)
def test_smuggling_te_unknown_coding_rejected(ctx):
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: %s\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n" % v + SMUGGLED
                    for v in (b"gzip", b"xchunked", b"identity")])


@test(timeout=60)
def test_smuggling_bad_chunk_size_rejected(ctx):
    shapes = [b"zz\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
              b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", b"\r\nhello\r\n0\r\n\r\n",
              b"5\r\nhelloXX0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n"]
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" + s + SMUGGLED
                    for s in shapes])


@test()
def test_smuggling_obs_fold_rejected(ctx):
    _smuggle(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Folded: a\r\n  b\r\n\r\n" + SMUGGLED)


@test(timeout=60)
def test_smuggling_bare_lf_rejected(ctx):
    _variants(ctx, [b"GET / HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n" + SMUGGLED,
                    b"GET / HTTP/1.1\nHost: a.test\r\n\r\n" + SMUGGLED,
                    b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\n\r\n" + SMUGGLED])


@test(timeout=60)
def test_smuggling_whitespace_before_colon_rejected(ctx):
    _variants(ctx, [b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A : b\r\n\r\n" + SMUGGLED,
                    b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n"
                    b"Content-Length: 5\r\n\r\nhello" + SMUGGLED,
                    b"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n" + SMUGGLED])


@test()
def test_smuggling_two_host_headers_rejected(ctx):
    _smuggle(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n" + SMUGGLED)


@test()
def test_header_line_without_colon_rejected(ctx):
    _smuggle(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\nNoColonHere\r\n\r\n" + SMUGGLED)


def _limit_status(ctx, payload, want):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)})
    data, _ = raw_exchange(p.port, payload, timeout=3 * SCALE)
    eq(status_of(data), want, "status (response %r)" % data[:200])
    eq(o.bytes_received, 0, "bytes reaching the upstream")


@test()
def test_request_line_too_long_414(ctx):
    _limit_status(ctx, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n", 414)


@test()
def test_headers_too_large_431(ctx):
    big = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    _limit_status(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\n" + big + b"\r\n", 431)


@test()
def test_unknown_method_501(ctx):
    _limit_status(ctx, b"BREW /pot HTTP/1.1\r\nHost: a.test\r\n\r\n", 501)


@test()
def test_connect_method_501(ctx):
    _limit_status(ctx, b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 501)


@test()
def test_http2_request_line_505(ctx):
    _limit_status(ctx, b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n", 505)


@test()
def test_slowloris_closed_after_header_timeout(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"header_timeout": "1s"})
    s = socket.create_connection(("127.0.0.1", p.port))
    t0 = time.time()
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
    got = b""
    closed_at = None
    s.settimeout(0.2)
    limit = 1 + 8 * SCALE
    while time.time() - t0 < limit:
        try:
            s.sendall(b"X-Drip: 1\r\n")
        except OSError:
            closed_at = time.time() - t0
            break
        try:
            d = s.recv(4096)
            if not d:
                closed_at = time.time() - t0
                break
            got += d
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.time() - t0
            break
    # What arrived before the close is still readable after a failed send.
    s.settimeout(2 * SCALE)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    expect(closed_at is not None, "connection still open after %.1fs of dripping headers" % limit)
    expect(closed_at >= 0.8, "closed too early (%.2fs)" % closed_at)
    eq(status_of(got), 408, "status sent before closing (%r)" % got[:100])
    eq(o.bytes_received, 0, "bytes reaching the upstream")


def _drip_body(port, rate_gap, limit, head=None):
    """Send a request head announcing a large body, then one byte every rate_gap
    seconds. Returns (seconds until portico answered or closed, bytes received)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head or b"POST /?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n")
    t0 = time.time()
    got = b""
    s.settimeout(rate_gap)
    try:
        while time.time() - t0 < limit:
            try:
                s.sendall(b"x")
            except OSError:
                break
            try:
                d = s.recv(4096)
                if not d:
                    break
                got += d
                if b"\r\n\r\n" in got:
                    break
            except socket.timeout:
                pass
            except OSError:
                break
        else:
            return None, got
        return time.time() - t0, got
    finally:
        s.close()


@test()
def test_trickled_request_body_gets_408_under_min_rate(ctx):
    # 1 byte every 0.3 s never trips the idle body_timeout, but it is far
    # below body_min_rate once the grace has passed.
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"body_min_rate": 200, "body_rate_grace": "1s"})
    limit = 1 + 5 * SCALE
    dt, got = _drip_body(p.port, 0.3, limit)
    expect(dt is not None, "trickled body still accepted after %.1fs" % limit)
    expect(dt >= 0.8, "refused before the grace was over (%.2fs)" % dt)
    eq(status_of(got), 408, "status (%r)" % got[:100])
    expect(p.wait_line(lambda l: "body_min_rate" in l and "408" in l, 2 * SCALE),
           "no log line naming the rule: %s" % p.stderr()[-3:])


@test()
def test_slow_but_steady_upload_passes_min_rate(ctx):
    # 64 KiB at about 16 KiB/s over 4 s, against a minimum of 2 KiB/s after 1 s.
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"body_min_rate": 2048, "body_rate_grace": "1s"})
    n = 64 * 1024
    with RawConn(p.port, timeout=10 * SCALE) as c:
        c.send(b"POST /?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % n)
        piece = b"\0" * 2048
        for _ in range(n // len(piece)):
            c.send(piece)
            time.sleep(0.125)
        r = c.read_response()
        eq(r.status, 200, "status of a slow upload above the minimum rate (%r)" % r.body[:100])
        eq(r.json()["len"], n, "bytes the upstream received")


@test()
def test_idle_request_body_408_is_logged(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"body_timeout": "1s", "body_min_rate": 0})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"POST /?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nabc")
        eq(c.read_response().status, 408, "status after the body stopped")
    expect(p.wait_line(lambda l: "limits.body_timeout" in l, 2 * SCALE),
           "no log line naming the rule: %s" % p.stderr()[-3:])


@test(serial=True)   # the client must keep up 8 MiB/s: it needs the CPU
def test_upstream_not_reading_does_not_count_against_body_rate(ctx):
    # The upstream reads nothing for 4 s: the client cannot send meanwhile,
    # and that time must not be held against its body rate (8 MiB/s here,
    # which the client easily keeps up whenever it can send).
    n = 32 * MiB

    def handler(c):
        f = c.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        time.sleep(4)
        left = n
        while left:
            d = f.read(min(left, 65536))
            if not d:
                break
            left -= len(d)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(n - left)), n - left))
        f.close()
        c.close()
    srv = TcpServer(handler)
    p = ctx.portico({"v": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port}},
                    limits={"body_min_rate": 8 << 20, "body_rate_grace": "1s"})
    with RawConn(p.port, timeout=20 * SCALE) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        c.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % n)
        c.send(b"\0" * n)
        r = c.read_response()
        eq(r.status, 200, "status (%r)" % r.body[:100])
        eq(r.body, str(n).encode(), "bytes the upstream received")
    srv.close()


@test()
def test_configured_max_header_bytes_and_max_request_line(ctx):
    """Non-default limits: a request line of max_request_line bytes (CRLF not
    counted) passes and one byte more is 414; a head of max_header_bytes
    (everything up to and including the empty line) passes and one byte
    more is 431. The padding of the edge cases is a header portico removes
    (Remote-*), so the head it sends upstream, with the headers it adds, is
    well under the limit and only the client's head is measured. None of
    the refused ones reaches the upstream."""
    o = ctx.origin("lim")
    p = ctx.portico({"v": svc(o)}, limits={"max_header_bytes": 2048, "max_request_line": 512})

    def line(n):   # a request line of exactly n bytes before its CRLF
        return (b"GET /" + b"a" * (n - len(b"GET / HTTP/1.1")) + b" HTTP/1.1\r\n"
                b"Host: a.test\r\nConnection: close\r\n\r\n")

    def head(n, name=b"Remote-Pad"):   # a whole head of exactly n bytes, final CRLF included
        base = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n%s: \r\n\r\n" % name
        return base.replace(name + b": ", name + b": " + b"p" * (n - len(base)))

    cases = [(line(512), 200), (line(513), 414), (line(600), 414),
             (head(2048), 200), (head(2049), 431), (head(1500, b"X-Pad"), 200),
             (head(3000, b"X-Pad"), 431)]
    for data, want in cases:
        before = len(o.requests)
        got, _ = raw_exchange(p.port, data, timeout=3 * SCALE)
        eq(status_of(got), want, "status for %d bytes (%r...)" % (len(data), data[:30]))
        eq(len(o.requests) - before, 1 if want == 200 else 0, "requests reaching the upstream")


@test(timeout=60)
def test_rejected_requests_say_which_rule_in_body_and_log(ctx):
    # A 400/414/431/501/505 names the rule that fired, in the one-line body
    # and as reason= in the access-log line.
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"max_request_line": 256})
    cases = [
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400, "more than one Host header"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "no Host header"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A : b\r\n\r\n", 400, "whitespace between a header name and its colon"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\r\n  c\r\n\r\n", 400, "obs-fold"),
        (b"GET / HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n", 400, "bare LF"),
        (b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
         400, "Content-Length given more than once"),
        (b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         400, "Content-Length given more than once, or with Transfer-Encoding"),
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n", 414, "limits.max_request_line"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100))
         + b"\r\n", 431, "more than 100 header lines"),
        (b"BREW /pot HTTP/1.1\r\nHost: a.test\r\n\r\n", 501, "unknown method"),
        (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
         "transfer coding other than chunked"),
        (b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1"),
    ]
    for payload, status, rule in cases:
        n = p.nlines()
        data, _ = raw_exchange(p.port, payload, timeout=3 * SCALE)
        eq(status_of(data), status, "status for %r (%r)" % (payload[:50], data[:150]))
        body = data.split(b"\r\n\r\n", 1)[1].decode("latin-1")
        expect(rule in body and body.endswith("\n") and body.count("\n") == 1,
               "one-line body naming %r: %r" % (rule, body))
        line = p.wait_line(lambda l: " status=%d " % status in l and "reason=" in l,
                           timeout=3 * SCALE, start=n)
        expect(line, "no access-log line with reason= for %r: %s" % (payload[:50], p.stderr()[n:]))
        eq(logfmt_parse(line).get("reason"), body.rstrip("\n"), "reason= in %r" % line)
    eq(o.bytes_received, 0, "bytes reaching the upstream")
