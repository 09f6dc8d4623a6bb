"""End-to-end tests: `tcp:` and `passthrough:` services published as
Tailscale Services by `portico tailscale plan|apply` (tests/tailscale_emu.py
as tailscaled): the exact serve config for a new (1.94+) and an old
tailscaled, the listener tailscaled forwards to, refusals when there is
none on loopback, and connections made through the emulated tailscaled
reaching the upstream with the tailnet caller's address."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import SUFFIX, LocalAPI  # noqa: E402

CALLER = "100.64.0.7"


def _emu(ctx, version):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), version=version)
    ctx.cleanups.append(ts.close)
    return ts


class Recorder(TcpServer):
    """An upstream that keeps what each connection sent, up to its FIN
    (and with echo, sends each piece back as it comes)."""

    def __init__(self, echo=False):
        self.got = []
        self.echo = echo
        super().__init__(self._take)

    def _take(self, c):
        c.settimeout(10 * SCALE)
        data = b""
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    break
                data += d
                if self.echo:
                    c.sendall(d)
        except OSError:
            pass
        self.got.append(data)
        c.close()

    def wait(self, n=1):
        end = time.time() + 10 * SCALE
        while len(self.got) < n and time.time() < end:
            time.sleep(0.02)
        expect(len(self.got) >= n, "upstream got %d connections, wanted %d" % (len(self.got), n))
        return self.got[n - 1]


def _config(ctx, listens, services):
    cfg = {"listen": listens, "services": services,
           "tailscale": {"socket": os.path.join(ctx.dir, "tailscaled.sock"), "services": True,
                         "backend": "unix:" + os.path.join(ctx.dir, "tailnet.sock"),
                         "state_dir": os.path.join(ctx.dir, "state")}}
    path = os.path.join(ctx.dir, "portico.yaml")
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=1) + "\n")
    return cfg, path


_cli = tailscale_cli


_hello = client_hello


def _setup(ctx, version, tls_listens, ssh_pp=False):
    """vault (passthrough, hosts vault.<suffix>), ssh (a TCP forwarder,
    proxy_protocol: ssh_pp) and web (HTTP); TLS listeners as given
    ({"proxy_protocol": bool} each)."""
    ts = _emu(ctx, version)
    vault, sshd = Recorder(), Recorder()
    ctx.cleanups += [vault.close, sshd.close]
    listens = [{"addr": "127.0.0.1:%d" % fixed_port()}]
    for extra in tls_listens:
        listens.append(dict({"addr": "127.0.0.1:%d" % fixed_port(), "tls": True}, **extra))
    ssh_port = fixed_port()
    services = {
        "vault": {"hosts": ["vault." + SUFFIX], "passthrough": "127.0.0.1:%d" % vault.port,
                  "send_proxy_protocol": "v1"},
        "ssh": {"tcp": {"listen": "127.0.0.1:%d" % ssh_port,
                        "upstream": "127.0.0.1:%d" % sshd.port, "proxy_protocol": ssh_pp},
                "send_proxy_protocol": "v1"},
        "web": {"hosts": ["web.test"], "upstream": "http://127.0.0.1:9"},
    }
    cfg, path = _config(ctx, listens, services)
    return ts, vault, sshd, cfg, path, listens, ssh_port


def _web(ctx):
    return {"TCP": {"443": {"HTTPS": True}},
            "Web": {"web.%s:443" % SUFFIX: {
                "Handlers": {"/": {"Proxy": "unix:" + os.path.join(ctx.dir, "tailnet.sock")}}}}}


def _through(ts, svc, port, src, data, upstream):
    """What upstream receives when a tailnet client at src sends data to
    svc:port through the emulated tailscaled and portico, then closes."""
    s = ts.dial_service(svc, port, src)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = upstream.wait()
    s.close()
    return got


def _run_portico(ctx, cfg):
    p = Portico(ctx.binary, cfg, ctx.dir, name="run")
    ctx.porticos.append(p)
    p.start()
    return p


@test(timeout=60)
def test_tstcp_apply_new_tailscaled_proxy_v2_to_loopback_listener(ctx):
    # Two TLS listeners: tailscaled 1.94 sends PROXY v2, so the one that
    # expects it is chosen although it comes second.
    ts, vault, sshd, cfg, path, listens, ssh_port = _setup(
        ctx, "1.94.2", [{}, {"proxy_protocol": True}], ssh_pp=True)
    tls_pp = listens[2]["addr"]
    rc, out, err = _cli(ctx, "plan", path)
    eq((rc, err), (0, ""), "plan exit status and stderr")
    expect("+ svc:vault  passthrough 443 -> %s (PROXY v2)\n" % tls_pp in out, "plan: %r" % out)
    expect("+ svc:ssh  tcp %d -> 127.0.0.1:%d (PROXY v2)\n" % (ssh_port, ssh_port) in out,
           "plan: %r" % out)
    eq(ts.count("POST"), 0, "plan writes nothing")

    rc, out, err = _cli(ctx, "apply", path)
    eq(rc, 0, "apply exit status (stderr %r)" % err)
    eq(ts.serve_config_doc(), {"Services": {
        "svc:vault": {"TCP": {"443": {"TCPForward": tls_pp, "ProxyProtocol": 2}}},
        "svc:ssh": {"TCP": {str(ssh_port): {"TCPForward": "127.0.0.1:%d" % ssh_port,
                                            "ProxyProtocol": 2}}},
        "svc:web": _web(ctx)}}, "serve config after apply")
    eq(ts.prefs["AdvertiseServices"], ["svc:ssh", "svc:vault", "svc:web"], "advertised")

    # A tailnet client reaches vault through tailscaled and portico: the
    # PROXY v2 header tailscaled sends tells portico who it is, and portico
    # passes that on to the upstream (send_proxy_protocol: v1).
    _run_portico(ctx, cfg)
    hello = _hello("vault." + SUFFIX)
    got = _through(ts, "svc:vault", 443, CALLER + ":40000", hello, vault)
    eq(got, b"PROXY TCP4 %s 100.100.1.1 40000 %d\r\n" % (CALLER.encode(), port_of(tls_pp))
       + hello, "the upstream learns the tailnet caller, then gets the ClientHello")

    # The same for the TCP forwarder, whose listener reads the PROXY header.
    got = _through(ts, "svc:ssh", ssh_port, CALLER + ":40001", b"SSH-2.0-test\r\n", sshd)
    eq(got, b"PROXY TCP4 %s 100.100.1.1 40001 %d\r\nSSH-2.0-test\r\n"
       % (CALLER.encode(), ssh_port), "ssh: the upstream learns the tailnet caller")


@test(timeout=60)
def test_tstcp_apply_old_tailscaled_without_proxy_header(ctx):
    # tailscaled 1.92 does not send PROXY for Services: the listener that
    # does not expect one is chosen, and callers are unknown.
    ts, vault, sshd, cfg, path, listens, ssh_port = _setup(
        ctx, "1.92.5", [{"proxy_protocol": True}, {}])
    plain = listens[2]["addr"]
    rc, out, err = _cli(ctx, "apply", path)
    eq(rc, 0, "apply exit status (stderr %r)" % err)
    eq(ts.serve_config_doc()["Services"]["svc:vault"],
       {"TCP": {"443": {"TCPForward": plain}}}, "svc:vault without ProxyProtocol")
    eq(err, "portico tailscale apply: warning: service vault: the TLS listener %s does not expect "
            "a PROXY header, so the callers of svc:vault are unknown to portico (tailscaled "
            "connects from this machine); tailscaled 1.94 and later can send one\n"
            "portico tailscale apply: warning: service ssh: tcp.listen 127.0.0.1:%d does not "
            "expect a PROXY header, so the callers of svc:ssh are unknown to portico (tailscaled "
            "connects from this machine); tailscaled 1.94 and later can send one\n"
       % (plain, ssh_port), "warnings")

    _run_portico(ctx, cfg)
    hello = _hello("vault." + SUFFIX)
    got = _through(ts, "svc:vault", 443, CALLER + ":40000", hello, vault)
    expect(re.fullmatch(rb"PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ %d\r\n" % port_of(plain),
                        got[:-len(hello)]) and got.endswith(hello), "caller unknown: %r" % got[:80])

    # Only a listener that expects PROXY: every connection would be closed.
    cfg["listen"] = [listens[0], listens[1]]
    with open(path, "w") as f:
        f.write(json.dumps(cfg) + "\n")
    posts = ts.count("POST")
    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, out), (1, ""), "apply refuses")
    eq(err, "portico tailscale apply: service vault: the TLS listener %s expects a PROXY header, "
            "which tailscaled 1.92 does not send for Services (1.94 does); every connection "
            "would be closed: upgrade tailscaled, or drop proxy_protocol there (portico then "
            "cannot tell who connects)\n" % listens[1]["addr"], "refusal")
    eq(ts.count("POST"), posts, "nothing written")


@test(timeout=60)
def test_tstcp_refuses_what_tailscaled_cannot_reach(ctx):
    ts = _emu(ctx, "1.103.0")
    base = {"web": {"hosts": ["web.test"], "upstream": "http://127.0.0.1:9"}}
    cases = [
        # the only TLS listener is on an address tailscaled cannot use
        ([{"addr": "192.0.2.1:8443", "tls": True}],
         {"vault": {"hosts": ["vault." + SUFFIX], "passthrough": "127.0.0.1:9"}},
         "service vault passes TLS through, and tailscaled would have to reach one of portico's "
         "TLS listeners on this machine, but none listens on a loopback or wildcard address with "
         "a fixed port (the TLS listener 192.0.2.1:8443 is not a loopback or wildcard address): "
         "add one (e.g. addr: 127.0.0.1:8443, tls: true, proxy_protocol: true)"),
        # a TLS listener whose port is chosen at start
        ([{"addr": "127.0.0.1:0", "tls": True}],
         {"vault": {"hosts": ["vault." + SUFFIX], "passthrough": "127.0.0.1:9"}},
         "service vault passes TLS through, and tailscaled would have to reach one of portico's "
         "TLS listeners on this machine, but none listens on a loopback or wildcard address with "
         "a fixed port (the TLS listener 127.0.0.1:0 has port 0, chosen at start): add one "
         "(e.g. addr: 127.0.0.1:8443, tls: true, proxy_protocol: true)"),
        # the tailnet name is not among the passthrough service's hosts
        ([{"addr": "127.0.0.1:%d" % fixed_port(), "tls": True}],
         {"vault": {"hosts": ["vault.test"], "passthrough": "127.0.0.1:9"}},
         "service vault: tailnet clients ask for vault.%s, which is not among its hosts, so "
         "portico's TLS listener would not pass it through: add vault.%s to "
         "services.vault.hosts" % (SUFFIX, SUFFIX)),
        # a TCP forwarder on port 0
        ([{"addr": "127.0.0.1:%d" % fixed_port()}],
         {"db": {"tcp": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432"}}},
         "service db: tailscaled forwards its tailnet port to tcp.listen on this machine, and "
         "127.0.0.1:0 has port 0, chosen at start; listen on 127.0.0.1, 0.0.0.0 or [::] with a "
         "fixed port"),
    ]
    for listens, svcs, msg in cases:
        _, path = _config(ctx, listens, dict(base, **svcs))
        for sub in ("plan", "apply"):
            rc, out, err = _cli(ctx, sub, path)
            eq((rc, out, err), (1, "", "portico tailscale %s: %s\n" % (sub, msg)),
               "%s of %s" % (sub, list(svcs)))
    eq(ts.count("POST") + ts.count("PATCH"), 0, "nothing written")


@test(timeout=60)
def test_tstcp_wildcard_listener_is_reached_on_loopback(ctx):
    ts = _emu(ctx, "1.94.0")
    port, tport = fixed_port(), fixed_port()
    _, path = _config(ctx, [{"addr": "0.0.0.0:%d" % port, "tls": True, "proxy_protocol": True}],
                      {"vault": {"hosts": ["vault." + SUFFIX], "passthrough": "127.0.0.1:9"},
                       "db": {"tcp": {"listen": "[::]:%d" % tport, "upstream": "127.0.0.1:9"}}})
    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, err), (0, "portico tailscale apply: warning: service db: tcp.listen [::]:%d does not "
                      "expect a PROXY header, so the callers of svc:db are unknown to portico "
                      "(tailscaled connects from this machine); set proxy_protocol: true there "
                      "and tailscaled sends one\n" % tport), "apply exit status and warning")
    eq(ts.serve_config_doc(), {"Services": {
        "svc:vault": {"TCP": {"443": {"TCPForward": "127.0.0.1:%d" % port, "ProxyProtocol": 2}}},
        "svc:db": {"TCP": {str(tport): {"TCPForward": "[::1]:%d" % tport}}}}},
        "0.0.0.0 is reached at 127.0.0.1, :: at ::1")


def _refused(s, data):
    """Send data on s (a connection through tailscaled) and expect portico
    to close it without answering."""
    try:
        s.sendall(data)
        got = s.recv(4096)
    except ConnectionResetError:
        got = b""
    s.close()
    eq(got, b"", "the refused caller gets nothing back")


def _echoed(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    return got


def _allow_setup(ctx, workers=None):
    """tailscaled 1.94 with a user alice (100.64.0.7), a user mallory
    (100.64.0.8), a tagged node (100.64.0.9, tag:ci); portico with ssh (TCP,
    allow alice and tag:ci), vault (passthrough, allow *@example.com), open
    (TCP, no allow list), all published with PROXY v2; workers: the
    configuration's workers (None: the default)."""
    ts = _emu(ctx, "1.94.2")
    ts.add_user_node("100.64.0.7", "alice@example.com", "Alice", name="alices-laptop")
    ts.add_user_node("100.64.0.8", "mallory@evil.example", "Mallory", name="mallorys-laptop")
    ts.add_tagged_node("100.64.0.9", ["tag:ci"], name="ci-runner")
    sshd, vault, opend = Recorder(True), Recorder(True), Recorder(True)
    ctx.cleanups += [sshd.close, vault.close, opend.close]
    listens = [{"addr": "127.0.0.1:%d" % fixed_port()},
               {"addr": "127.0.0.1:%d" % fixed_port(), "tls": True, "proxy_protocol": True}]
    ssh_port, open_port = fixed_port(), fixed_port()
    services = {
        "ssh": {"tcp": {"listen": "127.0.0.1:%d" % ssh_port,
                        "upstream": "127.0.0.1:%d" % sshd.port, "proxy_protocol": True},
                "allow": ["alice@example.com", "tag:ci"]},
        "vault": {"hosts": ["vault." + SUFFIX], "passthrough": "127.0.0.1:%d" % vault.port,
                  "allow": ["*@example.com"]},
        "open": {"tcp": {"listen": "127.0.0.1:%d" % open_port,
                         "upstream": "127.0.0.1:%d" % opend.port, "proxy_protocol": True}},
    }
    cfg, path = _config(ctx, listens, services)
    cfg["metrics"] = {"listen": "127.0.0.1:0"}
    if workers:
        cfg["workers"] = workers
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=1) + "\n")
    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, err), (0, ""), "apply exit status and stderr")
    p = _run_portico(ctx, cfg)
    return ts, p, sshd, vault, opend, ssh_port, open_port


def _denied(p):
    text = request(p.metrics_port, "GET", "/metrics").body.decode()
    return {l.split(" ")[0]: l.split(" ")[1] for l in text.splitlines()
            if l.startswith("portico_access_denied_total{")}


@test(timeout=60)
def test_tstcp_allow_on_tcp_service(ctx):
    # One worker: the whois cache checked at the end is per worker, so with
    # two alice's repeat connection could be accepted by the other one.
    ts, p, sshd, _, _, ssh_port, _ = _allow_setup(ctx, workers=1)
    # alice is on the list: bytes go both ways.
    s = ts.dial_service("svc:ssh", ssh_port, "100.64.0.7:40001")
    eq(_echoed(s, b"SSH-2.0-alice\r\n"), b"SSH-2.0-alice\r\n", "alice: the upstream answers")
    # the tagged node is admitted by tag:ci.
    s = ts.dial_service("svc:ssh", ssh_port, "100.64.0.9:40002")
    eq(_echoed(s, b"SSH-2.0-ci\r\n"), b"SSH-2.0-ci\r\n", "tag:ci: the upstream answers")
    deadline = time.time() + 10 * SCALE
    while sshd.accepted < 2 and time.time() < deadline:
        time.sleep(0.02)
    eq(sshd.accepted, 2, "upstream connections for the admitted callers")
    # mallory (a login not on the list), an address whois does not know
    # and an address outside the tailnet are closed, the upstream never dialled.
    whois = ts.count("GET", "whois")
    for src in ("100.64.0.8:40003", "100.64.0.10:40004", "192.0.2.5:40005"):
        _refused(ts.dial_service("svc:ssh", ssh_port, src), b"SSH-2.0-intruder\r\n")
    time.sleep(0.3 * SCALE)
    eq(sshd.accepted, 2, "no upstream connection for a refused caller")
    eq(ts.count("GET", "whois"), whois + 2, "whois for the two tailnet addresses only")
    eq(_denied(p).get('portico_access_denied_total{service="ssh"}'), "3", "denials counted")
    expect(p.wait_line("service ssh: tailnet caller 100.64.0.8 (mallory@evil.example) is not on "
                       "the allow list", timeout=5 * SCALE), "the denial is logged with the login")
    expect(p.wait_line("service ssh: tailnet caller 100.64.0.10 (unknown) is not on the allow "
                       "list", timeout=5 * SCALE), "an unknown caller is logged as unknown")
    # The whois answer is cached: alice again asks nothing.
    whois = ts.count("GET", "whois")
    s = ts.dial_service("svc:ssh", ssh_port, "100.64.0.7:40006")
    eq(_echoed(s, b"again"), b"again", "alice again")
    eq(ts.count("GET", "whois"), whois, "the cached answer is used")


@test(timeout=60)
def test_tstcp_allow_on_passthrough_service(ctx):
    ts, p, _, vault, _, _, _ = _allow_setup(ctx)
    hello = _hello("vault." + SUFFIX)
    s = ts.dial_service("svc:vault", 443, "100.64.0.7:40001")
    eq(_echoed(s, hello), hello, "alice (in *@example.com): the ClientHello reaches the upstream")
    for src in ("100.64.0.8:40002", "100.64.0.9:40003", "100.64.0.10:40004"):
        _refused(ts.dial_service("svc:vault", 443, src), hello)
    time.sleep(0.3 * SCALE)
    eq(vault.accepted, 1, "no upstream connection for a refused caller")
    eq(_denied(p).get('portico_access_denied_total{service="vault"}'), "3", "denials counted")
    expect(p.wait_line("service vault: tailnet caller 100.64.0.9 (tag:ci) is not on the allow "
                       "list", timeout=5 * SCALE), "a tagged caller is logged by its tag")


@test(timeout=60)
def test_tstcp_no_allow_list_asks_no_whois(ctx):
    ts, p, _, _, opend, _, open_port = _allow_setup(ctx)
    for src in ("100.64.0.8:40001", "100.64.0.10:40002"):
        s = ts.dial_service("svc:open", open_port, src)
        eq(_echoed(s, b"hi"), b"hi", "open service from %s" % src)
    eq(ts.count("GET", "whois"), 0, "no whois for a service without allow")
    eq(_denied(p).get('portico_access_denied_total{service="open"}'), "0", "nothing denied")


@test(timeout=60)
def test_tstcp_allow_waits_for_whois(ctx):
    ts, p, sshd, _, _, ssh_port, _ = _allow_setup(ctx)
    # While whois answers, the client's bytes wait and no upstream is dialled.
    ts.delays["whois"] = 2.0     # well within the LocalAPI call's 5 s
    s = ts.dial_service("svc:ssh", ssh_port, "100.64.0.7:40001")
    s.sendall(b"early bytes")
    time.sleep(0.3)
    eq(sshd.accepted, 0, "no upstream connection before whois answers")
    got = b""
    while len(got) < len(b"early bytes"):
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    eq(got, b"early bytes", "the bytes sent before the answer reach the upstream and come back")
    # tailscaled that does not answer in time: no identity, closed.
    ts.delays["whois"] = 8.0   # beyond the LocalAPI call's 5 s
    _refused(ts.dial_service("svc:ssh", ssh_port, "100.64.0.9:40002", timeout=20 * SCALE),
             b"SSH-2.0-ci\r\n")
    eq(sshd.accepted, 1, "no upstream connection without an answer")
    eq(_denied(p).get('portico_access_denied_total{service="ssh"}'), "1", "counted")
