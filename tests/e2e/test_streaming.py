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
    p = ctx.portico({"v": svc(o)})
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
