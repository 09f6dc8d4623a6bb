"""End-to-end tests: upstream host names resolved in the background.

How the names are controlled: portico runs in a private mount namespace
(`unshare --mount`, the tests run as root) in which a hosts file of the test
is bind-mounted over /etc/hosts and an nsswitch.conf saying `hosts: files`
over /etc/nsswitch.conf. portico's getaddrinfo is glibc's, unchanged; only
what it reads differs, and only for that process: the machine's own files
and DNS are never touched, and no lookup leaves the machine (a name that is
not in the file fails at once instead of waiting on a DNS server). The test
rewrites its hosts file in place (same inode, so the bind mount sees it);
glibc reads it on every lookup."""

from common import *  # noqa: F401,F403

NS_SCRIPT = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf '
             '&& shift 2 && exec "$@"')


class Names:
    """The hosts file a namespaced portico resolves with."""

    def __init__(self, ctx, entries):
        self.path = os.path.join(ctx.dir, "hosts")
        self.nss = os.path.join(ctx.dir, "nsswitch.conf")
        with open(self.nss, "w") as f:
            f.write("hosts: files\n")
        with open(self.path, "w") as f:
            f.write("")
        self.set(entries)

    def set(self, entries):
        """entries: {name: ip}. Rewritten in place: the bind mount follows the inode."""
        text = "127.0.0.1 localhost\n" + "".join("%s %s\n" % (ip, n) for n, ip in entries.items())
        with open(self.path, "r+") as f:
            f.truncate(0)
            f.write(text)

    def wrap(self):
        """A command prefix: the rest of the command runs (exec'd, same pid) with these files."""
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", NS_SCRIPT, "sh",
                self.path, self.nss]


def _start(ctx, names, services, limits=None, metrics=True):
    p = ctx.portico(services, limits=limits, metrics=metrics, start=False)
    p.wrap = names.wrap()
    p.start()
    return p


def _poll(fn, timeout, step=0.1):
    end = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > end:
            return v
        time.sleep(step)


def _origin_pair(ctx):
    """Two origins on the same port at 127.0.0.2 and 127.0.0.3."""
    for _ in range(20):
        a = ctx.origin("first", host="127.0.0.2")
        try:
            b = ctx.origin("second", host="127.0.0.3", port=a.port)
            return a, b
        except OSError:
            a.close()
    raise AssertionError("no port free on both 127.0.0.2 and 127.0.0.3")


def _origin_of(port, host):
    try:
        r = request(port, "GET", "/probe", host=host, timeout=3 * SCALE)
    except Exception as e:
        return "error %r" % e
    return r.json()["origin"] if r.status == 200 else r.status


@test(timeout=60)
def test_resolve_unresolvable_upstream_serves_others_then_follows_without_reload(ctx):
    good = ctx.origin("good")
    later = ctx.origin("later", host="127.0.0.2")
    names = Names(ctx, {})
    # A long interval: what brings the name in is the retry of a failing name.
    p = _start(ctx, names, {
        "ok": svc(good, ["a.test"]),
        "late": svc("http://Later.portico-test:%d" % later.port, ["b.test"]),
    }, limits={"resolve_interval": "1h"})
    w = p.wait_line("upstream host", timeout=5 * SCALE)
    w = w and logfmt_parse(w)["msg"]
    expect(w and "service late" in w and '"later.portico-test"' in w and "does not resolve" in w
           and "Name or service not known" in w, "start-up warning: %r" % w)
    eq(request(p.port, "GET", "/", host="a.test").status, 200, "the other service")
    r = request(p.port, "GET", "/x", host="b.test")
    eq((r.status, r.body.strip()), (502, b"bad gateway: upstream name not resolved"),
       "unresolved upstream")
    expect(p.wait_line("upstream name not resolved", timeout=3 * SCALE),
           "no log line gives the reason of the 502")
    eq(later.connections, 0, "connections to the origin before the name resolves")
    m = _scrape(p.metrics_port)
    eq(m[("portico_upstreams_unresolved", ())], 1, "unresolved gauge")
    expect(m[("portico_resolutions_total", (("result", "error"),))] >= 1, "failed lookups")

    names.set({"later.portico-test": "127.0.0.2"})
    got = _poll(lambda: _origin_of(p.port, "b.test") == "later", 20 * SCALE)
    expect(got, "the name resolves now but requests still fail: %r"
           % _origin_of(p.port, "b.test"))
    expect(p.wait_line("resolves now, to 127.0.0.2", timeout=2), "no log line for the name resolving")
    expect(not p.wait_line("reloaded", timeout=0), "a reload happened")
    m = _scrape(p.metrics_port)
    eq(m[("portico_upstreams_unresolved", ())], 0, "unresolved gauge after")
    expect(m[("portico_resolutions_total", (("result", "ok"),))] >= 1, "successful lookups")
    eq(request(p.port, "GET", "/", host="a.test").status, 200, "the other service after")


@test(timeout=60)
def test_resolve_follows_address_change_and_keeps_last_good(ctx):
    a, b = _origin_pair(ctx)
    names = Names(ctx, {"app.portico-test": "127.0.0.2"})
    p = _start(ctx, names, {"app": svc("http://app.portico-test:%d" % a.port)},
               limits={"resolve_interval": "1s"})
    expect(not p.wait_line("upstream host", timeout=0), "warnings for a name that resolves: %s"
           % p.stderr()[-3:])
    # Keep-alive on both sides: the pooled connection to the old address
    # must not keep requests there after the name moves.
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for i in range(3):
        r = request(p.port, "GET", "/k%d" % i, conn=conn)
        eq((r.status, r.json()["origin"]), (200, "first"), "before the change, request %d" % i)

    names.set({"app.portico-test": "127.0.0.3"})
    t0 = time.time()

    def moved():
        r = request(p.port, "GET", "/m", conn=conn)
        return r.status == 200 and r.json()["origin"] == "second"
    expect(_poll(moved, 10 * SCALE), "requests still go to the old address")
    ctx.notes.append("address change followed after %.1fs (resolve_interval 1s)"
                     % (time.time() - t0))
    expect(p.wait_line("now resolves to 127.0.0.3 (was 127.0.0.2)", timeout=2),
           "no log line for the change")
    m = _scrape(p.metrics_port)
    expect(m[("portico_resolution_changes_total", ())] >= 1, "changes counter")

    # The name stops resolving: the last address stays in use.
    names.set({})
    expect(p.wait_line("keeping its last address 127.0.0.3", timeout=5 * SCALE),
           "no log line for the failing re-resolution")
    n_err = _scrape(p.metrics_port)[("portico_resolutions_total", (("result", "error"),))]
    for i in range(5):
        r = request(p.port, "GET", "/last%d" % i)
        eq((r.status, r.json()["origin"]), (200, "second"), "with the name failing, request %d" % i)
        time.sleep(0.3)
    m = _scrape(p.metrics_port)
    eq(m[("portico_upstreams_unresolved", ())], 0, "a name with a last address counts as resolved")
    expect(m[("portico_resolutions_total", (("result", "error"),))] > n_err,
           "no lookup retried while the name fails")
    conn.close()


@test(timeout=60)
def test_resolve_reload_with_unresolvable_names_tcp_and_auth(ctx):
    good = ctx.origin("good")
    names = Names(ctx, {})
    p = _start(ctx, names, {"ok": svc(good, ["a.test"])}, limits={"resolve_interval": "1h"})
    eq(request(p.port, "GET", "/", host="a.test").status, 200, "before the reload")

    def echo(c):
        c.sendall(b"hello from upstream\n")
        c.close()
    srv = TcpServer(echo)
    cfg = dict(p.cfg)
    cfg["services"] = {
        "ok": svc(good, ["a.test"]),
        "late": svc("http://late.portico-test:%d" % good.port, ["b.test"]),
        "guarded": svc(good, ["c.test"], auth="sso"),
        "raw": {"tcp": {"listen": "127.0.0.1:0",
                        "upstream": "raw.portico-test:%d" % srv.port}},
    }
    cfg["auth"] = {"sso": {"url": "http://sso.portico-test:%d/verify" % good.port}}
    mark = p.nlines()
    p.write_config(cfg)
    l = p.reload(timeout=10 * SCALE)
    expect("configuration reloaded" in l, "reload refused: %s" % l)
    tport = p.tcp_ports["raw"]
    log = "\n".join(logfmt_parse(l).get("msg", "") for l in p.stderr()[mark:])
    for who, host in (("service late", "late"), ("service raw", "raw"),
                      ("auth provider sso", "sso")):
        expect('%s: upstream host "%s.portico-test" does not resolve' % (who, host) in log,
               "no reload warning for %s: %s" % (who, log))
    eq(request(p.port, "GET", "/", host="a.test").status, 200, "the old service after the reload")
    eq(request(p.port, "GET", "/", host="b.test").status, 502, "new unresolved upstream")
    r = request(p.port, "GET", "/", host="c.test")
    eq(r.status, 502, "service behind an unresolved auth provider")
    expect(p.wait_line("auth provider name not resolved", timeout=3 * SCALE, start=mark),
           "no reason logged for the auth 502")
    s = socket.create_connection(("127.0.0.1", tport), timeout=5 * SCALE)
    eq(_recv_all(s), b"", "TCP forwarder toward an unresolved name")
    s.close()
    eq(srv.accepted, 0, "connections reached the TCP upstream")
    expect(p.wait_line("service raw: upstream name not resolved", timeout=3 * SCALE, start=mark),
           "no reason logged for the closed TCP connection")

    names.set({"raw.portico-test": "127.0.0.1", "late.portico-test": "127.0.0.1"})

    def tcp_ok():
        try:
            with socket.create_connection(("127.0.0.1", tport), timeout=5 * SCALE) as c:
                return _recv_all(c) == b"hello from upstream\n"
        except OSError:
            return False
    expect(_poll(tcp_ok, 20 * SCALE, step=0.2), "the TCP forwarder does not follow the name")
    expect(_poll(lambda: _origin_of(p.port, "b.test") == "good", 20 * SCALE),
           "the HTTP upstream does not follow the name")
    srv.close()


@test()
def test_resolve_check_warns_but_passes_and_syntax_still_fails(ctx):
    names = Names(ctx, {})
    path = os.path.join(ctx.dir, "c.yaml")
    cfg = make_config({"late": svc("http://late.portico-test:8080")})
    with open(path, "w") as f:
        f.write(to_yaml(cfg) + "\n")
    line = [i + 1 for i, l in enumerate(open(path).read().splitlines()) if "late.portico-test" in l]

    def check():
        r = subprocess.run(names.wrap() + [ctx.binary, "check", "-c", path], capture_output=True,
                           text=True, timeout=20 * SCALE, env=harness.sanitizer_env())
        return r.returncode, r.stdout, r.stderr
    rc, out, err = check()
    eq(rc, 0, "check of a name that does not resolve now (stderr %r)" % err)
    expect("%s:%d: warning: service late: upstream host \"late.portico-test\" does not resolve"
           % (path, line[0]) in err, "check warning: %r" % err)
    names.set({"late.portico-test": "127.0.0.1"})
    rc, out, err = check()
    eq((rc, err), (0, ""), "check once the name resolves")
    for bad, msg in (("http://late..test:80", "invalid host name"),
                     ("http://-late.test:80", "invalid host name"),
                     ("http://%s.test:80" % ("x" * 64), "invalid host name")):
        cfg = make_config({"late": svc(bad)})
        with open(path, "w") as f:
            f.write(to_yaml(cfg) + "\n")
        rc, out, err = check()
        expect(rc == 1 and re.search(r"c\.yaml:\d+: .*%s" % msg, err),
               "%s: rc %d, stderr %r" % (bad, rc, err))
