"""End-to-end tests: headers."""

from common import *  # noqa: F401,F403


@test()
def test_header_forwarding_and_stripping(ctx):
    o = ctx.origin("h")
    p = ctx.portico({"h": svc(o, ["a.test"], headers={"X-Svc": "yes", "X-Replace": "from-service"})})
    req = (b"GET /hdr?do=echo HTTP/1.1\r\n"
           b"Host: a.test\r\n"
           b"X-Forwarded-For: 10.1.2.3\r\n"
           b"X-Replace: from-client\r\n"
           b"X-Tailscale-User: evil\r\n"
           b"X-Tailscale-User-LoginName: evil@example.com\r\n"
           b"Tailscale-User-Login: evil\r\n"
           b"Tailscale-User-Name: Evil\r\n"
           b"Tailscale-Headers-Info: https://tailscale.com/s/serve-headers\r\n"
           b"Tailscale-App-Capabilities: {\"example.com/cap/admin\":[{}]}\r\n"
           b"Tailscale-Funnel-Request: ?1\r\n"
           b"Remote-User: evil\r\n"
           b"Remote-Groups: admins\r\n"
           b"Remote_Email: evil@example.com\r\n"
           b"X_Tailscale_User: evil\r\n"
           b"Connection: keep-alive, X-Hop-Secret\r\n"
           b"X-Hop-Secret: s3cret\r\n"
           b"Keep-Alive: timeout=5\r\n"
           b"TE: trailers\r\n"
           b"Trailer: X-Something\r\n"
           b"Proxy-Connection: keep-alive\r\n"
           b"X-Custom: kept value\r\n"
           b"User-Agent: e2e/1\r\n"
           b"\r\n")
    with RawConn(p.port) as c:
        c.send(req)
        r = c.read_response()
        eq(r.status, 200, "status")
        d = r.json()
        xff = [x.strip() for v in hdrs(d, "x-forwarded-for") for x in v.split(",")]
        eq(xff, ["10.1.2.3", "127.0.0.1"], "X-Forwarded-For (appended)")
        eq(hdrs(d, "x-real-ip"), ["127.0.0.1"], "X-Real-IP")
        eq(hdrs(d, "x-forwarded-proto"), ["http"], "X-Forwarded-Proto")
        eq(hdrs(d, "x-forwarded-host"), ["a.test"], "X-Forwarded-Host")
        eq(hdrs(d, "host"), ["a.test"], "Host")
        eq(hdrs(d, "x-svc"), ["yes"], "service header X-Svc")
        eq(hdrs(d, "x-replace"), ["from-service"], "service header replaces the client copy")
        eq(hdrs(d, "x-custom"), ["kept value"], "ordinary header passed on")
        eq(hdrs(d, "user-agent"), ["e2e/1"], "User-Agent passed on")
        names = [k.lower() for k, _ in d["headers"]]
        for bad in ["x-tailscale-user", "x-tailscale-user-loginname", "tailscale-user-login",
                    "tailscale-user-name", "tailscale-headers-info", "tailscale-app-capabilities",
                    "tailscale-funnel-request", "remote-user", "remote-groups", "remote_email",
                    "x_tailscale_user", "x-hop-secret", "keep-alive", "te", "trailer",
                    "proxy-connection"]:
            expect(bad not in names, "%s reached the upstream: %r" % (bad, d["headers"]))
        for v in hdrs(d, "connection"):
            expect("x-hop-secret" not in v.lower(), "Connection still names X-Hop-Secret: %r" % v)
        # without a client X-Forwarded-For
        c.send(b"GET /hdr2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        d2 = c.read_response().json()
        eq([x.strip() for v in hdrs(d2, "x-forwarded-for") for x in v.split(",")], ["127.0.0.1"],
           "X-Forwarded-For without a client value")


@test()
def test_forwarded_head_stays_within_portico_own_limits(ctx):
    # Whatever portico adds (X-Forwarded-*, X-Real-IP, service headers) counts:
    # an upstream with portico's own limit of 100 header lines must never be
    # sent a head it would refuse.
    o = ctx.origin("h")
    p = ctx.portico({"h": svc(o, ["a.test"], headers={"X-Svc": "yes"})})

    def make(lines, pad=0):
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(lines - 1))
        if pad:
            extra += b"X-Pad: " + b"p" * pad + b"\r\n"
        return b"GET /lim?do=echo HTTP/1.1\r\nHost: a.test\r\n" + extra + b"Connection: close\r\n\r\n"

    def send(lines, pad=0):
        head = make(lines, pad)
        data, _ = raw_exchange(p.port, head, timeout=3 * SCALE)
        return head, data

    # Host, Connection and 92 more: 94 from the client; Connection goes, 8 are
    # added (X-Forwarded-For, -Proto, -Host, -Port, X-Real-IP, Forwarded,
    # X-Svc): 100 upstream.
    head, data = send(93)
    eq(status_of(data), 200, "94 client lines (%r)" % data[-200:])
    doc = json.loads(data.split(b"\r\n\r\n", 1)[1])
    eq(len(doc["headers"]), 100, "lines the upstream got")
    n0 = len(o.requests)
    head, data = send(94)
    eq(status_of(data), 431, "95 client lines, 101 upstream (%r)" % data[:200])
    # 100 client lines pass portico's own check, but not with its additions.
    head, data = send(99)
    eq(status_of(data), 431, "100 client lines plus portico's (%r)" % data[:200])
    expect(b"header lines" in data, "the body says which rule: %r" % data[-200:])
    eq(len(o.requests), n0, "requests over the limit that reached the upstream")
