"""End-to-end tests: logs and metrics."""

from common import *  # noqa: F401,F403


def _m(ms, name, **labels):
    tot, found = 0.0, False
    for (n, ls), v in ms.items():
        if n == name and all((k, v2) in ls for k, v2 in labels.items()):
            tot += v
            found = True
    return tot if found else None


@test()
def test_metrics_count_requests(ctx):
    o = ctx.origin("m")
    silent = ctx.origin("silent")
    p = ctx.portico({"web": svc(o, ["web.test"]),
                     "dead": svc("http://127.0.0.1:%d" % ctx.dead_port(), ["dead.test"]),
                     "slow": svc(silent, ["slow.test"], timeout="1s")}, metrics=True)
    m0 = _scrape(p.metrics_port)
    for name in ["portico_connections_active", "portico_connections_total"]:
        expect(_m(m0, name) is not None, "%s missing" % name)
    for i in range(3):
        get_json(p.port, "/m%d" % i, host="web.test")
    eq(request(p.port, "GET", "/", host="unknown.test").status, 404, "unknown host")
    eq(request(p.port, "GET", "/", host="dead.test").status, 502, "dead upstream")
    eq(request(p.port, "GET", "/?do=silent", host="slow.test", timeout=10 * SCALE).status, 504, "silent")
    checks = [
        (("portico_requests_total", {"service": "web", "code": "2xx"}), 3),
        (("portico_requests_total", {"service": "-", "code": "4xx"}), 1),
        (("portico_requests_total", {"service": "dead", "code": "5xx"}), 1),
        (("portico_request_duration_seconds_count", {"service": "web"}), 3),
        (("portico_upstream_connect_errors_total", {"service": "dead"}), 1),
        (("portico_upstream_timeouts_total", {"service": "slow"}), 1),
    ]
    end = time.time() + 3 * SCALE
    while True:
        m1 = _scrape(p.metrics_port)
        bad = []
        for (name, labels), delta in checks:
            a, b = _m(m0, name, **labels) or 0, _m(m1, name, **labels)
            if b is None or b - a != delta:
                bad.append("%s%s: %s -> %s (want +%d)" % (name, labels, a, b, delta))
        if not bad or time.time() > end:
            break
        time.sleep(0.2)
    expect(not bad, "; ".join(bad))
    for name in ["portico_bytes_received_total", "portico_bytes_sent_total",
                 "portico_request_duration_seconds_sum"]:
        expect((_m(m1, name) or 0) > (_m(m0, name) or 0), "%s did not grow" % name)
    expect((_m(m1, "portico_connections_total") or 0) >= (_m(m0, "portico_connections_total") or 0) + 6,
           "portico_connections_total did not count the 6 connections")
    inf = _m(m1, "portico_request_duration_seconds_bucket", service="web", le="+Inf")
    eq(inf, 3.0, "web +Inf bucket")


@test()
def test_access_log_line_fields(ctx):
    o = ctx.origin("log")
    p = ctx.portico({"logsvc": svc(o)})
    n0 = p.nlines()
    get_json(p.port, "/logtest?x=1")
    body = b"z" * 1000
    eq(request(p.port, "POST", "/logpost", body=body).status, 200, "post")
    eq(request(p.port, "GET", "/nowhere", host="nope.test").status, 404, "unknown host")
    rx = re.compile(r'^ts=\S+ service=(\S+) client=(\S+) user=(\S+) method=(\S+) path="([^"]*)" '
                    r'status=(\d+) in=(\d+) out=(\d+) ms=(\d+(?:\.\d+)?)(?: reason="([^"]*)")?$')
    lines = {}
    end = time.time() + 3 * SCALE
    while time.time() < end:
        lines = {}
        for l in p.stderr()[n0:]:
            f = logfmt_parse(l)
            if "path" in f and "status" in f:
                lines.setdefault(f["path"], []).append(l)
        if all(k in lines for k in ("/logtest?x=1", "/logpost", "/nowhere")):
            break
        time.sleep(0.05)
    for path in ("/logtest?x=1", "/logpost", "/nowhere"):
        eq(len(lines.get(path, [])), 1, "access lines for %s (stderr tail %r)" % (path, p.stderr()[-4:]))
    m = rx.match(lines["/logtest?x=1"][0])
    expect(m, "line does not match the format: %r" % lines["/logtest?x=1"][0])
    eq(m.groups()[:6], ("logsvc", "127.0.0.1", "-", "GET", "/logtest?x=1", "200"), "fields")
    expect(int(m.group(7)) > 0 and int(m.group(8)) > 0, "in/out bytes %s/%s" % (m.group(7), m.group(8)))
    expect(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", logfmt_parse(lines["/logtest?x=1"][0])["ts"]),
           "ts format")
    m2 = rx.match(lines["/logpost"][0])
    expect(m2 and m2.group(4) == "POST" and int(m2.group(7)) >= 1000, "POST line %r" % lines["/logpost"][0])
    m3 = rx.match(lines["/nowhere"][0])
    expect(m3 and m3.group(1) == "-" and m3.group(6) == "404", "unknown-host line %r" % lines["/nowhere"][0])
    eq(m3.group(10), "not found: no service for this host", "reason of a local answer")
    eq((m.group(10), m2.group(10)), (None, None), "no reason on proxied answers")


def _exchange_bytes(port, data):
    """Send data (one request with Connection: close), read to EOF; returns
    the bytes received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
    try:
        s.sendall(data)
        return _recv_all(s)
    finally:
        s.close()


@test()
def test_access_log_and_metrics_count_exact_bytes(ctx):
    """in= is every byte of the request (head and body), out= every byte of
    the response (head, framing and body), for a spliced response, a copied
    one (chunked, re-framed) and uploads; portico_bytes_*_total add them up."""
    o = ctx.origin("bytes")
    p = ctx.portico({"counted": svc(o)}, metrics=True)
    m0 = _scrape(p.metrics_port)
    body = gen_body(5000, seed=3)
    reqs = {
        # 4 MB: after the first buffer of it, well over the 256 KiB splice threshold
        "/spliced": b"GET /spliced?do=download&mode=cl&n=4000000 HTTP/1.1\r\nHost: a.test\r\n"
                    b"Connection: close\r\n\r\n",
        "/copied": b"GET /copied?do=download&mode=chunked&n=300000&chunk=7777 HTTP/1.1\r\n"
                   b"Host: a.test\r\nConnection: close\r\n\r\n",
        "/small": b"GET /small?do=download&mode=cl&n=1000 HTTP/1.1\r\nHost: a.test\r\n"
                  b"Connection: close\r\n\r\n",
        "/upload": b"POST /upload HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n"
                   b"Content-Length: 5000\r\n\r\n" + body,
        "/chunked-upload": b"POST /chunked-upload HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n7d0\r\n" + body[:2000] +
                           b"\r\nbb8\r\n" + body[2000:] + b"\r\n0\r\n\r\n",
    }
    got = {}
    for path, data in reqs.items():
        n0 = p.nlines()
        out = _exchange_bytes(p.port, data)
        expect(out.startswith(b"HTTP/1.1 200"), "%s: response %r" % (path, out[:100]))
        line = p.wait_line(lambda l: 'path="%s' % path in l, 3 * SCALE, start=n0)
        expect(line, "no access-log line for %s" % path)
        f = logfmt_parse(line)
        got[path] = (int(f["in"]), int(f["out"]))
        eq(got[path], (len(data), len(out)), "%s: (in, out) in the access log vs bytes on the wire"
           % path)
    want_in = sum(len(d) for d in reqs.values())
    want_out = sum(o_ for _, o_ in got.values())
    end = time.time() + 3 * SCALE
    while True:
        m1 = _scrape(p.metrics_port)
        d_in = (_m(m1, "portico_bytes_received_total", service="counted") or 0) - \
            (_m(m0, "portico_bytes_received_total", service="counted") or 0)
        d_out = (_m(m1, "portico_bytes_sent_total", service="counted") or 0) - \
            (_m(m0, "portico_bytes_sent_total", service="counted") or 0)
        if (d_in, d_out) == (want_in, want_out) or time.time() > end:
            break
        time.sleep(0.1)
    eq((d_in, d_out), (want_in, want_out),
       "portico_bytes_received_total and portico_bytes_sent_total growth")
