"""The tailnet backend listener (tailscale.backend): tailscaled's requests,
routed by X-Forwarded-Host, with the caller's identity.

No tailscaled runs here: the tests play tailscaled themselves on the backend
Unix socket, sending what its serve proxy sends (ipn/ipnlocal/serve.go,
reverseProxy.ServeHTTP at tailscale/tailscale v1.103.0): Host replaced by the
socket URL's host, X-Forwarded-Host = the caller's Host, X-Forwarded-For =
the caller's tailnet address, X-Forwarded-Proto: https, Tailscale-User-* for
a user node. tests/tailscale_emu.py is the LocalAPI portico asks whois."""

import grp
import json
import os
import socket
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import LocalAPI, serve_proxy_headers  # noqa: E402

SUFFIX = "tail1234.ts.net"


def _ts_portico(ctx, services, ts=None, start=True, workers=2, **tskw):
    """A portico with tailscale.services on; p.backend is the backend socket."""
    p = ctx.portico(services, start=False, workers=workers)
    backend = os.path.join(ctx.dir, "tailnet.sock")
    sect = {"services": True, "backend": "unix:" + backend,
            "socket": ts.path if ts else os.path.join(ctx.dir, "no-tailscaled.sock"),
            "state_dir": ctx.dir}
    sect.update(tskw)
    p.cfg["tailscale"] = sect
    p.write_config(p.cfg)
    p.backend = backend
    if start:
        p.start()
    return p


# ---------------------------------------------------------------- A: the backend listener

@test()
def test_backend_routes_by_forwarded_host_and_sends_it_as_host(ctx):
    graf, jelly = ctx.origin("grafana"), ctx.origin("jellyfin")
    p = _ts_portico(ctx, {"grafana": svc(graf, hosts=["grafana.example"]),
                          "jellyfin": svc(jelly, hosts=["jf.example"])})
    d = echo(ts_request(p.backend, "/dash?x=1", xfh="grafana." + SUFFIX))
    eq(d["origin"], "grafana", "NAME.<suffix> reaches service NAME")
    eq(d["target"], "/dash?x=1", "target")
    eq(hdrs(d, "host"), ["grafana." + SUFFIX], "Host upstream: the caller's, as tsnsrv sends it")
    eq(hdrs(d, "x-forwarded-host"), ["grafana." + SUFFIX], "X-Forwarded-Host")
    eq(hdrs(d, "x-forwarded-for"), ["100.64.0.2"], "X-Forwarded-For: the caller, once")
    eq(hdrs(d, "x-real-ip"), ["100.64.0.2"], "X-Real-IP: the tailnet caller")
    eq(hdrs(d, "x-forwarded-proto"), ["https"], "tailscaled terminated TLS")
    eq(hdrs(d, "forwarded"), ['for=100.64.0.2;host="grafana.%s";proto=https' % SUFFIX],
       "Forwarded")
    d = echo(ts_request(p.backend, "/", xfh="JELLYFIN.%s:443" % SUFFIX, xff="fd7a:115c:a1e0::5"))
    eq(d["origin"], "jellyfin", "routing is case-insensitive and ignores the port")
    eq(hdrs(d, "x-forwarded-for"), ["fd7a:115c:a1e0::5"], "an IPv6 caller")
    # A configured host name works there too.
    eq(echo(ts_request(p.backend, "/", xfh="jf.example"))["origin"], "jellyfin",
       "a service's own host name")
    st, _, body = ts_request(p.backend, "/", xfh="nosuch." + SUFFIX)
    eq(st, 404, "an unknown name is not guessed")
    # Everywhere else nothing changes: the plain listener routes by Host and
    # ignores a client's X-Forwarded-Host.
    r = request(p.port, "GET", "/", host="grafana.example",
                headers={"X-Forwarded-Host": "jellyfin." + SUFFIX})
    d = r.json()
    eq(d["origin"], "grafana", "the plain listener routes by Host")
    eq(hdrs(d, "x-forwarded-host"), ["grafana.example"], "client X-Forwarded-Host replaced")
    eq(request(p.port, "GET", "/", host="grafana." + SUFFIX).status, 404,
       "NAME.<suffix> is not a name on the plain listener")


@test()
def test_backend_without_forwarded_host_is_refused(ctx):
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o, hosts=["grafana.example"])})
    st, _, body = ts_request(p.backend, "/", xfh=None, host="grafana.example")
    eq(st, 400, "no X-Forwarded-Host: no silent default route, not even by Host")
    expect(b"X-Forwarded-Host" in body, "the body says why: %r" % body)
    st, _, body = ts_request(p.backend, "/", headers=[("X-Forwarded-Host", "grafana.example")])
    eq(st, 400, "two X-Forwarded-Host fields")
    expect(b"more than one X-Forwarded-Host" in body, "the body says why: %r" % body)
    eq(len(o.all_raw()), 0, "nothing reached the upstream")


@test()
def test_backend_socket_mode_group_and_replacement(ctx):
    o = ctx.origin("grafana")
    group = None
    for name in ("nogroup", "daemon", "users"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid != os.getgid():
            group = g
            break
    # A stale socket file from an earlier run is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.path.join(ctx.dir, "tailnet.sock"))
    stale.close()
    kw = {"backend_group": group.gr_name} if group else {}
    p = _ts_portico(ctx, {"grafana": svc(o)}, **kw)
    st = os.stat(p.backend)
    expect(stat.S_ISSOCK(st.st_mode), "the backend is a socket")
    eq(oct(st.st_mode & 0o777), oct(0o660), "mode 0660")
    if group:
        eq(st.st_gid, group.gr_gid, "tailscale.backend_group")
    eq(echo(ts_request(p.backend, "/"))["origin"], "grafana", "serves after start")
    line = p.reload()
    expect("configuration reloaded" in line, line)
    eq(oct(os.stat(p.backend).st_mode & 0o777), oct(0o660), "mode after a reload")
    eq(echo(ts_request(p.backend, "/again"))["target"], "/again", "serves after a reload")


@test()
def test_backend_config_errors(ctx):
    path = os.path.join(ctx.dir, "c.yaml")

    def check(text):
        with open(path, "w") as f:
            f.write(text)
        return run_check(ctx.binary, path)

    base = ("listen: [{addr: '127.0.0.1:0'}]\n"
            "services:\n  grafana: {hosts: [g.example], upstream: 'http://127.0.0.1:3000'}\n"
            "tailscale:\n  services: true\n")
    rc, out, err = check(base + "  backend_group: no-such-group-xyz\n")
    eq(rc, 1, "unknown group: exit status")
    expect("c.yaml:6: tailscale.backend_group: no group named \"no-such-group-xyz\"" in err, err)
    rc, out, err = check(base + "  backend: 'http://127.0.0.1:9'\n"
                         "  insecure_loopback_backend: true\n  backend_group: root\n")
    eq(rc, 1, "group on a TCP backend: exit status")
    expect("c.yaml:8: tailscale.backend_group: only a unix: backend has a group" in err, err)
    rc, out, err = check("listen: [{addr: 'unix:/tmp/x-portico-tn.sock'}]\n"
                         "services:\n  grafana: {hosts: [g.example], upstream: 'http://127.0.0.1:3000'}\n"
                         "tailscale:\n  services: true\n  backend: 'unix:/tmp/x-portico-tn.sock'\n")
    eq(rc, 1, "backend on a listen address: exit status")
    expect("c.yaml:6: tailscale.backend: \"unix:/tmp/x-portico-tn.sock\" is also a listen address"
           in err, err)
    rc, out, err = check(base + "  backend_group: root\n")
    eq(rc, 0, "a known group: " + err)
    expect("2 listeners" in out, "the backend counts as a listener: " + out)


@test()
def test_backend_over_loopback_tcp(ctx):
    o = ctx.origin("grafana")
    port = fixed_port()
    p = _ts_portico(ctx, {"grafana": svc(o)}, backend="http://127.0.0.1:%d" % port,
                    insecure_loopback_backend=True)
    expect(any("warning: tailscale.backend" in l for l in p.stderr()),
           "the loopback backend is warned about")
    r = request(port, "GET", "/t", host="127.0.0.1:%d" % port,
                headers={"X-Forwarded-Host": "grafana." + SUFFIX, "X-Forwarded-For": "100.64.0.9"})
    d = r.json()
    eq(d["origin"], "grafana", "routed by X-Forwarded-Host over TCP")
    eq(hdrs(d, "x-forwarded-for"), ["100.64.0.9"], "the caller from tailscaled")


@test()
def test_forged_identity_headers_stripped_on_every_listener(ctx):
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o, hosts=["grafana.example"])})
    forged = [("Tailscale-User-Login", "root@evil.example"), ("Tailscale-User-Name", "Mallory"),
              ("Tailscale-User-Profile-Pic", "https://evil.example/p.png"),
              ("Tailscale_User_Login", "alias@evil.example"),
              ("X-Tailscale-User", "userid:1"), ("X-Tailscale-User-LoginName", "root@evil.example"),
              ("X-Tailscale-Node-Tags", "tag:admin"), ("X_Tailscale_Caps", "admin"),
              ("Tailscale-Funnel-Request", "?0"), ("Tailscale-App-Capabilities", "{}")]
    r = request(p.port, "GET", "/", host="grafana.example", headers=dict(forged))
    d = r.json()
    leaked = [k for k, v in d["headers"] if "tailscale" in k.lower().replace("_", "-")]
    eq(leaked, [], "identity headers reaching the upstream from the plain listener")
    # On the backend, a client's X-Tailscale-* (tailscaled passes unknown
    # headers on) never reaches the upstream either.
    d = echo(ts_request(p.backend, "/", headers=[h for h in forged if h[0].lower().replace(
        "_", "-").startswith("x-tailscale")]))
    leaked = [(k, v) for k, v in d["headers"] if k.lower().replace("_", "-").startswith(
        "x-tailscale") and v in ("userid:1", "root@evil.example", "tag:admin", "admin")]
    eq(leaked, [], "client copies of X-Tailscale-* through the backend")


# ---------------------------------------------------------------- B: identity

ZOE = "Zo\u00eb M\u00fcller"
ZOE_Q = "=?utf-8?q?Zo=C3=AB_M=C3=BCller?="   # as tailscaled's encTailscaleHeaderValue writes it
PIC = "https://lh3.example.com/a/zoe.png"


def _emu(ctx):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), suffix=SUFFIX)
    ctx.cleanups.append(ts.close)
    ts.zoe = ts.add_user_node("100.64.0.2", "zoe@example.com", ZOE, name="zoes-laptop", pic=PIC,
                              caps={"example.com/cap/grafana": [{"role": "viewer"}]})
    ts.ci = ts.add_tagged_node("100.64.0.3", ["tag:ci", "tag:monitoring"], name="ci-runner")
    return ts


def as_tailscaled(ts, sock, src_ip, host, client_headers=(), target="/", funnel=False):
    """A request as tailscaled's serve proxy forwards it from src_ip (the
    emulator's model of reverseProxy.ServeHTTP)."""
    h, hs = serve_proxy_headers(ts, src_ip, host, client_headers, funnel=funnel)
    return ts_request(sock, target, xfh=None, xff=None, headers=hs, host=h, proto=None)


def zoe_headers():
    """What tailscaled sends for Zoe's laptop."""
    return [("Tailscale-User-Login", "zoe@example.com"), ("Tailscale-User-Name", ZOE_Q),
            ("Tailscale-User-Profile-Pic", PIC),
            ("Tailscale-Headers-Info", "https://tailscale.com/s/serve-headers")]


def raw(s):
    """A UTF-8 value as the echo upstream (latin-1) shows raw bytes."""
    return s.encode("utf-8").decode("latin-1")


def idh(doc):
    """The identity headers the upstream got, by lower-case name."""
    out = {}
    for k, v in doc["headers"]:
        lk = k.lower()
        if lk.startswith("x-tailscale-") or lk.startswith("tailscale-"):
            out.setdefault(lk, []).append(v)
    return out


@test(timeout=60)
def test_identity_user_node_gets_tsnsrv_and_tailscaled_headers(ctx):
    ts = _emu(ctx)
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o, hosts=["grafana.example"])}, ts=ts)
    # Zoe's browser forges X-Tailscale-* (tailscaled passes them on) and
    # Tailscale-User-* (tailscaled removes those itself).
    d = echo(as_tailscaled(ts, p.backend, "100.64.0.2", "grafana." + SUFFIX, [
        ("X-Tailscale-User", "userid:1"), ("X-Tailscale-User-LoginName", "root@evil.example"),
        ("Tailscale-User-Login", "root@evil.example")]))
    eq(idh(d), {
        "x-tailscale-caps": ["example.com/cap/grafana"],
        "x-tailscale-node": ["nodeid:%d" % ts.zoe["ID"]],
        "x-tailscale-node-name": ["zoes-laptop"],
        "x-tailscale-user": ["userid:%d" % ts.peers["100.64.0.2"][1]["ID"]],
        "x-tailscale-user-displayname": [raw(ZOE)],
        "x-tailscale-user-loginname": ["zoe@example.com"],
        "x-tailscale-user-loginname-domain": ["example.com"],
        "x-tailscale-user-loginname-localpart": ["zoe"],
        "x-tailscale-user-profilepicurl": [PIC],
        "tailscale-headers-info": ["https://tailscale.com/s/serve-headers"],
        "tailscale-user-login": ["zoe@example.com"],
        "tailscale-user-name": [ZOE_Q],
        "tailscale-user-profile-pic": [PIC],
    }, "identity headers for a user node (client copies of X-Tailscale-* gone)")
    eq(ts.count("GET", "whois"), 1, "whois calls")
    eq(ts.last("whois").target, "/localapi/v0/whois?addr=100.64.0.2", "whois asks for the caller")


@test(timeout=60)
def test_identity_tagged_node_from_whois(ctx):
    ts = _emu(ctx)
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o)}, ts=ts)
    # tailscaled sends no Tailscale-User-* for a tagged node.
    d = echo(ts_request(p.backend, "/", xff="100.64.0.3"))
    h = idh(d)
    eq(h.get("x-tailscale-node-tags"), ["tag:ci, tag:monitoring"], "tags")
    eq(h.get("x-tailscale-node-name"), ["ci-runner"], "node name")
    eq(h.get("x-tailscale-user-loginname"), ["tagged-devices"], "tsnsrv sends the pseudo-user")
    expect("x-tailscale-user-loginname-domain" not in h, "no domain without '@'")
    expect("tailscale-user-login" not in h, "no user headers for a tagged node: %r" % h)


@test(timeout=60)
def test_identity_whois_failure_and_tailscaled_down_leave_no_identity(ctx):
    ts = _emu(ctx)
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o)}, ts=ts, workers=1)
    # An address tailscaled does not know: whois 404.
    d = echo(ts_request(p.backend, "/", xff="100.64.0.99", headers=zoe_headers()))
    eq(idh(d), {}, "no identity after a failed whois, not even the headers' user")
    d = echo(ts_request(p.backend, "/", xff="100.64.0.99"))
    eq(ts.count("GET", "whois"), 1, "the failure is cached")
    # Another unknown address logs a line after whatever the requests for
    # 100.64.0.99 logged (one worker, one stderr): once it is read, so are they.
    echo(ts_request(p.backend, "/", xff="100.64.0.98"))
    expect(p.wait_line("tailnet caller 100.64.0.98: whois failed", timeout=5 * SCALE),
           "the failed whois for 100.64.0.98 is logged")
    lines = [l for l in p.stderr() if "whois failed" in l and "100.64.0.98" not in l]
    eq(len(lines), 1, "one log line for the failing address: %r" % lines)
    expect("tailnet caller 100.64.0.99: whois failed" in lines[0], lines[0])
    # tailscaled down: requests are still served at once, without identity.
    ts.down()
    t0 = time.time()
    d = echo(ts_request(p.backend, "/", xff="100.64.0.7"))
    eq(idh(d), {}, "no identity while tailscaled is down")
    expect(time.time() - t0 < 4 * SCALE, "served without waiting for a timeout")
    ts.up()


@test(timeout=90)
def test_identity_slow_tailscaled_times_out_to_no_identity(ctx):
    ts = _emu(ctx)
    ts.delays["whois"] = 8.0     # beyond the LocalAPI call's 5 s
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o)}, ts=ts, workers=1)
    t0 = time.time()
    d = echo(ts_request(p.backend, "/", headers=zoe_headers()))
    took = time.time() - t0
    eq(idh(d), {}, "no identity when whois does not answer in time")
    expect(took >= 4.0, "it waited for the call's timeout (%.1fs)" % took)
    # Another service's request without identity needs is not slowed by it:
    # the plain listener never asks.
    t0 = time.time()
    eq(request(p.port, "GET", "/", host="a.test").status, 200, "plain listener")
    expect(time.time() - t0 < 2 * SCALE, "the plain listener does not wait on tailscaled")


@test(timeout=60)
def test_identity_whois_metric_counts_failures(ctx):
    ts = _emu(ctx)
    o = ctx.origin("grafana")
    p = ctx.portico({"grafana": svc(o)}, start=False, metrics=True, workers=1)
    p.cfg["tailscale"] = {"services": True, "backend": "unix:" + os.path.join(ctx.dir, "tn.sock"),
                          "socket": ts.path, "state_dir": ctx.dir}
    p.write_config(p.cfg)
    p.start()
    sock = os.path.join(ctx.dir, "tn.sock")
    echo(ts_request(sock, "/", xff="100.64.0.99"))
    echo(ts_request(sock, "/", xff="100.64.0.2", headers=zoe_headers()))
    echo(ts_request(sock, "/", xff="100.64.0.2", headers=zoe_headers()))
    text = request(p.metrics_port, "GET", "/metrics").body.decode()
    got = {l.split(" ")[0]: l.split(" ")[1] for l in text.splitlines()
           if l.startswith("portico_whois_lookups_total")}
    eq(got.get('portico_whois_lookups_total{outcome="failed"}'), "1", "failed whois: %r" % got)
    eq(got.get('portico_whois_lookups_total{outcome="hit"}'), "1", "cache hit: %r" % got)


@test(timeout=90)
def test_identity_whois_cache_coalesces_concurrent_requests(ctx):
    ts = _emu(ctx)
    ts.delays["whois"] = 0.5      # the answer comes after every request has asked
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o)}, ts=ts, workers=1)
    n = 40
    results = [None] * n

    def one(i):
        try:
            results[i] = echo(ts_request(p.backend, "/c%d" % i, headers=zoe_headers()))
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30 * SCALE)
    bad = [r for r in results if not isinstance(r, dict)]
    eq(bad, [], "failed requests")
    eq(ts.count("GET", "whois"), 1, "whois calls for %d concurrent requests from one address" % n)
    for r in results:
        eq(idh(r).get("x-tailscale-user-loginname"), ["zoe@example.com"], "every request's identity")


@test(timeout=60)
def test_identity_funnel_request_is_anonymous(ctx):
    ts = _emu(ctx)
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o)}, ts=ts)
    d = echo(ts_request(p.backend, "/", xff="100.64.0.2",
                        headers=[("Tailscale-Funnel-Request", "?1")]))
    eq(idh(d), {"tailscale-funnel-request": ["?1"]}, "a Funnel request carries no identity")
    eq(ts.count("GET", "whois"), 0, "no whois for Funnel")


@test(timeout=60)
def test_identity_headers_off_passes_tailscaled_headers_without_whois(ctx):
    ts = _emu(ctx)
    o = ctx.origin("grafana")
    p = _ts_portico(ctx, {"grafana": svc(o)}, ts=ts, identity_headers=False)
    d = echo(ts_request(p.backend, "/", headers=zoe_headers()))
    eq(idh(d), {"tailscale-headers-info": ["https://tailscale.com/s/serve-headers"],
                "tailscale-user-login": ["zoe@example.com"], "tailscale-user-name": [ZOE_Q],
                "tailscale-user-profile-pic": [PIC]}, "tailscaled's headers only")
    eq(ts.count("GET", "whois"), 0, "no whois without identity_headers")


# ---------------------------------------------------------------- C: allow lists

def _metric(p, name):
    text = request(p.metrics_port, "GET", "/metrics").body.decode()
    return {l.split(" ")[0]: l.split(" ")[1] for l in text.splitlines() if l.startswith(name)}


@test(timeout=60)
def test_allow_lists_on_the_identity(ctx):
    ts = _emu(ctx)
    ts.add_user_node("100.64.0.4", "bob@corp.example", "Bob", name="bobs-laptop")
    o = ctx.origin("app")
    services = {
        "byuser": svc(o, hosts=["byuser.example"], allow=["zoe@example.com"]),
        "bydomain": svc(o, hosts=["bydomain.example"], allow=["*@EXAMPLE.com"]),
        "bytag": svc(o, hosts=["bytag.example"], allow=["tag:monitoring"]),
        "open": svc(o, hosts=["open.example"]),
    }
    p = ctx.portico(services, start=False, metrics=True)
    p.cfg["tailscale"] = {"services": True, "backend": "unix:" + os.path.join(ctx.dir, "tn.sock"),
                          "socket": ts.path, "state_dir": ctx.dir}
    p.write_config(p.cfg)
    p.start()
    sock = os.path.join(ctx.dir, "tn.sock")

    def st(name, ip, funnel=False):
        return as_tailscaled(ts, sock, ip, "%s.%s" % (name, SUFFIX), funnel=funnel)[0]

    zoe, bob, ci, stranger = "100.64.0.2", "100.64.0.4", "100.64.0.3", "100.64.0.99"
    eq([st("byuser", ip) for ip in (zoe, bob, ci, stranger)], [200, 403, 403, 403],
       "allow: [zoe@example.com] for zoe, bob, a tagged node, an unknown address")
    eq([st("bydomain", ip) for ip in (zoe, bob, ci, stranger)], [200, 403, 403, 403],
       "allow: [*@example.com]")
    eq([st("bytag", ip) for ip in (zoe, bob, ci, stranger)], [403, 403, 200, 403],
       "allow: [tag:monitoring]")
    eq([st("open", ip) for ip in (zoe, bob, ci, stranger)], [200, 200, 200, 200], "no allow list")
    eq(st("byuser", zoe, funnel=True), 403, "a Funnel request never satisfies allow")
    status, _, body = as_tailscaled(ts, sock, bob, "byuser." + SUFFIX)
    eq(body, b"forbidden: you are not on this service's allow list\n", "the one-line body")
    # The plain listener has no identity: allow refuses everyone there.
    eq(request(p.port, "GET", "/", host="byuser.example",
               headers={"Tailscale-User-Login": "zoe@example.com"}).status, 403,
       "allow on a listener without identity")
    got = _metric(p, "portico_access_denied_total")
    eq((got.get('portico_access_denied_total{service="byuser"}'),
        got.get('portico_access_denied_total{service="bydomain"}'),
        got.get('portico_access_denied_total{service="bytag"}')), ("6", "3", "3"),
       "denials by service: %r" % got)
    denied = [l for l in p.stderr() if "status=403" in l and "service=byuser" in l]
    expect(any("user=bob@corp.example" in l and "allow list" in l for l in denied),
           "the access log names the caller and why: %r" % denied[:3])


@test(timeout=60)
def test_allow_tag_asks_whois_without_identity_headers(ctx):
    ts = _emu(ctx)
    o = ctx.origin("app")
    p = _ts_portico(ctx, {"bytag": svc(o, allow=["tag:ci"]),
                          "byuser": svc(o, hosts=["u.test"], allow=["zoe@example.com"])},
                    ts=ts, identity_headers=False)
    eq(as_tailscaled(ts, p.backend, "100.64.0.3", "bytag." + SUFFIX)[0], 200,
       "a tagged node's tag comes from whois")
    eq(ts.count("GET", "whois"), 1, "whois for the tagged caller")
    eq(as_tailscaled(ts, p.backend, "100.64.0.2", "byuser." + SUFFIX)[0], 200,
       "a user's headers are enough for a login entry")
    eq(ts.count("GET", "whois"), 1, "no whois for a user the headers name")


@test()
def test_allow_config_errors_and_warning(ctx):
    path = os.path.join(ctx.dir, "c.yaml")

    def check(allow, tailscale=""):
        with open(path, "w") as f:
            f.write("listen: [{addr: '127.0.0.1:0'}]\nservices:\n  grafana:\n"
                    "    hosts: [g.example]\n    upstream: 'http://127.0.0.1:3000'\n"
                    "    allow: %s\n%s" % (allow, tailscale))
        return run_check(ctx.binary, path)

    rc, out, err = check("[alice]")
    eq(rc, 1, "a bad entry")
    expect('c.yaml:6: services.grafana.allow: allow entry "alice": is not a login' in err, err)
    rc, out, err = check("[]")
    eq(rc, 1, "an empty list")
    expect("c.yaml:6: services.grafana.allow: the list is empty" in err, err)
    rc, out, err = check("[alice@example.com]")
    eq(rc, 0, "a good list: " + err)
    expect("c.yaml:6: warning: services.grafana.allow: no listener carries tailnet identity" in err,
           "check warns that nobody can pass: " + err)
    rc, out, err = check("[alice@example.com]", "tailscale: {services: true, backend: "
                         "'unix:%s/tn.sock'}\n" % ctx.dir)
    eq((rc, err), (0, ""), "no warning with the backend listener")
    # Without a backend, tailnet callers can still reach an ordinary
    # listener: not a loopback-only one, but one on another address or
    # behind a PROXY header.
    rc, out, err = check("[alice@example.com]", "tailscale: {socket: /run/ts.sock}\n")
    expect("no listener carries tailnet identity" in err, "a loopback listener: " + err)
    for listen in ("[{addr: '127.0.0.1:0', proxy_protocol: true}]", "[{addr: '0.0.0.0:0'}]",
                   "[{addr: '100.101.102.103:0'}]"):
        with open(path, "w") as f:
            f.write("listen: %s\nservices:\n  grafana:\n    hosts: [g.example]\n"
                    "    upstream: 'http://127.0.0.1:3000'\n    allow: [alice@example.com]\n"
                    "tailscale: {socket: /run/ts.sock}\n" % listen)
        rc, out, err = run_check(ctx.binary, path)
        eq((rc, err), (0, ""), "no warning for " + listen)


# ---------------------------------------------------------------- D: auth_bypass_tailnet

@test(timeout=60)
def test_auth_bypass_tailnet_only_for_users(ctx):
    from authelia_emu import Authelia
    ts = _emu(ctx)
    a = Authelia()
    ctx.cleanups.append(a.close)
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o, hosts=["app.example"], auth="authelia",
                                auth_bypass_tailnet=True),
                     "strict": svc(o, hosts=["strict.example"], auth="authelia")},
                    start=False, workers=1)
    p.cfg["auth"] = {"authelia": {"url": a.url + "/api/authz/forward-auth"}}
    sock = os.path.join(ctx.dir, "tn.sock")
    p.cfg["tailscale"] = {"services": True, "backend": "unix:" + sock, "socket": ts.path,
                          "state_dir": ctx.dir}
    p.write_config(p.cfg)
    p.start()

    def via(name, ip, funnel=False):
        before = a.count()
        st = as_tailscaled(ts, sock, ip, "%s.%s" % (name, SUFFIX), funnel=funnel)[0]
        return st, a.count() - before

    eq(via("app", "100.64.0.2"), (200, 0), "a user skips forward auth")
    eq(via("strict", "100.64.0.2")[1], 1, "a service without auth_bypass_tailnet asks")
    st, asked = via("app", "100.64.0.3")
    eq(asked, 1, "a tagged node goes through forward auth")
    expect(st in (302, 401, 403), "and is not let in without a session: %d" % st)
    eq(via("app", "100.64.0.2", funnel=True)[1], 1, "a Funnel request goes through forward auth")
    eq(via("app", "100.64.0.99")[1], 1, "an unknown caller goes through forward auth")
    # tailscaled named a user in its headers, but whois fails: no bypass.
    ts.down()
    before = a.count()
    st, _, _ = ts_request(sock, "/", xfh="app." + SUFFIX, xff="100.64.0.5", headers=zoe_headers())
    eq(a.count() - before, 1, "a failed whois goes through forward auth")
    ts.up()
    # A client forging tailscaled's headers on the plain listener gets nothing.
    before = a.count()
    request(p.port, "GET", "/", host="app.example", headers=dict(zoe_headers()))
    eq(a.count() - before, 1, "forged identity on the plain listener goes through forward auth")
    line = [l for l in p.stderr() if "service=app" in l and "status=200" in l]
    expect(line and "user=zoe@example.com" in line[0], "the access log names the user: %r" % line)
