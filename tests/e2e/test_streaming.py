"""End-to-end tests: upgrades and streaming."""

from common import *  # noqa: F401,F403


async def _ws_connect(port, path="/ws?do=ws", host="a.test"):
    import websockets
    s = socket.create_connection(("127.0.0.1", port))
    return await websockets.connect("ws://%s%s" % (host, path), sock=s, open_timeout=5 * SCALE,
                                    close_timeout=2 * SCALE, max_size=None, compression=None)


@test()
def test_websocket_echo(ctx):
    o = ctx.origin("ws")
    p = ctx.portico({"v": svc(o)})

    async def main():
        ws = await _ws_connect(p.port)
        try:
            await ws.send("hello")
            eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "hello", "text echo")
            blob = gen_body(300000, seed=4)
            await ws.send(blob)
            eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), blob, "binary echo")
            for i in range(50):
                await ws.send("m%d" % i)
            got = [await asyncio.wait_for(ws.recv(), 5 * SCALE) for _ in range(50)]
            eq(got, ["m%d" % i for i in range(50)], "50 messages in order")
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5 * SCALE)
        finally:
            await ws.close()
    asyncio.run(main())


@test()
def test_websocket_survives_reload(ctx):
    o1 = ctx.origin("old")
    o2 = ctx.origin("new")
    p = ctx.portico({"v": svc(o1)})

    async def main():
        ws = await _ws_connect(p.port)
        try:
            await ws.send("before")
            eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "before", "echo before reload")
            cfg = dict(p.cfg)
            cfg["services"] = {"v": svc(o2)}
            p.write_config(cfg)
            p.hup()
            ok = await asyncio.to_thread(_wait_origin, p.port, "new", 5 * SCALE)
            expect(ok, "new config not in force 5s after SIGHUP")
            for i in range(3):
                await ws.send("after%d" % i)
                eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "after%d" % i, "echo after reload")
            ws2 = await _ws_connect(p.port)
            await ws2.send("fresh")
            eq(await asyncio.wait_for(ws2.recv(), 5 * SCALE), "fresh", "new websocket after reload")
            await ws2.close()
        finally:
            await ws.close()
        eq(sum(1 for r in o2.requests if "do=ws" in r.target), 1, "websockets opened on the new upstream")
    asyncio.run(main())


@test()
def test_upgrade_101_becomes_byte_tunnel(ctx):
    o = ctx.origin("up")
    p = ctx.portico({"v": svc(o, upgrade=["websocket", "echo"])})   # a protocol beyond the default
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /?do=upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        r = c.read_head()
        eq(r.status, 101, "status")
        payload = gen_body(200000, seed=2) + b"GET / HTTP/1.1\r\n\r\n"
        c.send(payload)
        got = c.exact(len(payload))
        eq(got == payload, True, "echoed bytes")
        c.sock.shutdown(socket.SHUT_WR)
        expect(c.closed_within(5 * SCALE), "half-close not passed through the tunnel")


def _upgrade_head(target, upgrade, extra=b""):
    return (b"GET %s HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade%s\r\nUpgrade: %s\r\n%s\r\n"
            % (target.encode(), b", HTTP2-Settings" if b"h2c" in upgrade else b"", upgrade, extra))


@test()
def test_upgrade_only_to_allowed_protocols(ctx):
    o = ctx.origin("up")
    p = ctx.portico({"v": svc(o)})   # default: WebSocket only
    # h2c: forwarded as a plain request, so the origin (which would switch) answers it normally,
    # and the next request on the connection still has its identity headers stripped.
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(_upgrade_head("/?do=upgrade", b"h2c", b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n"))
        r = c.read_response()
        eq(r.status, 200, "h2c offer answered as a plain request")
        d = r.json()
        eq((hdrs(d, "upgrade"), hdrs(d, "http2-settings"), hdrs(d, "connection")), ([], [], []),
           "Upgrade, HTTP2-Settings and Connection at the origin")
        c.send(b"GET /next HTTP/1.1\r\nHost: a.test\r\nRemote-User: admin\r\n\r\n")
        r = c.read_response()
        eq((r.status, hdrs(r.json(), "remote-user")), (200, []), "next request on the connection")
    # other unknown protocols likewise; of a list only the allowed names go upstream
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(_upgrade_head("/?do=upgrade", b"echo"))
        r = c.read_response()
        eq((r.status, hdrs(r.json(), "upgrade")), (200, []), "Upgrade: echo (not allowed)")
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(_upgrade_head("/?do=upgrade", b"h2c, WebSocket/13, foo"))
        r = c.read_head()
        eq((r.status, r.header("upgrade")), (101, "WebSocket/13"), "allowed protocol of a list")
        c.send(b"ping")
        eq(c.exact(4), b"ping", "tunnel echo")
    eq([hdrs({"headers": q.headers}, "upgrade") for q in o.requests if "do=upgrade" in q.target][-1],
       ["WebSocket/13"], "Upgrade value at the origin")
    # an origin that switches to a protocol the service does not allow gets no tunnel
    for target, offer in (("/?do=upgrade&proto=h2c", b"websocket"), ("/?do=upgrade&proto=h2c", b"h2c")):
        with RawConn(p.port, timeout=5 * SCALE) as c:
            c.send(_upgrade_head(target, offer))
            r = c.read_response()
            eq(r.status, 502, "101 to h2c after an offer of %s" % offer.decode())
            expect(c.closed_within(3 * SCALE), "connection left open after the refused 101")


def _sse(ctx, mode):
    o = ctx.origin("sse")
    p = ctx.portico({"v": svc(o)})
    # An ordering check, not a stopwatch: the origin holds the second event
    # until the client has the first (or for 10 s), so a portico that keeps
    # the first event until more data comes delivers it only after the
    # second was sent.
    gap = 10 * SCALE
    with RawConn(p.port, timeout=3 * gap) as c:
        c.send(("GET /events?do=sse&mode=%s&gap=%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
                % (mode, gap)).encode())
        c.until(b"data: one")
        expect(not o.sse_second_sent, "the first event arrived only after the origin sent the "
                                      "second: not flushed as it arrived")
        expect(b"data: two" not in c.buf, "both events at once")
        o.sse_release.set()
        c.until(b"data: two")


@test()
def test_sse_chunked_flushed_as_it_arrives(ctx):
    _sse(ctx, "chunked")


@test()
def test_sse_unknown_length_flushed_as_it_arrives(ctx):
    _sse(ctx, "close")
