"""End-to-end tests: the system calls a keep-alive request costs (strace on
the running portico), and the edge cases a call left out must not break."""

from common import *  # noqa: F401,F403


@test(timeout=60, serial=True)
def test_keepalive_request_costs_no_wasted_system_call(ctx):
    """Per keep-alive request: one read and one writev each side, no epoll_ctl,
    and no read that only says EAGAIN (a short read emptied the socket)."""
    n = 20
    o = ctx.origin("sc")
    p = ctx.portico({"v": svc(o)}, workers=1)
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /warm HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "warm-up status")  # the upstream is pooled now
        st = Strace(ctx, p.proc.pid, "read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg,"
                                     "epoll_ctl")
        # Each side waits a moment before it speaks, so that portico always
        # finds the socket it would read empty (strace slows portico down).
        for i in range(n):
            time.sleep(0.02)
            c.send(b"GET /r%d?do=slow&delay=0.02 HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
            eq(c.read_response().status, 200, "status of request %d" % i)
        calls = st.stop()
    eq(o.connections, 1, "upstream connections")
    eagain = [cl for cl in calls if cl[2] == "EAGAIN"]
    expect(len(eagain) <= n // 4, "%d calls of %d requests failed with EAGAIN: %r"
           % (len(eagain), n, eagain[:6]))
    # not counting the access log's lines on stderr
    writes = [cl for cl in calls
              if cl[0] in ("write", "writev", "sendto", "sendmsg") and cl[3] != "2"]
    expect(len(writes) <= 2 * n, "%d writes for %d requests (one each way per request): %r"
           % (len(writes), n, writes[:6]))
    eq([cl for cl in calls if cl[0] == "epoll_ctl"], [], "epoll_ctl calls on keep-alive requests")


def _raw_origin(ctx, answer):
    """A loopback origin that reads one request head, sends answer in one
    write and closes at once, so that its FIN comes with the bytes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    ctx.socks.append(srv)

    def serve():
        while True:
            try:
                s, _ = srv.accept()
            except OSError:
                return
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            s.sendall(answer)
            s.close()
    threading.Thread(target=serve, daemon=True).start()
    return "http://127.0.0.1:%d" % srv.getsockname()[1]


@test(timeout=60)
def test_close_delimited_response_whose_fin_came_with_it_ends(ctx):
    """A short read does not empty a socket whose peer already shut its side:
    the end of a close-delimited body is read at once, not at a timeout."""
    up = _raw_origin(ctx, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close")
    p = ctx.portico({"v": svc(up)}, workers=1)
    for i in range(5):
        with RawConn(p.port, timeout=5 * SCALE) as c:
            c.send(b"GET /c%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
            r = c.read_response()
            eq((r.status, r.body), (200, b"until the close"), "response %d" % i)


@test(timeout=60)
def test_accepted_sockets_have_nodelay_without_a_call_each(ctx):
    """TCP_NODELAY is set on the listening sockets, its own and inherited
    ones (systemd), and accepted connections inherit it: no setsockopt per
    connection. Nor a getsockname: the local address is asked for only
    where it is used (a PROXY header toward the upstream)."""
    o = ctx.origin("nd")
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(16)
    ctx.socks.append(held)
    cfg = make_config({"v": svc(o)}, workers=1)
    cfg["listen"] = [{"addr": "127.0.0.1:0"}, {"addr": "127.0.0.1:%d" % held.getsockname()[1]}]
    p = Portico(ctx.binary, cfg, ctx.dir)
    ctx.porticos.append(p)
    p.start(fds=[held.fileno()])
    eq(len(p.ports), 2, "listeners")
    for port in p.ports:
        get_json(port, "/warm")
        st = Strace(ctx, p.proc.pid, "setsockopt,getsockname")
        conns = [RawConn(port, timeout=5 * SCALE) for _ in range(3)]
        for c in conns:
            c.send(b"GET /r HTTP/1.1\r\nHost: a.test\r\n\r\n")
            eq(c.read_response().status, 200, "status")
        calls = st.stop()
        eq(calls, [], "setsockopt and getsockname calls for 3 connections on port %d" % port)
        for c in conns:
            with _peer_socket(p.proc.pid, port, c.sock.getsockname()[1]) as s:
                expect(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                       "TCP_NODELAY off on a connection accepted on port %d" % port)
            c.close()


@test()
def test_proxy_header_to_upstream_names_the_address_the_client_reached(ctx):
    """The local address, read from the socket only when a PROXY header
    toward the upstream needs it, is the listener's, on IPv4 and IPv6."""
    seen = []

    def handler(c):
        f = c.makefile("rb")
        seen.append(f.readline())
        while f.readline() not in (b"\r\n", b""):
            pass
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        c.close()
    srv = TcpServer(handler)
    cfg = make_config({"h": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port,
                             "send_proxy_protocol": "v1"}}, workers=1)
    cfg["listen"] = [{"addr": "127.0.0.1:0"}, {"addr": "[::1]:0"}]
    p = Portico(ctx.binary, cfg, ctx.dir)
    ctx.porticos.append(p)
    p.start()
    for port, fam, host, proto in ((p.ports[0], socket.AF_INET, "127.0.0.1", b"TCP4"),
                                   (p.ports[1], socket.AF_INET6, "::1", b"TCP6")):
        s = socket.socket(fam)
        s.settimeout(5 * SCALE)
        s.connect((host, port))
        with RawConn(port, sock=s) as c:
            cport = s.getsockname()[1]
            c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            eq(c.read_response().status, 200, "status through port %d" % port)
        eq(seen[-1], b"PROXY %s %s %s %d %d\r\n" % (proto, host.encode(), host.encode(), cport, port),
           "PROXY header for a client of port %d" % port)
    srv.sock.close()


_SENDTO = re.compile(r'^\d+\s+sendto\((\d+), "((?:[^"\\]|\\.)*)"(?:\.\.\.)?, (\d+), ([A-Z_|]+)')


@test(timeout=120, serial=True)
def test_spliced_chunk_size_line_goes_out_with_its_data(ctx):
    """A chunked response to an HTTP/1.1 client whose data is spliced: the
    chunk-size line portico writes before each spliced batch is sent with
    MSG_MORE (it leaves in the segment of the data spliced right after it,
    not in a small segment of its own), and the last chunk, which nothing
    follows, without it. The body arrives byte-exact and spliced."""
    n = 4 * 1048573  # four pattern blocks: every chunk is large, the last one too
    o = ctx.origin("dl")
    p = ctx.portico({"v": svc(o, timeout="60s")}, workers=1, metrics=True)
    spliced0 = _scrape(p.metrics_port).get(
        ("portico_body_bytes_total", (("direction", "response"), ("path", "spliced"))), 0.0)
    with RawConn(p.port, timeout=30 * SCALE) as c:
        st = Strace(ctx, p.proc.pid, "sendto")
        # so the last chunk comes right after a spliced one
        c.send(b"GET /d?do=download&mode=chunked&chunk=1048576&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
               % n)
        r = c.read_head()
        eq(r.status, 200, "status")
        eq((r.header("transfer-encoding") or "").lower(), "chunked", "framing")
        read_chunked_pattern(c, n)
        expect(p.wait_line(lambda l: 'path="/d?' in l, 5 * SCALE), "the download is logged")
        st.stop()
    spliced = _scrape(p.metrics_port).get(
        ("portico_body_bytes_total", (("direction", "response"), ("path", "spliced"))), 0.0)
    expect(spliced - spliced0 >= n - 5 * 65536, "spliced response bytes: %d" % (spliced - spliced0))
    sizes, last = [], []
    with open(st.path, encoding="latin-1") as f:
        for line in f:
            m = _SENDTO.match(line)
            if not m:
                continue
            data, flags = m.group(2), m.group(4)
            # the CRLF closing the chunk before, then the size line
            data = data[4:] if data.startswith("\\r\\n") else data
            if data.startswith("0\\r\\n"):
                last.append(flags)
            elif re.match(r"^[0-9a-f]+\\r\\n$", data):
                sizes.append(flags)
    expect(sizes, "no chunk-size line was written with sendto")
    eq([f for f in sizes if "MSG_MORE" not in f], [], "size lines sent without MSG_MORE")
    eq(len(last), 1, "the last chunk is written once: %r" % last)
    expect("MSG_MORE" not in last[0], "the last chunk is sent with MSG_MORE: %r" % last)
