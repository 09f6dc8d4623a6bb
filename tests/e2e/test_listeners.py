"""End-to-end tests: listen addresses other than IPv4 ([v6]:port, unix:/path)
and `scheme: https` on a plain listener."""

from common import *  # noqa: F401,F403


def _get(sock, host="a.test", path="/"):
    """One GET with Connection: close on a connected socket; returns the echo
    document."""
    sock.settimeout(5 * SCALE)
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                 % (path.encode(), host.encode()))
    data = _recv_all(sock)
    sock.close()
    eq(status_of(data), 200, "status (%r)" % data[:200])
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


@test()
def test_ipv6_and_unix_socket_listeners(ctx):
    o = ctx.origin("multi")
    p = ctx.portico({"v": svc(o)}, start=False)
    upath = os.path.join(ctx.dir, "portico.sock")
    p.cfg["listen"] += [{"addr": "[::1]:0"}, {"addr": "unix:" + upath}]
    p.write_config(p.cfg)
    p.start()
    eq(len(p.ports), 2, "ports of the 2 listen entries that have one")
    p6 = p.ports[1]
    s = socket.create_connection(("::1", p6), timeout=5 * SCALE)
    d = _get(s, path="/six")
    eq((d["origin"], d["target"]), ("multi", "/six"), "request over IPv6")
    eq(hdrs(d, "x-forwarded-for"), ["::1"], "X-Forwarded-For of an IPv6 client")
    eq(hdrs(d, "x-real-ip"), ["::1"], "X-Real-IP of an IPv6 client")
    eq(hdrs(d, "forwarded"), ['for="[::1]";host="a.test";proto=http'], "Forwarded of an IPv6 client")
    u = socket.socket(socket.AF_UNIX)
    u.settimeout(5 * SCALE)
    u.connect(upath)
    d = _get(u, path="/unix")
    eq((d["origin"], d["target"]), ("multi", "/unix"), "request over the Unix socket")
    eq(hdrs(d, "x-forwarded-proto"), ["http"], "X-Forwarded-Proto over the Unix socket")
    eq(hdrs(d, "forwarded"), ['for=unknown;host="a.test";proto=http'], "Forwarded of a Unix-socket peer")
    eq(get_json(p.port, "/four")["target"], "/four", "the IPv4 listener still serves")


@test()
def test_scheme_https_on_plain_listener_sets_forwarded_proto(ctx):
    o = ctx.origin("scheme")
    p = ctx.portico({"v": svc(o)}, start=False)
    p.cfg["listen"].append({"addr": "127.0.0.1:0", "scheme": "https"})
    p.write_config(p.cfg)
    p.start()
    port2 = p.ports[1]
    eq(hdrs(get_json(port2, "/s"), "x-forwarded-proto"), ["https"],
       "X-Forwarded-Proto from the scheme: https listener")
    eq(hdrs(get_json(p.port, "/p"), "x-forwarded-proto"), ["http"],
       "X-Forwarded-Proto from the plain listener")
