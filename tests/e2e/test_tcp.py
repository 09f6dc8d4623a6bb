"""End-to-end tests: TCP forwarders."""

from common import *  # noqa: F401,F403


def _tcp_portico(ctx, upstream_port, limits=None, name="fwd", **extra):
    p = ctx.portico({name: dict({"tcp": {"listen": "127.0.0.1:0",
                                         "upstream": "127.0.0.1:%d" % upstream_port}}, **extra)},
                    limits=limits)
    p.tcp_port = p.tcp_ports[name]
    return p


@test()
def test_tcp_forward_client_half_close_keeps_response_direction(ctx):
    def handler(c):
        n = len(_recv_all(c))          # until the client's FIN arrives through portico
        for _ in range(3):
            c.sendall(b"got %d\n" % n)
            time.sleep(0.05)
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port)
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=10 * SCALE)
    s.sendall(b"x" * 3000000)
    s.shutdown(socket.SHUT_WR)
    eq(_recv_all(s), b"got 3000000\n" * 3, "answer after the client's half-close")
    s.close()
    srv.close()
    line = p.wait_line(lambda l: "method=TCP" in l, timeout=5 * SCALE)
    expect(line, "no access-log line for the TCP connection")
    f = logfmt_parse(line)
    eq((f["service"], f["status"], f["in"], f["out"]), ("fwd", "200", "3000000", "36"),
       "access-log fields")


@test()
def test_tcp_forward_upstream_half_close_keeps_request_direction(ctx):
    got = {}

    def handler(c):
        c.sendall(b"banner\n")
        c.shutdown(socket.SHUT_WR)      # the upstream is done talking ...
        got["n"] = len(_recv_all(c))    # ... but still listens
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port)
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=10 * SCALE)
    eq(_recv_all(s), b"banner\n", "bytes before the upstream's FIN")
    s.sendall(b"y" * 500000)
    s.shutdown(socket.SHUT_WR)
    deadline = time.time() + 5 * SCALE
    while "n" not in got and time.time() < deadline:
        time.sleep(0.02)
    eq(got.get("n"), 500000, "bytes the upstream received after its own FIN")
    s.close()
    srv.close()


@test()
def test_tcp_forward_unreachable_upstream_closes_client(ctx):
    # Refused: the client is closed at once, long before connect_timeout (60 s).
    p = _tcp_portico(ctx, ctx.dead_port(), connect_timeout="60s")
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=5 * SCALE)
    t0 = time.time()
    try:
        data = s.recv(10)
    except ConnectionResetError:
        data = b""
    eq(data, b"", "bytes from a forwarder whose upstream refuses")
    expect(time.time() - t0 < 10 * SCALE, "client not closed quickly (connect_timeout 60s)")
    expect(p.wait_line(lambda l: "method=TCP" in l and "status=502" in l, timeout=5 * SCALE),
           "no status=502 access-log line")


@test()
def test_tcp_forward_idle_timeout_closes(ctx):
    def handler(c):
        _recv_all(c)
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port, limits={"tunnel_timeout": "1s"})
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=10 * SCALE)
    s.sendall(b"hi")
    t0 = time.time()
    eq(_recv_all(s), b"", "bytes on an idle forwarder")
    dt = time.time() - t0
    expect(0.8 < dt < 1 + 8 * SCALE, "idle forwarder closed after %.2fs, expected about 1s" % dt)
    srv.close()


@test()
def test_tcp_forward_added_by_reload(ctx):
    def handler(c):
        c.sendall(b"hello from " + str(srv.port).encode())
        c.close()
    srv = TcpServer(handler)
    o = ctx.origin("http")
    p = ctx.portico({"web": svc(o)})
    cfg = dict(p.cfg)
    cfg["services"] = dict(cfg["services"])
    cfg["services"]["fwd"] = {"tcp": {"listen": "127.0.0.1:0",
                                      "upstream": "127.0.0.1:%d" % srv.port}}
    p.write_config(cfg)
    l = p.reload()
    expect("configuration reloaded" in l, "reload: %s" % l)
    s = socket.create_connection(("127.0.0.1", p.tcp_ports["fwd"]), timeout=5 * SCALE)
    eq(_recv_all(s), b"hello from %d" % srv.port, "bytes through the new forwarder")
    eq(request(p.port, host="a.test").status, 200, "HTTP still served")
    srv.close()


@test(timeout=300, serial=True)
def test_tcp_forward_big_stream_flat_rss(ctx):
    size = BIG // 4
    state = {}

    def handler(c):
        v = 0
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            v += len(d)
        state["n"] = v
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port)
    block = b"z" * (1 << 20)
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=30 * SCALE)
    s.sendall(block * 16)
    rss0 = p.rss()
    left = size
    while left > 0:
        n = min(left, len(block))
        s.sendall(block[:n])
        left -= n
    s.shutdown(socket.SHUT_WR)
    _recv_all(s)
    eq(state.get("n"), size + 16 * len(block), "bytes the upstream received")
    growth = p.rss() - rss0
    expect(growth < RSS_LIMIT, "RSS grew by %d bytes" % growth)
    ctx.notes.append("%d MiB through the TCP forwarder, RSS growth %d KiB"
                     % (size >> 20, growth >> 10))
    srv.close()
