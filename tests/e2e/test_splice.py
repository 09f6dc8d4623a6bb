"""End-to-end tests: bodies through a pipe with splice(2).

Large bodies between plain sockets skip portico's buffers: Content-Length
bodies both ways, close-delimited responses, and the data of large chunks
(uploads and downloads; the size lines stay in user space and a chunked
body to an HTTP/1.1 client is re-framed around the spliced data). The
counter portico_body_bytes_total{direction,path} says which path the bytes
took, so each test checks the path as well as the bytes."""

import errno
import struct

from common import *  # noqa: F401,F403
from upstream import pattern

N = 4 * MiB


def _body_bytes(p):
    m = _scrape(p.metrics_port)
    return {(d, w): m.get(("portico_body_bytes_total", (("direction", d), ("path", w))), 0.0)
            for d in ("request", "response") for w in ("copied", "spliced")}


def _delta(p, before):
    after = _body_bytes(p)
    return {k: after[k] - before[k] for k in after}


def _wait_delta(p, before, key, want, timeout=5.0):
    """The counters are added when the exchange is logged: wait for it."""
    deadline = time.time() + timeout * SCALE
    while True:
        d = _delta(p, before)
        if d[key] >= want or time.time() > deadline:
            return d
        time.sleep(0.05)


def _expect_mostly_spliced(d, direction, n):
    """All n body bytes counted, at most a couple of buffers of them copied
    (what arrived with the head, the first chunk's first buffer)."""
    total = d[(direction, "copied")] + d[(direction, "spliced")]
    eq(int(total), n, "%s body bytes counted (copied + spliced) %r" % (direction, d))
    expect(d[(direction, "spliced")] >= n - 4 * 65536,
           "%s: only %d of %d bytes spliced (%r)" % (direction, d[(direction, "spliced")], n, d))


def _next_request(p, c):
    """A request after a body on the same connection is answered; once its
    access-log line is out its bytes are counted, so a later delta of the
    counters does not take them in."""
    n0 = p.nlines()
    c.send(b"GET /e HTTP/1.1\r\nHost: a.test\r\n\r\n")
    eq(c.read_response().status, 200, "next request on the connection")
    expect(p.wait_line(lambda l: 'path="/e"' in l, 5 * SCALE, start=n0), "the request after is logged")


def _portico(ctx, o, **kw):
    return ctx.portico({"v": svc(o, timeout="60s", **kw)}, metrics=True)


def _upload_cl(port, n, path="/up?do=sink", extra=b"", slow=None):
    with RawConn(port, timeout=30 * SCALE) as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n%s\r\n"
               % (path.encode(), n, extra))
        if slow:
            slow(c.sock, n)
        else:
            send_pattern(c.sock, n)
        r = c.read_response()
        eq(r.status, 200, "upload status (%r)" % r.body[:200])
        return r.json()


@test(timeout=120)
def test_content_length_upload_is_spliced(ctx):
    o = ctx.origin("up")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    res = _upload_cl(p.port, N)
    eq(res["len"], N, "bytes at the upstream")
    expect(res["pattern_ok"], "content mismatch at the upstream")
    _expect_mostly_spliced(_wait_delta(p, b0, ("request", "spliced"), 1), "request", N)


@test(timeout=120)
def test_small_upload_is_copied(ctx):
    """Below the threshold a pipe is not worth its calls: copied, and counted so."""
    o = ctx.origin("up")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    res = _upload_cl(p.port, 100000)
    eq(res["len"], 100000, "bytes at the upstream")
    d = _wait_delta(p, b0, ("request", "copied"), 100000)
    eq(int(d[("request", "copied")]), 100000, "copied request bytes")
    eq(int(d[("request", "spliced")]), 0, "spliced request bytes")


@test(timeout=120)
def test_chunked_upload_large_chunks_spliced(ctx):
    o = ctx.origin("up")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"POST /up?do=sink HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        send_pattern(c.sock, N, chunked=True, chunk=1 << 20)
        r = c.read_response()
        eq(r.status, 200, "upload status")
        res = r.json()
    eq(res["len"], N, "bytes at the upstream")
    expect(res["pattern_ok"], "content mismatch at the upstream")
    d = _wait_delta(p, b0, ("request", "spliced"), 1)
    total = d[("request", "copied")] + d[("request", "spliced")]
    eq(int(total), N, "request body bytes counted %r" % d)
    # Each 1 MiB chunk: at most the buffer that read its size line is copied.
    expect(d[("request", "spliced")] >= N - 5 * 65536, "spliced request bytes %r" % d)


@test(timeout=120)
def test_chunked_download_rechunked_around_spliced_data(ctx):
    """A chunked response with large chunks to an HTTP/1.1 client: the data
    is spliced, the chunk framing written around it is well formed."""
    o = ctx.origin("dl")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"GET /d?do=download&mode=chunked&chunk=1048573&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
               % N)
        r = c.read_head()
        eq(r.status, 200, "status")
        eq((r.header("transfer-encoding") or "").lower(), "chunked", "framing")
        read_chunked_pattern(c, N)
        d = _wait_delta(p, b0, ("response", "spliced"), 1)
        # The connection stays usable: the framing ended where it should.
        _next_request(p, c)
    total = d[("response", "copied")] + d[("response", "spliced")]
    eq(int(total), N, "response body bytes counted %r" % d)
    expect(d[("response", "spliced")] >= N - 5 * 65536, "spliced response bytes %r" % d)


@test(timeout=120)
def test_chunked_download_to_http10_client_spliced(ctx):
    o = ctx.origin("dl")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
    try:
        s.sendall(b"GET /d?do=download&mode=chunked&chunk=1048573&n=%d HTTP/1.0\r\nHost: a.test\r\n\r\n"
                  % N)
        head, rest = _read_head(s)
        expect(b"chunked" not in head.lower(), "no chunked framing to HTTP/1.0: %r" % head)
        v = _read_pattern(s, rest, N)
        eq(v.total, N, "body bytes")
        expect(v.ok, "content mismatch")
        expect(s.recv(1) == b"", "connection closed at the end of the body")
    finally:
        s.close()
    d = _wait_delta(p, b0, ("response", "spliced"), 1)
    expect(d[("response", "spliced")] >= N - 5 * 65536, "spliced response bytes %r" % d)


@test(timeout=120)
def test_close_delimited_download_spliced_http11_and_http10(ctx):
    """A response delimited by the upstream's close: re-chunked for HTTP/1.1
    (the last chunk written after the upstream's end), sent as it is to
    HTTP/1.0; spliced after the first buffer either way."""
    o = ctx.origin("dl")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"GET /d?do=download&mode=close&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % N)
        r = c.read_head()
        eq((r.header("transfer-encoding") or "").lower(), "chunked", "re-framed for HTTP/1.1")
        read_chunked_pattern(c, N)
        d = _wait_delta(p, b0, ("response", "spliced"), 1)
        _next_request(p, c)
    _expect_mostly_spliced(d, "response", N)

    b0 = _body_bytes(p)
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
    try:
        s.sendall(b"GET /d?do=download&mode=close&n=%d HTTP/1.0\r\nHost: a.test\r\n\r\n" % N)
        head, rest = _read_head(s)
        v = _read_pattern(s, rest, N + 1)
        eq(v.total, N, "body bytes up to the close")
        expect(v.ok, "content mismatch")
    finally:
        s.close()
    _expect_mostly_spliced(_wait_delta(p, b0, ("response", "spliced"), 1), "response", N)


@test(timeout=180)
def test_spliced_bodies_with_slow_reader_and_slow_writer(ctx):
    """Backpressure through the pipe: a client that reads in small sips
    with pauses, and one that sends its body in small pieces with pauses."""
    o = ctx.origin("slow")
    p = _portico(ctx, o)
    n = 2 * MiB
    for mode in ("cl", "chunked", "close"):
        b0 = _body_bytes(p)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        try:
            s.sendall(b"GET /d?do=download&mode=%s&chunk=1048573&n=%d HTTP/1.0\r\nHost: a.test\r\n\r\n"
                      % (mode.encode(), n))
            head, rest = _read_head(s)
            v = BlockVerifier()
            v.feed(memoryview(rest))
            sips = 0
            while v.total < n:
                d = s.recv(min(16384, n - v.total))
                if not d:
                    break
                v.feed(memoryview(d))
                sips += 1
                if sips % 16 == 0:
                    time.sleep(0.02)
            v.finish()
            eq(v.total, n, "%s: body bytes to the slow reader" % mode)
            expect(v.ok, "%s: content mismatch" % mode)
        finally:
            s.close()
        dd = _wait_delta(p, b0, ("response", "spliced"), 1)
        expect(dd[("response", "spliced")] > n / 2, "%s: spliced %r" % (mode, dd))

    def trickle(sock, total):
        pat = bytes(pattern())
        data = (pat * (total // len(pat) + 1))[:total]
        for off in range(0, total, 65536):
            sock.sendall(data[off:off + 65536])
            time.sleep(0.01)

    b0 = _body_bytes(p)
    res = _upload_cl(p.port, n, slow=trickle)
    eq(res["len"], n, "bytes at the upstream from the slow writer")
    expect(res["pattern_ok"], "content mismatch at the upstream")
    dd = _wait_delta(p, b0, ("request", "spliced"), 1)
    expect(dd[("request", "spliced")] > n / 2, "slow writer: spliced %r" % dd)


@test(timeout=120)
def test_expect_100_continue_upload_spliced(ctx):
    o = ctx.origin("up")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"POST /up?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % N)
        r = c.read_head()
        eq(r.status, 100, "100 Continue before the body")
        send_pattern(c.sock, N)
        r = c.read_response()
        eq(r.status, 200, "final status")
        res = r.json()
    eq(res["len"], N, "bytes at the upstream")
    expect(res["pattern_ok"], "content mismatch at the upstream")
    _expect_mostly_spliced(_wait_delta(p, b0, ("request", "spliced"), 1), "request", N)


@test(timeout=120)
def test_pipelined_request_after_spliced_bodies(ctx):
    """The pipe takes exactly the body: a request pipelined right behind a
    spliced upload, and one sent behind a spliced download, are answered."""
    o = ctx.origin("pl")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    n = 1 * MiB
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
        c.send(b"POST /up?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % n)
        send_pattern(c.sock, n)
        c.send(b"GET /second?do=echo HTTP/1.1\r\nHost: a.test\r\n\r\n"
               b"GET /d?do=download&mode=chunked&chunk=1048573&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
               b"GET /fourth?do=echo HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        r = c.read_response()
        eq(r.json()["len"], n, "upload at the upstream")
        r = c.read_response()
        eq(r.json()["target"], "/second?do=echo", "pipelined after the upload")
        r = c.read_head()
        read_chunked_pattern(c, n)
        r = c.read_response()
        eq(r.json()["target"], "/fourth?do=echo", "pipelined after the download")
    d = _wait_delta(p, b0, ("response", "spliced"), 1)
    expect(d[("request", "spliced")] > 0 and d[("response", "spliced")] > 0,
           "both directions spliced %r" % d)


@test(timeout=120)
def test_client_gone_mid_spliced_download(ctx):
    """The client leaves in the middle of a spliced body (each framing):
    the exchange is cut and logged, portico keeps serving."""
    o = ctx.origin("gone")
    p = _portico(ctx, o)
    for mode in ("cl", "chunked", "close"):
        n0 = p.nlines()
        b0 = _body_bytes(p)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
        s.sendall(b"GET /gone-%s?do=download&mode=%s&chunk=1048573&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
                  % (mode.encode(), mode.encode(), 64 * MiB))
        got = 0
        while got < 2 * MiB:
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        line = p.wait_line(lambda l: "/gone-%s" % mode in l, 10 * SCALE, start=n0)
        expect(line, "%s: no access-log line for the cut download" % mode)
        f = logfmt_parse(line)
        expect(int(f["out"]) < 64 * MiB, "%s: logged as cut (%r)" % (mode, line))
        d = _delta(p, b0)
        expect(d[("response", "spliced")] > 0, "%s: the body went through the pipe %r" % (mode, d))
        eq(status_of(raw_exchange(p.port, b"GET /e HTTP/1.1\r\nHost: a.test\r\n"
                                          b"Connection: close\r\n\r\n")[0]), 200,
           "%s: portico still answers" % mode)


@test(timeout=120)
def test_client_gone_mid_spliced_upload(ctx):
    o = ctx.origin("gone")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    n0 = p.nlines()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
    s.sendall(b"POST /gone-up?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % (64 * MiB))
    send_pattern(s, 2 * MiB)
    time.sleep(0.2)
    s.close()
    line = p.wait_line(lambda l: "/gone-up" in l, 10 * SCALE, start=n0)
    expect(line, "no access-log line for the cut upload")
    eq(logfmt_parse(line)["status"], "400", "a body cut by the client: %r" % line)
    d = _delta(p, b0)
    expect(d[("request", "spliced")] > 0, "the upload went through the pipe %r" % d)
    eq(status_of(raw_exchange(p.port, b"GET /e HTTP/1.1\r\nHost: a.test\r\n"
                                      b"Connection: close\r\n\r\n")[0]), 200, "portico still answers")


class _CutOrigin:
    """An upstream that starts a large response and leaves in the middle of
    it: chunked (inside a chunk's data) or Content-Length."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(10)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        break
                    buf += d
                if b"/e " in buf.split(b"\r\n")[0]:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif self.mode == "chunked":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n"
                              % (8 * MiB))
                    send_pattern(c, 2 * MiB)
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (8 * MiB))
                    send_pattern(c, 2 * MiB)
                time.sleep(0.1)
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        self.sock.close()


@test(timeout=120)
def test_upstream_gone_mid_spliced_download_cuts_client(ctx):
    """The upstream closes inside the body: the client's connection is cut
    (no last chunk, fewer bytes than announced), never ended cleanly."""
    for mode in ("chunked", "cl"):
        o = _CutOrigin(mode)
        try:
            p = ctx.portico({"v": {"upstream": "http://127.0.0.1:%d" % o.port, "hosts": ["a.test"],
                                   "timeout": "30s"}}, metrics=True)
            b0 = _body_bytes(p)
            s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
            try:
                s.sendall(b"GET /cut HTTP/1.1\r\nHost: a.test\r\n\r\n")
                data = bytearray()
                while True:
                    d = s.recv(1 << 20)
                    if not d:
                        break
                    data += d
            finally:
                s.close()
            expect(len(data) < 8 * MiB, "%s: fewer bytes than announced" % mode)
            expect(not data.endswith(b"0\r\n\r\n"), "%s: no last chunk after a cut body" % mode)
            d = _wait_delta(p, b0, ("response", "spliced"), 1)
            expect(d[("response", "spliced")] > 0, "%s: the body went through the pipe %r" % (mode, d))
            p.stop()
        finally:
            o.close()


def _kernel_tls_here():
    """Whether this kernel has the tls upper-layer protocol, asked the way
    portico asks: on a fresh TCP socket, ENOTCONN means it is there."""
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_TCP, 31, b"tls")  # TCP_ULP
        return True
    except OSError as e:
        return e.errno == errno.ENOTCONN
    finally:
        s.close()


@test(timeout=120)
def test_tls_download_path_follows_kernel_tls(ctx):
    """A TLS listener says in its "listening" line whether the kernel writes
    its records (kTLS), and why not; every session is counted by who
    writes its records. With kTLS a large response is spliced into the
    socket; without it (this machine's kernel may lack the tls module)
    the body falls back to OpenSSL and the copy path, byte-exact either way."""
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"v": svc(o, timeout="60s")}, metrics=True)
    kernel = _kernel_tls_here()
    line = p.wait_line(lambda l: "listening" in l and "tls=true" in l, 5 * SCALE)
    expect(line, "no listening line for the TLS listener")
    f = logfmt_parse(line)
    eq(f.get("ktls"), "on" if kernel else "off", "ktls in %r" % line)
    if not kernel:
        expect("tls module" in f.get("ktls_missing", ""), "why kTLS is off: %r" % line)
    m0 = _scrape(p.metrics_port)
    b0 = _body_bytes(p)
    cctx = _tls_client_ctx(ca.crt)
    for mode in ("cl", "chunked"):
        raw = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
        with RawConn(0, sock=cctx.wrap_socket(raw, server_hostname="a.test")) as c:
            c.send(b"GET /d?do=download&mode=%s&chunk=1048573&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
                   % (mode.encode(), N))
            r = c.read_head()
            eq(r.status, 200, "%s: status" % mode)
            if mode == "chunked":
                read_chunked_pattern(c, N)
            else:
                v = BlockVerifier()
                left = N
                while left:
                    part = c.exact(min(left, 1 << 20))
                    v.feed(memoryview(part))
                    left -= len(part)
                v.finish()
                expect(v.ok, "cl: content mismatch")
    d = _wait_delta(p, b0, ("response", "copied" if not kernel else "spliced"), N)
    m1 = _scrape(p.metrics_port)
    sessions = {w: m1[("portico_tls_sessions_total", (("records", w),))] -
                m0.get(("portico_tls_sessions_total", (("records", w),)), 0) for w in ("openssl", "kernel")}
    if kernel:
        eq(sessions, {"openssl": 0, "kernel": 2}, "sessions by who writes the records")
        expect(d[("response", "spliced")] >= 2 * N - 6 * 65536, "spliced into kTLS %r" % d)
    else:
        eq(sessions, {"openssl": 2, "kernel": 0}, "sessions by who writes the records")
        eq(int(d[("response", "spliced")]), 0, "nothing spliced without kTLS %r" % d)
        eq(int(d[("response", "copied")]), 2 * N, "all copied without kTLS %r" % d)


@test(timeout=120)
def test_chunked_64k_chunks_spliced_after_the_first(ctx):
    """After a chunk went through the pipe, the framing that follows is
    read byte-exact, so the next chunk's data stays in the socket: 64 KiB
    chunks (as curl and many servers write them) are spliced, both ways,
    all but the first, whose size line came in a buffer with its data."""
    o = ctx.origin("c64")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"GET /d?do=download&mode=chunked&chunk=65536&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % N)
        c.read_head()
        read_chunked_pattern(c, N)
        d = _wait_delta(p, b0, ("response", "spliced"), 1)
        _next_request(p, c)
    _expect_mostly_spliced(d, "response", N)

    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"POST /up?do=sink HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        send_pattern(c.sock, N, chunked=True, chunk=65536)
        res = c.read_response().json()
    eq(res["len"], N, "bytes at the upstream")
    expect(res["pattern_ok"], "content mismatch at the upstream")
    _expect_mostly_spliced(_wait_delta(p, b0, ("request", "spliced"), 1), "request", N)


# Chunk sizes around the splice threshold (32 KiB): large ones go through
# the pipe, small ones back to the copy path and back again.
MIXED = [1 << 20, 100, 1 << 20, 5, 70000, 32767, 32768, 1 << 20, 1]


def _mixed_body():
    pat = bytes(pattern())
    total = sum(MIXED)
    return (pat * (total // len(pat) + 1))[:total]


def _mixed_chunked(data, trailer=b"X-Sum: 1\r\n"):
    out, off = [], 0
    for n in MIXED:
        out.append(b"%x;ext=1\r\n" % n + data[off:off + n] + b"\r\n")
        off += n
    out.append(b"0\r\n" + trailer + b"\r\n")
    return out


class _MixedOrigin(_CutOrigin):
    """A chunked response in MIXED sizes, each write on its own, then an
    answer to the next request on the same connection; or, with bad, a
    malformed size line after the first chunk."""

    def __init__(self, bad=False):
        self.bad = bad
        _CutOrigin.__init__(self, "mixed")

    def _run(self):
        data = _mixed_body()
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(10)
                buf = b""
                for _ in range(2):
                    while b"\r\n\r\n" not in buf:
                        d = c.recv(65536)
                        if not d:
                            raise OSError("closed")
                        buf += d
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    if b"/e " in head.split(b"\r\n")[0]:
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        continue
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    parts = _mixed_chunked(data)
                    if self.bad:
                        parts = parts[:1] + [b"zz\r\n"]
                    for part in parts:
                        c.sendall(part)
                        time.sleep(0.002)
                    if self.bad:
                        time.sleep(0.5)
                        break
            except OSError:
                pass
            finally:
                c.close()


@test(timeout=120)
def test_chunked_mixed_sizes_spliced_and_copied_byte_exact(ctx):
    """Chunks of every size around the threshold, with extensions and
    trailers, each written on its own: the body arrives byte-exact,
    re-chunked for HTTP/1.1 and plain for HTTP/1.0, the large chunks
    spliced; a request after it on the same connections is answered."""
    data = _mixed_body()
    o = _MixedOrigin()
    try:
        p = ctx.portico({"v": {"upstream": "http://127.0.0.1:%d" % o.port, "hosts": ["a.test"],
                               "timeout": "30s"}}, metrics=True)
        b0 = _body_bytes(p)
        with RawConn(p.port, timeout=30 * SCALE) as c:
            c.send(b"GET /m HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            eq(len(r.body), len(data), "body length")
            expect(r.body == data, "body bytes differ")
            c.send(b"GET /e HTTP/1.1\r\nHost: a.test\r\n\r\n")
            eq(c.read_response().body, b"ok", "next request on the connection")
        d = _wait_delta(p, b0, ("response", "spliced"), 1)
        eq(int(d[("response", "copied")] + d[("response", "spliced")]), len(data) + 2,
           "response bytes counted %r" % d)
        expect(d[("response", "spliced")] >= 2 * (1 << 20), "large chunks spliced %r" % d)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
        try:
            s.sendall(b"GET /m HTTP/1.0\r\nHost: a.test\r\n\r\n")
            head, rest = _read_head(s)
            got = bytearray(rest)
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            expect(bytes(got) == data, "HTTP/1.0 body differs (%d bytes)" % len(got))
        finally:
            s.close()
    finally:
        o.close()

    # The same sizes as an upload, to the sink that checks the pattern.
    o = ctx.origin("mixed-up")
    p = _portico(ctx, o)
    b0 = _body_bytes(p)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"POST /up?do=sink HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in _mixed_chunked(data):
            c.send(part)
            time.sleep(0.002)
        c.send(b"GET /after?do=echo HTTP/1.1\r\nHost: a.test\r\n\r\n")
        res = c.read_response().json()
        eq(res["len"], len(data), "bytes at the upstream")
        expect(res["pattern_ok"], "content mismatch at the upstream")
        eq(c.read_response().json()["target"], "/after?do=echo", "pipelined after the upload")
    d = _wait_delta(p, b0, ("request", "spliced"), 1)
    expect(d[("request", "spliced")] >= 2 * (1 << 20), "large chunks spliced %r" % d)


@test(timeout=120)
def test_malformed_framing_after_spliced_chunk(ctx):
    """A bad size line right after a spliced chunk: an upload is refused
    (400 and closed), a download is cut and logged; portico goes on."""
    o = ctx.origin("bad")
    p = _portico(ctx, o)
    n0 = p.nlines()
    data = _mixed_body()
    with RawConn(p.port, timeout=30 * SCALE) as c:
        c.send(b"POST /bad-up?do=sink HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send(_mixed_chunked(data)[0])
        time.sleep(0.1)
        c.send(b"zz\r\n")
        expect(c.closed_within(10 * SCALE), "connection closed after a malformed upload")
    line = p.wait_line(lambda l: "/bad-up" in l, 10 * SCALE, start=n0)
    expect(line and logfmt_parse(line)["status"] == "400", "upload logged as 400: %r" % line)

    bad = _MixedOrigin(bad=True)
    try:
        q = ctx.portico({"v": {"upstream": "http://127.0.0.1:%d" % bad.port, "hosts": ["a.test"],
                               "timeout": "30s"}})
        n0 = q.nlines()
        out, closed = raw_exchange(q.port, b"GET /m HTTP/1.1\r\nHost: a.test\r\n\r\n", timeout=10 * SCALE)
        expect(closed, "client connection cut")
        expect(not out.endswith(b"0\r\n\r\n"), "no last chunk after a malformed body")
        expect(q.wait_line("malformed chunked body", 5 * SCALE, start=n0), "malformed body logged")
        eq(status_of(raw_exchange(q.port, b"GET /e HTTP/1.1\r\nHost: a.test\r\n"
                                          b"Connection: close\r\n\r\n")[0]), 200, "portico still answers")
    finally:
        bad.close()
