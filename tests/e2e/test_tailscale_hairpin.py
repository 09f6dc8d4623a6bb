"""tailscale.hairpin: processes on the host reach the published names
(NAME.<MagicDNS suffix>) through portico's loopback listener, with verified
TLS, resolving them through the block portico keeps in a hosts file.

tests/tailscale_emu.py plays tailscaled (its status gives the suffix); the
hosts file is a temporary file, and the hairpin listener a free loopback
port instead of 443 (clients are pointed at it with curl --resolve, from
the address the block gives)."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403
from tailscale_emu import SUFFIX, LocalAPI, TestCA  # noqa: E402

BEGIN = "# BEGIN portico (managed, do not edit)"
END = "# END portico"

# What the file held before portico: CRLF lines, a comment, no final newline.
BEFORE = b"127.0.0.1 localhost\r\n# a comment the admin wrote\r\n::1 localhost ip6-localhost"


def _setup(ctx, names, hosts_text=BEFORE, listen=("127.0.0.1:0",), start=True, emu=True,
           cert_seconds=90 * 86400, auth=None, suffix=SUFFIX):
    """A portico publishing names with hairpin on; tailscaled (the
    emulation) approved as their host, so their names are in CertDomains
    and cert/ hands out pairs signed by its test CA. Returns
    (p, hosts path, ca, origin, ts)."""
    o = ctx.origin("o")
    ca = TestCA(os.path.join(ctx.dir, "ca"))
    sock = os.path.join(ctx.dir, "tailscaled.sock")
    ts = None
    if emu:
        ts = LocalAPI(sock, ca=ca, cert_seconds=cert_seconds, suffix=suffix)
        ts.cert_backdate = 1
        # published (as a privileged `tailscale apply` would) and approved
        ts.prefs["AdvertiseServices"] = ["svc:alpha", "svc:beta", "svc:gamma"]
        for n in ("alpha", "beta", "gamma"):
            ts.approve("svc:" + n)
        ctx.cleanups.append(ts.close)
    hosts = os.path.join(ctx.dir, "hosts")
    with open(hosts, "wb") as f:
        f.write(hosts_text)
    services = {n: svc(o, hosts=[n + ".test"]) for n in names}
    if auth:
        for n in names:
            services[n]["auth"] = "authelia"
    p = ctx.portico(services, start=False, metrics=True)
    if auth:
        p.cfg["auth"] = {"authelia": {"url": auth.url + "/api/authz/forward-auth"}}
    p.cfg["tailscale"] = {
        "services": True, "publish": False,
        "backend": "unix:" + os.path.join(ctx.dir, "tailnet.sock"),
        "socket": sock, "state_dir": os.path.join(ctx.dir, "state"),
        "hairpin": {"listen": list(listen), "hosts_file": hosts},
    }
    p.write_config(p.cfg)
    if start:
        p.start()
        for n in names if emu else ():  # (nor does a test end with a fetch in flight)
            _wait_cert(p, "%s.%s" % (n, suffix))
    return p, hosts, ca, o, ts


def _wait_cert(p, name, n=1, timeout=None):
    """Until portico logged its n-th certificate from tailscaled for name."""
    text = "certificate for %s from tailscaled: serial" % name
    end = time.time() + (timeout or 20 * SCALE)
    while sum(1 for l in p.stderr() if text in l) < n:
        if time.time() > end:
            raise AssertionError("no certificate for %s: %s" % (name, p.stderr()[-6:]))
        time.sleep(0.05)


def _serial(port, name, ca):
    """The serial of the certificate portico presents for SNI name,
    verified against the test CA."""
    with _tls_connect(port, name, ca.root) as s:
        der = s.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return out.strip().split("=", 1)[1]


def _hairpin_ports(p, start=0):
    """The hairpin listeners' addresses from the last "listening" lines."""
    out = []
    for l in p.stderr()[start:]:
        if 'msg="listening"' in l:
            f = logfmt_parse(l)
            if f.get("listener") == "hairpin":
                out.append(f["addr"])
    return out


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _block(data):
    """The lines of the portico block (markers excluded), or None."""
    text = data.decode()
    if BEGIN not in text:
        return None
    inner = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return [l for l in inner.replace("\r\n", "\n").split("\n") if l]


def _wait_block(path, want, timeout=None):
    timeout = timeout or 10 * SCALE
    end = time.time() + timeout
    while True:
        got = _block(_read(path))
        if got == want:
            return
        if time.time() > end:
            raise AssertionError("hosts block %r, want %r" % (got, want))
        time.sleep(0.05)


def _wait_bytes(path, want, what, timeout=None):
    end = time.time() + (timeout or 10 * SCALE)
    while _read(path) != want and time.time() < end:
        time.sleep(0.05)
    eq(_read(path), want, what)


def _curl(name, ip, port, ca, path="/", headers=()):
    args = ["curl", "-sS", "--max-time", str(int(10 * SCALE)), "--cacert", ca,
            "--resolve", "%s:%d:%s" % (name, port, ip), "-o", "-", "-w", "\n%{http_code}"]
    for h in headers:
        args += ["-H", h]
    r = subprocess.run(args + ["https://%s:%d%s" % (name, port, path)], capture_output=True,
                       text=True, timeout=20 * SCALE)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, code, body, r.stderr


def _resolve_from(hosts, name):
    """The address the hosts file gives name (the first line naming it)."""
    for l in _read(hosts).decode().replace("\r\n", "\n").split("\n"):
        f = l.split("#", 1)[0].split()
        if len(f) >= 2 and name in f[1:]:
            return f[0]
    return None


@test(timeout=60)
def test_hairpin_curl_reaches_alpha_by_its_tailnet_name_over_verified_tls(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha", "beta"])
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX, "127.0.0.1 beta." + SUFFIX])
    _wait_cert(p, "alpha." + SUFFIX)
    addr = _hairpin_ports(p)
    eq(len(addr), 1, "hairpin listeners")
    port = port_of(addr[0])
    name = "alpha." + SUFFIX
    ip = _resolve_from(hosts, name)
    eq(ip, "127.0.0.1", "address of %s in the hosts file" % name)
    rc, code, body, err = _curl(name, ip, port, ca.root)
    eq(rc, 0, "curl exit status (%s)" % err.strip())
    eq(code, "200", "status")
    doc = json.loads(body)
    eq(doc["origin"], "o", "the request reached the origin")
    eq(dict((k.lower(), v) for k, v in doc["headers"])["host"], "%s:%d" % (name, port),
       "Host sent upstream (the client's)")
    # the access log and the metrics say local
    line = p.wait_line(lambda l: "service=alpha" in l and "via=local" in l, 5 * SCALE)
    expect(line, "no access line with via=local: %s" % p.stderr()[-4:])
    m = _scrape(p.metrics_port)
    eq(m.get(("portico_local_requests_total", (("service", "alpha"),))), 1.0,
       "portico_local_requests_total for alpha")
    # a request on the ordinary listener is not local
    r = request(p.port, "GET", "/", host="alpha.test")
    eq(r.status, 200, "plain listener")
    line = p.wait_line(lambda l: "service=alpha" in l and "via=local" not in l and "status=200" in l,
                       5 * SCALE)
    expect(line, "the plain listener's request has no via=local")


@test(timeout=60)
def test_hairpin_name_without_certificate_or_other_host_is_refused(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"])
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX])
    _wait_cert(p, "alpha." + SUFFIX)
    port = port_of(_hairpin_ports(p)[0])
    # A Host the certificate chosen by SNI does not cover: 421.
    s = _tls_connect(port, "alpha." + SUFFIX, ca.root)
    s.sendall(b"GET / HTTP/1.1\r\nHost: alpha.evil.example\r\nConnection: close\r\n\r\n")
    data = _recv_all(s)
    s.close()
    eq(int(data.split(b" ", 2)[1]), 421, "status for a Host outside the certificate")
    # A name under the suffix that portico does not publish has no
    # certificate here: the handshake fails.
    rc, code, body, err = _curl("beta." + SUFFIX, "127.0.0.1", port, ca.root)
    expect(rc != 0 and code == "000", "a name portico does not publish: curl %d %s %s"
           % (rc, code, err.strip()))


@test(timeout=60)
def test_hairpin_local_callers_go_through_forward_auth_and_carry_no_identity(ctx):
    from authelia_emu import Authelia
    a = Authelia()
    ctx.cleanups.append(a.close)
    # (a tailnet suffix inside the provider's cookie domain, example.com)
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], auth=a, suffix="tail1234.example.com")
    name = "alpha.tail1234.example.com"
    _wait_block(hosts, ["127.0.0.1 " + name])
    port = port_of(_hairpin_ports(p)[0])
    # Tailscale identity headers from a local caller are nobody's identity.
    forged = ["Tailscale-User-Login: alice@example.com", "Tailscale-User-Name: Alice",
              "X-Tailscale-User-LoginName: alice@example.com"]
    n0 = len(a.requests)
    rc, code, body, err = _curl(name, "127.0.0.1", port, ca.root, headers=forged)
    eq(code, "302", "a local caller without a session is sent to the portal (%s)" % body[:200])
    eq(len(a.requests), n0 + 1, "forward auth was asked")
    rc, code, body, err = _curl(name, "127.0.0.1", port, ca.root,
                                headers=forged + ["Cookie: authelia_session=alice-session"])
    eq(code, "200", "a local caller with a session (%s)" % body[:200])
    got = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
    eq(got.get("remote-user"), "alice", "Remote-User from forward auth")
    for h in ("tailscale-user-login", "tailscale-user-name", "x-tailscale-user-loginname"):
        expect(h not in got, "%s reached the upstream from a local caller" % h)


@test(timeout=60)
def test_hairpin_allow_local_admits_local_callers_and_only_them(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha", "beta"], start=False)
    p.cfg["services"]["alpha"]["allow"] = ["local"]
    p.cfg["services"]["beta"]["allow"] = ["alice@example.com", "tag:monitoring"]
    p.write_config(p.cfg)
    p.start()
    for n in ("alpha", "beta"):
        _wait_cert(p, "%s.%s" % (n, SUFFIX))
    port = port_of(_hairpin_ports(p)[0])
    # `local` admits a process on this host, whatever identity it claims.
    rc, code, body, err = _curl("alpha." + SUFFIX, "127.0.0.1", port, ca.root,
                                headers=["Tailscale-User-Login: mallory@example.com"])
    eq(code, "200", "allow: [local] on the hairpin listener (%s %s)" % (body[:200], err.strip()))
    # A list without `local` refuses it, even when it names the login the
    # local caller forges.
    rc, code, body, err = _curl("beta." + SUFFIX, "127.0.0.1", port, ca.root,
                                headers=["Tailscale-User-Login: alice@example.com"])
    eq(code, "403", "a local caller outside the allow list (%s)" % body[:200])
    m = _scrape(p.metrics_port)
    eq(m.get(("portico_access_denied_total", (("service", "beta"),))), 1.0,
       "portico_access_denied_total for beta")
    # `local` means this listener only: on the ordinary listener nobody has
    # an identity, so the list admits nobody.
    eq(request(p.port, "GET", "/", host="alpha.test").status, 403,
       "allow: [local] on a listener that is not the hairpin one")


@test(timeout=120)
def test_hairpin_certificate_renewal_served_without_restart(ctx):
    # 13 s of validity, renewed at two thirds: about 9 s after issue.
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], cert_seconds=13)
    name = "alpha." + SUFFIX
    _wait_block(hosts, ["127.0.0.1 " + name])
    _wait_cert(p, name)
    port = port_of(_hairpin_ports(p)[0])
    first = _serial(port, name, ca)
    ts.cert_seconds = 90 * 86400   # the renewal gives a long-lived one
    _wait_cert(p, name, n=2, timeout=40 * SCALE)
    second = _serial(port, name, ca)
    expect(second != first, "a new certificate is served: %s then %s" % (first, second))
    rc, code, body, err = _curl(name, "127.0.0.1", port, ca.root)
    eq(code, "200", "status with the renewed certificate (%s)" % err.strip())
    eq(sum(1 for l in p.stderr() if "serving" in l and "portico " in l), 1, "no restart")


@test(timeout=90)
def test_hairpin_hosts_block_follows_reloads_rest_of_file_unchanged(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha", "beta"], listen=("127.0.0.1:0", "[::1]:0"))
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX, "127.0.0.1 beta." + SUFFIX,
                        "::1 alpha." + SUFFIX, "::1 beta." + SUFFIX])
    data = _read(hosts)
    # added after the admin's lines, in CRLF like them, after the line
    # break the file lacked, and without a final one of its own
    eq(data[:len(BEFORE)], BEFORE, "the file's own bytes")
    expect(data[len(BEFORE):].startswith(b"\r\n" + BEGIN.encode() + b"\r\n"),
           "block starts on its own CRLF line: %r" % data[len(BEFORE):][:60])
    expect(data.endswith(END.encode()), "no final line break added: %r" % data[-20:])
    # a service added, one removed
    p.cfg["services"]["gamma"] = svc(o, hosts=["gamma.test"])
    del p.cfg["services"]["beta"]
    p.write_config(p.cfg)
    line = p.reload()
    expect("reloaded" in line, "reload: %s" % line)
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX, "127.0.0.1 gamma." + SUFFIX,
                        "::1 alpha." + SUFFIX, "::1 gamma." + SUFFIX])
    _wait_cert(p, "gamma." + SUFFIX)
    data = _read(hosts)
    eq(data[:len(BEFORE)], BEFORE, "the file's own bytes after a reload")
    # hairpin off: the block goes, the file is as it was, byte for byte
    del p.cfg["tailscale"]["hairpin"]
    p.write_config(p.cfg)
    n0 = p.nlines()
    line = p.reload()
    expect("reloaded" in line, "reload: %s" % line)
    _wait_bytes(hosts, BEFORE, "the file once hairpin is off")
    expect(not _hairpin_ports(p, start=n0), "no hairpin listener after it is off")


@test(timeout=60)
def test_hairpin_block_removed_on_sigterm(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], hosts_text=b"10.0.0.9 nas\n")
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX])
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(15 * SCALE)
    eq(rc, 0, "exit status")
    eq(_read(hosts), b"10.0.0.9 nas\n", "the hosts file after SIGTERM")


@test(timeout=90)
def test_hairpin_block_kept_across_an_upgrade(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], hosts_text=b"10.0.0.9 nas\n")
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX])
    n0 = p.nlines()
    p.signal(signal.SIGUSR2)
    line = p.wait_line(lambda l: " serving " in l and "pid=" in l, 10 * SCALE, start=n0)
    expect(line, "no new process serving after SIGUSR2: %s" % p.stderr()[n0:][-6:])
    pid = int(logfmt_parse(line)["pid"])
    ctx.cleanups.append(lambda: os.kill(pid, signal.SIGTERM))
    rc = p.wait_exit(15 * SCALE)
    eq(rc, 0, "exit status of the old process")
    # the old process left the block to the new one, which serves the names
    eq(_block(_read(hosts)), ["127.0.0.1 alpha." + SUFFIX], "block after the handover")
    os.kill(pid, signal.SIGTERM)
    _wait_bytes(hosts, b"10.0.0.9 nas\n", "the new process removed the block when it stopped",
                15 * SCALE)


@test(timeout=60)
def test_hairpin_check_accepts_the_address_of_the_portico_serving_it(ctx):
    # check runs before every reload under systemd: the serving portico
    # holding its own hairpin address is no clash.
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"])
    addr = _hairpin_ports(p)[0]
    p.cfg["tailscale"]["hairpin"]["listen"] = [addr]
    p.write_config(p.cfg)
    line = p.reload()
    expect("reloaded" in line, "reload onto the bound address: %s" % line)
    rc, out, err = run_check(ctx.binary, p.path)
    eq(rc, 0, "check while this portico serves the address (%s)" % err.strip())


@test(timeout=60)
def test_hairpin_waits_for_tailscaled_before_writing_names(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], emu=False)
    line = p.wait_line(lambda l: "hairpin: cannot read tailscaled's status" in l, 5 * SCALE)
    expect(line, "no line saying the suffix is unknown: %s" % p.stderr()[-4:])
    eq(_read(hosts), BEFORE, "nothing written without the suffix")
    ca2 = TestCA(os.path.join(ctx.dir, "ca2"))
    ts = LocalAPI(p.cfg["tailscale"]["socket"], ca=ca2)
    ts.prefs["AdvertiseServices"] = ["svc:alpha"]
    ts.approve("svc:alpha")
    ctx.cleanups.append(ts.close)
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX], timeout=40 * SCALE)
    _wait_cert(p, "alpha." + SUFFIX, timeout=40 * SCALE)


@test(timeout=60)
def test_hairpin_check_refuses_unwritable_hosts_file_and_used_address(ctx):
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], start=False)
    rc, out, err = run_check(ctx.binary, p.path)
    eq(rc, 0, "check of a good configuration (%s)" % err.strip())
    text = _read(p.path).decode().split("\n")
    line_of = lambda key: 1 + next(i for i, l in enumerate(text) if l.strip().startswith(key))
    # a hosts file in a directory that does not exist
    p.cfg["tailscale"]["hairpin"]["hosts_file"] = os.path.join(ctx.dir, "nodir", "hosts")
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    eq(rc, 1, "check exit status for an unwritable hosts file")
    text = _read(p.path).decode().split("\n")
    expect(err.startswith("%s:%d: tailscale.hairpin" % (p.path, line_of("hosts_file:"))),
           "FILE:LINE for hosts_file: %r" % err)
    expect("nodir" in err and "not writable" in err, "the message says why: %r" % err)
    # a damaged block in the hosts file
    with open(hosts, "wb") as f:
        f.write(b"127.0.0.1 localhost\n" + BEGIN.encode() + b"\n1.2.3.4 x\n")
    p.cfg["tailscale"]["hairpin"]["hosts_file"] = hosts
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    eq(rc, 1, "check exit status for a damaged block")
    expect("line 2: the portico block begun here has no" in err, "damaged block: %r" % err)
    with open(hosts, "wb") as f:
        f.write(BEFORE)
    # an address another program listens on
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    ctx.socks.append(s)
    busy = "127.0.0.1:%d" % s.getsockname()[1]
    p.cfg["tailscale"]["hairpin"]["listen"] = ["[::1]:0", busy]
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    eq(rc, 1, "check exit status for an address in use")
    text = _read(p.path).decode().split("\n")
    want = "%s:%d: tailscale.hairpin.listen: %s is already in use by another program" % (
        p.path, 1 + next(i for i, l in enumerate(text) if busy in l), busy)
    expect(err.startswith(want), "%r does not start with %r" % (err, want))
    # not loopback; no services
    p.cfg["tailscale"]["hairpin"]["listen"] = ["192.0.2.1:443"]
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    expect(rc == 1 and "is not a loopback address" in err, "non-loopback: %r" % err)
    p.cfg["tailscale"]["hairpin"]["listen"] = ["127.0.0.1:0"]
    p.cfg["tailscale"]["services"] = False
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    expect(rc == 1 and "needs tailscale.services: true" in err, "without services: %r" % err)


@test(timeout=60)
def test_hairpin_certificates_and_dns_share_one_status_read(ctx):
    # Certificates, the hosts block and the DNS responder (which listens on
    # the node's addresses) each need tailscaled's status at start and at
    # each reload: one read serves all three.
    p, hosts, ca, o, ts = _setup(ctx, ["alpha"], start=False)
    ts.self_ips = ["127.0.53.79"]
    p.cfg["dns"] = {"zones": ["home.example.com"]}
    p.write_config(p.cfg)
    p.start()
    _wait_block(hosts, ["127.0.0.1 alpha." + SUFFIX])
    _wait_cert(p, "alpha." + SUFFIX)
    expect(p.wait_line("listener=dns addr=127.0.53.79:53", 10 * SCALE),
           "the DNS responder listens on the node's address: %s" % p.stderr()[-4:])
    eq(ts.count("GET", "status"), 1, "status reads at start")
    n0 = p.nlines()
    p.reload()
    expect(p.wait_line("tailscaled's status", 0.1, start=n0) is None, "no status complaint")
    end = time.time() + 10 * SCALE
    while ts.count("GET", "status") < 2 and time.time() < end:
        time.sleep(0.05)
    time.sleep(0.5 * SCALE)  # (a second read would have come by now)
    eq(ts.count("GET", "status"), 2, "status reads after a reload")
