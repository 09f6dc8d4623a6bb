"""dns: the authoritative responder of split-DNS mode, asked with dig and
kdig (Debian's dnsutils and knot-dnsutils) and with raw malformed packets.

portico answers on a loopback address with port 0 (UDP first, then TCP on
the port UDP got; the "listening" line with listener=dns says which).
Without dns.listen it answers on the node's tailnet addresses, port 53:
tests/tailscale_emu.py plays tailscaled and gives a loopback address as
the node's."""

import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403
from tailscale_emu import LocalAPI  # noqa: E402

ZONE = "home.example.com"
ADDR = "127.0.53.1"
ANSWER = ["100.101.102.103", "fd7a:115c:a1e0::1"]


def _dns_port(p, start=0):
    for l in p.stderr()[start:]:
        if 'msg="listening"' in l:
            f = logfmt_parse(l)
            if f.get("listener") == "dns":
                return port_of(f["addr"])
    raise AssertionError("no dns listening line: %s" % p.stderr()[-6:])


def _services(o, extra=None):
    s = {"grafana": svc(o, hosts=["grafana." + ZONE]),
         "apps": svc(o, hosts=["*.apps." + ZONE]),
         "elsewhere": svc(o, hosts=["wiki.example.org"])}
    s.update(extra or {})
    return s


def _dns_portico(ctx, answer=ANSWER, extra=None, addr=ADDR):
    o = ctx.origin("o")
    p = ctx.portico(_services(o, extra), start=False, metrics=True)
    p.cfg["dns"] = {"listen": [addr + ":0"], "zones": [ZONE], "answer": list(answer),
                    "ttl": "30s"}
    p.write_config(p.cfg)
    p.start()
    return p, _dns_port(p), o


def _dig(port, name, qtype="A", *opts, tool="dig", addr=ADDR, more=()):
    """dig's or kdig's output for one query (more: further name and type
    pairs, asked the same way)."""
    wait = max(2, int(2 * SCALE))
    once = ["+time=%d" % wait, "+tries=1"] if tool == "dig" else ["+timeout=%d" % wait, "+retry=0"]
    args = [tool, "-p", str(port), "@" + addr, "+norec"] + once + list(opts) + [name, qtype]
    args += list(more)
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30 * SCALE)
    return r.stdout.decode()


def _status(out):
    m = re.search(r"status: (\w+)", out)
    return m.group(1) if m else None


def _flags(out):
    m = re.search(r"flags: ([a-z ]*);", out, re.I)
    return set(m.group(1).split()) if m else set()


def _records(out, section="ANSWER"):
    """(owner, ttl, type, data) of one section of dig's or kdig's output."""
    recs, inside = [], False
    for l in out.splitlines():
        if l.startswith(";;"):
            inside = section + " SECTION" in l
            continue
        if not inside or not l.strip():
            inside = inside and bool(l.strip())
            continue
        f = l.split(None, 4)
        if len(f) == 5 and f[2] == "IN":
            recs.append((f[0], int(f[1]), f[3], f[4].strip()))
    return recs


def _metric(p, name, **labels):
    m = _scrape(p.metrics_port)
    return m.get((name, tuple(sorted(labels.items()))), 0)


@test()
def test_dns_a_aaaa_and_wildcard_answered_with_case_echoed(ctx):
    p, port, _ = _dns_portico(ctx)
    out = _dig(port, "grafana." + ZONE)
    eq(_status(out), "NOERROR", "status: " + out)
    expect("aa" in _flags(out), "AA flag: " + out)
    eq(_records(out), [("grafana.home.example.com.", 30, "A", "100.101.102.103")], "A")
    out = _dig(port, "GraFana.HOME.example.com", "AAAA")
    eq(_records(out), [("GraFana.HOME.example.com.", 30, "AAAA", "fd7a:115c:a1e0::1")],
       "AAAA with the query's case: " + out)
    for name in ("x.apps." + ZONE, "a.b.apps." + ZONE):
        out = _dig(port, name)
        eq([r[3] for r in _records(out)], ["100.101.102.103"], "wildcard %s: %s" % (name, out))
    eq(_metric(p, "portico_dns_queries_total", type="A", rcode="NOERROR"), 3, "A counted")
    eq(_metric(p, "portico_dns_queries_total", type="AAAA", rcode="NOERROR"), 1, "AAAA counted")


@test()
def test_dns_nxdomain_nodata_soa_ns_and_refused(ctx):
    p, port, _ = _dns_portico(ctx)
    out = _dig(port, "nope." + ZONE)
    eq(_status(out), "NXDOMAIN", "unknown name: " + out)
    expect("aa" in _flags(out), "AA on NXDOMAIN")
    soa = _records(out, "AUTHORITY")
    eq([(r[0], r[2]) for r in soa], [(ZONE + ".", "SOA")], "SOA in authority: " + out)
    out = _dig(port, "grafana." + ZONE, "MX")
    eq(_status(out), "NOERROR", "NODATA status")
    eq(_records(out), [], "NODATA: no answer")
    eq([r[2] for r in _records(out, "AUTHORITY")], ["SOA"], "NODATA: SOA in authority")
    out = _dig(port, ZONE, "SOA")
    eq([r[2] for r in _records(out)], ["SOA"], "SOA at the apex: " + out)
    expect(_records(out)[0][3].startswith(ZONE + ". hostmaster." + ZONE + ". "), "SOA data")
    out = _dig(port, ZONE, "NS", tool="kdig")
    eq(_records(out), [(ZONE + ".", 30, "NS", ZONE + ".")], "NS at the apex: " + out)
    for name in ("wiki.example.org", "example.com", "xhome.example.com"):
        out = _dig(port, name)
        eq(_status(out), "REFUSED", "outside the zone %s: %s" % (name, out))
        expect("aa" not in _flags(out), "no AA outside the zone")
    eq(_metric(p, "portico_dns_queries_total", type="A", rcode="REFUSED"), 3, "REFUSED counted")
    eq(_metric(p, "portico_dns_queries_total", type="A", rcode="NXDOMAIN"), 1, "NXDOMAIN counted")


@test()
def test_dns_tcp_answers_pipelined_queries(ctx):
    p, port, _ = _dns_portico(ctx)
    out = _dig(port, "grafana." + ZONE, "A", "+tcp")
    eq([r[3] for r in _records(out)], ["100.101.102.103"], "dig +tcp: " + out)
    out = _dig(port, "grafana." + ZONE, "A", "+tcp", "+keepopen", tool="kdig",
               more=("grafana." + ZONE, "AAAA"))
    eq([r[3] for r in _records(out)], ["100.101.102.103", "fd7a:115c:a1e0::1"],
       "kdig, two queries on one connection: " + out)
    # Three framed queries in one write, the last in two pieces: three answers in order.
    qs = [_query(i, "grafana." + ZONE, t) for i, t in ((1, 1), (2, 28), (3, 6))]
    data = b"".join(struct.pack(">H", len(q)) + q for q in qs)
    with socket.create_connection((ADDR, port), timeout=5 * SCALE) as s:
        s.sendall(data[:-5])
        time.sleep(0.1)
        s.sendall(data[-5:])
        got = [_read_framed(s) for _ in qs]
    eq([struct.unpack(">H", a[:2])[0] for a in got], [1, 2, 3], "answer IDs in order")
    eq([a[3] & 0xF for a in got], [0, 0, 0], "rcodes")
    eq([struct.unpack(">H", a[6:8])[0] for a in got], [1, 1, 0], "answer counts (MX-less SOA "
       "query for a host: NODATA)")
    n = _metric(p, "portico_dns_tcp_queries_total")
    eq(n, 6, "TCP queries counted")


@test()
def test_dns_big_answer_truncated_over_udp_then_retried_over_tcp(ctx):
    many = ["100.64.0.%d" % i for i in range(1, 41)]  # 40 A records: 640 bytes
    p, port, _ = _dns_portico(ctx, answer=many)
    out = _dig(port, "grafana." + ZONE, "A", "+noedns", "+ignore")
    expect("tc" in _flags(out), "TC over UDP: " + out)
    eq(_records(out), [], "a truncated answer carries no records")
    out = _dig(port, "grafana." + ZONE, "A", "+noedns")
    expect("Truncated, retrying in TCP mode" in out, "dig retried over TCP: " + out)
    eq(sorted(r[3] for r in _records(out)), sorted(many), "every address over TCP")
    out = _dig(port, "grafana." + ZONE, "A", "+bufsize=4096", tool="kdig")
    eq(len(_records(out)), 40, "kdig falls back to TCP too: " + out)
    expect(_metric(p, "portico_dns_truncated_total") >= 3, "truncations counted")


@test()
def test_dns_edns0_answer_carries_opt_with_our_udp_size(ctx):
    p, port, _ = _dns_portico(ctx)
    out = _dig(port, "grafana." + ZONE, "A", "+bufsize=4096")
    m = re.search(r"EDNS: version: 0, flags:[^;]*; udp: (\d+)", out)
    expect(m, "an OPT record in the answer: " + out)
    eq(m.group(1), "1232", "our UDP size")
    out = _dig(port, "grafana." + ZONE, "A", "+noedns")
    expect("EDNS" not in out, "no OPT without EDNS in the query: " + out)
    out = _dig(port, "grafana." + ZONE, "A", "+edns=1", "+noednsneg")
    eq(_status(out), "BADVERS", "EDNS version 1: " + out)


@test()
def test_dns_reload_adds_a_name(ctx):
    p, port, o = _dns_portico(ctx)
    out = _dig(port, "wiki." + ZONE)
    eq(_status(out), "NXDOMAIN", "before the reload")
    serial0 = int(_records(out, "AUTHORITY")[0][3].split()[2])
    p.cfg["services"]["wiki"] = svc(o, hosts=["wiki." + ZONE])
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reloaded")
    out = _dig(port, "wiki." + ZONE)
    eq(_status(out), "NOERROR", "after the reload: " + out)
    eq([r[3] for r in _records(out)], ["100.101.102.103"], "the new name answered")
    out = _dig(port, ZONE, "SOA")
    expect(int(_records(out)[0][3].split()[2]) > serial0, "the SOA serial grew: " + out)
    eq(_dns_port(p, p.nlines() - 30 if p.nlines() > 30 else 0), port, "same socket kept")


def _query(qid, name, qtype, qdcount=1):
    b = struct.pack(">HHHHHH", qid, 0x0100, qdcount, 0, 0, 0)
    for label in name.split("."):
        b += bytes([len(label)]) + label.encode()
    return b + b"\0" + struct.pack(">HH", qtype, 1)


def _read_framed(s):
    n = struct.unpack(">H", _exactly(s, 2))[0]
    return _exactly(s, n)


def _exactly(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise AssertionError("connection closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def _udp(port, data, timeout=1.0):
    """portico's answer to one datagram, or None when none came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout * SCALE)
        s.sendto(data, (ADDR, port))
        try:
            return s.recv(4096)
        except socket.timeout:
            return None


@test()
def test_dns_malformed_packets_answered_formerr_or_dropped_and_counted(ctx):
    p, port, _ = _dns_portico(ctx)
    hdr = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    label64 = hdr + b"\x40" + b"a" * 64 + b"\0\0\1\0\1"
    long_name = hdr + b"\x03abc" * 64 + b"\0\0\1\0\1"  # 257 bytes of name
    formerr = {
        "pointer loop": hdr + b"\x01a\xc0\x0c\0\1\0\1",
        "pointer to itself": hdr + b"\xc0\x0c\0\1\0\1",
        "label > 63": label64,
        "name > 255": long_name,
        "QDCOUNT 0": _query(0x4242, "grafana." + ZONE, 1, qdcount=0),
        "QDCOUNT 5": _query(0x4242, "grafana." + ZONE, 1, qdcount=5),
        "question cut short": _query(0x4242, "grafana." + ZONE, 1)[:-3],
    }
    for what, data in formerr.items():
        a = _udp(port, data)
        expect(a is not None, "%s: an answer" % what)
        eq(len(a), 12, "%s: a bare header" % what)
        eq(a[:2], b"\x42\x42", "%s: the ID" % what)
        eq(a[3] & 0xF, 1, "%s: FORMERR" % what)
    eq(_udp(port, hdr[:5], timeout=0.5), None, "truncated header: no answer")
    response = bytearray(_query(7, "grafana." + ZONE, 1))
    response[2] |= 0x80
    eq(_udp(port, bytes(response), timeout=0.5), None, "a response: no answer")
    # over TCP, a malformed query is answered too and the connection goes on
    with socket.create_connection((ADDR, port), timeout=5 * SCALE) as s:
        for q in (label64, _query(9, "grafana." + ZONE, 1)):
            s.sendall(struct.pack(">H", len(q)) + q)
        eq(_read_framed(s)[3] & 0xF, 1, "TCP: FORMERR")
        eq(_read_framed(s)[3] & 0xF, 0, "TCP: the next query answered")
    out = _dig(port, "grafana." + ZONE)
    eq(_status(out), "NOERROR", "still answering: " + out)
    eq(_metric(p, "portico_dns_malformed_total"), len(formerr) + 2, "malformed counted")
    eq(_metric(p, "portico_dns_dropped_total", reason="short"), 1, "short counted")
    eq(_metric(p, "portico_dns_dropped_total", reason="response"), 1, "response counted")
    eq(_metric(p, "portico_dns_queries_total", type="none", rcode="FORMERR"), len(formerr) + 1,
       "FORMERR counted")
    expect(p.alive(), "portico alive")


@test(timeout=60)
def test_dns_tcp_connections_bounded_and_idle_ones_closed(ctx):
    p, port, _ = _dns_portico(ctx)
    conns = []
    try:
        for i in range(128):
            conns.append(socket.create_connection((ADDR, port), timeout=5 * SCALE))
            if i == 1:
                t0 = time.time()  # accepted no earlier than this
        # the 129th is accepted and closed at once
        with socket.create_connection((ADDR, port), timeout=5 * SCALE) as extra:
            expect(extra.recv(1) == b"", "over the bound: closed")
        q = _query(5, "grafana." + ZONE, 1)
        conns[0].sendall(struct.pack(">H", len(q)) + q)
        eq(_read_framed(conns[0])[:2], b"\x00\x05", "a connection within the bound answers")
        eq(_metric(p, "portico_dns_dropped_total", reason="tcp_limit"), 1, "refusal counted")
        # idle ones close 10 s after they were accepted (the bound in limits.h)
        conns[1].settimeout(30 * SCALE)
        expect(conns[1].recv(1) == b"", "idle: closed")
        took = time.time() - t0
        expect(9.5 <= took <= 10 + 10 * SCALE, "closed after about 10 s (took %.1f s)" % took)
    finally:
        for c in conns:
            c.close()


@test()
def test_dns_answers_on_the_tailnet_addresses_from_tailscaled(ctx):
    sock = os.path.join(ctx.dir, "tailscaled.sock")
    ts = LocalAPI(sock, self_ips=("127.0.53.77",))
    ctx.cleanups.append(ts.close)
    o = ctx.origin("o")
    p = ctx.portico(_services(o), start=False)
    p.cfg["tailscale"] = {"socket": sock, "state_dir": os.path.join(ctx.dir, "state")}
    p.cfg["dns"] = {"zones": [ZONE]}
    p.write_config(p.cfg)
    p.start()
    expect(p.wait_line("listener=dns addr=127.0.53.77:53", timeout=10 * SCALE),
           "listening on the tailnet address: %s" % p.stderr()[-6:])
    out = _dig(53, "grafana." + ZONE, addr="127.0.53.77")
    eq(_records(out), [("grafana.home.example.com.", 60, "A", "127.0.53.77")],
       "the node's address, by default both listened on and answered: " + out)


@test()
def test_dns_check_says_where_to_listen(ctx):
    path = os.path.join(ctx.dir, "p.yaml")
    cfg = make_config({"grafana": {"hosts": ["grafana." + ZONE],
                                   "upstream": "http://127.0.0.1:9"}})
    cfg["dns"] = {"zones": [ZONE]}
    with open(path, "w") as f:
        f.write(to_yaml(cfg) + "\n")
    rc, _, out = run_check(ctx.binary, path)
    expect(rc != 0, "check refuses it")
    expect("dns: no listen addresses: set dns.listen" in out and "tailscale:" in out,
           "says how to fix it: " + out)


@test(timeout=60)
def test_dns_answers_across_an_upgrade(ctx):
    p, port, _ = _dns_portico(ctx)
    # The port written out, so the new process asks for the same one; the
    # reload binds it beside the port-0 socket's (SO_REUSEPORT) and drops that.
    p.cfg["dns"]["listen"] = ["%s:%d" % (ADDR, port)]
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reloaded onto the written-out port")
    n0 = p.nlines()
    p.signal(signal.SIGUSR2)
    line = p.wait_line(lambda l: " serving " in l and "pid=" in l, 10 * SCALE, start=n0)
    expect(line, "no new process serving after SIGUSR2: %s" % p.stderr()[n0:][-6:])
    pid = int(logfmt_parse(line)["pid"])
    ctx.cleanups.append(lambda: os.kill(pid, signal.SIGTERM))
    for i in range(5):  # both processes hold the port now: either answers
        a = _udp(port, _query(100 + i, "grafana." + ZONE, 1))
        expect(a is not None and a[3] & 0xF == 0, "answered during the handover")
    eq(p.wait_exit(15 * SCALE), 0, "exit status of the old process")
    for i in range(5):
        a = _udp(port, _query(200 + i, "grafana." + ZONE, 1))
        expect(a is not None and a[3] & 0xF == 0, "answered by the new process")
    out = _dig(port, "grafana." + ZONE, "A", "+tcp")
    eq([r[3] for r in _records(out)], ["100.101.102.103"], "TCP by the new process: " + out)


@test()
def test_dns_tcp_connections_have_nodelay(ctx):
    p, port, _ = _dns_portico(ctx)
    with socket.create_connection((ADDR, port), timeout=5 * SCALE) as c:
        q = _query(11, "grafana." + ZONE, 1)
        c.sendall(struct.pack(">H", len(q)) + q)
        eq(_read_framed(c)[:2], b"\x00\x0b", "answered")
        with _peer_socket(p.proc.pid, port, c.getsockname()[1]) as s:
            expect(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                   "TCP_NODELAY off on the accepted DNS connection")
