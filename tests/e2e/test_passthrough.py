"""End-to-end tests: TLS passthrough."""

from common import *  # noqa: F401,F403


def _pt_setup(ctx, **svc_extra):
    """A TLS listener that terminates a.test and passes vault.test through."""
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    b = TlsBackend(*ca.leaf(["vault.test"], tag="vault-backend"), name="vault")
    vault = {"hosts": ["vault.test"], "passthrough": "127.0.0.1:%d" % b.port}
    vault.update(svc_extra)
    p = _tls_portico(ctx, [ca.leaf(["a.test"], tag="portico")], {"a": svc(o), "vault": vault})
    return ca, b, p


def _tls_by_hand(port, name, ca, split=False,
                 request=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
    """A TLS client over memory BIOs, so that its ClientHello can be sent
    one byte at a time. Returns (certificate CN, response bytes)."""
    cctx = _tls_client_ctx(ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = cctx.wrap_bio(inc, out, server_hostname=name)
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        if split:
            for i in range(len(hello)):
                s.sendall(hello[i:i + 1])
                time.sleep(0.001)
        else:
            s.sendall(hello)
        while True:
            d = s.recv(65536)
            if not d:
                raise AssertionError("connection closed during the handshake")
            inc.write(d)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            finally:
                pending = out.read()
                if pending:
                    s.sendall(pending)
        cn = dict(x[0] for x in obj.getpeercert()["subject"])["commonName"]
        obj.write(request)
        s.sendall(out.read())
        resp = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break   # close_notify
                resp += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                break
            d = s.recv(65536)
            if not d:
                break
            inc.write(d)
        return cn, resp
    finally:
        s.close()


@test(timeout=60)
def test_passthrough_and_termination_share_one_port(ctx):
    ca, b, p = _pt_setup(ctx)
    status, cn = _tls_get(p.port, "vault.test", ca.crt)
    eq((status, cn), (200, "vault-backend"), "passthrough: the backend's own certificate")
    eq(b.snis, ["vault.test"], "SNI seen by the backend")
    eq(_tls_get(p.port, "a.test", ca.crt, "/?do=echo"), (200, "portico"), "terminated name")
    line = p.wait_line(lambda l: "method=TLS" in l, timeout=5 * SCALE)
    expect(line, "no access-log line for the passthrough connection")
    f = logfmt_parse(line)
    eq((f["service"], f["status"]), ("vault", "200"), "access-log fields")
    expect(int(f["in"]) > 100 and int(f["out"]) > 100, "bytes logged: %r" % line)
    # Plain HTTP naming the passthrough host is not routed anywhere.
    q = ctx.portico({"vault": {"hosts": ["vault.test"], "passthrough": "127.0.0.1:1"},
                     "a": svc(ctx.origin("plain"))}, start=False)
    q.cfg["listen"].append({"addr": "127.0.0.1:0", "tls": True})
    q.write_config(q.cfg)
    q.start()
    eq(request(q.port, "GET", "/", host="vault.test").status, 404, "HTTP to a passthrough name")


@test(timeout=60)
def test_passthrough_client_hello_split_byte_by_byte(ctx):
    ca, b, p = _pt_setup(ctx)
    cn, resp = _tls_by_hand(p.port, "vault.test", ca.crt, split=True)
    eq(cn, "vault-backend", "certificate through passthrough")
    expect(resp.endswith(b"vault sni=vault.test"), "response %r" % resp[-100:])
    cn, resp = _tls_by_hand(p.port, "a.test", ca.crt, split=True,
                            request=b"GET /?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    eq(cn, "portico", "terminated certificate after a split ClientHello")
    expect(resp.startswith(b"HTTP/1.1 200"), "response %r" % resp[:100])


@test(timeout=60)
def test_passthrough_hostile_client_hello_closed(ctx):
    ca, b, p = _pt_setup(ctx)
    junk = [
        b"GET / HTTP/1.1\r\nHost: vault.test\r\n\r\n",                  # not TLS
        bytes([22, 3, 1, 0x40, 0x01]) + b"\0" * 100,                     # record too long
        bytes([22, 3, 1, 0x00, 0x09, 1, 0x01, 0x00, 0x00]) + b"\0" * 4,  # 64 KiB hello
        bytes([22, 3, 1, 0x00, 0x06, 2, 0, 0, 2, 3, 3]),                 # not a ClientHello
        bytes([22, 3, 1, 0, 1, 1]) * 4000,                               # 1-byte fragments
    ]
    for j in junk:
        with RawConn(p.port) as c:
            c.sock.sendall(j)
            expect(c.closed_within(5 * SCALE), "connection left open after %r" % j[:20])
    eq(b.accepted, 0, "connections that reached the passthrough upstream")
    # A client that never finishes its ClientHello is closed after header_timeout.
    q = _tls_portico(ctx, [ca.leaf(["a.test"])], {"vault": {"hosts": ["vault.test"],
                     "passthrough": "127.0.0.1:%d" % b.port}}, limits={"header_timeout": "500ms"})
    with RawConn(q.port) as c:
        c.sock.sendall(bytes([22, 3, 1, 0, 200, 1, 0, 0, 196]))
        expect(c.closed_within(5 * SCALE), "half a ClientHello kept open")
    eq(b.accepted, 0, "connections that reached the passthrough upstream")


@test(timeout=60)
def test_passthrough_unknown_name_and_passthrough_only(ctx):
    ca = TestCA(ctx.dir)
    b = TlsBackend(*ca.leaf(["vault.test"], tag="vault-backend"))
    p = ctx.portico({"vault": {"hosts": ["vault.test"], "passthrough": "127.0.0.1:%d" % b.port}},
                    start=False)
    p.cfg["listen"][0]["tls"] = True   # no tls.certs at all
    p.write_config(p.cfg)
    p.start()
    eq(_tls_get(p.port, "vault.test", ca.crt)[1], "vault-backend", "passthrough only")
    for _ in range(3):   # refused the same way every time, never by a reset
        try:
            _tls_get(p.port, "other.test", ca.crt)
            raise AssertionError("a name nobody serves got through")
        except ssl.SSLError as e:
            expect("UNRECOGNIZED_NAME" in str(e).upper(), "alert: %s" % e)
    eq(b.accepted, 1, "connections at the backend")


@test(timeout=60)
def test_passthrough_with_s_server_and_proxy_protocol(ctx):
    ca = TestCA(ctx.dir)
    crt, key = ca.leaf(["db.test"], tag="s_server")
    srv, sport = _s_server(ctx, crt, key, "-naccept", "3")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])],
                     {"db": {"hosts": ["db.test"], "passthrough": "127.0.0.1:%d" % sport}})
    status, cn = _tls_get(p.port, "db.test", ca.crt)
    eq((status, cn), (200, "s_server"), "openssl s_server behind passthrough")
    srv.kill()
    # send_proxy_protocol toward a passthrough upstream.
    b = TlsBackend(*ca.leaf(["pp.test"], tag="pp-backend"))
    q = _tls_portico(ctx, [ca.leaf(["a.test"])],
                     {"pp": {"hosts": ["pp.test"], "passthrough": "127.0.0.1:%d" % b.port,
                             "send_proxy_protocol": "v1"}})
    eq(_tls_get(q.port, "pp.test", ca.crt)[1], "pp-backend", "through passthrough with PROXY")
    eq(len(b.first), 1, "PROXY headers at the backend")
    expect(re.match(rb"PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ %d\r\n" % q.port, b.first[0]),
           "PROXY header %r" % b.first[0])


@test(timeout=120)
def test_passthrough_stream_and_config_errors(ctx):
    ca, b, p = _pt_setup(ctx)
    n = 256 * MiB
    cctx = _tls_client_ctx(ca.crt)
    s = cctx.wrap_socket(socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE),
                         server_hostname="vault.test")
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: vault.test\r\n\r\n" % n)
        head, rest = _read_head(s)
        _expect_pattern(s, rest, n, "bytes through passthrough")
    finally:
        s.close()
    # Configuration mistakes.
    cfgs = [
        ({"v": {"hosts": ["v.test"], "passthrough": "127.0.0.1:1", "upstream": "http://127.0.0.1:2"}},
         True, "cannot have HTTP settings"),
        ({"v": {"hosts": ["v.test"], "passthrough": "nowhere"}}, True, "passthrough"),
        ({"v": {"hosts": ["v.test"], "passthrough": "127.0.0.1:1"}}, False, "no listener has tls: true"),
    ]
    for services, tls, want in cfgs:
        q = ctx.portico(services, start=False)
        q.cfg["listen"][0]["tls"] = tls
        q.write_config(q.cfg)
        rc, out, err = run_check(ctx.binary, q.path)
        expect(rc != 0 and want in out + err, "check of %r: %s" % (services, out + err))
