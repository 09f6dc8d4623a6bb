"""End-to-end tests: hostile input."""

from common import *  # noqa: F401,F403


def _smuggle(ctx, payload, statuses=(400,), must_close=True, strict_upstream=True):
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
    if strict_upstream:
        eq(o.bytes_received, 0, "bytes reaching the upstream (%r)" % raw[:300])
    else:
        eq(o.completed, 0, "complete requests reaching the upstream (%r)" % raw[:300])
        if raw:
            ctx.notes.append("note: the request head reached the upstream before the body "
                             "framing error was found (%d bytes)" % len(raw))
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


def _variants(ctx, make, statuses=(400,), strict_upstream=True):
    fails = []
    for v in make:
        sub = Ctx(ctx.binary, ctx.name)
        try:
            _smuggle(sub, v, statuses=statuses, strict_upstream=strict_upstream)
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
def test_smuggling_te_chunked_then_identity_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)


@test(timeout=60)
def test_smuggling_te_unknown_coding_rejected(ctx):
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: %s\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n" % v + SMUGGLED
                    for v in (b"gzip", b"xchunked", b"identity")], statuses=(400, 501))


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
    limit = 1 + 3 * SCALE
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
    s.close()
    expect(closed_at is not None, "connection still open after %.1fs of dripping headers" % limit)
    expect(closed_at >= 0.8, "closed too early (%.2fs)" % closed_at)
    if got:
        eq(status_of(got), 408, "status sent before closing (%r)" % got[:100])
    eq(o.bytes_received, 0, "bytes reaching the upstream")
