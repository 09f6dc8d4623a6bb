"""Tailnet identity from the peer address: on ordinary listeners (split DNS,
where callers connect to portico directly), a client at a tailnet address,
named by the PROXY header of a listener that expects one or by the socket
itself, is looked up with whois and gets the same identity headers, allow
lists and auth_bypass_tailnet as on the tailscale.backend listener.

tests/tailscale_emu.py is the LocalAPI portico asks whois (its _whois follows
ipn/localapi/localapi.go serveWhoIsWithBackend). The direct test runs portico
and its clients in network namespaces of their own, with tailnet addresses
on their interfaces."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import LocalAPI  # noqa: E402

ZOE, BOB, CI, STRANGER = "100.64.0.2", "100.64.0.4", "100.64.0.3", "100.64.0.99"
ZOE6 = "fd7a:115c:a1e0::2"
PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _emu(ctx):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), suffix="tail1234.ts.net")
    ctx.cleanups.append(ts.close)
    ts.zoe = ts.add_user_node([ZOE, ZOE6], "zoe@example.com", "Zoe", name="zoes-laptop")
    ts.add_user_node(BOB, "bob@corp.example", "Bob", name="bobs-laptop")
    ts.add_tagged_node(CI, ["tag:ci", "tag:monitoring"], name="ci-runner")
    return ts


def _portico(ctx, ts, services, tls=None, tailscale=True, auth=None, metrics=False, workers=2):
    """A portico whose one listener expects a PROXY header (tls: a TestCA
    leaf (cert, key) makes it a TLS listener); tailscale.socket is the
    emulator's, with nothing published (split DNS needs no backend)."""
    p = ctx.portico(services, start=False, metrics=metrics, workers=workers)
    p.cfg["listen"][0]["proxy_protocol"] = True
    if tls:
        p.cfg["listen"][0]["tls"] = True
        p.cfg["tls"] = {"certs": [{"cert": tls[0], "key": tls[1]}]}
    if tailscale:
        p.cfg["tailscale"] = {"socket": ts.path if ts else os.path.join(ctx.dir, "none.sock")}
    if auth:
        p.cfg["auth"] = {"authelia": {"url": auth.url + "/api/authz/forward-auth"}}
    p.write_config(p.cfg)
    p.start()
    return p


def pp1(src, dst="100.101.102.103", sport=40000, dport=443):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def pp2(src, dst=None, sport=40000, dport=443, cmd=1):
    """A v2 header (PROXY, or LOCAL with cmd=0); a source with ':' is TCP6."""
    if cmd == 0:
        return PP2_SIG + bytes([0x20, 0x00, 0, 0])
    fam, af = (0x21, socket.AF_INET6) if ":" in src else (0x11, socket.AF_INET)
    dst = dst or ("fd7a:115c:a1e0::1" if af == socket.AF_INET6 else "100.101.102.103")
    body = (socket.inet_pton(af, src) + socket.inet_pton(af, dst) + sport.to_bytes(2, "big")
            + dport.to_bytes(2, "big"))
    return PP2_SIG + bytes([0x21, fam]) + len(body).to_bytes(2, "big") + body


def get(p, header, host="app.test", headers=(), tls_ca=None, path="/"):
    """header, then one request (over TLS when tls_ca is given); returns
    (status, body bytes)."""
    raw = socket.create_connection(("127.0.0.1", p.port), timeout=10 * SCALE)
    raw.sendall(header)
    s = raw
    if tls_ca:
        s = ssl.create_default_context(cafile=tls_ca).wrap_socket(raw, server_hostname=host)
    lines = ["GET %s HTTP/1.1" % path, "Host: " + host, "Connection: close"]
    lines += ["%s: %s" % kv for kv in headers]
    with RawConn(0, sock=s, timeout=10 * SCALE) as c:
        c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        r = c.read_response()
    return r.status, r.body


def idh(body):
    """The identity headers the echo upstream got, by lower-case name."""
    out = {}
    for k, v in json.loads(body)["headers"]:
        lk = k.lower().replace("_", "-")
        if lk.startswith("x-tailscale-") or lk.startswith("tailscale-"):
            out.setdefault(lk, []).append(v)
    return out


def zoe_headers(ts):
    return {
        "tailscale-headers-info": ["https://tailscale.com/s/serve-headers"],
        "tailscale-user-login": ["zoe@example.com"],
        "tailscale-user-name": ["Zoe"],
        "tailscale-user-profile-pic": [""],
        "x-tailscale-node": ["nodeid:%d" % ts.zoe["ID"]],
        "x-tailscale-node-name": ["zoes-laptop"],
        "x-tailscale-user": ["userid:%d" % ts.peers[ZOE][1]["ID"]],
        "x-tailscale-user-displayname": ["Zoe"],
        "x-tailscale-user-loginname": ["zoe@example.com"],
        "x-tailscale-user-loginname-domain": ["example.com"],
        "x-tailscale-user-loginname-localpart": ["zoe"],
    }


FORGED = [("Tailscale-User-Login", "root@evil.example"), ("X-Tailscale-User", "userid:1"),
          ("X-Tailscale-Node-Tags", "tag:admin"), ("Tailscale_User_Name", "Mallory")]


# ---------------------------------------------------------------- identity headers

@test(timeout=60)
def test_peer_identity_from_proxy_v1_and_v2_on_http_listener(ctx):
    ts = _emu(ctx)
    o = ctx.origin("app")
    p = _portico(ctx, ts, {"app": svc(o, hosts=["app.test"])})
    st, body = get(p, pp1(ZOE), headers=FORGED)
    eq(st, 200, "v1 from Zoe's laptop")
    eq(idh(body), zoe_headers(ts), "Zoe's identity headers; the client's copies gone")
    eq(ts.last("whois").target, "/localapi/v0/whois?addr=" + ZOE, "whois by the header's source")
    st, body = get(p, pp2(ZOE6), headers=FORGED)
    eq(idh(body), zoe_headers(ts), "v2 TCP6 from Zoe's IPv6 tailnet address")
    st, body = get(p, pp2("::ffff:" + BOB))
    eq(idh(body).get("tailscale-user-login"), ["bob@corp.example"],
       "an IPv4-mapped source is the IPv4 address")
    h = idh(get(p, pp2(CI))[1])
    eq((h.get("x-tailscale-node-tags"), "tailscale-user-login" in h),
       (["tag:ci, tag:monitoring"], False), "a tagged node: tags, no user headers")
    line = p.wait_line(lambda l: "status=200" in l and "user=zoe@example.com" in l,
                       timeout=5 * SCALE)
    expect(line and "client=%s" % ZOE in line, "the access log names the caller: %r" % line)


@test(timeout=60)
def test_peer_identity_on_tls_listener_behind_proxy_header(ctx):
    ts = _emu(ctx)
    ca = TestCA(ctx.dir)
    o = ctx.origin("app")
    p = _portico(ctx, ts, {"app": svc(o, hosts=["app.test"])}, tls=ca.leaf(["app.test"]))
    st, body = get(p, pp2(ZOE), headers=FORGED, tls_ca=ca.crt)
    eq(st, 200, "TLS after a v2 header")
    eq(idh(body), zoe_headers(ts), "identity over TLS")
    st, body = get(p, pp1(STRANGER), headers=FORGED, tls_ca=ca.crt)
    eq((st, idh(body)), (200, {}), "a tailnet address tailscaled does not know: anonymous")


@test(timeout=60)
def test_peer_non_tailnet_sources_stay_anonymous(ctx):
    ts = _emu(ctx)
    o = ctx.origin("app")
    p = _portico(ctx, ts, {"app": svc(o, hosts=["app.test"]),
                           "only": svc(o, hosts=["only.test"], allow=["zoe@example.com"])})
    ts.add_user_node("203.0.113.7", "mallory@example.com", "Mallory")
    for what, hdr in (("a public address", pp1("203.0.113.7")),
                      ("100.128.0.1, just outside 100.64.0.0/10", pp2("100.128.0.1")),
                      ("fd7a:115c:a1e1::2, outside the /48", pp2("fd7a:115c:a1e1::2")),
                      ("a v2 LOCAL header (the proxy's own check)", pp2(None, cmd=0))):
        st, body = get(p, hdr, headers=FORGED)
        eq((st, idh(body)), (200, {}), what)
        eq(get(p, hdr, host="only.test")[0], 403, "allow refuses " + what)
    eq(ts.count("GET", "whois"), 0, "whois is never asked for them")
    # Without a tailscale section there is nobody to ask.
    q = _portico(ctx, None, {"only": svc(o, hosts=["only.test"], allow=["zoe@example.com"])},
                 tailscale=False)
    eq(get(q, pp1(ZOE), host="only.test")[0], 403, "no tailscale section: no identity")


# ---------------------------------------------------------------- allow, auth_bypass_tailnet

@test(timeout=60)
def test_peer_allow_lists(ctx):
    ts = _emu(ctx)
    o = ctx.origin("app")
    p = _portico(ctx, ts, {
        "byuser": svc(o, hosts=["byuser.test"], allow=["zoe@example.com"]),
        "bydomain": svc(o, hosts=["bydomain.test"], allow=["*@EXAMPLE.com"]),
        "bytag": svc(o, hosts=["bytag.test"], allow=["tag:monitoring"]),
        "open": svc(o, hosts=["open.test"])}, metrics=True)

    def st(name, ip, v=2):
        return get(p, (pp2 if v == 2 else pp1)(ip), host=name + ".test")[0]

    callers = (ZOE, BOB, CI, STRANGER)
    eq([st("byuser", ip) for ip in callers], [200, 403, 403, 403], "allow: [zoe@example.com]")
    eq([st("bydomain", ip, 1) for ip in callers], [200, 403, 403, 403], "allow: [*@example.com]")
    eq([st("bytag", ip) for ip in callers], [403, 403, 200, 403], "allow: [tag:monitoring]")
    eq([st("open", ip) for ip in callers], [200, 200, 200, 200], "no allow list")
    eq(st("byuser", ZOE6), 200, "Zoe over IPv6")
    text = request(p.metrics_port, "GET", "/metrics").body.decode()
    expect('portico_access_denied_total{service="byuser"} 3' in text, "denials counted")


@test(timeout=60)
def test_peer_auth_bypass_tailnet_for_users_only(ctx):
    from authelia_emu import Authelia
    ts = _emu(ctx)
    a = Authelia()
    ctx.cleanups.append(a.close)
    o = ctx.origin("app")
    p = _portico(ctx, ts, {"app": svc(o, hosts=["app.test"], auth="authelia",
                                      auth_bypass_tailnet=True)}, auth=a, workers=1)

    def via(hdr, headers=()):
        before = a.count()
        st = get(p, hdr, headers=headers)[0]
        return st, a.count() - before

    eq(via(pp2(ZOE)), (200, 0), "a user skips forward auth")
    st, asked = via(pp1(CI))
    eq(asked, 1, "a tagged node goes through forward auth")
    expect(st in (302, 401, 403), "and is not let in without a session: %d" % st)
    eq(via(pp1(STRANGER))[1], 1, "an unknown tailnet address goes through forward auth")
    eq(via(pp1("198.51.100.4"), [("Tailscale-User-Login", "zoe@example.com")])[1], 1,
       "a non-tailnet caller with forged headers goes through forward auth")


# ---------------------------------------------------------------- tailscaled down

@test(timeout=60)
def test_peer_whois_down_is_anonymous_and_counted(ctx):
    ts = _emu(ctx)
    o = ctx.origin("app")
    p = _portico(ctx, ts, {"app": svc(o, hosts=["app.test"]),
                           "only": svc(o, hosts=["only.test"], allow=["zoe@example.com"])},
                 metrics=True, workers=1)
    ts.delays["whois"] = 8.0     # beyond the LocalAPI call's 5 s: the request stops waiting
    t0 = time.time()
    st, body = get(p, pp2(CI), host="only.test")
    eq(st, 403, "no whois answer in time: no identity, refused")
    expect(time.time() - t0 >= 4.0, "it waited for the answer first (%.1fs)" % (time.time() - t0))
    ts.delays.clear()
    ts.down()
    st, body = get(p, pp2(ZOE), headers=FORGED)
    eq((st, idh(body)), (200, {}), "tailscaled down: served, anonymous")
    eq(get(p, pp2(BOB), host="only.test")[0], 403, "and refused where allow is set")
    text = request(p.metrics_port, "GET", "/metrics").body.decode()
    expect('portico_whois_lookups_total{outcome="failed"} 3' in text,
           "failed lookups counted: %r" % [l for l in text.splitlines() if "whois" in l])
    expect(p.wait_line(lambda l: "whois failed" in l and ZOE in l, 2 * SCALE),
           "the failure is logged")


# ---------------------------------------------------------------- straight from the socket

def _netns_available():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = "pt-probe-%s" % uuid.uuid4().hex[:6]
    ok = subprocess.run(["ip", "netns", "add", name], stderr=subprocess.DEVNULL).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
    return ok


def _sh(*args):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    if r.returncode:
        raise AssertionError("%s: %s" % (" ".join(args), r.stderr.decode()[-300:]))
    return r.stdout.decode()


_NS_CLIENT = r"""
import socket, sys
src, dst, port, host = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET)
s.settimeout(10)
s.bind((src, 0))
s.connect((dst, port))
s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nTailscale-User-Login: root@evil.example\r\n"
           "Connection: close\r\n\r\n" % host).encode())
buf = b""
while True:
    try:
        b = s.recv(65536)
    except ConnectionResetError:   # closed with the request unread
        break
    if not b:
        break
    buf += b
sys.stdout.buffer.write(buf)
"""


@test(timeout=90)
def test_peer_identity_direct_from_tailnet_address_in_netns(ctx):
    """portico in one namespace with a tailnet address (100.100.1.2, the
    node's own), clients in another (100.100.1.1: a peer) joined by a veth
    pair; the emulated LocalAPI is reached through its socket file. A client
    in portico's own namespace connecting from the node's address is a
    process on this host: never the node's identity."""
    if not _netns_available():
        ctx.notes.append("SKIPPED: network namespaces unavailable (needs root and ip netns)")
        print("    note: skipped, network namespaces unavailable")
        return
    tag = uuid.uuid4().hex[:6]
    srv, cli = "pt-srv-" + tag, "pt-cli-" + tag
    ctx.cleanups.append(lambda: [subprocess.run(["ip", "netns", "del", n],
                                                stderr=subprocess.DEVNULL) for n in (srv, cli)])
    _sh("ip", "netns", "add", srv)
    _sh("ip", "netns", "add", cli)
    va, vb = "pa" + tag, "pb" + tag
    _sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
    _sh("ip", "link", "set", va, "netns", srv)
    _sh("ip", "link", "set", vb, "netns", cli)
    for ns, dev, mine, peer in ((srv, va, "100.100.1.2", "100.100.1.1"),
                                (cli, vb, "100.100.1.1", "100.100.1.2")):
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "addr", "add", mine + "/32", "dev", dev)
        _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "-n", ns, "route", "add", peer + "/32", "dev", dev)
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), suffix="tail1234.ts.net")
    ctx.cleanups.append(ts.close)
    ts.add_user_node("100.100.1.1", "zoe@example.com", "Zoe", name="zoes-laptop")
    ts.add_user_node("100.100.1.2", "owner@example.com", "Owner", name="portico-host")
    # A Unix-socket origin: its file is reached from portico's namespace.
    o = ctx.origin("app", unix_path=os.path.join(ctx.dir, "origin.sock"))
    p = ctx.portico({"app": svc(o, hosts=["app.test"]),
                     # The node's owner is on the lists: a local process is still not.
                     "only": svc(o, hosts=["only.test"],
                                 allow=["zoe@example.com", "owner@example.com"]),
                     # A TCP forwarder on the node's address, to the HTTP listener.
                     "fwd": {"tcp": {"listen": "100.100.1.2:2222",
                                     "upstream": "100.100.1.2:8080"},
                             "allow": ["zoe@example.com", "owner@example.com"]}},
                    start=False)
    p.cfg["listen"] = [{"addr": "100.100.1.2:8080"}]
    p.cfg["tailscale"] = {"socket": ts.path}
    p.write_config(p.cfg)
    p.wrap = ["ip", "netns", "exec", srv]
    p.start()

    def client(ns, src, host="app.test", port=8080):
        out = _sh("ip", "netns", "exec", ns, sys.executable, "-c", _NS_CLIENT, src,
                  "100.100.1.2", str(port), host)
        if not out:
            return None, ""      # closed without an answer
        head, _, body = out.partition("\r\n\r\n")
        return int(head.split(" ", 2)[1]), body

    st, body = client(cli, "100.100.1.1")
    eq(st, 200, "a peer at a tailnet address")
    h = idh(body)
    eq((h.get("tailscale-user-login"), h.get("x-tailscale-node-name")),
       (["zoe@example.com"], ["zoes-laptop"]), "its identity, by whois on the socket's peer")
    eq(client(cli, "100.100.1.1", "only.test")[0], 200, "allow admits Zoe")
    st, body = client(srv, "100.100.1.2")
    eq((st, idh(body)), (200, {}), "a process on portico's host, from the node's own address")
    eq(client(srv, "100.100.1.2", "only.test")[0], 403, "and allow refuses it")
    # The TCP forwarder's allow list: the same rule for the same callers.
    eq(client(cli, "100.100.1.1", port=2222)[0], 200, "tcp: allow admits Zoe")
    eq(client(srv, "100.100.1.2", port=2222)[0], None,
       "tcp: a process on portico's host is closed, not taken for the node")
    expect(p.wait_line("service fwd: tailnet caller 100.100.1.2 (unknown) is not on the allow "
                       "list: an address of this host", timeout=5 * SCALE),
           "the refusal says why")
    expect(all("100.100.1.2" not in r.target for r in ts.requests if "whois" in r.target),
           "whois is never asked for the node's own address")

