"""End-to-end tests: `portico run` publishing its HTTP services as Tailscale
Services by itself, on start and on every reload, against the emulated
tailscaled LocalAPI (tests/tailscale_emu.py): the exact serve config and
AdvertiseServices afterwards, foreign entries untouched, no write when
nothing changed, a lost If-Match race, tailscaled away at start (portico
serves meanwhile), a reload during a run, a refused write (one line, no
retry storm), the publish: false switch, and the metrics."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import SUFFIX, LocalAPI  # noqa: E402


# What another admin published with `tailscale serve` and `tailscale funnel`:
# the node's own ports 80 and 443 (the latter on Funnel) and a Service of
# their own, advertised; none of it is portico's.
FOREIGN = {
    "TCP": {"80": {"HTTP": True}, "443": {"HTTPS": True}},
    "Web": {"portico.%s:80" % SUFFIX: {"Handlers": {"/": {"Proxy": "http://127.0.0.1:8080"}}},
            "portico.%s:443" % SUFFIX: {"Handlers": {"/blog": {"Proxy": "http://127.0.0.1:8081"}}}},
    "AllowFunnel": {"portico.%s:443" % SUFFIX: True},
    "Services": {"svc:other": {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {"other.%s:443" % SUFFIX: {"Handlers": {"/": {"Proxy": "http://127.0.0.1:9000"}}}}}},
}


def _names(n):
    return ["app%02d" % i for i in range(n)]


def _backend(ctx):
    """The backend listener tailscaled forwards to: a socket of the test's."""
    return "unix:" + os.path.join(ctx.dir, "tailnet.sock")


def _entry(ctx, name):
    return {"TCP": {"443": {"HTTPS": True}},
            "Web": {"%s.%s:443" % (name, SUFFIX): {"Handlers": {"/": {"Proxy": _backend(ctx)}}}}}


def _expected(ctx, names, foreign=FOREIGN):
    doc = json.loads(json.dumps(foreign))
    doc.setdefault("Services", {})
    for n in names:
        doc["Services"]["svc:" + n] = _entry(ctx, n)
    return doc


def _emu(ctx, **kw):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), **kw)
    ctx.cleanups.append(ts.close)
    return ts


def _config(ctx, names, origin, **extra):
    ts = {"socket": os.path.join(ctx.dir, "tailscaled.sock"), "services": True,
          "backend": _backend(ctx), "state_dir": os.path.join(ctx.dir, "state")}
    ts.update(extra)
    cfg = make_config({n: svc(origin, hosts=["%s.test" % n]) for n in names}, metrics=True)
    cfg["tailscale"] = ts
    return cfg


def _portico(ctx, names, origin, **extra):
    p = Portico(ctx.binary, _config(ctx, names, origin, **extra), ctx.dir)
    ctx.porticos.append(p)
    return p


def _state(ctx):
    with open(os.path.join(ctx.dir, "state", "tailscale-services")) as f:
        return f.read().split()


def _outcome(p, start, timeout=None):
    """The first publishing outcome logged from line start on."""
    line = p.wait_line(lambda l: 'msg="tailscale: published' in l
                       or 'msg="tailscale: ' in l and "already published" in l
                       or 'msg="tailscale: cannot publish' in l
                       or 'msg="tailscale: tailscaled refused' in l,
                       timeout=timeout or 10 * SCALE, start=start)
    expect(line, "a publishing outcome in the log; stderr: %s" % " | ".join(p.stderr()[start:][-6:]))
    return line


def _published(ctx, ts, names, foreign=FOREIGN):
    eq(ts.serve_config_doc(), _expected(ctx, names, foreign), "serve config with %d services" % len(names))
    eq(ts.prefs["AdvertiseServices"],
       (["svc:other"] if foreign else []) + ["svc:" + n for n in names],
       "AdvertiseServices with %d services" % len(names))
    eq(_state(ctx), ["svc:" + n for n in names], "owned list in the state directory")


def _writes(ts):
    return ts.count("POST", "serve-config"), ts.count("PATCH", "prefs")


def _reload_to(ctx, p, names, origin, **extra):
    p.write_config(_config(ctx, names, origin, **extra))
    n = p.nlines()
    line = p.reload()
    expect("configuration reloaded" in line, "reload accepted: %r" % line)
    return _outcome(p, n)


def _gauges(p):
    m = _scrape(p.metrics_port)
    return {k[1][0][1]: v for k, v in m.items() if k[0] == "portico_tailscale_services"}, \
        {k[1][0][1]: v for k, v in m.items() if k[0] == "portico_tailscale_publish_total"}


@test(timeout=90)
def test_tspublish_start_64_reload_63_65_exact(ctx):
    ts = _emu(ctx)
    ts.set_serve_config(FOREIGN)
    ts.prefs["AdvertiseServices"] = ["svc:other"]
    o = ctx.origin()
    p = _portico(ctx, _names(64), o).start()
    line = _outcome(p, 0)
    expect("published 64 services (64 added, 0 removed): serve config written, "
           "AdvertiseServices set" in line, "start line: %r" % line)
    _published(ctx, ts, _names(64))
    eq(_writes(ts), (1, 1), "one POST and one PATCH after start")
    gauges, runs = _gauges(p)
    eq(gauges, {"configured": 64, "advertised": 64, "approved": 0}, "gauges after start")
    eq(runs["written"], 1, "runs that wrote")

    line = _reload_to(ctx, p, _names(63), o)
    expect("published 63 services (0 added, 1 removed)" in line, "reload to 63: %r" % line)
    _published(ctx, ts, _names(63))
    eq(_writes(ts), (2, 2), "writes after the reload to 63")

    ts.approve("svc:app00")
    ts.approve("svc:other")
    line = _reload_to(ctx, p, _names(65), o)
    expect("published 65 services (2 added, 0 removed)" in line, "reload to 65: %r" % line)
    _published(ctx, ts, _names(65))
    eq(_writes(ts), (3, 3), "writes after the reload to 65")
    gauges, runs = _gauges(p)
    eq(gauges, {"configured": 65, "advertised": 65, "approved": 1}, "gauges after 65")

    # The same configuration again: read, nothing written.
    line = _reload_to(ctx, p, _names(65), o)
    expect("65 services already published as configured" in line, "unchanged: %r" % line)
    eq(_writes(ts), (3, 3), "no POST and no PATCH when nothing changed")
    eq(ts.count("POST") + ts.count("PATCH"), 6, "no write of any kind")
    gauges, runs = _gauges(p)
    eq((runs["written"], runs["unchanged"], runs["failed"], runs["refused"]), (3, 1, 0, 0),
       "runs by result")
    for r in ts.requests:
        if r.method == "POST":
            expect(dict((k.lower(), v) for k, v in r.headers).get("if-match"),
                   "every POST carries If-Match")
    m = _scrape(p.metrics_port)
    eq(m[("portico_localapi_calls_total", (("endpoint", "serve-config"), ("result", "ok")))],
       ts.count(None, "serve-config"), "the daemon's LocalAPI calls are counted")


@test(timeout=60)
def test_tspublish_lost_race_resolved(ctx):
    ts = _emu(ctx)
    late = _entry(ctx, "late")
    # Another admin writes svc:late between portico's GET and its POST.
    ts.race_serve_config(lambda sc: dict(sc or {}, Services=dict((sc or {}).get("Services") or {},
                                                                 **{"svc:late": late})))
    p = _portico(ctx, ["grafana"], ctx.origin()).start()
    line = _outcome(p, 0)
    expect("published 1 service" in line, "outcome: %r" % line)
    eq([a for a, r in zip(ts.answers, ts.requests) if r.method == "POST"], [412, 200],
       "POST answers: the lost race, then the retry")
    eq(ts.serve_config_doc(), {"Services": {"svc:grafana": _entry(ctx, "grafana"), "svc:late": late}},
       "the other client's entry survives the retry")
    expect(p.wait_line("another client changed the serve config; reading it again", timeout=1),
           "the race is logged")


@test(timeout=90)
def test_tspublish_tailscaled_down_at_start_then_back(ctx):
    ts = _emu(ctx, start=False)
    o = ctx.origin()
    p = _portico(ctx, ["grafana", "wiki"], o).start()
    line = _outcome(p, 0)
    expect("cannot publish 2 services yet: tailscaled is not running" in line, "first: %r" % line)
    # The other listeners serve meanwhile.
    r = request(p.port, host="grafana.test")
    eq(r.status, 200, "a request while tailscaled is away")
    time.sleep(2.5 * SCALE)   # a few retries, each failing
    gauges, runs = _gauges(p)
    expect(runs["failed"] >= 2, "failed runs counted: %r" % runs)
    eq(sum("cannot publish" in l for l in p.stderr()), 1, "one line for the whole outage")
    # tailscaled comes back, still starting (no netmap) for a moment.
    n = p.nlines()
    ts.backend_state = "Starting"
    ts.up()
    time.sleep(0.5)
    ts.backend_state = "Running"
    line = p.wait_line("published 2 services", timeout=40 * SCALE, start=n)
    expect(line, "published once tailscaled answers; stderr: %s" % " | ".join(p.stderr()[-5:]))
    _published(ctx, ts, ["grafana", "wiki"], foreign={})
    eq(_writes(ts), (1, 1), "one POST and one PATCH")
    eq(request(p.port, host="wiki.test").status, 200, "still serving")

    # A restart of tailscaled and a reload while it is away: the newest
    # configuration is published once it is back.
    ts.restart(down_for=1.5 * SCALE)
    n = p.nlines()
    _reload_to(ctx, p, ["grafana", "wiki", "zulip"], o)
    line = p.wait_line("published 3 services", timeout=40 * SCALE, start=n)
    expect(line, "published after the restart; stderr: %s" % " | ".join(p.stderr()[-5:]))
    _published(ctx, ts, ["grafana", "wiki", "zulip"], foreign={})


@test(timeout=60)
def test_tspublish_reload_during_a_run_publishes_the_newest(ctx):
    ts = _emu(ctx)
    ts.delay = 0.3   # every answer late: the reload lands inside the first run
    o = ctx.origin()
    p = _portico(ctx, ["a1", "a2"], o).start()
    p.write_config(_config(ctx, ["a1", "a2", "a3"], o))
    expect("configuration reloaded" in p.reload(), "reload accepted")
    line = p.wait_line("published 3 services", timeout=20 * SCALE)
    expect(line, "the newest configuration published; stderr: %s" % " | ".join(p.stderr()[-5:]))
    _published(ctx, ts, ["a1", "a2", "a3"], foreign={})
    time.sleep(1.5)
    posts = ts.count("POST", "serve-config")
    expect(posts in (1, 2), "one write per run, at most two runs: %d" % posts)
    eq(ts.count("POST", "serve-config"), posts, "nothing more once the newest is out")


@test(timeout=60)
def test_tspublish_refused_is_one_line_and_no_storm(ctx):
    ts = _emu(ctx)
    ts.local_admin = False   # a unix: backend needs root or the operator (401)
    o = ctx.origin()
    p = _portico(ctx, ["grafana"], o).start()
    line = _outcome(p, 0)
    expect('level=error' in line and "tailscaled refused to publish the services: tailscaled "
           "refused POST /localapi/v0/serve-config with 401: must be root" in line
           and "run `portico tailscale apply -c %s` with privileges from the unit "
           "(ExecStartPost= and ExecReload=)" % p.path in line, "refusal line: %r" % line)
    time.sleep(3 * SCALE)
    eq(ts.count("POST"), 1, "no retry after a refusal")
    eq(sum("refused to publish" in l for l in p.stderr()), 1, "one line")
    gauges, runs = _gauges(p)
    eq((runs["refused"], runs["failed"]), (1, 0), "counted as refused")
    eq(gauges, {"configured": 1, "advertised": 0, "approved": 0}, "gauges after the refusal")
    eq(request(p.port, host="grafana.test").status, 200, "serving")

    # Without write access at all (403), after a reload: one more try, one more line.
    ts.permit_write = False
    line = _reload_to(ctx, p, ["grafana"], o)
    expect("with 403: serve config denied" in line, "403 line: %r" % line)
    time.sleep(2 * SCALE)
    eq(ts.count("POST"), 2, "one try per reload")

    # The privileged apply does it; the daemon then finds nothing to change.
    ts.permit_write = True
    ts.local_admin = True
    r = subprocess.run([ctx.binary, "tailscale", "apply", "-c", p.path], capture_output=True,
                       text=True, timeout=30 * SCALE)
    eq(r.returncode, 0, "apply (stderr %r)" % r.stderr)
    line = _reload_to(ctx, p, ["grafana"], o)
    expect("1 service already published as configured" in line, "after apply: %r" % line)
    gauges, runs = _gauges(p)
    eq(gauges, {"configured": 1, "advertised": 1, "approved": 0}, "gauges after apply")


@test(timeout=60)
def test_tspublish_false_leaves_it_to_apply(ctx):
    ts = _emu(ctx)
    o = ctx.origin()
    p = _portico(ctx, ["grafana"], o, publish="false").start()
    eq(request(p.port, host="grafana.test").status, 200, "serving")
    time.sleep(1.5 * SCALE)
    eq(len(ts.requests), 0, "publish: false: the daemon does not call tailscaled")
    m = _scrape(p.metrics_port)
    expect(not any(k[0].startswith("portico_tailscale_") for k in m), "no publishing metrics")
    # services: false and nothing published before: nothing to do either.
    p.write_config(_config(ctx, ["grafana"], o, services=False))
    expect("configuration reloaded" in p.reload(), "reload accepted")
    time.sleep(1.5 * SCALE)
    eq(len(ts.requests), 0, "services: false: no call")

    # Published, then services turned off: the daemon removes what it published.
    line = _reload_to(ctx, p, ["grafana"], o)
    expect("published 1 service" in line, "published: %r" % line)
    line = _reload_to(ctx, p, ["grafana"], o, services=False)
    expect("published 0 services (0 added, 1 removed)" in line, "unpublished: %r" % line)
    eq((ts.serve_config_doc(), ts.prefs["AdvertiseServices"], _state(ctx)), ({}, [], []),
       "nothing left")
