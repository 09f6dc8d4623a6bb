"""End-to-end tests: big streams."""

from common import *  # noqa: F401,F403


def _upload(port, n, timeout=60.0):
    with RawConn(port, timeout=timeout) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
        c.send(b"POST /big?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % n)
        send_pattern(c.sock, n)
        r = c.read_response()
        eq(r.status, 200, "upload status (%r)" % r.body[:200])
        return r.json()


def _big(ctx, direction):
    o = ctx.origin("big")
    p = ctx.portico({"v": svc(o, timeout="60s")})
    warm = 64 * MiB
    fn = _download if direction == "down" else _upload
    fn(p.port, warm)   # warm-up: buffers and pools exist afterwards
    fn(p.port, warm)
    base = p.rss()
    sampler = RssSampler(p)
    sampler.start()
    t0 = time.time()
    try:
        res = fn(p.port, BIG)
    finally:
        peak = sampler.stop()
    dt = time.time() - t0
    after = p.rss()
    if direction == "down":
        eq(res.total, BIG, "bytes received")
        expect(res.ok, "content mismatch in block %s" % res.bad_block)
    else:
        eq(res["len"], BIG, "bytes at the upstream")
        expect(res["pattern_ok"], "content mismatch at the upstream")
    ctx.notes.append("%s %.2f GiB in %.1fs (%.0f MiB/s); VmRSS base %.1f MiB, peak %.1f MiB, after %.1f MiB"
                     % (direction, BIG / GiB, dt, BIG / MiB / dt, base / MiB, peak / MiB, after / MiB))
    expect(peak - base < RSS_LIMIT, "VmRSS grew by %.1f MiB (base %.1f, peak %.1f)"
           % ((peak - base) / MiB, base / MiB, peak / MiB))


@test(timeout=300, serial=True)
def test_big_download_streams_in_constant_memory(ctx):
    _big(ctx, "down")


@test(timeout=300, serial=True)
def test_big_upload_streams_in_constant_memory(ctx):
    _big(ctx, "up")
