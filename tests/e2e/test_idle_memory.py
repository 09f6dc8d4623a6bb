"""End-to-end tests: what an idle keep-alive connection costs. After one
request a client connection that sits idle holds no I/O buffer (and over TLS
no OpenSSL record buffer), so thousands of them cost little memory; each must
still serve its next request."""

import selectors

from common import *  # noqa: F401,F403

IDLE_CONNS = 2000
BATCH = 200
# A worker trims its caches and malloc's free pages once nothing more has
# been freed for a second (LIMIT_TRIM_DELAY_MS): samples wait this long.
TRIM_WAIT = 2.5


def _one_request_each(port, n, wrap=None, deadline=60.0):
    """Open n connections to port (wrap: a function making the TLS socket
    of a connected one), send one GET on each and read its whole answer;
    the connections stay open. Returns them; fails unless every one got a
    200."""
    held = []
    t_end = time.time() + deadline * SCALE
    sel = selectors.DefaultSelector()
    while len(held) < n:
        expect(time.time() < t_end, "only %d of %d connections answered in time" % (len(held), n))
        pending = {}
        for _ in range(min(BATCH, n - len(held))):
            s = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
            if wrap:
                s = wrap(s)
            s.sendall(b"GET /idle HTTP/1.1\r\nHost: a.test\r\n\r\n")
            s.setblocking(False)
            pending[s] = b""
            sel.register(s, selectors.EVENT_READ)
        while pending:
            expect(time.time() < t_end, "%d answers missing" % len(pending))
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue
                expect(chunk, "connection closed before its answer")
                pending[s] += chunk
                b = pending[s]
                end = b.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = b[:end].decode("latin-1").lower()
                m = re.search(r"\r\ncontent-length: *(\d+)", head)
                expect(m, "answer without Content-Length: %r" % head[:200])
                if len(b) - end - 4 < int(m.group(1)):
                    continue
                expect(head.startswith("http/1.1 200"), "answer %r" % head[:40])
                sel.unregister(s)
                del pending[s]
                s.setblocking(True)
                held.append(s)
    sel.close()
    return held


def _idle_growth(ctx, p, port, wrap=None):
    """RSS growth per idle connection in bytes, after IDLE_CONNS connections
    made one request each; every 50th then serves a second request."""
    warm = _one_request_each(port, BATCH, wrap)  # pools and caches exist afterwards
    for s in warm:
        s.close()
    time.sleep(TRIM_WAIT)
    base = p.rss()
    held = _one_request_each(port, IDLE_CONNS, wrap)
    ctx.cleanups.append(lambda: [s.close() for s in held])
    time.sleep(TRIM_WAIT)
    per_conn = (p.rss() - base) / IDLE_CONNS
    for s in held[::50]:
        s.settimeout(10 * SCALE)
        s.sendall(b"GET /again HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = RawConn(0, sock=s).read_response()
        eq(r.status, 200, "second request on an idle connection")
    return per_conn


def _check(ctx, per_conn, limit, what):
    ctx.notes.append("%s: RSS grew %.2f KiB per idle keep-alive connection (%d connections)"
                     % (what, per_conn / 1024, IDLE_CONNS))
    if ASAN:
        return  # ASan's allocator keeps its own shadow and quarantine: no bound to check
    expect(per_conn < limit, "%s: %.2f KiB per idle connection, more than %.1f KiB"
           % (what, per_conn / 1024, limit / 1024))


@test(timeout=180, serial=True)
def test_idle_keepalive_connection_holds_no_buffer(ctx):
    """An idle connection that had one request holds no 64 KiB input buffer
    (RSS counts the page of it a read touches): it costs its struct and
    little else, about 0.5 KiB. Before buffers were given back, this was
    4.3 KiB here."""
    o = ctx.origin("idle")
    p = ctx.portico({"a": svc(o)}, limits={"max_connections_per_client": 0,
                                           "keepalive_timeout": "120s"})
    _check(ctx, _idle_growth(ctx, p, p.port), 2 * 1024, "plain")


@test(timeout=240, serial=True)
def test_idle_tls_keepalive_connection_holds_no_record_buffers(ctx):
    """Over TLS an idle connection holds neither portico's input buffer nor
    OpenSSL's record buffers (SSL_MODE_RELEASE_BUFFERS): what remains is
    OpenSSL's session state, about 14 KiB with OpenSSL 3.0. With portico's
    input buffer kept it was 30 KiB here; with the record buffers kept too,
    about 47."""
    ca = TestCA(ctx.dir)
    o = ctx.origin("idle")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)},
                     limits={"max_connections_per_client": 0, "keepalive_timeout": "120s"})
    cctx = _tls_client_ctx(ca.crt)
    wrap = lambda raw: cctx.wrap_socket(raw, server_hostname="a.test")  # noqa: E731
    _check(ctx, _idle_growth(ctx, p, p.port, wrap), 20 * 1024, "TLS")


def _rss_settles_below(p, limit, within):
    """Poll p's RSS for up to within seconds until it is below limit; the
    last value read."""
    t_end = time.time() + within
    while True:
        rss = p.rss()
        if rss < limit or time.time() > t_end:
            return rss
        time.sleep(0.2)


@test(timeout=180, serial=True)
def test_burst_memory_goes_back_to_the_kernel_after_it(ctx):
    """A burst of concurrent slow requests takes an exchange and buffers for
    each; once it is over and the connections are closed, the worker empties
    its caches and hands malloc's free pages back within about a second,
    instead of keeping the burst's peak resident for good."""
    n = 600
    o = ctx.origin("burst")
    p = ctx.portico({"a": svc(o)}, limits={"max_connections_per_client": 0})
    for s in _one_request_each(p.port, 50):
        s.close()
    time.sleep(TRIM_WAIT)  # anything the warm-up freed is trimmed
    base = p.rss()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
        s.sendall(b"GET /burst?do=slow&delay=1.5 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        socks.append(s)
    time.sleep(1.0)
    peak = p.rss()  # every exchange is in flight, waiting for the origin
    for s in socks:
        r = RawConn(0, sock=s).read_response()
        eq(r.status, 200, "answer to a request of the burst")
        s.close()
    # 4 KiB per request of the burst, a sixth of what each holds in flight
    # (about 24 KiB: an exchange and its buffers): room for malloc's and a
    # loaded machine's noise, while without the trim nearly all of it stays.
    limit = base + 4096 * n
    # Upstream connections past upstream_keepalive stay pooled for 5 s
    # (LIMIT_POOL_SURPLUS_IDLE_MS); their close is the end of the burst.
    after = _rss_settles_below(p, limit, 5 + 5 * SCALE)
    ctx.notes.append("burst of %d: RSS base %.1f MiB, in flight %.1f MiB, after %.1f MiB"
                     % (n, base / MiB, peak / MiB, after / MiB))
    if ASAN:
        return  # ASan's allocator keeps freed memory in its quarantine
    expect(after < limit, "RSS %.1f MiB after the burst, more than %.1f MiB (base %.1f MiB)"
           % (after / MiB, limit / MiB, base / MiB))
