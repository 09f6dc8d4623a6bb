"""End-to-end tests: response bodies through TLS termination.

Without kernel TLS, OpenSSL makes the records and portico sends several of
them per call (what a full socket does not take is held and sent first
next time). Every framing must arrive byte for byte, with a client that
reads fast, one that reads in sips (the socket fills, sends are cut
short), and one that leaves in the middle of a body."""

import struct

from common import *  # noqa: F401,F403

RECORD = 16384


def _tls_setup(ctx, **kw):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tlsbody")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"v": svc(o, timeout="60s")}, **kw)
    return ca, o, p


def _tls_socket(p, ca, rcvbuf=None):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(30 * SCALE)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    raw.connect(("127.0.0.1", p.port))
    return _tls_client_ctx(ca.crt).wrap_socket(raw, server_hostname="a.test")


def _verify(body, n, what):
    v = BlockVerifier()
    v.feed(memoryview(body))
    v.finish()
    eq(v.total, n, "%s: body bytes" % what)
    expect(v.ok, "%s: content mismatch in block %s" % (what, v.bad_block))


@test(timeout=180)
def test_tls_bodies_byte_exact_for_every_framing(ctx):
    """Content-Length, chunked (small odd chunks and large ones), and
    close-delimited bodies (re-chunked for HTTP/1.1, to the close for
    HTTP/1.0), one after the other on one TLS connection."""
    ca, o, p = _tls_setup(ctx)
    n = 3 * MiB + 12345
    c = RawConn(p.port, sock=_tls_socket(p, ca))
    try:
        for mode, chunk, version in (("cl", 0, "1.1"), ("chunked", 7001, "1.1"),
                                     ("chunked", 65536, "1.1"), ("close", 0, "1.1"),
                                     ("close", 0, "1.0")):
            what = "%s %s HTTP/%s" % (mode, chunk or "", version)
            c.send(b"GET /d?do=download&mode=%s&chunk=%d&n=%d HTTP/%s\r\nHost: a.test\r\n\r\n"
                   % (mode.encode(), chunk or 65536, n, version.encode()))
            r = c.read_response()
            eq(r.status, 200, "%s: status" % what)
            if version == "1.1" and mode != "cl":
                expect("chunked" in (r.header("transfer-encoding") or ""), "%s: chunked" % what)
            _verify(r.body, n, what)
    finally:
        c.close()


@test(timeout=180)
def test_tls_bodies_to_a_slow_reader_arrive_whole(ctx):
    """A client with a small receive window that reads in sips with pauses:
    portico's sends are cut short and records wait for the socket; every
    byte still arrives once, in order, for each framing."""
    ca, o, p = _tls_setup(ctx)
    n = 12 * MiB + 777  # more than portico's send buffer (loopback grows it to a few MiB)
    for mode in ("cl", "chunked", "close"):
        s = _tls_socket(p, ca, rcvbuf=16384)
        try:
            s.sendall(b"GET /d?do=download&mode=%s&chunk=100003&n=%d HTTP/1.0\r\nHost: a.test\r\n\r\n"
                      % (mode.encode(), n))
            data = bytearray()
            sips = 0
            while True:
                d = s.recv(16384)
                if not d:
                    break
                data += d
                sips += 1
                if sips % 16 == 0:
                    time.sleep(0.02)
        finally:
            s.close()
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        expect(head.startswith(b"HTTP/1.1 200"), "%s: head %r" % (mode, head[:100]))
        _verify(body, n, mode + " to a slow reader")


def _scrape_value(p, name):
    return _scrape(p.metrics_port).get((name, ()), 0.0)


@test(timeout=120)
def test_tls_client_leaving_mid_body_closes_both_sides(ctx):
    """The client stops reading, then goes away inside a large body while
    records wait for its socket: portico closes the client connection and
    the upstream one, logs the exchange, and serves the next client."""
    ca, o, p = _tls_setup(ctx, metrics=True)
    s = _tls_socket(p, ca, rcvbuf=16384)
    n0 = p.nlines()
    try:
        s.sendall(b"GET /gone?do=download&mode=cl&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % (64 * MiB))
        got = 0
        while got < MiB:
            got += len(s.recv(65536))
        time.sleep(0.3 * SCALE)  # portico fills the socket and holds records
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset: the records portico holds can never be sent
    expect(p.wait_line(lambda l: 'path="/gone' in l, 10 * SCALE, start=n0),
           "the cut exchange is logged")
    deadline = time.time() + 10 * SCALE
    while time.time() < deadline and (o.active or _scrape_value(p, "portico_tls_connections_active")):
        time.sleep(0.05)
    eq(len(o.active), 0, "upstream connections left open")
    eq(_scrape_value(p, "portico_tls_connections_active"), 0.0, "TLS client connections left open")
    c = RawConn(p.port, sock=_tls_socket(p, ca))
    try:
        c.send(b"GET /d?do=download&mode=cl&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % MiB)
        r = c.read_response()
        eq(r.status, 200, "the next client")
        _verify(r.body, MiB, "the next client")
    finally:
        c.close()


def _traced_download(ctx, n, calls):
    """A 4 MiB-buffered TLS client downloads n bytes from a one-worker portico
    while strace watches the given calls; checks the body arrived whole and
    returns the bytes each call moved, by fd."""
    ca, o, p = _tls_setup(ctx, workers=1)
    c = RawConn(p.port, sock=_tls_socket(p, ca, rcvbuf=4 * MiB))
    try:
        c.send(b"GET /warm HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "warm-up")
        st = Strace(ctx, p.proc.pid, calls)
        c.send(b"GET /d?do=download&mode=cl&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        r = c.read_response()
        # The client can hold the body's last bytes before strace has logged
        # the call that moved them; once a next answer comes, portico has
        # gone on from that call and its line is written.
        c.send(b"GET /warm HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "request after the body")
        traced = st.stop()
    finally:
        c.close()
    eq(r.status, 200, "status")
    _verify(r.body, n, "download")
    by_fd = {}
    for name, res, err, fd in traced:
        if res is not None and res > 0 and fd is not None:
            by_fd.setdefault(fd, []).append(res)
    return by_fd


@test(timeout=120, serial=True)
def test_tls_body_sends_several_records_per_call(ctx):
    """Without kernel TLS, a body's records are gathered and sent several
    per call: a 4 MiB download (256 records of 16 KiB) takes at most one
    call per two records, not one per record."""
    n = 4 * MiB
    by_fd = _traced_download(ctx, n, "write,writev,sendto,sendmsg")
    # the client's fd: where the body's bytes went (the upstream got one request head)
    fd, sent = max(by_fd.items(), key=lambda kv: sum(kv[1]))
    expect(sum(sent) >= n, "bytes sent to the client: %d" % sum(sent))
    records = n // RECORD
    expect(len(sent) <= records // 2,
           "%d calls sent %d bytes (%d records): %r" % (len(sent), sum(sent), records, sent[:8]))


@test(timeout=120, serial=True)
def test_tls_large_body_read_from_upstream_in_large_reads(ctx):
    """A large body copied to a TLS client is read from the upstream into a
    bulk buffer (256 KiB), not 64 KiB at a time: reads of more than 64 KiB
    bring most of an 8 MiB body, and the body arrives whole."""
    n = 8 * MiB
    by_fd = _traced_download(ctx, n, "read,recvfrom")
    fd, got = max(by_fd.items(), key=lambda kv: sum(kv[1]))  # the upstream's socket
    large = sum(x for x in got if x > 65536)
    expect(large >= n // 2, "%d of %d bytes came in reads of more than 64 KiB (%d reads, largest %d)"
           % (large, sum(got), len(got), max(got)))
