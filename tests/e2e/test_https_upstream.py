"""End-to-end tests: https upstreams."""

from common import *  # noqa: F401,F403


def _https_setup(ctx, names=("localhost",), ips=("127.0.0.1",), **svc_kw):
    ca = TestCA(ctx.dir)
    b = TlsBackend(*ca.leaf(list(names), tag="https-backend", ips=ips), name="secure")
    return ca, b


@test(timeout=60)
def test_https_upstream_verified_with_tls_ca_sni_and_keepalive(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt)}, metrics=True)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
    for i in range(5):
        r = request(p.port, "GET", "/x%d" % i, conn=conn)
        eq((r.status, r.body), (200, b"secure sni=localhost"), "response %d" % i)
    conn.close()
    eq(b.accepted, 1, "TLS connections to the upstream for 5 requests")
    eq(b.requests, 5, "requests at the upstream")
    # An IP literal is checked against the certificate's IP addresses; no SNI is sent.
    q = ctx.portico({"s": svc("https://127.0.0.1:%d" % b.port, tls_ca=ca.crt)})
    r = request(q.port, "GET", "/")
    eq((r.status, r.body), (200, b"secure sni=None"), "IP literal upstream")


@test(timeout=60)
def test_https_upstream_with_proxy_protocol_header_before_tls(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt,
                              send_proxy_protocol="v2")})
    for i in range(2):
        r = request(p.port, "GET", "/", headers={"Connection": "close"})
        eq((r.status, r.body), (200, b"secure sni=localhost"), "response %d" % i)
    eq(len(b.first), 2, "PROXY headers (one per upstream connection)")
    expect(all(h.startswith(b"\r\n\r\n\0\r\nQUIT\n\x21\x11") for h in b.first),
           "v2 headers from 127.0.0.1: %r" % b.first)


@test(timeout=60)
def test_https_upstream_untrusted_or_mismatched_certificate_502(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"sys": svc("https://localhost:%d" % b.port, ["sys.test"]),
                     "wrong": svc("https://127.0.0.2:%d" % b.port, ["wrong.test"],
                                  tls_ca=ca.crt)})
    r = request(p.port, "GET", "/", host="sys.test")
    eq(r.status, 502, "certificate from an unknown CA (system store)")
    line = p.wait_line("TLS handshake with", timeout=5 * SCALE)
    expect(line and "certificate" in line, "log line: %r" % line)
    b2 = TlsBackend(*ca.leaf(["other.test"], tag="other"))
    q = ctx.portico({"m": svc("https://localhost:%d" % b2.port, tls_ca=ca.crt)})
    r = request(q.port, "GET", "/")
    eq(r.status, 502, "certificate for another name")
    line = q.wait_line("TLS handshake with", timeout=5 * SCALE)
    expect(line and "mismatch" in line, "log line: %r" % line)
    eq(b2.requests, 0, "requests that reached the wrong upstream")


@test(timeout=60)
def test_https_upstream_insecure_skip_verify_is_explicit(ctx):
    ca, b = _https_setup(ctx, names=("x.invalid",), ips=())
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_insecure_skip_verify=True)})
    r = request(p.port, "GET", "/")
    eq((r.status, r.body), (200, b"secure sni=localhost"), "unverified upstream")


@test(timeout=60)
def test_https_upstream_sessions_resumed_on_new_connections(ctx):
    ca, b = _https_setup(ctx)
    # One worker: pools (and their sessions) are per worker.
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt)}, workers=1)
    for i in range(4):
        eq(request(p.port, "GET", "/x/close").status, 200, "request %d" % i)
    eq(b.resumed, [False, True, True, True], "sessions resumed, per upstream connection")


@test(timeout=120)
def test_https_upstream_big_download(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt, timeout="60s")})
    n = 256 * MiB
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        head, rest = _read_head(s)
        _expect_pattern(s, rest, n, "bytes from the https upstream")
    finally:
        s.close()


@test(timeout=60)
def test_https_upstream_openssl_s_server(ctx):
    ca = TestCA(ctx.dir)
    crt, key = ca.leaf(["localhost"], tag="s_server")
    _, sport = _s_server(ctx, crt, key)
    p = ctx.portico({"s": svc("https://localhost:%d" % sport, tls_ca=ca.crt)})
    r = request(p.port, "GET", "/")
    eq(r.status, 200, "status from s_server")
    expect(b"Ciphers supported in s_server binary" in r.body, "s_server page: %r" % r.body[:200])


@test()
def test_https_upstream_config_errors(ctx):
    cases = [
        ({"s": svc("https://localhost:1", tls_ca=os.path.join(ctx.dir, "nope.pem"))},
         "tls_ca: cannot load CA certificates from"),
        ({"s": svc("http://localhost:1", tls_ca="/etc/ssl/certs/ca-certificates.crt")},
         "tls_ca applies to https:// upstreams"),
        ({"s": svc("https://localhost:1", tls_ca="/x", tls_insecure_skip_verify=True)},
         "contradict"),
        ({"s": svc("https://localhost:1/path")}, "has a path"),
        ({"s": svc("ftp://localhost:1")}, "https://host:port"),
    ]
    for services, want in cases:
        q = ctx.portico(services, start=False)
        q.write_config(q.cfg)
        rc, out, err = run_check(ctx.binary, q.path)
        expect(rc != 0 and want in out + err, "check of %r: %s" % (services, out + err))
        expect(re.search(r"\.yaml:\d+: ", out + err), "file and line in %r" % (out + err))
