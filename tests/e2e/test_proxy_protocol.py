"""End-to-end tests: PROXY protocol on a listener."""

from common import *  # noqa: F401,F403


PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _pp_portico(ctx):
    o = ctx.origin("pp")
    p = ctx.portico({"h": svc(o)}, start=False)
    p.cfg["listen"][0]["proxy_protocol"] = True
    p.write_config(p.cfg)
    p.start()
    p.origin = o
    return p


def _pp_client_addr(p, header, split=False):
    """Send header + a request; return (X-Real-IP, X-Forwarded-For) the upstream saw."""
    req = b"GET /pp?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    with RawConn(p.port) as c:
        if split:
            for i in range(len(header)):
                c.send(header[i:i + 1])
                time.sleep(0.002)
        else:
            c.send(header)
        c.send(req)
        r = c.read_response()
        eq(r.status, 200, "status")
        d = r.json()
        return hdrs(d, "x-real-ip"), hdrs(d, "x-forwarded-for")


def _pp2(cmd, fam, addrs, tlvs=b""):
    body = addrs + tlvs
    return PP2_SIG + bytes([0x20 | cmd, fam]) + len(body).to_bytes(2, "big") + body


def _pp2_inet4(src, dst, sport, dport, tlvs=b""):
    return _pp2(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"), tlvs)


def _pp2_inet6(src, dst, sport, dport):
    return _pp2(1, 0x21, socket.inet_pton(socket.AF_INET6, src)
                + socket.inet_pton(socket.AF_INET6, dst)
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


@test()
def test_proxy_protocol_v1_tcp4_sets_client_address(ctx):
    p = _pp_portico(ctx)
    eq(_pp_client_addr(p, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n"),
       (["203.0.113.7"], ["203.0.113.7"]), "X-Real-IP, X-Forwarded-For")
    line = p.wait_line(lambda l: "path=\"/pp?do=echo\"" in l, timeout=5 * SCALE)
    expect(line and "client=203.0.113.7" in line, "access log client: %r" % line)


@test()
def test_proxy_protocol_v1_tcp6_and_unknown(ctx):
    p = _pp_portico(ctx)
    eq(_pp_client_addr(p, b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n"),
       (["2001:db8::7"], ["2001:db8::7"]), "TCP6 client")
    eq(_pp_client_addr(p, b"PROXY UNKNOWN\r\n"), (["127.0.0.1"], ["127.0.0.1"]),
       "UNKNOWN keeps the real peer")


@test()
def test_proxy_protocol_v2_tcp4_tcp6_local(ctx):
    p = _pp_portico(ctx)
    tlv = bytes([0x04]) + (3).to_bytes(2, "big") + b"abc"   # a NOOP TLV
    eq(_pp_client_addr(p, _pp2_inet4("198.51.100.9", "10.0.0.1", 1234, 80, tlv)),
       (["198.51.100.9"], ["198.51.100.9"]), "v2 TCP4 with a TLV")
    eq(_pp_client_addr(p, _pp2_inet6("2001:db8::9", "2001:db8::1", 1234, 80)),
       (["2001:db8::9"], ["2001:db8::9"]), "v2 TCP6")
    eq(_pp_client_addr(p, _pp2(0, 0x00, b"")), (["127.0.0.1"], ["127.0.0.1"]),
       "v2 LOCAL keeps the real peer")


@test()
def test_proxy_protocol_header_split_byte_by_byte(ctx):
    p = _pp_portico(ctx)
    eq(_pp_client_addr(p, b"PROXY TCP4 203.0.113.8 10.0.0.1 5555 80\r\n", split=True),
       (["203.0.113.8"], ["203.0.113.8"]), "v1 split")
    eq(_pp_client_addr(p, _pp2_inet4("198.51.100.10", "10.0.0.1", 1, 2), split=True),
       (["198.51.100.10"], ["198.51.100.10"]), "v2 split")


def _tlv(t, value):
    return bytes([t]) + len(value).to_bytes(2, "big") + value


@test()
def test_proxy_protocol_v2_large_tlvs_accepted_up_to_16k(ctx):
    p = _pp_portico(ctx)
    # What load balancers send: an AWS VPC endpoint id (0xEA), an Azure
    # private link id (0xEE), HAProxy's SSL TLV (0x20), and a large NOOP,
    # for a header of ~6 KiB (more than 536 bytes used to close it).
    tlvs = (_tlv(0xEA, b"\x01vpce-0123456789abcdef0") + _tlv(0xEE, b"\x01\x01\x02\x03\x04")
            + _tlv(0x20, b"\x07\x00\x00\x00\x00" + _tlv(0x21, b"TLSv1.3"))
            + _tlv(0x04, b"x" * 6000))
    h = _pp2_inet4("198.51.100.11", "10.0.0.1", 4242, 80, tlvs)
    expect(len(h) > 6000, "header size %d" % len(h))
    eq(_pp_client_addr(p, h), (["198.51.100.11"], ["198.51.100.11"]), "v2 with TLVs")
    # The bound itself, sent in three pieces.
    pad = 16384 - 16 - 12 - 3
    h = _pp2_inet4("198.51.100.12", "10.0.0.1", 4242, 80, _tlv(0x04, b"y" * pad))
    eq(len(h), 16384, "header at the bound")
    req = b"GET /pp?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    with RawConn(p.port) as c:
        for part in (h[:10], h[10:9000], h[9000:]):
            c.send(part)
            time.sleep(0.05)
        c.send(req)
        r = c.read_response()
        eq(r.status, 200, "status at the bound")
        eq(hdrs(r.json(), "x-real-ip"), ["198.51.100.12"], "client address at the bound")
    # One byte over the bound closes the connection, nothing answered.
    h = _pp2_inet4("198.51.100.13", "10.0.0.1", 4242, 80, _tlv(0x04, b"z" * (pad + 1)))
    before = len(p.origin.requests)
    with RawConn(p.port) as c:
        c.send(h + req)
        expect(c.closed_within(3 * SCALE), "connection not closed for a 16385-byte header")
        expect(not c.buf, "bytes answered: %r" % c.buf[:60])
    eq(len(p.origin.requests), before, "requests over the bound that reached the upstream")


@test()
def test_proxy_protocol_missing_or_malformed_closes(ctx):
    p = _pp_portico(ctx)
    bad = [b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
           b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",
           b"PROXY TCP4 2001:db8::1 10.0.0.1 5555 80\r\n",
           b"PROXY TCP4 203.0.113.7  10.0.0.1 5555 80\r\n",
           b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 70000\r\n",
           b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\n",
           PP2_SIG + bytes([0x31, 0x11]) + (12).to_bytes(2, "big") + b"\0" * 12,   # version 3
           PP2_SIG + bytes([0x21, 0x11]) + (4).to_bytes(2, "big") + b"\0" * 4,     # too short
           _pp2_inet4("1.2.3.4", "5.6.7.8", 1, 2, bytes([0x04, 0x00, 0x09]) + b"x")]  # TLV overrun
    for h in bad:
        with RawConn(p.port) as c:
            c.send(h + b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            expect(c.closed_within(5 * SCALE), "connection not closed for %r" % h[:40])
            expect(not c.buf, "bytes answered for %r: %r" % (h[:40], c.buf[:60]))
    eq(len(p.origin.requests), 0, "requests that reached the upstream")


@test()
def test_send_proxy_protocol_v1_to_tcp_upstream(ctx):
    seen = {}

    def handler(c):
        f = c.makefile("rb")
        seen["line"] = f.readline()
        seen["rest"] = f.read(5)
        c.sendall(b"ok")
        c.close()
    srv = TcpServer(handler)
    p = ctx.portico({"fwd": {"tcp": {"listen": "127.0.0.1:0",
                                     "upstream": "127.0.0.1:%d" % srv.port},
                             "send_proxy_protocol": "v1"}})
    lport = p.tcp_ports["fwd"]
    s = socket.create_connection(("127.0.0.1", lport), timeout=5 * SCALE)
    cport = s.getsockname()[1]
    s.sendall(b"hello")
    eq(_recv_all(s), b"ok", "answer")
    eq(seen.get("line"), b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n" % (cport, lport),
       "PROXY v1 line the upstream received")
    eq(seen.get("rest"), b"hello", "client bytes after the header")
    srv.close()


@test()
def test_tcp_forwarder_reads_proxy_header(ctx):
    # tcp.proxy_protocol: the header's source becomes the client (access log,
    # send_proxy_protocol), split byte by byte or not; the header is consumed.
    seen = []

    def handler(c):
        seen.append(_recv_all(c))
        c.sendall(b"ok")
        c.close()
    srv = TcpServer(handler)
    p = ctx.portico({"fwd": {"tcp": {"listen": "127.0.0.1:0", "proxy_protocol": True,
                                     "upstream": "127.0.0.1:%d" % srv.port},
                             "send_proxy_protocol": "v1"}})
    lport = p.tcp_ports["fwd"]
    for i, split in enumerate((False, True)):
        s = socket.create_connection(("127.0.0.1", lport), timeout=5 * SCALE)
        h = _pp2_inet4("100.64.0.7", "100.100.1.1", 40000 + i, 2222)
        for j in range(len(h) if split else 1):
            s.sendall(h[j:j + 1] if split else h)
            if split:
                time.sleep(0.002)
        s.sendall(b"SSH-2.0-test\r\n")
        s.shutdown(socket.SHUT_WR)
        eq(_recv_all(s), b"ok", "answer (split %s)" % split)
        s.close()
        eq(seen[-1], b"PROXY TCP4 100.64.0.7 100.100.1.1 %d 2222\r\nSSH-2.0-test\r\n" % (40000 + i),
           "what the upstream received (split %s)" % split)
    line = p.wait_line(lambda l: "method=TCP" in l, timeout=5 * SCALE)
    expect(line and "client=100.64.0.7" in line, "access log client: %r" % line)
    srv.close()


@test()
def test_tcp_forwarder_without_proxy_header_closes(ctx):
    srv = TcpServer(lambda c: c.close())
    p = ctx.portico({"fwd": {"tcp": {"listen": "127.0.0.1:0", "proxy_protocol": True,
                                     "upstream": "127.0.0.1:%d" % srv.port}}},
                    limits={"header_timeout": "1s"})
    lport = p.tcp_ports["fwd"]
    for data in (b"SSH-2.0-test\r\n", b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n", b""):
        with RawConn(lport) as c:
            if data:
                c.send(data)
            expect(c.closed_within(5 * SCALE), "connection not closed for %r" % data)
            expect(not c.buf, "bytes answered for %r" % data)
    eq(srv.accepted, 0, "connections that reached the upstream")
    srv.close()


def _pp_http_origin():
    """An HTTP origin behind send_proxy_protocol: v1 or v2 header, then requests;
    answers each request with the header it saw on its connection."""
    conns = []

    def handler(c):
        f = c.makefile("rb")
        first = f.read(6)
        if first == PP2_SIG[:6]:
            rest = f.read(10)
            hdr = first + rest
            n = int.from_bytes(hdr[14:16], "big")
            hdr += f.read(n)
            fam = hdr[13]
            if fam == 0x11:
                src = socket.inet_ntoa(hdr[16:20]) + ":%d" % int.from_bytes(hdr[24:26], "big")
            else:
                src = "?"
            seen = "v2 " + src
        else:
            seen = "v1 " + (first + f.readline()).decode().strip()
        conns.append(seen)
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                ch = f.read(1)
                if not ch:
                    c.close()
                    return
                head += ch
            body = seen.encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return TcpServer(handler), conns


@test()
def test_send_proxy_protocol_v2_to_http_upstream_no_reuse(ctx):
    srv, conns = _pp_http_origin()
    p = ctx.portico({"h": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port,
                           "send_proxy_protocol": "v2"}})
    with RawConn(p.port) as c:
        cport = c.sock.getsockname()[1]
        for _ in range(2):
            c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            eq(r.status, 200, "status")
            eq(r.body, b"v2 127.0.0.1:%d" % cport, "header the upstream saw")
    eq(len(conns), 2, "upstream connections for two requests (never shared)")
    srv.close()


@test()
def test_proxy_protocol_in_and_out_carries_original_client(ctx):
    srv, conns = _pp_http_origin()
    o = {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port,
         "send_proxy_protocol": "v1"}
    p = ctx.portico({"h": o}, start=False)
    p.cfg["listen"][0]["proxy_protocol"] = True
    p.write_config(p.cfg)
    p.start()
    with RawConn(p.port) as c:
        c.send(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b"v1 PROXY TCP4 203.0.113.7 10.0.0.1 5555 80", "header the upstream saw")
    srv.close()
