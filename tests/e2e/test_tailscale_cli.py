"""End-to-end tests: `portico tailscale plan|apply|status|policy` against
the emulated tailscaled LocalAPI (tests/tailscale_emu.py): the exact serve
config and AdvertiseServices after each apply, entries portico does not own
left alone, no write when nothing changed, a lost If-Match race retried,
and one clear line when tailscaled is not there or refuses."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import SUFFIX, LocalAPI  # noqa: E402

BACKEND = "unix:/run/portico/tailnet.sock"
OPERATOR_HINT = ("; writing the serve config needs root, or the tailscale operator able to run "
                 "`sudo tailscale` (tailscale set --operator=USER)")

# What another admin published with `tailscale serve`: the node's own port
# 80 and a Service of their own, both advertised and never portico's.
FOREIGN = {
    "TCP": {"80": {"HTTP": True}},
    "Web": {"portico.%s:80" % SUFFIX: {"Handlers": {"/": {"Proxy": "http://127.0.0.1:8080"}}}},
    "Services": {"svc:other": {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {"other.%s:443" % SUFFIX: {"Handlers": {"/": {"Proxy": "http://127.0.0.1:9000"}}}}}},
}


def _names(n):
    return ["app%02d" % i for i in range(n)]


def _emu(ctx, **kw):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), **kw)
    ctx.cleanups.append(ts.close)
    return ts


def _config(ctx, names, sock=None, services=True, fname="portico.yaml", **extra):
    ts = {"socket": sock or os.path.join(ctx.dir, "tailscaled.sock"), "services": services,
          "state_dir": os.path.join(ctx.dir, "state")}
    ts.update(extra)
    cfg = {"listen": [{"addr": "127.0.0.1:0"}],
           "services": {n: {"upstream": "http://127.0.0.1:9", "hosts": ["%s.test" % n]}
                        for n in names},
           "tailscale": ts}
    path = os.path.join(ctx.dir, fname)
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=1) + "\n")
    return path


_cli = tailscale_cli


def _entry(name):
    return {"TCP": {"443": {"HTTPS": True}},
            "Web": {"%s.%s:443" % (name, SUFFIX): {"Handlers": {"/": {"Proxy": BACKEND}}}}}


def _expected(names, foreign=FOREIGN):
    doc = json.loads(json.dumps(foreign))
    doc.setdefault("Services", {})
    for n in names:
        doc["Services"]["svc:" + n] = _entry(n)
    return doc


def _state(ctx):
    with open(os.path.join(ctx.dir, "state", "tailscale-services")) as f:
        return f.read().split()


def _apply_ok(ctx, ts, names, foreign=True):
    rc, out, err = _cli(ctx, "apply", _config(ctx, names))
    eq(rc, 0, "apply exit status (stderr %r)" % err)
    eq(ts.serve_config_doc(), _expected(names, FOREIGN if foreign else {}),
       "serve config after apply of %d" % len(names))
    eq(ts.prefs["AdvertiseServices"], (["svc:other"] if foreign else []) + ["svc:" + n for n in names],
       "AdvertiseServices after apply of %d" % len(names))
    eq(_state(ctx), ["svc:" + n for n in names], "owned list in the state directory")
    return out


@test(timeout=60)
def test_tscli_apply_64_then_63_then_65(ctx):
    ts = _emu(ctx)
    ts.set_serve_config(FOREIGN)
    ts.prefs["AdvertiseServices"] = ["svc:other"]
    out = _apply_ok(ctx, ts, _names(64))
    expect("+ svc:app00  https 443 -> %s\n" % BACKEND in out, "plan line for app00: %r" % out)
    expect("+ advertise svc:app63\n" in out, "advertise line for app63")
    expect(out.endswith("applied: serve config written, AdvertiseServices set; "
                        "64 services published\n"), "summary line: %r" % out[-200:])
    eq((ts.count("POST", "serve-config"), ts.count("PATCH", "prefs")), (1, 1), "writes")

    # A reload without app63: its entry and advertisement go, nothing else.
    out = _apply_ok(ctx, ts, _names(63))
    eq(out, "- svc:app63  https 443 -> %s\n- advertise svc:app63\n"
            "applied: serve config written, AdvertiseServices set; 63 services published\n"
       % BACKEND, "output of the apply that removes one")
    eq((ts.count("POST", "serve-config"), ts.count("PATCH", "prefs")), (2, 2), "writes")

    out = _apply_ok(ctx, ts, _names(65))
    eq(out, "+ svc:app63  https 443 -> %s\n+ svc:app64  https 443 -> %s\n"
            "+ advertise svc:app63\n+ advertise svc:app64\n"
            "applied: serve config written, AdvertiseServices set; 65 services published\n"
       % (BACKEND, BACKEND), "output of the apply that adds two")
    eq((ts.count("POST", "serve-config"), ts.count("PATCH", "prefs")), (3, 3), "writes")
    for r in ts.requests:
        if r.method == "POST":
            expect(dict((k.lower(), v) for k, v in r.headers).get("if-match"),
                   "every POST carries If-Match")


@test(timeout=40)
def test_tscli_apply_unchanged_writes_nothing(ctx):
    ts = _emu(ctx)
    ts.set_serve_config(FOREIGN)
    ts.prefs["AdvertiseServices"] = ["svc:other"]
    _apply_ok(ctx, ts, _names(3))
    posts, patches = ts.count("POST", "serve-config"), ts.count("PATCH", "prefs")
    rc, out, err = _cli(ctx, "apply", _config(ctx, _names(3)))
    eq((rc, out, err), (0, "nothing changed: 3 services already published as configured\n", ""),
       "second apply")
    eq((ts.count("POST", "serve-config"), ts.count("PATCH", "prefs")), (posts, patches),
       "no POST and no PATCH when nothing changed")
    eq(ts.count("POST") + ts.count("PATCH"), posts + patches, "no write of any kind")


@test(timeout=40)
def test_tscli_apply_retries_a_lost_race(ctx):
    ts = _emu(ctx)
    late = _entry("late")
    # Another admin writes svc:late between portico's GET and its POST.
    ts.race_serve_config(lambda sc: dict(sc or {}, Services=dict((sc or {}).get("Services") or {},
                                                                 **{"svc:late": late})))
    rc, out, err = _cli(ctx, "apply", _config(ctx, ["grafana"]))
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq(err, "portico tailscale apply: another client changed the serve config; reading it again\n",
       "stderr")
    eq([a for a, r in zip(ts.answers, ts.requests) if r.method == "POST"], [412, 200],
       "POST answers: the lost race, then the retry")
    eq(ts.serve_config_doc(), {"Services": {"svc:grafana": _entry("grafana"), "svc:late": late}},
       "the other client's entry survives the retry")

    # A writer that never stops: bounded, then one clear error.
    ports = iter(range(8001, 8100))
    ts.race_serve_config(lambda sc: dict(sc, TCP={str(next(ports)): {"HTTP": True}}), times=5)
    rc, out, err = _cli(ctx, "apply", _config(ctx, ["grafana", "wiki"]))
    eq(rc, 1, "exit status when every attempt loses")
    expect(err.endswith("portico tailscale apply: the serve config changed under every one of 5 "
                        "attempts to write it; another client keeps writing it, try again\n"),
           "stderr: %r" % err)
    eq(ts.count("PATCH", "prefs"), 1, "no PATCH after the failed apply (only the first apply's)")
    eq(_state(ctx), ["svc:grafana"], "state unchanged by the failed apply")


@test(timeout=40)
def test_tscli_tailscaled_down_is_one_clear_line(ctx):
    sock = os.path.join(ctx.dir, "tailscaled.sock")
    path = _config(ctx, ["grafana"])
    for sub in ("plan", "apply", "status"):
        rc, out, err = _cli(ctx, sub, path)
        eq((rc, out), (1, ""), "%s without tailscaled" % sub)
        eq(err, "portico tailscale %s: tailscaled is not running: there is no socket at %s (start "
                "tailscaled, or set tailscale.socket to the socket it uses)\n" % (sub, sock),
           "%s stderr" % sub)
    # The socket file is there, but nothing listens (tailscaled stopped uncleanly).
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)
    ctx.cleanups.append(s.close)
    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, err), (1, "portico tailscale apply: tailscaled is not running: nothing listens on %s "
                      "(start tailscaled, or set tailscale.socket to the socket it uses)\n" % sock),
       "apply with a dead socket")


@test(timeout=40)
def test_tscli_refusals_show_tailscaled_message(ctx):
    ts = _emu(ctx)
    ts.local_admin = False  # a unix: backend needs root or the operator
    rc, out, err = _cli(ctx, "apply", _config(ctx, ["grafana"]))
    eq((rc, out), (1, ""), "apply without local admin")
    eq(err, "portico tailscale apply: tailscaled refused POST /localapi/v0/serve-config with 401: "
            "must be root, or be an operator and able to run 'sudo tailscale' to serve a path or "
            "Unix socket" + OPERATOR_HINT + "\n", "stderr")
    eq(ts.serve_config, None, "nothing written")
    ts.local_admin = True
    ts.fail(503, "busy starting", endpoint="prefs", times=1)
    rc, out, err = _cli(ctx, "plan", _config(ctx, ["grafana"]))
    eq((rc, err), (1, "portico tailscale plan: tailscaled refused GET /localapi/v0/prefs with 503: "
                      "busy starting\n"), "plan when prefs fails")

    # A JSON error ({"error": ...}, WriteErrorJSON): tailscaled loses its
    # netmap between portico's GET and its POST.
    def logged_out(sc):
        ts.backend_state = "NeedsLogin"
        return sc
    ts.race_serve_config(logged_out)
    rc, out, err = _cli(ctx, "apply", _config(ctx, ["grafana"]))
    eq((rc, err), (1, "portico tailscale apply: tailscaled refused POST /localapi/v0/serve-config "
                      "with 500: updating config: netMap is nil\n"), "apply when the POST fails")
    rc, out, err = _cli(ctx, "plan", _config(ctx, ["grafana"]))
    eq((rc, err), (1, "portico tailscale plan: tailscaled is not connected to a tailnet "
                      "(BackendState \"NeedsLogin\"): no MagicDNS suffix to name the services "
                      "with; log the node in first\n"), "plan while logged out")
    eq((ts.serve_config, ts.count("PATCH")), (None, 0), "nothing written")


@test(timeout=40)
def test_tscli_plan_changes_nothing(ctx):
    ts = _emu(ctx)
    ts.set_serve_config(FOREIGN)
    ts.prefs["AdvertiseServices"] = ["svc:other"]
    before = ts.serve_config_doc()
    rc, out, err = _cli(ctx, "plan", _config(ctx, ["grafana", "wiki"]))
    eq(rc, 0, "exit status (stderr %r)" % err)
    path = os.path.join(ctx.dir, "portico.yaml")
    eq(out, "+ svc:grafana  https 443 -> {b}\n+ svc:wiki  https 443 -> {b}\n"
            "+ advertise svc:grafana\n+ advertise svc:wiki\n"
            "would change: the serve config and AdvertiseServices (portico tailscale apply -c {p})\n"
       .format(b=BACKEND, p=path), "plan output")
    eq((ts.count("POST"), ts.count("PATCH")), (0, 0), "plan writes nothing")
    eq(ts.serve_config_doc(), before, "serve config untouched")
    eq(ts.prefs["AdvertiseServices"], ["svc:other"], "prefs untouched")
    expect(not os.path.exists(os.path.join(ctx.dir, "state")), "no state written by plan")
    _apply_ok(ctx, ts, ["grafana", "wiki"])
    rc, out, err = _cli(ctx, "plan", _config(ctx, ["grafana", "wiki"]))
    eq((rc, out), (0, "nothing to change: 2 services published as configured\n"),
       "plan after apply")
    ts.self_tags = []
    rc, out, err = _cli(ctx, "plan", _config(ctx, ["grafana", "wiki"]))
    eq((rc, err), (0, "portico tailscale plan: warning: this node does not carry tag:portico "
                      "(tailscale.host_tags); Tailscale Services need a tagged host, and "
                      "auto-approval names that tag\n"), "plan on an untagged node")


@test(timeout=40)
def test_tscli_status_reports_each_service(ctx):
    ts = _emu(ctx, version="1.94.2")
    _apply_ok(ctx, ts, ["grafana", "wiki"], foreign=False)
    ts.approve("svc:grafana")
    rc, out, err = _cli(ctx, "status", _config(ctx, ["grafana", "wiki", "zulip"]))
    eq((rc, err), (0, ""), "exit status and stderr")
    lines = out.splitlines()
    eq(lines[0], "node portico.%s (tailscaled %s), 3 services configured"
       % (SUFFIX, ts.long_version()), "first line")
    eq([ln.split() for ln in lines[1:]], [
        ["SERVICE", "SERVE-CONFIG", "ADVERTISED", "APPROVED", "CERTIFICATE"],
        ["svc:grafana", "yes", "yes", "yes", "grafana." + SUFFIX],
        ["svc:wiki", "yes", "yes", "no", "no"],
        ["svc:zulip", "no", "no", "no", "no"],
        "3 configured, 2 in the serve config, 2 advertised, 1 approved, 1 with a certificate"
        .split()], "rows")
    eq((ts.count("POST"), ts.count("PATCH")), (1, 1), "status writes nothing")


@test()
def test_tscli_policy_exact(ctx):
    path = _config(ctx, ["grafana", "wiki"], service_tags=["tag:apps"], host_tags=["tag:proxy"])
    rc, out, err = _cli(ctx, "policy", path)
    eq((rc, err), (0, ""), "exit status and stderr")
    eq(out, """\
// Service definitions: add each in the admin console (Services), or
// PUT https://api.tailscale.com/api/v2/tailnet/-/vip-services/svc:NAME
// with its line as the body.
{"name":"svc:grafana","comment":"published by portico","ports":["tcp:443"],"tags":["tag:apps"]}
{"name":"svc:wiki","comment":"published by portico","ports":["tcp:443"],"tags":["tag:apps"]}

// Policy: merge into the tailnet policy file. The node running
// tailscaled must carry tag:proxy; services tagged tag:apps are then
// approved on it without a click.
{
  "tagOwners": {"tag:proxy":["autogroup:admin"],"tag:apps":["autogroup:admin"]},
  "autoApprovers": {"services":{"tag:apps":["tag:proxy"]}},
  "grants": [
    {"src":["autogroup:member"],"dst":["svc:grafana"],"ip":["tcp:443"]},
    {"src":["autogroup:member"],"dst":["svc:wiki"],"ip":["tcp:443"]}
  ]
}
""", "policy text")


@test()
def test_tscli_needs_a_tailscale_section(ctx):
    path = os.path.join(ctx.dir, "plain.yaml")
    with open(path, "w") as f:
        f.write("listen: [{addr: 127.0.0.1:0}]\nservices: {a: {upstream: http://127.0.0.1:9, "
                "hosts: [a.test]}}\n")
    rc, out, err = _cli(ctx, "plan", path)
    eq((rc, err), (1, "portico tailscale plan: %s has no tailscale: section (add one; see "
                      "docs/tailscale.md)\n" % path), "plan without the section")


@test(timeout=40)
def test_tscli_apply_changes_a_port_type_in_two_writes(ctx):
    ts = _emu(ctx)
    # svc:grafana was a raw TCP forward; tailscaled refuses to turn a port's
    # type into another in one write, so apply removes it first.
    ts.set_serve_config({"Services": {"svc:grafana": {"TCP": {"443": {
        "TCPForward": "127.0.0.1:9"}}}}})
    rc, out, err = _cli(ctx, "apply", _config(ctx, ["grafana"]))
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq([a for a, r in zip(ts.answers, ts.requests) if r.method == "POST"], [200, 200],
       "two writes: without the entry, then with its new type")
    eq(ts.serve_config_doc(), {"Services": {"svc:grafana": _entry("grafana")}}, "serve config")
    expect("applied: serve config written" in out, "summary: %r" % out)
