"""End-to-end tests: a configuration that serves only through Tailscale
Services, with no listen: entry. The backend listener tailscaled forwards
to is portico's only one: it publishes, answers tailscaled's requests with
the caller's identity, tells systemd it is ready, serves metrics and the
status page, reloads (adding an ordinary listener and removing it again)
and hands the backend over on SIGUSR2. `portico check` accepts the quick
start of docs/tailscale.md as written and refuses a configuration that
serves nothing. tailscaled is the emulation (tests/tailscale_emu.py)."""

import os
import re
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import SUFFIX, LocalAPI, serve_proxy_headers  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTHING = ("nothing to serve: no listen addresses (add listen: [{addr: host:port}], or "
           "tailscale: {services: true} to serve through tailscaled)")


def _config(ctx, origin, listen=False):
    """Metrics, a tailscale section with services on, one service, and no
    listen: key unless listen."""
    cfg = make_config({"grafana": svc(origin, hosts=["grafana.example"])}, metrics=True)
    if not listen:
        del cfg["listen"]
    cfg["tailscale"] = {"socket": os.path.join(ctx.dir, "tailscaled.sock"), "services": True,
                        "backend": "unix:" + os.path.join(ctx.dir, "tailnet.sock"),
                        "state_dir": os.path.join(ctx.dir, "state")}
    return cfg


def _start(ctx, notify):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"))
    ctx.cleanups.append(ts.close)
    ts.add_user_node("100.64.0.2", "zoe@example.com", "Zoe", name="zoes-laptop")
    o = ctx.origin("grafana")
    p = Portico(ctx.binary, _config(ctx, o), ctx.dir)
    ctx.porticos.append(p)
    p.env["NOTIFY_SOCKET"] = notify.env
    p.start()
    p.backend = os.path.join(ctx.dir, "tailnet.sock")
    return ts, o, p


def _as_zoe(ts, p, target):
    """A request from Zoe's laptop as tailscaled forwards it; the echo."""
    host, hs = serve_proxy_headers(ts, "100.64.0.2", "grafana." + SUFFIX)
    d = echo(ts_request(p.backend, target, xfh=None, xff=None, headers=hs, host=host, proto=None))
    eq((d["origin"], d["target"]), ("grafana", target), "served by grafana")
    eq(hdrs(d, "x-tailscale-user-loginname"), ["zoe@example.com"], "the caller's identity")
    return d


def _listening(p, start=0):
    """(listener, addr) of each "listening" line from start on."""
    return [(f["listener"], f["addr"]) for f in map(log_parse, p.stderr()[start:])
            if f.get("msg") == "listening"]


@test(timeout=60)
def test_tailnet_only_serves_publishes_and_reports(ctx):
    n = NotifySocket(ctx)
    ts, o, p = _start(ctx, n)
    eq([k for k, _ in _listening(p)], ["tailnet", "metrics"], "listeners opened")
    expect(p.wait_line("serving 1 service on 1 listener with 2 workers", 1),
           "serving line; stderr: %s" % p.stderr()[-4:])
    _, kv = n.wait("READY", 5 * SCALE)
    eq(kv.get("STATUS"), "1 service, 1 listener, 2 workers, 0 connections", "READY's status")
    line = p.wait_line('msg="tailscale: published', 10 * SCALE)
    expect(line, "published; stderr: %s" % p.stderr()[-6:])
    eq(list(ts.serve_config_doc()["Services"]), ["svc:grafana"], "serve config")
    eq(ts.prefs["AdvertiseServices"], ["svc:grafana"], "advertised")
    _as_zoe(ts, p, "/dash")
    m = _scrape(p.metrics_port)
    eq(m.get(("portico_tailscale_services", (("state", "configured"),))), 1.0,
       "services configured, from /metrics")
    st = request(p.metrics_port, "GET", "/status.json", host="127.0.0.1", timeout=5 * SCALE)
    eq(st.status, 200, "status.json")
    doc = st.json()
    eq(doc["services"][0]["requests"]["total"], 1, "the request, on the status page")
    eq(doc["tailnet"]["configured"], 1, "the tailnet, on the status page")
    eq(request(p.metrics_port, "GET", "/", host="127.0.0.1").status, 200, "status page")


@test(timeout=90)
def test_tailnet_only_reloads_and_upgrades_with_the_backend_alone(ctx):
    n = NotifySocket(ctx)
    ts, o, p = _start(ctx, n)
    ino = os.stat(p.backend).st_ino
    expect(stat.S_ISSOCK(os.stat(p.backend).st_mode), "the backend is a socket")
    # A reload adds an ordinary listener: both serve.
    p.write_config(_config(ctx, o, listen=True))
    k = n.count()
    line = p.reload()
    expect("configuration reloaded" in line, "reload adding a listener: %r" % line)
    expect(p.port, "the added listener's port was logged")
    eq(get_json(p.port, "/plain", host="grafana.example")["origin"], "grafana",
       "served on the added listener")
    _as_zoe(ts, p, "/after-add")
    eq(os.stat(p.backend).st_ino, ino, "the backend socket kept across the reload")
    n.wait("READY", 5 * SCALE, start=k)
    # And removes it again: the backend alone serves.
    port = p.port
    p.write_config(_config(ctx, o))
    n0 = p.nlines()
    line = p.reload()
    expect("configuration reloaded" in line, "reload removing the listener: %r" % line)
    eq([k for k, _ in _listening(p, n0)], ["tailnet", "metrics"], "listeners after the reload")
    expect(re.search(r"1 listener\b", line), "one listener after the reload: %r" % line)
    try:
        request(port, "GET", "/", host="grafana.example", timeout=2)
        raise AssertionError("the removed listener on port %d still answers" % port)
    except ConnectionRefusedError:
        pass
    _as_zoe(ts, p, "/after-remove")
    # SIGUSR2: the new process gets the backend socket, the old one drains.
    k = n.count()
    pid, http_ports, metrics = upgrade_portico(ctx, p)
    eq((http_ports, metrics), ([], p.metrics_port), "the new process's ports")
    eq(p.wait_exit(15 * SCALE), 0, "the old process's exit status")
    i, kv = n.wait("READY", 5 * SCALE, start=k, pid=pid)
    eq(kv.get("MAINPID"), str(pid), "the new process tells systemd it is the main one")
    eq(os.stat(p.backend).st_ino, ino, "the backend socket handed over, not made again")
    _as_zoe(ts, p, "/after-upgrade")
    eq(request(metrics, "GET", "/", host="127.0.0.1").status, 200,
       "the new process's status page")


def _quick_start():
    """The configuration of step 2 of docs/tailscale.md's step by step."""
    with open(os.path.join(REPO, "docs", "tailscale.md")) as f:
        text = f.read()
    step = text[text.index("2. **Configure portico.**"):text.index("3. **Define the services")]
    block = re.search(r"```yaml\n(.*?)```", step, re.S)
    expect(block, "no yaml block in step 2 of docs/tailscale.md")
    return "\n".join(l[3:] if l.startswith("   ") else l for l in block.group(1).split("\n"))


@test()
def test_check_accepts_the_quick_start_and_refuses_nothing_to_serve(ctx):
    path = os.path.join(ctx.dir, "quick.yaml")
    with open(path, "w") as f:
        f.write(_quick_start())
    expect("listen" not in _quick_start(), "the quick start declares no listener")
    eq(run_check(ctx.binary, path), (0, "ok: 1 service, 1 listener\n", ""),
       "check on the quick start")
    for text, line in [("metrics: {listen: 127.0.0.1:9100}\n", 1),
                       ("workers: 1\nlisten: []\n", 2),
                       ("listen: []\ntailscale: {services: false}\n", 1),
                       ("tailscale: {}\ndns: {zones: [home.example]}\n", 1)]:
        with open(path, "w") as f:
            f.write(text)
        eq(run_check(ctx.binary, path), (1, "", "%s:%d: %s\n" % (path, line, NOTHING)),
           "check on %r" % text)
