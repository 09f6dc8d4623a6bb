"""End-to-end tests: `tailscale.funnel` published by `portico tailscale
plan|apply` on the node's own name (tests/tailscale_emu.py as tailscaled):
the exact serve config after publishing, changing and removing it, another
admin's node handlers and Funnel entries left alone, and the refusals."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import SUFFIX, LocalAPI  # noqa: E402

NODE = "portico." + SUFFIX
BACKEND = "unix:/run/portico/tailnet.sock"

# Another admin's `tailscale serve --http=80` and `tailscale funnel --https=10000`.
FOREIGN = {
    "TCP": {"80": {"HTTP": True}, "10000": {"HTTPS": True}},
    "Web": {NODE + ":80": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:8080"}}},
            NODE + ":10000": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:7000"}}}},
    "AllowFunnel": {NODE + ":10000": True},
}


def _emu(ctx, funnel=True):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), funnel=funnel)
    ctx.cleanups.append(ts.close)
    return ts


def _config(ctx, funnel=None, hosts=("public.test", NODE), **ts_extra):
    ts = {"socket": os.path.join(ctx.dir, "tailscaled.sock"),
          "state_dir": os.path.join(ctx.dir, "state")}
    if funnel is not None:
        ts["funnel"] = funnel
    ts.update(ts_extra)
    cfg = {"listen": [{"addr": "127.0.0.1:0"}],
           "services": {"public": {"hosts": list(hosts), "upstream": "http://127.0.0.1:9"}},
           "tailscale": ts}
    path = os.path.join(ctx.dir, "portico.yaml")
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=1) + "\n")
    return path


_cli = tailscale_cli


def _with(extra_tcp, extra_web, extra_allow):
    doc = json.loads(json.dumps(FOREIGN))
    doc["TCP"].update(extra_tcp)
    doc["Web"].update(extra_web)
    doc["AllowFunnel"].update(extra_allow)
    return doc


def _state(ctx):
    with open(os.path.join(ctx.dir, "state", "tailscale-funnel")) as f:
        return f.read().split()


@test(timeout=60)
def test_tsfunnel_publish_change_remove(ctx):
    ts = _emu(ctx)
    ts.set_serve_config(FOREIGN)
    path = _config(ctx, {"service": "public"})
    rc, out, err = _cli(ctx, "plan", path)
    eq((rc, err), (0, ""), "plan")
    eq(out, "+ funnel %s:443  / -> %s\nwould change: the serve config (portico tailscale apply "
            "-c %s)\n" % (NODE, BACKEND, path), "plan output")
    eq(ts.count("POST"), 0, "plan writes nothing")

    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, err), (0, ""), "apply")
    eq(ts.serve_config_doc(), _with({"443": {"HTTPS": True}},
                                    {NODE + ":443": {"Handlers": {"/": {"Proxy": BACKEND}}}},
                                    {NODE + ":443": True}), "serve config with Funnel")
    eq(_state(ctx), [NODE + ":443"], "Funnel state file")

    posts = ts.count("POST")
    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, out, err), (0, "nothing changed: 0 services already published as configured\n", ""),
       "second apply")
    eq(ts.count("POST"), posts, "nothing written the second time")

    # Moved to 8443, with a path prefix behind an http:// backend.
    path = _config(ctx, {"service": "public", "port": 8443, "paths": ["/_matrix/", "/hooks"]},
                   backend="http://127.0.0.1:8081", insecure_loopback_backend=True)
    rc, out, err = _cli(ctx, "apply", path)
    eq(rc, 0, "apply to 8443 (stderr %r)" % err)
    eq(ts.serve_config_doc(), _with(
        {"8443": {"HTTPS": True}},
        {NODE + ":8443": {"Handlers": {
            "/_matrix/": {"Proxy": "http://127.0.0.1:8081/_matrix"},
            "/hooks": {"Proxy": "http://127.0.0.1:8081/hooks"}}}},
        {NODE + ":8443": True}), "serve config after the move")
    expect(out.startswith("- funnel %s:443\n+ funnel %s:8443  " % (NODE, NODE)), "plan: %r" % out)
    eq(_state(ctx), [NODE + ":8443"], "Funnel state file after the move")

    # Funnel removed from the configuration: the foreign entries stay exactly.
    rc, out, err = _cli(ctx, "apply", _config(ctx))
    eq((rc, err), (0, ""), "apply without funnel")
    eq(ts.serve_config_doc(), FOREIGN, "serve config after removal")
    eq(_state(ctx), [], "Funnel state file after removal")


@test(timeout=60)
def test_tsfunnel_refusals(ctx):
    ts = _emu(ctx)
    taken = _with({"443": {"HTTPS": True}},
                  {NODE + ":443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:6000"}}}}, {})
    ts.set_serve_config(taken)
    for sub in ("plan", "apply"):
        rc, out, err = _cli(ctx, sub, _config(ctx, {"service": "public"}))
        eq((rc, out, err), (1, "", "portico tailscale %s: funnel: %s:443 is already served by a "
                                   "web handler portico did not publish; remove it (tailscale "
                                   "funnel --https=443 off, or tailscale serve reset) or choose "
                                   "another tailscale.funnel.port\n" % (sub, NODE)),
           "%s with another admin's handler on %s:443" % (sub, NODE))
        rc, out, err = _cli(ctx, sub, _config(ctx, {"service": "public"}, hosts=["public.test"]))
        eq((rc, out, err), (1, "", "portico tailscale %s: tailscale.funnel: tailscaled forwards "
                                   "Funnel requests with X-Forwarded-Host: %s, which portico "
                                   "routes nowhere, not to service public: add %s to "
                                   "services.public.hosts\n" % (sub, NODE, NODE)),
           "%s without the node's name among the hosts" % sub)
    eq(ts.count("POST") + ts.count("PATCH"), 0, "nothing written")
    eq(ts.serve_config_doc(), taken, "serve config untouched")


@test(timeout=60)
def test_tsfunnel_service_named_after_the_node(ctx):
    # With services: true the backend routes X-Forwarded-Host by its first
    # label too: a service named "portico" gets portico.<suffix> without
    # listing it; another service with that name among its hosts wins.
    ts = _emu(ctx)
    path = os.path.join(ctx.dir, "named.yaml")
    cfg = {"listen": [{"addr": "127.0.0.1:0"}],
           "services": {"portico": {"hosts": ["p.test"], "upstream": "http://127.0.0.1:9"}},
           "tailscale": {"socket": os.path.join(ctx.dir, "tailscaled.sock"), "services": True,
                         "state_dir": os.path.join(ctx.dir, "state"),
                         "funnel": {"service": "portico"}}}
    with open(path, "w") as f:
        f.write(json.dumps(cfg) + "\n")
    rc, out, err = _cli(ctx, "apply", path)
    eq((rc, err), (0, ""), "apply")
    eq(ts.serve_config_doc()["AllowFunnel"], {NODE + ":443": True}, "AllowFunnel")
    cfg["services"]["other"] = {"hosts": [NODE], "upstream": "http://127.0.0.1:9"}
    with open(path, "w") as f:
        f.write(json.dumps(cfg) + "\n")
    rc, out, err = _cli(ctx, "plan", path)
    eq((rc, out, err), (1, "", "portico tailscale plan: tailscale.funnel: tailscaled forwards "
                               "Funnel requests with X-Forwarded-Host: %s, which portico routes "
                               "to service other, not to service portico: add %s to "
                               "services.portico.hosts\n" % (NODE, NODE)), "plan refuses")


@test(timeout=60)
def test_tsfunnel_daemon_publishes_and_removes(ctx):
    # portico run with only funnel: (services: false) publishes it on start,
    # and a reload without it removes it; the foreign entries stay.
    ts = _emu(ctx)
    ts.set_serve_config(FOREIGN)
    backend = "unix:" + os.path.join(ctx.dir, "tailnet.sock")
    cfg = {"listen": [{"addr": "127.0.0.1:0"}],
           "services": {"public": {"hosts": ["public.test", NODE],
                                   "upstream": "http://127.0.0.1:9"}},
           "tailscale": {"socket": os.path.join(ctx.dir, "tailscaled.sock"), "backend": backend,
                         "state_dir": os.path.join(ctx.dir, "state"),
                         "funnel": {"service": "public"}}}
    p = Portico(ctx.binary, cfg, ctx.dir)
    ctx.porticos.append(p)
    p.start()
    line = p.wait_line(lambda l: 'msg="tailscale: published' in l, timeout=10 * SCALE)
    expect(line, "published; stderr: %s" % " | ".join(p.stderr()[-6:]))
    eq(ts.serve_config_doc(), _with({"443": {"HTTPS": True}},
                                    {NODE + ":443": {"Handlers": {"/": {"Proxy": backend}}}},
                                    {NODE + ":443": True}), "serve config with Funnel")
    del cfg["tailscale"]["funnel"]
    p.write_config(cfg)
    n = p.nlines()
    p.reload()
    line = p.wait_line(lambda l: 'msg="tailscale: published' in l, timeout=10 * SCALE, start=n)
    expect(line, "published again; stderr: %s" % " | ".join(p.stderr()[n:][-6:]))
    eq(ts.serve_config_doc(), FOREIGN, "serve config after the reload without funnel")
    eq(_state(ctx), [], "Funnel state file")


@test(timeout=60)
def test_tsfunnel_node_without_funnel_attribute_warns(ctx):
    ts = _emu(ctx, funnel=False)
    rc, out, err = _cli(ctx, "apply", _config(ctx, {"service": "public"}))
    eq((rc, err), (0, "portico tailscale apply: warning: tailscale.funnel: this node lacks the "
                      "\"funnel\" node attribute, so tailscaled publishes %s:443 but the internet "
                      "cannot reach it; add {\"target\": [\"tag:portico\"], \"attr\": "
                      "[\"funnel\"]} to nodeAttrs in the tailnet policy\n" % NODE),
       "apply's exit status and warning")
    eq(ts.serve_config_doc()["AllowFunnel"], {NODE + ":443": True}, "published all the same")
