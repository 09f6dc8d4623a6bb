#!/usr/bin/python3
"""run.py - portico end-to-end tests against the real binary.

    /usr/bin/python3 tests/e2e/run.py --portico build/portico [-k SUBSTR]... [--list]

Every test starts its own portico(s) on free loopback ports with its own
origins (tests/e2e/upstream.py) and prints `ok NAME (1.23s)` or
`FAIL NAME: reason (1.23s)`; the last line is `e2e: N passed, N failed`.
Environment: PORTICO_ASAN=1 (sanitizer build: smaller streams, longer
timeouts), E2E_BIG_BYTES (size of the big download/upload, default 10 GiB,
1 GiB under ASan), E2E_TEST_TIMEOUT (default per-test limit in seconds).
"""

import argparse
import base64
import asyncio
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (ASAN, SCALE, Portico, RawConn, closed_port, free_port,  # noqa: E402
                     get_json, logfmt_parse, make_config, raw_exchange, request, run_check,
                     status_of, to_yaml)
from upstream import BLOCK, BlockVerifier, Origin, gen_body, send_pattern  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
BIG = int(os.environ.get("E2E_BIG_BYTES") or (GiB if ASAN else 10 * GiB))
DEFAULT_TIMEOUT = float(os.environ.get("E2E_TEST_TIMEOUT") or 30)
RSS_LIMIT = 16 * MiB

TESTS = []


def test(timeout=None):
    def deco(fn):
        TESTS.append((fn.__name__, fn, timeout or DEFAULT_TIMEOUT))
        return fn
    return deco


class Ctx:
    """Per-test resources; cleanup() stops everything and reports problems."""

    def __init__(self, binary, name):
        self.binary = binary
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="portico-e2e-")
        self.porticos = []
        self.origins = []
        self.procs = []
        self.notes = []

    def origin(self, name="origin", **kw):
        o = Origin(name, **kw)
        self.origins.append(o)
        return o

    def config(self, services, port=None, **kw):
        port = port or free_port()
        return make_config(port, services, **kw), port

    def portico(self, services, limits=None, metrics=False, domain=None, start=True,
                name="portico", workers=2):
        port = free_port()
        mport = free_port() if metrics else None
        cfg = make_config(port, services, limits=limits, metrics_port=mport, domain=domain,
                          workers=workers)
        p = Portico(self.binary, cfg, self.dir, name=name, port=port)
        p.metrics_port = mport
        p.cfg = cfg
        self.porticos.append(p)
        if start:
            p.start()
        return p

    def spawn(self, args, **kw):
        pr = subprocess.Popen(args, **kw)
        self.procs.append(pr)
        harness._ALL.append(pr)
        return pr

    def cleanup(self):
        problems = []
        for p in self.porticos:
            try:
                for pr in p.stop():
                    problems.append("%s: %s" % (p.name, pr))
            except Exception as e:  # never leave one running
                problems.append("%s: stop failed: %r" % (p.name, e))
                p.kill()
        for pr in self.procs:
            if pr.poll() is None:
                pr.terminate()
                try:
                    pr.wait(5)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait(5)
        for o in self.origins:
            o.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def stderr_tail(self, n=6):
        out = []
        for p in self.porticos:
            out += p.stderr()[-n:]
        return out


def svc(origin, hosts=None, **kw):
    d = {"hosts": hosts or ["a.test"], "upstream": origin if isinstance(origin, str) else origin.url}
    d.update(kw)
    return d


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, what):
    if a != b:
        raise AssertionError("%s: expected %r, got %r" % (what, b, a))


def hdrs(doc, name):
    """Values of header `name` in an echo document (case-insensitive)."""
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


# ============================================================== CLI

@test()
def test_check_ok_line(ctx):
    cfg = make_config(free_port(), {
        "one": {"hosts": ["one.test"], "upstream": "http://127.0.0.1:1"},
        "two": {"hosts": ["two.test"], "upstream": "http://127.0.0.1:2"},
        "three": {"hosts": ["three.test"], "upstream": "unix:/tmp/portico-e2e-none.sock"},
    })
    cfg["listen"].append({"addr": "127.0.0.1:%d" % free_port()})
    path = os.path.join(ctx.dir, "ok.yaml")
    open(path, "w").write(to_yaml(cfg) + "\n")
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq(out.strip(), "ok: 3 services, 2 listeners", "stdout")


@test()
def test_check_unknown_key_reports_file_and_line(ctx):
    text = ("listen:\n"
            "  - addr: 127.0.0.1:%d\n"
            "services:\n"
            "  svc:\n"
            "    upstream: http://127.0.0.1:1\n"
            "    bogus_key: 1\n") % free_port()
    path = os.path.join(ctx.dir, "bad.yaml")
    open(path, "w").write(text)
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 1, "exit status")
    first = err.strip().split("\n")[0] if err.strip() else ""
    expect(first.startswith(path + ":6: ") and len(first) > len(path) + 4,
           "stderr should be %r followed by a message, got %r" % (path + ":6: ", err))


@test()
def test_check_json_config_accepted(ctx):
    cfg = make_config(free_port(), {"js": {"hosts": ["js.test"], "upstream": "http://127.0.0.1:1"},
                                    "js2": {"hosts": ["js2.test"], "upstream": "http://127.0.0.1:2"}})
    path = os.path.join(ctx.dir, "c.json")
    open(path, "w").write(json.dumps(cfg, indent=1))
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 0, "exit status (stderr %r)" % err)
    expect(re.match(r"ok: 2 services, 1 listeners?\s*$", out), "stdout %r" % out)


@test()
def test_version_prints(ctx):
    p = subprocess.run([ctx.binary, "version"], capture_output=True, text=True, timeout=10 * SCALE)
    eq(p.returncode, 0, "exit status")
    expect(re.search(r"\d+\.\d+", p.stdout), "no version number in %r" % p.stdout)


# ============================================================== routing

@test(timeout=60)
def test_64_services_each_routed_to_own_upstream(ctx):
    o = ctx.origin("multi", nports=64)
    services = {"svc%d" % i: {"hosts": ["svc%d.test" % i], "upstream": o.url_for(i)}
                for i in range(64)}
    p = ctx.portico(services)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for i in list(range(64)) + list(range(63, -1, -7)):
        d = get_json(p.port, "/?i=%d" % i, host="svc%d.test" % i, conn=conn)
        eq(d["port"], o.ports[i], "upstream port for svc%d.test" % i)
    conn.close()
    # fresh connections too, in parallel
    errors = []

    def worker(ids):
        try:
            for i in ids:
                d = get_json(p.port, "/", host="svc%d.test" % i)
                if d["port"] != o.ports[i]:
                    errors.append("svc%d -> port %d" % (i, d["port"]))
        except Exception as e:
            errors.append(repr(e))
    ths = [threading.Thread(target=worker, args=(range(k, 64, 8),)) for k in range(8)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    expect(not errors, "misrouted: %s" % errors[:5])


@test(timeout=90)
def test_1000_services_sampled_routing(ctx):
    o = ctx.origin("thousand", nports=1000)
    services = {"s%d" % i: {"upstream": o.url_for(i)} for i in range(1000)}
    p = ctx.portico(services, domain="many.test")
    rng = random.Random(1000)
    sample = [0, 999, 500] + rng.sample(range(1000), 80)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for i in sample:
        d = get_json(p.port, "/", host="s%d.many.test" % i, conn=conn)
        eq(d["port"], o.ports[i], "upstream port for s%d.many.test" % i)
    r = request(p.port, "GET", "/", host="s1000.many.test", conn=conn)
    eq(r.status, 404, "status for s1000.many.test")
    conn.close()


@test()
def test_host_case_port_and_trailing_dot_ignored(ctx):
    o = ctx.origin("app")
    other = ctx.origin("other")
    p = ctx.portico({"app": svc(o, ["app.test"]), "other": svc(other, ["other.test"])})
    for h in ["app.test", "APP.TEST", "App.Test:8080", "app.test.", "APP.test.:99", "app.test:80"]:
        d = get_json(p.port, "/", host=h)
        eq(d["origin"], "app", "origin for Host %r" % h)
        eq(hdrs(d, "host"), [h], "Host header kept as the client sent it (Host %r)" % h)
    for h in ["xapp.test", "app.test.x", "app.tes", "other.test.app.test"]:
        eq(request(p.port, "GET", "/", host=h).status, 404, "status for Host %r" % h)


@test()
def test_wildcard_vs_exact_host(ctx):
    wild = ctx.origin("wild")
    exact = ctx.origin("exact")
    deep = ctx.origin("deep")
    p = ctx.portico({
        "wild": svc(wild, ["*.w.test"]),
        "exact": svc(exact, ["api.w.test"]),
        "deep": svc(deep, ["*.x.w.test"]),
    })
    cases = [("foo.w.test", "wild"), ("api.w.test", "exact"), ("API.W.TEST.", "exact"),
             ("Foo.W.Test:81", "wild"), ("y.x.w.test", "deep"), ("api.x.w.test", "deep")]
    for h, want in cases:
        eq(get_json(p.port, "/", host=h)["origin"], want, "origin for Host %r" % h)
    eq(request(p.port, "GET", "/", host="w.test").status, 404, "bare w.test (not matched by *.w.test)")


@test()
def test_domain_gives_default_host(ctx):
    g = ctx.origin("grafana")
    o = ctx.origin("other")
    p = ctx.portico({"grafana": {"upstream": g.url}, "other": svc(o, ["o.test"])},
                    domain="example.test")
    eq(get_json(p.port, "/", host="grafana.example.test")["origin"], "grafana", "grafana.example.test")
    eq(get_json(p.port, "/", host="o.test")["origin"], "other", "o.test")
    eq(request(p.port, "GET", "/", host="other.example.test").status, 404,
       "other.example.test (hosts replaces NAME.domain)")


@test()
def test_path_routes_longest_prefix_and_strip_prefix(ctx):
    main = ctx.origin("main")
    api = ctx.origin("api")
    admin = ctx.origin("admin")
    static = ctx.origin("static")
    p = ctx.portico({"app": svc(main, ["a.test"], routes=[
        {"prefix": "/api/", "upstream": api.url, "strip_prefix": True},
        {"prefix": "/api/admin/", "upstream": admin.url, "strip_prefix": True},
        {"prefix": "/static/", "upstream": static.url},
    ])})
    cases = [
        ("/api/v1/x?q=1", "api", "/v1/x?q=1"),
        ("/api/", "api", "/"),
        ("/api/admin/users", "admin", "/users"),
        ("/static/a.css", "static", "/static/a.css"),
        ("/apix", "main", "/apix"),
        ("/api", "main", "/api"),
        ("/", "main", "/"),
        ("/other/path?x=y", "main", "/other/path?x=y"),
    ]
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for path, want, target in cases:
        d = get_json(p.port, path, conn=conn)
        eq(d["origin"], want, "origin for %s" % path)
        eq(d["target"], target, "target forwarded for %s" % path)
    conn.close()


@test()
def test_unknown_host_404_one_line(ctx):
    o = ctx.origin("a")
    p = ctx.portico({"secretservice": svc(o, ["secret.test"])})
    with RawConn(p.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 404, "status")
        ct = (r.header("content-type") or "")
        expect(ct.startswith("text/plain"), "content-type %r" % ct)
        text = r.body.decode("utf-8", "replace")
        expect(text.count("\n") <= 1 and text.strip() and "\n" not in text.strip(),
               "body is not one line: %r" % text)
        expect("secret" not in text.lower(), "404 body leaks a service: %r" % text)
        # the connection stays usable
        c.send(b"GET /after HTTP/1.1\r\nHost: secret.test\r\n\r\n")
        r2 = c.read_response()
        eq(r2.status, 200, "next request on the same connection")
    eq(len(o.requests), 1, "requests reaching the origin")


# ============================================================== headers

@test()
def test_header_forwarding_and_stripping(ctx):
    o = ctx.origin("h")
    p = ctx.portico({"h": svc(o, ["a.test"], headers={"X-Svc": "yes", "X-Replace": "from-service"})})
    req = (b"GET /hdr?do=echo HTTP/1.1\r\n"
           b"Host: a.test\r\n"
           b"X-Forwarded-For: 10.1.2.3\r\n"
           b"X-Replace: from-client\r\n"
           b"X-Tailscale-User: evil\r\n"
           b"X-Tailscale-User-LoginName: evil@example.com\r\n"
           b"Tailscale-User-Login: evil\r\n"
           b"Tailscale-User-Name: Evil\r\n"
           b"Remote-User: evil\r\n"
           b"Remote-Groups: admins\r\n"
           b"Remote_Email: evil@example.com\r\n"
           b"X_Tailscale_User: evil\r\n"
           b"Connection: keep-alive, X-Hop-Secret\r\n"
           b"X-Hop-Secret: s3cret\r\n"
           b"Keep-Alive: timeout=5\r\n"
           b"TE: trailers\r\n"
           b"Trailer: X-Something\r\n"
           b"Proxy-Connection: keep-alive\r\n"
           b"X-Custom: kept value\r\n"
           b"User-Agent: e2e/1\r\n"
           b"\r\n")
    with RawConn(p.port) as c:
        c.send(req)
        r = c.read_response()
        eq(r.status, 200, "status")
        d = r.json()
        xff = [x.strip() for v in hdrs(d, "x-forwarded-for") for x in v.split(",")]
        eq(xff, ["10.1.2.3", "127.0.0.1"], "X-Forwarded-For (appended)")
        eq(hdrs(d, "x-real-ip"), ["127.0.0.1"], "X-Real-IP")
        eq(hdrs(d, "x-forwarded-proto"), ["http"], "X-Forwarded-Proto")
        eq(hdrs(d, "x-forwarded-host"), ["a.test"], "X-Forwarded-Host")
        eq(hdrs(d, "host"), ["a.test"], "Host")
        eq(hdrs(d, "x-svc"), ["yes"], "service header X-Svc")
        eq(hdrs(d, "x-replace"), ["from-service"], "service header replaces the client copy")
        eq(hdrs(d, "x-custom"), ["kept value"], "ordinary header passed on")
        eq(hdrs(d, "user-agent"), ["e2e/1"], "User-Agent passed on")
        names = [k.lower() for k, _ in d["headers"]]
        for bad in ["x-tailscale-user", "x-tailscale-user-loginname", "tailscale-user-login",
                    "tailscale-user-name", "remote-user", "remote-groups", "remote_email",
                    "x_tailscale_user", "x-hop-secret", "keep-alive", "te", "trailer",
                    "proxy-connection"]:
            expect(bad not in names, "%s reached the upstream: %r" % (bad, d["headers"]))
        for v in hdrs(d, "connection"):
            expect("x-hop-secret" not in v.lower(), "Connection still names X-Hop-Secret: %r" % v)
        # without a client X-Forwarded-For
        c.send(b"GET /hdr2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        d2 = c.read_response().json()
        eq([x.strip() for v in hdrs(d2, "x-forwarded-for") for x in v.split(",")], ["127.0.0.1"],
           "X-Forwarded-For without a client value")


# ============================================================== hostile input

def _smuggle(ctx, payload, statuses=(400,), must_close=True, strict_upstream=True):
    o = ctx.origin("victim")
    p = ctx.portico({"v": svc(o, ["a.test", "b.test"])}, limits={"header_timeout": "%ds" % int(3 * SCALE)})
    data, closed = raw_exchange(p.port, payload, timeout=4 * SCALE)
    st = status_of(data)
    expect(st in statuses, "status %r (want %s); got %r" % (st, "/".join(map(str, statuses)), data[:200]))
    if must_close:
        expect(closed, "connection not closed after %d; got %r" % (st, data[:300]))
    nresp = len(re.findall(rb"(?:^|\r\n)HTTP/1\.[01] \d{3} ", data))
    eq(nresp, 1, "responses on the connection (%r)" % data[:400])
    time.sleep(0.2)
    raw = o.all_raw()
    expect(b"/smuggled" not in raw, "smuggled request reached the upstream: %r" % raw[:300])
    if strict_upstream:
        eq(o.bytes_received, 0, "bytes reaching the upstream (%r)" % raw[:300])
    else:
        eq(o.completed, 0, "complete requests reaching the upstream (%r)" % raw[:300])
        if raw:
            ctx.notes.append("note: the request head reached the upstream before the body "
                             "framing error was found (%d bytes)" % len(raw))
    # portico still serves
    eq(get_json(p.port, "/health", host="a.test")["origin"], "victim", "healthy afterwards")
    return o


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"


@test()
def test_smuggling_cl_te_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED)


@test()
def test_smuggling_te_cl_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 44\r\n\r\n0\r\n\r\n" + SMUGGLED)


@test()
def test_smuggling_repeated_content_length_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Content-Length: 6\r\n\r\nhello!" + SMUGGLED)


@test()
def test_smuggling_repeated_identical_content_length_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Content-Length: 5\r\n\r\nhello" + SMUGGLED)


def _variants(ctx, make, statuses=(400,), strict_upstream=True):
    fails = []
    for v in make:
        sub = Ctx(ctx.binary, ctx.name)
        try:
            _smuggle(sub, v, statuses=statuses, strict_upstream=strict_upstream)
            ctx.notes += sub.notes
        except AssertionError as e:
            fails.append("%r: %s" % (v[:90], e))
        finally:
            probs = sub.cleanup()
            if probs:
                fails.append("teardown: %s" % probs)
    expect(not fails, "; ".join(fails))


@test(timeout=60)
def test_smuggling_non_numeric_content_length_rejected(ctx):
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: %s\r\n\r\nhello" % v + SMUGGLED
                    for v in (b"abc", b"+5", b"0x5", b"5 5", b"-5", b"5a")])


@test()
def test_smuggling_te_chunked_then_identity_rejected(ctx):
    _smuggle(ctx, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)


@test(timeout=60)
def test_smuggling_te_unknown_coding_rejected(ctx):
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: %s\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n" % v + SMUGGLED
                    for v in (b"gzip", b"xchunked", b"identity")], statuses=(400, 501))


@test(timeout=60)
def test_smuggling_bad_chunk_size_rejected(ctx):
    shapes = [b"zz\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
              b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", b"\r\nhello\r\n0\r\n\r\n",
              b"5\r\nhelloXX0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n"]
    _variants(ctx, [b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" + s + SMUGGLED
                    for s in shapes])


@test()
def test_smuggling_obs_fold_rejected(ctx):
    _smuggle(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Folded: a\r\n  b\r\n\r\n" + SMUGGLED)


@test(timeout=60)
def test_smuggling_bare_lf_rejected(ctx):
    _variants(ctx, [b"GET / HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n" + SMUGGLED,
                    b"GET / HTTP/1.1\nHost: a.test\r\n\r\n" + SMUGGLED,
                    b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\n\r\n" + SMUGGLED])


@test(timeout=60)
def test_smuggling_whitespace_before_colon_rejected(ctx):
    _variants(ctx, [b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A : b\r\n\r\n" + SMUGGLED,
                    b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n"
                    b"Content-Length: 5\r\n\r\nhello" + SMUGGLED,
                    b"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n" + SMUGGLED])


@test()
def test_smuggling_two_host_headers_rejected(ctx):
    _smuggle(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n" + SMUGGLED)


@test()
def test_header_line_without_colon_rejected(ctx):
    _smuggle(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\nNoColonHere\r\n\r\n" + SMUGGLED)


def _limit_status(ctx, payload, want):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)})
    data, _ = raw_exchange(p.port, payload, timeout=3 * SCALE)
    eq(status_of(data), want, "status (response %r)" % data[:200])
    eq(o.bytes_received, 0, "bytes reaching the upstream")


@test()
def test_request_line_too_long_414(ctx):
    _limit_status(ctx, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n", 414)


@test()
def test_headers_too_large_431(ctx):
    big = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    _limit_status(ctx, b"GET / HTTP/1.1\r\nHost: a.test\r\n" + big + b"\r\n", 431)


@test()
def test_unknown_method_501(ctx):
    _limit_status(ctx, b"BREW /pot HTTP/1.1\r\nHost: a.test\r\n\r\n", 501)


@test()
def test_connect_method_501(ctx):
    _limit_status(ctx, b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 501)


@test()
def test_http2_request_line_505(ctx):
    _limit_status(ctx, b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n", 505)


@test()
def test_slowloris_closed_after_header_timeout(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"header_timeout": "1s"})
    s = socket.create_connection(("127.0.0.1", p.port))
    t0 = time.time()
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
    got = b""
    closed_at = None
    s.settimeout(0.2)
    limit = 1 + 3 * SCALE
    while time.time() - t0 < limit:
        try:
            s.sendall(b"X-Drip: 1\r\n")
        except OSError:
            closed_at = time.time() - t0
            break
        try:
            d = s.recv(4096)
            if not d:
                closed_at = time.time() - t0
                break
            got += d
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.time() - t0
            break
    s.close()
    expect(closed_at is not None, "connection still open after %.1fs of dripping headers" % limit)
    expect(closed_at >= 0.8, "closed too early (%.2fs)" % closed_at)
    if got:
        eq(status_of(got), 408, "status sent before closing (%r)" % got[:100])
    eq(o.bytes_received, 0, "bytes reaching the upstream")


# ============================================================== HTTP/1.1 semantics

@test()
def test_keepalive_upstream_connection_reused(ctx):
    o = ctx.origin("ka")
    p = ctx.portico({"v": svc(o)})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    first_sock = None
    for i in range(20):
        d = get_json(p.port, "/ka%d" % i, conn=conn)
        first_sock = first_sock or conn.sock
        expect(conn.sock is first_sock, "client connection not kept alive at request %d" % i)
        eq(d["idx"], i, "index of request %d on its upstream connection" % i)
    conn.close()
    eq(o.connections, 1, "upstream connections for 20 sequential requests")
    # sequential requests on new client connections reuse the pools too (one per worker)
    for i in range(10):
        get_json(p.port, "/n%d" % i)
    expect(o.connections <= 3, "upstream connections after 10 more client connections: %d"
           % o.connections)


@test()
def test_pipelined_requests_answered_in_order(ctx):
    o = ctx.origin("pipe")
    p = ctx.portico({"v": svc(o)})
    reqs = [("GET", b"GET /p1?do=echo HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            ("POST", b"POST /p2?do=echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n0123456789"),
            ("HEAD", b"HEAD /p3?do=echo HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            ("GET", b"GET /p4?do=download&n=70000&mode=chunked&chunk=999 HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            ("POST", b"POST /p5?do=echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\n"),
            ("GET", b"GET /p6?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")]
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"".join(r for _, r in reqs))
        rs = [c.read_response(m) for m, _ in reqs]
        eq([r.status for r in rs], [200] * 6, "statuses")
        eq(rs[0].json()["target"], "/p1?do=echo", "response 1")
        d2 = rs[1].json()
        eq((d2["target"], d2["body_len"], d2["body_sha256"]),
           ("/p2?do=echo", 10, hashlib.sha256(b"0123456789").hexdigest()), "response 2")
        eq(rs[2].body, b"", "HEAD body")
        eq(rs[2].header("x-origin"), "pipe", "HEAD response header")
        v = BlockVerifier()
        v.feed(memoryview(rs[3].body))
        expect(v.total == 70000 and v.finish(), "response 4 body (%d bytes)" % v.total)
        d5 = rs[4].json()
        eq((d5["target"], d5["body_len"]), ("/p5?do=echo", 3), "response 5")
        eq(rs[5].json()["target"], "/p6?do=echo", "response 6")
        expect(c.closed_within(3 * SCALE), "connection not closed after Connection: close")
    eq([t.split("?")[0] for t in o.seen_paths()], ["/p1", "/p2", "/p3", "/p4", "/p5", "/p6"],
       "upstream order")


@test()
def test_http10_client(ctx):
    o = ctx.origin("old")
    p = ctx.portico({"v": svc(o)})
    with RawConn(p.port) as c:
        c.send(b"GET /h10?do=echo HTTP/1.0\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.json()["target"], "/h10?do=echo", "target")
        expect(c.closed_within(3 * SCALE), "HTTP/1.0 connection without keep-alive not closed")
    # a chunked upstream response must reach an HTTP/1.0 client unchunked
    with RawConn(p.port) as c:
        c.send(b"GET /h10b?do=download&n=100000&mode=chunked&chunk=3000 HTTP/1.0\r\nHost: a.test\r\n\r\n")
        r = c.read_head()
        eq(r.status, 200, "status")
        expect(r.header("transfer-encoding") is None,
               "Transfer-Encoding sent to an HTTP/1.0 client: %r" % r.header("transfer-encoding"))
        cl = r.header("content-length")
        body = c.exact(int(cl)) if cl else c.read_to_eof()
        v = BlockVerifier()
        v.feed(memoryview(body))
        expect(v.total == 100000 and v.finish(), "body: %d bytes, verified=%s" % (v.total, v.ok))


@test()
def test_expect_100_continue_curl(ctx):
    o = ctx.origin("exp")
    p = ctx.portico({"v": svc(o)})
    body = gen_body(200000, seed=3)
    f = os.path.join(ctx.dir, "body.bin")
    open(f, "wb").write(body)
    pr = subprocess.run(["curl", "-sS", "-v", "--max-time", str(int(10 * SCALE)),
                         "-H", "Host: a.test", "-H", "Expect: 100-continue",
                         "--expect100-timeout", "10",
                         "--data-binary", "@" + f, "http://127.0.0.1:%d/up?do=echo" % p.port],
                        capture_output=True, timeout=20 * SCALE)
    eq(pr.returncode, 0, "curl exit status (%r)" % pr.stderr[-300:])
    err = pr.stderr.decode("latin-1")
    expect(re.search(r"< HTTP/1\.1 100 Continue", err), "no 100 Continue seen by curl: %s" % err[-600:])
    d = json.loads(pr.stdout)
    eq((d["body_len"], d["body_sha256"]), (len(body), hashlib.sha256(body).hexdigest()), "body at upstream")


@test()
def test_expect_100_continue_answered_before_body(ctx):
    o = ctx.origin("exp")
    p = ctx.portico({"v": svc(o)})
    with RawConn(p.port, timeout=3 * SCALE) as c:
        c.send(b"POST /e?do=echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_head()
        eq(r.status, 100, "first response before sending the body")
        c.send(b"hello")
        r = c.read_response()
        eq(r.status, 200, "final status")
        eq(r.json()["body_len"], 5, "body length at upstream")


@test()
def test_chunked_upload_with_trailers(ctx):
    o = ctx.origin("up")
    p = ctx.portico({"v": svc(o)})
    body = gen_body(1 + 100 + 70000 + 5, seed=5)
    parts = [body[:1], body[1:101], body[101:70101], body[70101:]]
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"POST /cu?do=echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
               b"Trailer: X-Sum\r\n\r\n")
        for i, part in enumerate(parts):
            ext = b";ext=%d" % i if i % 2 else b""
            c.send(b"%x%s\r\n" % (len(part), ext) + part + b"\r\n")
            time.sleep(0.05)
        c.send(b"0\r\nX-Sum: 1234\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        d = r.json()
        eq((d["body_len"], d["body_sha256"]), (len(body), hashlib.sha256(body).hexdigest()), "body at upstream")
        # connection still usable
        c.send(b"GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "next request")
    # curl's chunked upload
    f = os.path.join(ctx.dir, "b.bin")
    big = gen_body(500000, seed=9)
    open(f, "wb").write(big)
    pr = subprocess.run(["curl", "-sS", "--max-time", str(int(10 * SCALE)), "-H", "Host: a.test",
                         "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + f,
                         "http://127.0.0.1:%d/cu2?do=echo" % p.port], capture_output=True, timeout=20 * SCALE)
    eq(pr.returncode, 0, "curl exit (%r)" % pr.stderr)
    d = json.loads(pr.stdout)
    eq((d["body_len"], d["body_sha256"]), (len(big), hashlib.sha256(big).hexdigest()), "curl body at upstream")


@test()
def test_chunked_download_with_trailers(ctx):
    o = ctx.origin("down")
    p = ctx.portico({"v": svc(o)})
    want = gen_body(100000, seed=7)
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /t?do=trailers&n=100000&chunk=7000 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(want).hexdigest(), "body sha256 (len %d)" % len(r.body))
        c.send(b"GET /d?do=download&n=3000000&mode=chunked&chunk=1000 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        v = BlockVerifier()
        v.feed(memoryview(r.body))
        expect(v.total == 3000000 and v.finish(), "chunked download: %d bytes, ok=%s" % (v.total, v.ok))
        c.send(b"GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "next request on the connection")
    f = os.path.join(ctx.dir, "t.out")
    pr = subprocess.run(["curl", "-sS", "--max-time", str(int(10 * SCALE)), "-H", "Host: a.test", "-o", f,
                         "http://127.0.0.1:%d/t?do=trailers&n=100000&chunk=333" % p.port],
                        capture_output=True, timeout=20 * SCALE)
    eq(pr.returncode, 0, "curl exit (%r)" % pr.stderr)
    eq(hashlib.sha256(open(f, "rb").read()).hexdigest(), hashlib.sha256(want).hexdigest(), "curl body")


@test()
def test_content_length_bodies_both_ways(ctx):
    o = ctx.origin("cl")
    p = ctx.portico({"v": svc(o)})
    body = gen_body(300000, seed=11)
    r = request(p.port, "POST", "/u?do=echo", body=body, timeout=10 * SCALE)
    eq(r.status, 200, "upload status")
    d = r.json()
    eq((d["body_len"], d["body_sha256"]), (len(body), hashlib.sha256(body).hexdigest()), "upload body")
    eq(hdrs(d, "content-length"), ["300000"], "Content-Length at upstream")
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /d?do=download&n=300000&mode=cl HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.header("content-length"), "300000", "Content-Length to client")
        v = BlockVerifier()
        v.feed(memoryview(r.body))
        expect(v.total == 300000 and v.finish(), "download body")
        # close-delimited upstream body
        c.send(b"GET /d?do=download&n=200000&mode=close HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        v = BlockVerifier()
        v.feed(memoryview(r.body))
        expect(v.total == 200000 and v.finish(), "close-delimited upstream body: %d bytes" % v.total)


@test()
def test_head_204_304_have_no_body_and_connection_stays_usable(ctx):
    o = ctx.origin("nb")
    p = ctx.portico({"v": svc(o)})
    with RawConn(p.port, timeout=3 * SCALE) as c:
        for method, path, want in [("HEAD", "/h?do=echo", 200),
                                   ("GET", "/s?do=status&code=204", 204),
                                   ("GET", "/s?do=status&code=304", 304),
                                   ("HEAD", "/d?do=download&n=5000000", 200),
                                   ("GET", "/x?do=echo", 200)]:
            c.send(("%s %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % (method, path)).encode())
            r = c.read_response(method)
            eq(r.status, want, "%s %s" % (method, path))
            if method == "HEAD" and "download" in path:
                eq(r.header("content-length"), "5000000", "HEAD Content-Length")
        d = r.json()
        eq(d["target"], "/x?do=echo", "last response")
        closed = c.closed_within(0.5)
        expect(not c.buf, "stray bytes after bodiless responses: %r" % bytes(c.buf[:100]))
        expect(not closed, "connection closed after bodiless responses")


@test()
def test_concurrent_clients(ctx):
    o = ctx.origin("many")
    p = ctx.portico({"v": svc(o)})
    errors = []

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
        try:
            for i in range(25):
                r = request(p.port, "GET", "/c%d/%d" % (k, i), conn=conn)
                if r.status != 200 or r.json()["target"] != "/c%d/%d" % (k, i):
                    errors.append((k, i, r.status))
        except Exception as e:
            errors.append((k, repr(e)))
        finally:
            conn.close()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(40)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    expect(not errors, "failures: %s" % errors[:5])


@test()
def test_unix_socket_upstream(ctx):
    o = ctx.origin("unix", unix_path=os.path.join(ctx.dir, "origin.sock"))
    p = ctx.portico({"v": svc(o)})
    d = get_json(p.port, "/u")
    eq(d["origin"], "unix", "origin")


# ============================================================== upstream failures

@test()
def test_502_when_upstream_refuses(ctx):
    p = ctx.portico({"v": svc("http://127.0.0.1:%d" % closed_port())})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for i in range(2):
        t0 = time.time()
        r = request(p.port, "GET", "/", conn=conn)
        dt = time.time() - t0
        eq(r.status, 502, "status")
        expect(dt < 1.0 * SCALE, "502 took %.2fs" % dt)
        expect(r.body.startswith(b"bad gateway"), "body %r" % r.body)
        expect(r.body.strip().count(b"\n") == 0, "body not one line: %r" % r.body)
    conn.close()


@test()
def test_504_when_upstream_silent(ctx):
    o = ctx.origin("silent")
    p = ctx.portico({"v": svc(o, timeout="1s")})
    t0 = time.time()
    r = request(p.port, "GET", "/?do=silent", timeout=10 * SCALE)
    dt = time.time() - t0
    eq(r.status, 504, "status")
    expect(0.9 <= dt < 1 + 2 * SCALE, "504 after %.2fs (timeout 1s)" % dt)
    expect(r.body.startswith(b"gateway timeout"), "body %r" % r.body)


@test()
def test_retry_when_pooled_connection_closed_by_upstream(ctx):
    o = ctx.origin("dropper", drop_reused=True)
    p = ctx.portico({"v": svc(o, timeout="5s")})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
    for i in range(5):
        r = request(p.port, "GET", "/r%d" % i, conn=conn)
        eq(r.status, 200, "request %d (body %r)" % (i, r.body[:100]))
        eq(r.json()["target"], "/r%d" % i, "target %d" % i)
        time.sleep(0.1)
    conn.close()
    dropped = [r for r in o.requests if r.idx >= 1]
    expect(dropped, "no request was sent on a reused upstream connection (no pooling), retry not exercised")


@test()
def test_no_retry_of_post_on_closed_pooled_connection(ctx):
    o = ctx.origin("dropper", drop_reused=True)
    p = ctx.portico({"v": svc(o, timeout="5s")})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
    eq(request(p.port, "GET", "/first", conn=conn).status, 200, "first request")
    time.sleep(0.1)
    r = request(p.port, "POST", "/post", body=b"payload", conn=conn)
    conn.close()
    posts = [q for q in o.requests if q.method == "POST"]
    if posts and posts[0].idx == 0:
        raise AssertionError("POST went to a fresh upstream connection; shape not exercised")
    eq(len(posts), 1, "times the POST reached the upstream")
    eq(r.status, 502, "status of a POST whose pooled connection was closed")


@test()
def test_upstream_closes_mid_response(ctx):
    o = ctx.origin("cut")
    p = ctx.portico({"v": svc(o)})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /?do=closehead HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_head()
        if r.status == 200:
            expect(c.closed_within(3 * SCALE), "client connection left open after a truncated body")
            expect(len(c.buf) < 100, "more body bytes than the upstream sent")
        else:
            eq(r.status, 502, "status")
    eq(get_json(p.port, "/ok")["origin"], "cut", "next request")


# ============================================================== upgrades and streaming

async def _ws_connect(port, path="/ws?do=ws", host="a.test"):
    import websockets
    s = socket.create_connection(("127.0.0.1", port))
    return await websockets.connect("ws://%s%s" % (host, path), sock=s, open_timeout=5 * SCALE,
                                    close_timeout=2 * SCALE, max_size=None, compression=None)


@test()
def test_websocket_echo(ctx):
    o = ctx.origin("ws")
    p = ctx.portico({"v": svc(o)})

    async def main():
        ws = await _ws_connect(p.port)
        try:
            await ws.send("hello")
            eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "hello", "text echo")
            blob = gen_body(300000, seed=4)
            await ws.send(blob)
            eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), blob, "binary echo")
            for i in range(50):
                await ws.send("m%d" % i)
            got = [await asyncio.wait_for(ws.recv(), 5 * SCALE) for _ in range(50)]
            eq(got, ["m%d" % i for i in range(50)], "50 messages in order")
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5 * SCALE)
        finally:
            await ws.close()
    asyncio.run(main())


@test()
def test_websocket_survives_reload(ctx):
    o1 = ctx.origin("old")
    o2 = ctx.origin("new")
    p = ctx.portico({"v": svc(o1)})

    async def main():
        ws = await _ws_connect(p.port)
        try:
            await ws.send("before")
            eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "before", "echo before reload")
            cfg = dict(p.cfg)
            cfg["services"] = {"v": svc(o2)}
            p.write_config(cfg)
            p.hup()
            ok = await asyncio.to_thread(_wait_origin, p.port, "new", 5 * SCALE)
            expect(ok, "new config not in force 5s after SIGHUP")
            for i in range(3):
                await ws.send("after%d" % i)
                eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "after%d" % i, "echo after reload")
            ws2 = await _ws_connect(p.port)
            await ws2.send("fresh")
            eq(await asyncio.wait_for(ws2.recv(), 5 * SCALE), "fresh", "new websocket after reload")
            await ws2.close()
        finally:
            await ws.close()
        eq(sum(1 for r in o2.requests if "do=ws" in r.target), 1, "websockets opened on the new upstream")
    asyncio.run(main())


def _wait_origin(port, name, timeout, host="a.test"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            r = request(port, "GET", "/probe", host=host, timeout=2)
            if r.status == 200 and r.json()["origin"] == name:
                return True
        except Exception:
            pass
        time.sleep(0.05)
    return False


@test()
def test_upgrade_101_becomes_byte_tunnel(ctx):
    o = ctx.origin("up")
    p = ctx.portico({"v": svc(o)})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET /?do=upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        r = c.read_head()
        eq(r.status, 101, "status")
        payload = gen_body(200000, seed=2) + b"GET / HTTP/1.1\r\n\r\n"
        c.send(payload)
        got = c.exact(len(payload))
        eq(got == payload, True, "echoed bytes")
        c.sock.shutdown(socket.SHUT_WR)
        expect(c.closed_within(3 * SCALE), "half-close not passed through the tunnel")


def _sse(ctx, mode):
    o = ctx.origin("sse")
    p = ctx.portico({"v": svc(o)})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        t0 = time.time()
        c.send(("GET /events?do=sse&mode=%s&gap=1 HTTP/1.1\r\nHost: a.test\r\n\r\n" % mode).encode())
        c.until(b"data: one")
        t1 = time.time() - t0
        c.until(b"data: two")
        t2 = time.time() - t0
    expect(t1 < 0.5 * SCALE, "first event arrived after %.2fs (second at %.2fs): not flushed" % (t1, t2))
    expect(t2 - t1 > 0.6, "events arrived %.2fs apart" % (t2 - t1))


@test()
def test_sse_chunked_flushed_as_it_arrives(ctx):
    _sse(ctx, "chunked")


@test()
def test_sse_unknown_length_flushed_as_it_arrives(ctx):
    _sse(ctx, "close")


# ============================================================== big streams

class RssSampler(threading.Thread):
    def __init__(self, p):
        super().__init__(daemon=True)
        self.p = p
        self.max = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.max = max(self.max, self.p.rss())
            except Exception:
                pass
            self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join()
        try:
            self.max = max(self.max, self.p.rss())
        except Exception:
            pass
        return self.max


def _read_head(s, first=b""):
    """A 200 response head from s (first: bytes already received); returns
    (head, the body bytes that came with it)."""
    buf = bytearray(first)
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise AssertionError("closed before the response head")
        buf += d
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    expect(head.startswith(b"HTTP/1.1 200"), "response head %r" % head[:200])
    return head, rest


def _expect_pattern(s, first, n, what):
    """The rest of a generated body of n bytes arrives whole and intact."""
    v = _read_pattern(s, first, n)
    eq(v.total, n, what)
    expect(v.ok, "%s: content mismatch in block %s" % (what, v.bad_block))


def _read_pattern(s, first, n):
    """Read a generated body of n bytes from s, of which first already
    arrived; returns the BlockVerifier that checked it."""
    v = BlockVerifier()
    v.feed(memoryview(first))
    rb = bytearray(1 << 20)
    mv = memoryview(rb)
    while v.total < n:
        got = s.recv_into(mv, min(len(rb), n - v.total))
        if not got:
            break
        v.feed(mv[:got])
    v.finish()
    return v


def _download(port, n, timeout=60.0, wrap=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
    if wrap:
        s = wrap(s)
    try:
        s.sendall(b"GET /big?do=download&mode=cl&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        head, rest = _read_head(s)
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        expect(m and int(m.group(1)) == n, "Content-Length in %r" % head[:300])
        return _read_pattern(s, rest, n)
    finally:
        s.close()


def _upload(port, n, timeout=60.0):
    with RawConn(port, timeout=timeout) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
        c.send(b"POST /big?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % n)
        send_pattern(c.sock, n)
        r = c.read_response()
        eq(r.status, 200, "upload status (%r)" % r.body[:200])
        return r.json()


def _big(ctx, direction):
    o = ctx.origin("big")
    p = ctx.portico({"v": svc(o, timeout="60s")})
    warm = 64 * MiB
    fn = _download if direction == "down" else _upload
    fn(p.port, warm)   # warm-up: buffers and pools exist afterwards
    fn(p.port, warm)
    base = p.rss()
    sampler = RssSampler(p)
    sampler.start()
    t0 = time.time()
    try:
        res = fn(p.port, BIG)
    finally:
        peak = sampler.stop()
    dt = time.time() - t0
    after = p.rss()
    if direction == "down":
        eq(res.total, BIG, "bytes received")
        expect(res.ok, "content mismatch in block %s" % res.bad_block)
    else:
        eq(res["len"], BIG, "bytes at the upstream")
        expect(res["pattern_ok"], "content mismatch at the upstream")
    ctx.notes.append("%s %.2f GiB in %.1fs (%.0f MiB/s); VmRSS base %.1f MiB, peak %.1f MiB, after %.1f MiB"
                     % (direction, BIG / GiB, dt, BIG / MiB / dt, base / MiB, peak / MiB, after / MiB))
    expect(peak - base < RSS_LIMIT, "VmRSS grew by %.1f MiB (base %.1f, peak %.1f)"
           % ((peak - base) / MiB, base / MiB, peak / MiB))


@test(timeout=300)
def test_big_download_streams_in_constant_memory(ctx):
    _big(ctx, "down")


@test(timeout=300)
def test_big_upload_streams_in_constant_memory(ctx):
    _big(ctx, "up")


# ============================================================== reload and lifecycle

@test(timeout=60)
def test_reload_under_load_drops_nothing(ctx):
    o1 = ctx.origin("gen1")
    o2 = ctx.origin("gen2")
    cfg_a = {"v": svc(o1, headers={"X-Gen": "a"})}
    cfg_b = {"v": svc(o2, headers={"X-Gen": "b"})}
    p = ctx.portico(cfg_a)
    stop = threading.Event()
    stats = {"ok": 0, "fail": []}
    lock = threading.Lock()
    deadline = time.time() + 3.0

    def client():
        conn = None
        while not stop.is_set() and time.time() < deadline:
            with lock:
                if stats["ok"] + len(stats["fail"]) >= 20000:
                    return
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
                r = request(p.port, "GET", "/load", conn=conn)
                d = r.json() if r.status == 200 else None
                with lock:
                    if d and d["origin"] in ("gen1", "gen2"):
                        stats["ok"] += 1
                    else:
                        stats["fail"].append("status %d %r" % (r.status, r.body[:80]))
            except Exception as e:
                with lock:
                    stats["fail"].append(repr(e))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()
    ths = [threading.Thread(target=client) for _ in range(4)]
    [t.start() for t in ths]
    base = dict(p.cfg)
    for i in range(6):
        time.sleep(0.4)
        cfg = dict(base)
        cfg["services"] = cfg_b if i % 2 == 0 else cfg_a
        p.write_config(cfg)
        p.hup()
    # the last one written (i=5) is cfg_a; finish on cfg_b
    cfg = dict(base)
    cfg["services"] = cfg_b
    p.write_config(cfg)
    p.hup()
    [t.join() for t in ths]
    expect(stats["ok"] > 50, "only %d requests completed" % stats["ok"])
    ctx.notes.append("%d requests during 7 reloads" % stats["ok"])
    expect(not stats["fail"], "%d failed requests of %d: %s" % (len(stats["fail"]), stats["ok"] + len(stats["fail"]),
                                                              stats["fail"][:3]))
    expect(_wait_origin(p.port, "gen2", 5 * SCALE), "new config not in force after reload")
    d = get_json(p.port, "/after")
    eq(hdrs(d, "x-gen"), ["b"], "service header of the new config")
    expect(p.alive(), "portico died")


@test()
def test_reload_applies_to_existing_keepalive_connection(ctx):
    o1 = ctx.origin("gen1")
    o2 = ctx.origin("gen2")
    p = ctx.portico({"v": svc(o1)})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    eq(get_json(p.port, "/1", conn=conn)["origin"], "gen1", "before reload")
    cfg = dict(p.cfg)
    cfg["services"] = {"v": svc(o2)}
    p.write_config(cfg)
    p.hup()
    expect(_wait_origin(p.port, "gen2", 5 * SCALE), "new config not in force after SIGHUP")
    eq(get_json(p.port, "/2", conn=conn)["origin"], "gen2", "next request on a connection opened before reload")
    conn.close()


@test()
def test_reload_invalid_config_refused_with_check_message(ctx):
    o = ctx.origin("keep")
    p = ctx.portico({"v": svc(o)})
    text = to_yaml(p.cfg) + "\nbogus_top_key: 1\n"
    line = text.rstrip("\n").count("\n") + 1
    n0 = p.nlines()
    p.write_config(text)
    rc, out, err = run_check(ctx.binary, p.path)
    eq(rc, 1, "portico check exit status for the invalid file")
    msg = err.strip().split("\n")[0]
    expect(msg.startswith("%s:%d: " % (p.path, line)), "check message %r (expected FILE:%d:)" % (msg, line))
    p.hup()
    l = p.wait_line("reload refused: ", 5 * SCALE, start=n0)
    expect(l, "no 'reload refused: ' log line; stderr: %s" % p.stderr()[n0:][-5:])
    f = logfmt_parse(l)
    expect("level" in f and f["level"] in ("warn", "error"), "level in %r" % l)
    got = f.get("msg", "")
    expect("reload refused: " in got, "msg field %r" % got)
    eq(got.split("reload refused: ", 1)[1], msg, "reload refused message vs portico check")
    eq(get_json(p.port, "/still")["origin"], "keep", "old config still serving")
    expect(p.alive(), "portico died")
    # a valid config afterwards is still accepted
    o2 = ctx.origin("next")
    cfg = dict(p.cfg)
    cfg["services"] = {"v": svc(o2)}
    p.write_config(cfg)
    p.hup()
    expect(_wait_origin(p.port, "next", 5 * SCALE), "valid reload after a refused one not applied")


@test()
def test_sigterm_drains_inflight_request(ctx):
    o = ctx.origin("slow")
    p = ctx.portico({"v": svc(o)}, limits={"shutdown_timeout": "10s"})
    result = {}

    def client():
        try:
            with RawConn(p.port, timeout=10 * SCALE) as c:
                c.send(b"GET /s?do=slow&delay=1.5 HTTP/1.1\r\nHost: a.test\r\n\r\n")
                result["r"] = c.read_response()
        except Exception as e:
            result["e"] = e
    t = threading.Thread(target=client)
    t.start()
    expect(o.wait_requests(1, 5 * SCALE), "request did not reach the upstream")
    t0 = time.time()
    p.term()
    t.join(15 * SCALE)
    expect("r" in result, "in-flight request failed: %r" % result.get("e"))
    eq(result["r"].status, 200, "status of the in-flight request")
    eq(result["r"].json()["target"], "/s?do=slow&delay=1.5", "body")
    rc = p.wait_exit(12 * SCALE)
    expect(rc is not None, "portico still running %.1fs after SIGTERM" % (time.time() - t0))
    eq(rc, 0, "exit status")


@test()
def test_sigterm_closes_idle_keepalive_connections(ctx):
    o = ctx.origin("idle")
    p = ctx.portico({"v": svc(o)}, limits={"shutdown_timeout": "20s"})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "status")
        t0 = time.time()
        p.term()
        expect(c.closed_within(2 * SCALE), "idle keep-alive connection not closed on SIGTERM")
        rc = p.wait_exit(5 * SCALE)
        expect(rc is not None, "portico still running %.1fs after SIGTERM with only idle connections"
               % (time.time() - t0))
        eq(rc, 0, "exit status")


@test()
def test_sigint_exits_zero(ctx):
    o = ctx.origin("i")
    p = ctx.portico({"v": svc(o)})
    get_json(p.port, "/")
    p.signal(signal.SIGINT)
    eq(p.wait_exit(10 * SCALE), 0, "exit status after SIGINT")


# ============================================================== logs and metrics

def _scrape(mport):
    r = request(mport, "GET", "/metrics", host="127.0.0.1:%d" % mport, timeout=5 * SCALE)
    eq(r.status, 200, "metrics status")
    out = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            raise AssertionError("bad metrics line %r" % line)
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def _m(ms, name, **labels):
    tot, found = 0.0, False
    for (n, ls), v in ms.items():
        if n == name and all((k, v2) in ls for k, v2 in labels.items()):
            tot += v
            found = True
    return tot if found else None


@test()
def test_metrics_count_requests(ctx):
    o = ctx.origin("m")
    silent = ctx.origin("silent")
    p = ctx.portico({"web": svc(o, ["web.test"]),
                     "dead": svc("http://127.0.0.1:%d" % closed_port(), ["dead.test"]),
                     "slow": svc(silent, ["slow.test"], timeout="1s")}, metrics=True)
    m0 = _scrape(p.metrics_port)
    for name in ["portico_connections_active", "portico_connections_total"]:
        expect(_m(m0, name) is not None, "%s missing" % name)
    for i in range(3):
        get_json(p.port, "/m%d" % i, host="web.test")
    eq(request(p.port, "GET", "/", host="unknown.test").status, 404, "unknown host")
    eq(request(p.port, "GET", "/", host="dead.test").status, 502, "dead upstream")
    eq(request(p.port, "GET", "/?do=silent", host="slow.test", timeout=10 * SCALE).status, 504, "silent")
    checks = [
        (("portico_requests_total", {"service": "web", "code": "2xx"}), 3),
        (("portico_requests_total", {"service": "-", "code": "4xx"}), 1),
        (("portico_requests_total", {"service": "dead", "code": "5xx"}), 1),
        (("portico_request_duration_seconds_count", {"service": "web"}), 3),
        (("portico_upstream_connect_errors_total", {"service": "dead"}), 1),
        (("portico_upstream_timeouts_total", {"service": "slow"}), 1),
    ]
    end = time.time() + 3 * SCALE
    while True:
        m1 = _scrape(p.metrics_port)
        bad = []
        for (name, labels), delta in checks:
            a, b = _m(m0, name, **labels) or 0, _m(m1, name, **labels)
            if b is None or b - a != delta:
                bad.append("%s%s: %s -> %s (want +%d)" % (name, labels, a, b, delta))
        if not bad or time.time() > end:
            break
        time.sleep(0.2)
    expect(not bad, "; ".join(bad))
    for name in ["portico_bytes_received_total", "portico_bytes_sent_total",
                 "portico_request_duration_seconds_sum"]:
        expect((_m(m1, name) or 0) > (_m(m0, name) or 0), "%s did not grow" % name)
    expect((_m(m1, "portico_connections_total") or 0) >= (_m(m0, "portico_connections_total") or 0) + 6,
           "portico_connections_total did not count the 6 connections")
    inf = _m(m1, "portico_request_duration_seconds_bucket", service="web", le="+Inf")
    eq(inf, 3.0, "web +Inf bucket")


@test()
def test_access_log_line_fields(ctx):
    o = ctx.origin("log")
    p = ctx.portico({"logsvc": svc(o)})
    n0 = p.nlines()
    get_json(p.port, "/logtest?x=1")
    body = b"z" * 1000
    eq(request(p.port, "POST", "/logpost", body=body).status, 200, "post")
    eq(request(p.port, "GET", "/nowhere", host="nope.test").status, 404, "unknown host")
    rx = re.compile(r'^ts=\S+ service=(\S+) client=(\S+) user=(\S+) method=(\S+) path="([^"]*)" '
                    r'status=(\d+) in=(\d+) out=(\d+) ms=(\d+(?:\.\d+)?)$')
    lines = {}
    end = time.time() + 3 * SCALE
    while time.time() < end:
        lines = {}
        for l in p.stderr()[n0:]:
            f = logfmt_parse(l)
            if "path" in f and "status" in f:
                lines.setdefault(f["path"], []).append(l)
        if all(k in lines for k in ("/logtest?x=1", "/logpost", "/nowhere")):
            break
        time.sleep(0.05)
    for path in ("/logtest?x=1", "/logpost", "/nowhere"):
        eq(len(lines.get(path, [])), 1, "access lines for %s (stderr tail %r)" % (path, p.stderr()[-4:]))
    m = rx.match(lines["/logtest?x=1"][0])
    expect(m, "line does not match the format: %r" % lines["/logtest?x=1"][0])
    eq(m.groups()[:6], ("logsvc", "127.0.0.1", "-", "GET", "/logtest?x=1", "200"), "fields")
    expect(int(m.group(7)) > 0 and int(m.group(8)) > 0, "in/out bytes %s/%s" % (m.group(7), m.group(8)))
    expect(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", logfmt_parse(lines["/logtest?x=1"][0])["ts"]),
           "ts format")
    m2 = rx.match(lines["/logpost"][0])
    expect(m2 and m2.group(4) == "POST" and int(m2.group(7)) >= 1000, "POST line %r" % lines["/logpost"][0])
    m3 = rx.match(lines["/nowhere"][0])
    expect(m3 and m3.group(1) == "-" and m3.group(6) == "404", "unknown-host line %r" % lines["/nowhere"][0])


# ============================================================== nginx as an origin

@test()
def test_nginx_origin(ctx):
    nginx = "/usr/sbin/nginx"
    expect(os.path.exists(nginx), "nginx is not installed (%s missing; apt-get install nginx)" % nginx)
    d = ctx.dir
    www = os.path.join(d, "www")
    os.makedirs(www)
    static = gen_body(300000, seed=21)
    open(os.path.join(www, "file.bin"), "wb").write(static)
    open(os.path.join(www, "index.html"), "w").write("<h1>hello from nginx</h1>\n")
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    user = "user root;\n" if os.geteuid() == 0 else ""
    open(conf, "w").write(user + """
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 64; }
http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/tmp_body;
    proxy_temp_path %(d)s/tmp_proxy;
    fastcgi_temp_path %(d)s/tmp_fastcgi;
    uwsgi_temp_path %(d)s/tmp_uwsgi;
    scgi_temp_path %(d)s/tmp_scgi;
    types { text/html html; application/octet-stream bin; }
    server {
        listen 127.0.0.1:%(port)d;
        root %(www)s;
        location /api/ { return 200 "api ok\\n"; }
    }
}
""" % {"d": d, "port": port, "www": www})
    ng = ctx.spawn([nginx, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf, "-g", "daemon off;"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.time() + 10
    while True:
        if ng.poll() is not None:
            raise AssertionError("nginx exited: %r" % ng.stderr.read()[-300:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            expect(time.time() < end, "nginx not listening")
            time.sleep(0.05)
    p = ctx.portico({"web": svc("http://127.0.0.1:%d" % port, ["www.test"])})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    r = request(p.port, "GET", "/file.bin", host="www.test", conn=conn)
    eq(r.status, 200, "static file status")
    eq(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(static).hexdigest(), "static file content")
    etag = r.header("etag")
    r = request(p.port, "HEAD", "/file.bin", host="www.test", conn=conn)
    eq((r.status, r.header("content-length"), r.body), (200, "300000", b""), "HEAD")
    if etag:
        r = request(p.port, "GET", "/file.bin", host="www.test", headers={"If-None-Match": etag}, conn=conn)
        eq((r.status, r.body), (304, b""), "conditional GET")
    r = request(p.port, "GET", "/", host="www.test", conn=conn)
    eq((r.status, r.body), (200, b"<h1>hello from nginx</h1>\n"), "index")
    r = request(p.port, "GET", "/api/x", host="www.test", conn=conn)
    eq((r.status, r.body), (200, b"api ok\n"), "api location")
    r = request(p.port, "GET", "/missing", host="www.test", conn=conn)
    eq(r.status, 404, "nginx 404")
    expect(b"nginx" in r.body, "404 should come from nginx: %r" % r.body[:100])
    r = request(p.port, "POST", "/api/y", host="www.test", body=b"x" * 5000, conn=conn)
    eq(r.status, 200, "POST to nginx")
    conn.close()


# ============================================================== runner

# ---- TCP forwarders ---------------------------------------------------------------------


class TcpServer:
    """A raw TCP origin: each accepted connection runs handler(sock) in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.handler, args=(c,), daemon=True).start()

    def close(self):
        self.sock.close()


def _tcp_portico(ctx, upstream_port, limits=None, name="fwd"):
    lport = free_port()
    p = ctx.portico({name: {"tcp": {"listen": "127.0.0.1:%d" % lport,
                                    "upstream": "127.0.0.1:%d" % upstream_port}}},
                    limits=limits)
    p.tcp_port = lport
    return p


def _recv_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


@test()
def test_tcp_forward_client_half_close_keeps_response_direction(ctx):
    def handler(c):
        n = len(_recv_all(c))          # until the client's FIN arrives through portico
        for _ in range(3):
            c.sendall(b"got %d\n" % n)
            time.sleep(0.05)
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port)
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=10 * SCALE)
    s.sendall(b"x" * 3000000)
    s.shutdown(socket.SHUT_WR)
    eq(_recv_all(s), b"got 3000000\n" * 3, "answer after the client's half-close")
    s.close()
    srv.close()
    line = p.wait_line(lambda l: "method=TCP" in l, timeout=5 * SCALE)
    expect(line, "no access-log line for the TCP connection")
    f = logfmt_parse(line)
    eq((f["service"], f["status"], f["in"], f["out"]), ("fwd", "200", "3000000", "36"),
       "access-log fields")


@test()
def test_tcp_forward_upstream_half_close_keeps_request_direction(ctx):
    got = {}

    def handler(c):
        c.sendall(b"banner\n")
        c.shutdown(socket.SHUT_WR)      # the upstream is done talking ...
        got["n"] = len(_recv_all(c))    # ... but still listens
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port)
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=10 * SCALE)
    eq(_recv_all(s), b"banner\n", "bytes before the upstream's FIN")
    s.sendall(b"y" * 500000)
    s.shutdown(socket.SHUT_WR)
    deadline = time.time() + 5 * SCALE
    while "n" not in got and time.time() < deadline:
        time.sleep(0.02)
    eq(got.get("n"), 500000, "bytes the upstream received after its own FIN")
    s.close()
    srv.close()


@test()
def test_tcp_forward_unreachable_upstream_closes_client(ctx):
    p = _tcp_portico(ctx, closed_port())
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=5 * SCALE)
    t0 = time.time()
    try:
        data = s.recv(10)
    except ConnectionResetError:
        data = b""
    eq(data, b"", "bytes from a forwarder whose upstream refuses")
    expect(time.time() - t0 < 2 * SCALE, "client not closed quickly")
    expect(p.wait_line(lambda l: "method=TCP" in l and "status=502" in l, timeout=5 * SCALE),
           "no status=502 access-log line")


@test()
def test_tcp_forward_idle_timeout_closes(ctx):
    def handler(c):
        _recv_all(c)
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port, limits={"tunnel_timeout": "1s"})
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=10 * SCALE)
    s.sendall(b"hi")
    t0 = time.time()
    eq(_recv_all(s), b"", "bytes on an idle forwarder")
    dt = time.time() - t0
    expect(0.8 < dt < 5 * SCALE, "idle forwarder closed after %.2fs, expected about 1s" % dt)
    srv.close()


@test()
def test_tcp_forward_added_by_reload(ctx):
    def handler(c):
        c.sendall(b"hello from " + str(srv.port).encode())
        c.close()
    srv = TcpServer(handler)
    o = ctx.origin("http")
    p = ctx.portico({"web": svc(o)})
    lport = free_port()
    cfg = dict(p.cfg)
    cfg["services"] = dict(cfg["services"])
    cfg["services"]["fwd"] = {"tcp": {"listen": "127.0.0.1:%d" % lport,
                                      "upstream": "127.0.0.1:%d" % srv.port}}
    n = p.nlines()
    p.write_config(cfg)
    p.hup()
    expect(p.wait_line(lambda l: "configuration reloaded" in l, timeout=5 * SCALE, start=n),
           "reload not logged")
    s = socket.create_connection(("127.0.0.1", lport), timeout=5 * SCALE)
    eq(_recv_all(s), b"hello from %d" % srv.port, "bytes through the new forwarder")
    eq(request(p.port, host="a.test").status, 200, "HTTP still served")
    srv.close()


@test(timeout=300)
def test_tcp_forward_big_stream_flat_rss(ctx):
    size = BIG // 4
    state = {}

    def handler(c):
        v = 0
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            v += len(d)
        state["n"] = v
        c.close()
    srv = TcpServer(handler)
    p = _tcp_portico(ctx, srv.port)
    block = b"z" * (1 << 20)
    s = socket.create_connection(("127.0.0.1", p.tcp_port), timeout=30 * SCALE)
    s.sendall(block * 16)
    rss0 = p.rss()
    left = size
    while left > 0:
        n = min(left, len(block))
        s.sendall(block[:n])
        left -= n
    s.shutdown(socket.SHUT_WR)
    _recv_all(s)
    eq(state.get("n"), size + 16 * len(block), "bytes the upstream received")
    growth = p.rss() - rss0
    expect(growth < RSS_LIMIT, "RSS grew by %d bytes" % growth)
    ctx.notes.append("%d MiB through the TCP forwarder, RSS growth %d KiB"
                     % (size >> 20, growth >> 10))
    srv.close()


# ---- PROXY protocol on a listener ------------------------------------------------------

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _pp_portico(ctx):
    o = ctx.origin("pp")
    p = ctx.portico({"h": svc(o)}, start=False)
    p.cfg["listen"][0]["proxy_protocol"] = True
    p.write_config(p.cfg)
    p.start()
    p.origin = o
    return p


def _pp_client_addr(p, header, split=False):
    """Send header + a request; return (X-Real-IP, X-Forwarded-For) the upstream saw."""
    req = b"GET /pp?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    with RawConn(p.port) as c:
        if split:
            for i in range(len(header)):
                c.send(header[i:i + 1])
                time.sleep(0.002)
        else:
            c.send(header)
        c.send(req)
        r = c.read_response()
        eq(r.status, 200, "status")
        d = r.json()
        return hdrs(d, "x-real-ip"), hdrs(d, "x-forwarded-for")


def _pp2(cmd, fam, addrs, tlvs=b""):
    body = addrs + tlvs
    return PP2_SIG + bytes([0x20 | cmd, fam]) + len(body).to_bytes(2, "big") + body


def _pp2_inet4(src, dst, sport, dport, tlvs=b""):
    return _pp2(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"), tlvs)


def _pp2_inet6(src, dst, sport, dport):
    return _pp2(1, 0x21, socket.inet_pton(socket.AF_INET6, src)
                + socket.inet_pton(socket.AF_INET6, dst)
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


@test()
def test_proxy_protocol_v1_tcp4_sets_client_address(ctx):
    p = _pp_portico(ctx)
    eq(_pp_client_addr(p, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n"),
       (["203.0.113.7"], ["203.0.113.7"]), "X-Real-IP, X-Forwarded-For")
    line = p.wait_line(lambda l: "path=\"/pp?do=echo\"" in l, timeout=5 * SCALE)
    expect(line and "client=203.0.113.7" in line, "access log client: %r" % line)


@test()
def test_proxy_protocol_v1_tcp6_and_unknown(ctx):
    p = _pp_portico(ctx)
    eq(_pp_client_addr(p, b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n"),
       (["2001:db8::7"], ["2001:db8::7"]), "TCP6 client")
    eq(_pp_client_addr(p, b"PROXY UNKNOWN\r\n"), (["127.0.0.1"], ["127.0.0.1"]),
       "UNKNOWN keeps the real peer")


@test()
def test_proxy_protocol_v2_tcp4_tcp6_local(ctx):
    p = _pp_portico(ctx)
    tlv = bytes([0x04]) + (3).to_bytes(2, "big") + b"abc"   # a NOOP TLV
    eq(_pp_client_addr(p, _pp2_inet4("198.51.100.9", "10.0.0.1", 1234, 80, tlv)),
       (["198.51.100.9"], ["198.51.100.9"]), "v2 TCP4 with a TLV")
    eq(_pp_client_addr(p, _pp2_inet6("2001:db8::9", "2001:db8::1", 1234, 80)),
       (["2001:db8::9"], ["2001:db8::9"]), "v2 TCP6")
    eq(_pp_client_addr(p, _pp2(0, 0x00, b"")), (["127.0.0.1"], ["127.0.0.1"]),
       "v2 LOCAL keeps the real peer")


@test()
def test_proxy_protocol_header_split_byte_by_byte(ctx):
    p = _pp_portico(ctx)
    eq(_pp_client_addr(p, b"PROXY TCP4 203.0.113.8 10.0.0.1 5555 80\r\n", split=True),
       (["203.0.113.8"], ["203.0.113.8"]), "v1 split")
    eq(_pp_client_addr(p, _pp2_inet4("198.51.100.10", "10.0.0.1", 1, 2), split=True),
       (["198.51.100.10"], ["198.51.100.10"]), "v2 split")


@test()
def test_proxy_protocol_missing_or_malformed_closes(ctx):
    p = _pp_portico(ctx)
    bad = [b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
           b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",
           b"PROXY TCP4 2001:db8::1 10.0.0.1 5555 80\r\n",
           b"PROXY TCP4 203.0.113.7  10.0.0.1 5555 80\r\n",
           b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 70000\r\n",
           b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\n",
           PP2_SIG + bytes([0x31, 0x11]) + (12).to_bytes(2, "big") + b"\0" * 12,   # version 3
           PP2_SIG + bytes([0x21, 0x11]) + (4).to_bytes(2, "big") + b"\0" * 4,     # too short
           _pp2_inet4("1.2.3.4", "5.6.7.8", 1, 2, bytes([0x04, 0x00, 0x09]) + b"x")]  # TLV overrun
    for h in bad:
        with RawConn(p.port) as c:
            c.send(h + b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            expect(c.closed_within(3 * SCALE), "connection not closed for %r" % h[:40])
            expect(not c.buf, "bytes answered for %r: %r" % (h[:40], c.buf[:60]))
    eq(len(p.origin.requests), 0, "requests that reached the upstream")


@test()
def test_send_proxy_protocol_v1_to_tcp_upstream(ctx):
    seen = {}

    def handler(c):
        f = c.makefile("rb")
        seen["line"] = f.readline()
        seen["rest"] = f.read(5)
        c.sendall(b"ok")
        c.close()
    srv = TcpServer(handler)
    lport = free_port()
    ctx.portico({"fwd": {"tcp": {"listen": "127.0.0.1:%d" % lport,
                                 "upstream": "127.0.0.1:%d" % srv.port},
                         "send_proxy_protocol": "v1"}})
    s = socket.create_connection(("127.0.0.1", lport), timeout=5 * SCALE)
    cport = s.getsockname()[1]
    s.sendall(b"hello")
    eq(_recv_all(s), b"ok", "answer")
    eq(seen.get("line"), b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n" % (cport, lport),
       "PROXY v1 line the upstream received")
    eq(seen.get("rest"), b"hello", "client bytes after the header")
    srv.close()


def _pp_http_origin():
    """An HTTP origin behind send_proxy_protocol: v1 or v2 header, then requests;
    answers each request with the header it saw on its connection."""
    conns = []

    def handler(c):
        f = c.makefile("rb")
        first = f.read(6)
        if first == PP2_SIG[:6]:
            rest = f.read(10)
            hdr = first + rest
            n = int.from_bytes(hdr[14:16], "big")
            hdr += f.read(n)
            fam = hdr[13]
            if fam == 0x11:
                src = socket.inet_ntoa(hdr[16:20]) + ":%d" % int.from_bytes(hdr[24:26], "big")
            else:
                src = "?"
            seen = "v2 " + src
        else:
            seen = "v1 " + (first + f.readline()).decode().strip()
        conns.append(seen)
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                ch = f.read(1)
                if not ch:
                    c.close()
                    return
                head += ch
            body = seen.encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return TcpServer(handler), conns


@test()
def test_send_proxy_protocol_v2_to_http_upstream_no_reuse(ctx):
    srv, conns = _pp_http_origin()
    p = ctx.portico({"h": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port,
                           "send_proxy_protocol": "v2"}})
    with RawConn(p.port) as c:
        cport = c.sock.getsockname()[1]
        for _ in range(2):
            c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            r = c.read_response()
            eq(r.status, 200, "status")
            eq(r.body, b"v2 127.0.0.1:%d" % cport, "header the upstream saw")
    eq(len(conns), 2, "upstream connections for two requests (never shared)")
    srv.close()


@test()
def test_proxy_protocol_in_and_out_carries_original_client(ctx):
    srv, conns = _pp_http_origin()
    o = {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port,
         "send_proxy_protocol": "v1"}
    p = ctx.portico({"h": o}, start=False)
    p.cfg["listen"][0]["proxy_protocol"] = True
    p.write_config(p.cfg)
    p.start()
    with RawConn(p.port) as c:
        c.send(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b"v1 PROXY TCP4 203.0.113.7 10.0.0.1 5555 80", "header the upstream saw")
    srv.close()


@test()
def test_max_connections_pauses_accepting_until_one_closes(ctx):
    o = ctx.origin("mc")
    p = ctx.portico({"v": svc(o)}, limits={"max_connections": 4})
    held = []
    for _ in range(4):
        c = RawConn(p.port, timeout=5 * SCALE)
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "status on a held connection")
        held.append(c)
    extra = RawConn(p.port, timeout=5 * SCALE)   # the kernel queues it; portico must not take it
    extra.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    extra.sock.settimeout(1.0 * SCALE)
    try:
        got = extra.sock.recv(100)
    except socket.timeout:
        got = None
    eq(got, None, "answer while at max_connections")
    held.pop().close()
    extra.sock.settimeout(5 * SCALE)
    eq(extra.read_response().status, 200, "status once a slot is free")
    extra.close()
    for c in held:
        c.close()


@test()
def test_large_content_length_body_cut_by_upstream_closes_client(ctx):
    # Large enough for the spliced path: the upstream promises 2 MiB, sends 600 KiB, leaves.
    def handler(c):
        f = c.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * MiB))
        c.sendall(b"q" * (600 * 1024))
        f.close()
        c.close()
    srv = TcpServer(handler)
    p = ctx.portico({"v": {"hosts": ["a.test"], "upstream": "http://127.0.0.1:%d" % srv.port}})
    with RawConn(p.port, timeout=10 * SCALE) as c:
        c.send(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_head()
        eq(r.status, 200, "status")
        expect(c.closed_within(5 * SCALE), "client connection left open after a cut body")
        eq(len(c.buf), 600 * 1024, "body bytes passed on before the cut")
    srv.close()


# ---- TLS termination ----------------------------------------------------------------------


class TestCA:
    """A test CA and leaf certificates made with the openssl command line."""

    def __init__(self, d):
        self.dir = d
        self.key = os.path.join(d, "ca.key")
        self.crt = os.path.join(d, "ca.pem")
        self._run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out", self.crt,
                   "-days", "2", "-subj", "/CN=portico test CA"])
        self.n = 0

    def _run(self, args):
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode:
            raise AssertionError("%s: %s" % (" ".join(args[:3]), r.stderr.decode()[-300:]))

    def leaf(self, names, tag=None, rsa=False, ips=()):
        """Issue a certificate whose subjectAltName lists names (and IP
        addresses ips); CN = tag or the first name. Returns (cert, key) paths."""
        self.n += 1
        base = os.path.join(self.dir, "leaf%d" % self.n)
        key, csr, crt, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        with open(ext, "w") as f:
            if names or ips:
                f.write("subjectAltName=" + ",".join(["DNS:" + n for n in names]
                                                     + ["IP:" + i for i in ips]) + "\n")
            f.write("extendedKeyUsage=serverAuth\n")
        kind = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt",
                                                      "ec_paramgen_curve:P-256"]
        self._run(["openssl", "req"] + kind + ["-nodes", "-keyout", key, "-out", csr, "-subj",
                                               "/CN=%s" % (tag or names[0])])
        self._run(["openssl", "x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key,
                   "-CAcreateserial", "-days", "2", "-out", crt, "-extfile", ext])
        return crt, key


def _tls_portico(ctx, certs, services, default=None, start=True, **kw):
    p = ctx.portico(services, start=False, **kw)
    p.cfg["listen"][0]["tls"] = True
    tls = {"certs": [{"cert": c, "key": k} for c, k in certs]}
    if default:
        tls["default_cert"] = default
    p.cfg["tls"] = tls
    p.write_config(p.cfg)
    if start:
        p.start()
    return p


def _tls_client_ctx(ca, version=None):
    c = ssl.create_default_context(cafile=ca)
    if version:
        c.minimum_version = c.maximum_version = version
    return c


def _tls_connect(port, name, ca, cctx=None, session=None):
    cctx = cctx or _tls_client_ctx(ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
    try:
        return cctx.wrap_socket(raw, server_hostname=name, session=session)
    except BaseException:
        raw.close()
        raise


def _tls_cn(s):
    return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def _tls_get(port, name, ca, path="/", cctx=None):
    """GET over TLS with SNI name; returns (status, certificate CN)."""
    with _tls_connect(port, name, ca, cctx) as s:
        cn = _tls_cn(s)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (path.encode(), name.encode()))
        data = _recv_all(s)
    return int(data.split(b" ", 2)[1]), cn


def _s_client(port, *args, data=b""):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=20 * SCALE)
    return r.stdout.decode("latin-1")


@test(timeout=180)
def test_tls_200_names_each_get_their_certificate(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    names = ["n%03d.tls.test" % i for i in range(200)]
    certs = [ca.leaf([n]) for n in names]
    p = _tls_portico(ctx, certs, {"s%03d" % i: svc(o, [n]) for i, n in enumerate(names)})
    cctx = _tls_client_ctx(ca.crt)
    for n in names:
        eq(_tls_get(p.port, n, ca.crt, "/?do=echo", cctx=cctx), (200, n),
           "status and certificate for " + n)


@test(timeout=60)
def test_tls_exact_name_beats_wildcard(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    certs = [ca.leaf(["*.w.test"], tag="wildcard"), ca.leaf(["x.w.test"], tag="exact"),
             ca.leaf(["x.w.test", "*.w.test"], tag="listed-later")]
    p = _tls_portico(ctx, certs, {"w": svc(o, ["*.w.test"])})
    eq(_tls_get(p.port, "x.w.test", ca.crt), (200, "exact"), "x.w.test")
    eq(_tls_get(p.port, "y.w.test", ca.crt), (200, "wildcard"), "y.w.test")
    eq(_tls_get(p.port, "Y.W.TEST", ca.crt), (200, "wildcard"), "upper-case SNI")


@test(timeout=60)
def test_tls_unknown_sni_refused_with_alert(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)}, metrics=True)
    try:
        _tls_get(p.port, "nobody.test", ca.crt)
        raise AssertionError("handshake with an unknown SNI succeeded")
    except ssl.SSLError as e:
        expect("UNRECOGNIZED_NAME" in str(e).upper(), "alert: %s" % e)
    out = _s_client(p.port, "-servername", "nobody.test")
    expect("unrecognized name" in out, "s_client output: %r" % out[-400:])
    out = _s_client(p.port, "-noservername")
    expect("unrecognized name" in out, "without SNI and no default_cert: %r" % out[-400:])
    m = _scrape(p.metrics_port)
    failed = m.get(("portico_tls_handshakes_total", (("result", "failed"), ("service", "-"))), 0)
    expect(failed >= 3, "failed handshakes counted: %r" % failed)


@test(timeout=60)
def test_tls_metrics_by_service_active_and_streams(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    b = TlsBackend(*ca.leaf(["vault.test"], tag="vault-backend"))
    p = _tls_portico(ctx, [ca.leaf(["a.test", "b.test"])],
                     {"a": svc(o, ["a.test"]), "b": svc(o, ["b.test"]),
                      "vault": {"hosts": ["vault.test"], "passthrough": "127.0.0.1:%d" % b.port}},
                     metrics=True)
    for name, n in (("a.test", 3), ("b.test", 1), ("vault.test", 2)):
        for _ in range(n):
            eq(_tls_get(p.port, name, ca.crt)[0], 200, name)
    out = _s_client(p.port, "-servername", "a.test", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")
    expect("alert" in out.lower(), "a CBC suite accepted: %r" % out[-300:])
    held = _tls_connect(p.port, "b.test", ca.crt)
    try:
        deadline = time.time() + 5 * SCALE
        while True:
            m = _scrape(p.metrics_port)
            if m.get(("portico_tls_connections_active", ()), 0) == 1 or time.time() > deadline:
                break
            time.sleep(0.05)
        hs = lambda svc, r: m.get(("portico_tls_handshakes_total",  # noqa: E731
                                   (("result", r), ("service", svc))), 0)
        eq((hs("a", "ok"), hs("b", "ok"), hs("a", "failed")), (3, 2, 1), "handshakes by service")
        eq(hs("vault", "ok"), 0, "passthrough handshakes are not portico's")
        eq(m.get(("portico_tls_connections_active", ()), 0), 1, "TLS connections open now")
        eq(m.get(("portico_stream_connections_total", (("service", "vault"),)), 0), 2,
           "passthrough connections")
        expect(m.get(("portico_bytes_sent_total", (("service", "vault"),)), 0) > 1000,
               "passthrough bytes counted")
    finally:
        held.close()


@test(timeout=60)
def test_tls_default_cert_for_clients_without_sni(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"], tag="other"), ca.leaf(["b.test"], tag="dflt")],
                     {"a": svc(o, ["a.test", "b.test"])}, default="b.test")
    out = _s_client(p.port, "-noservername")
    expect(re.search(r"subject=\s*CN\s*=\s*dflt", out), "without SNI: %r" % out[:600])
    out = _s_client(p.port, "-servername", "unknown.test")
    expect(re.search(r"subject=\s*CN\s*=\s*dflt", out), "unknown SNI: %r" % out[:600])
    out = _s_client(p.port, "-servername", "a.test")
    expect(re.search(r"subject=\s*CN\s*=\s*other", out), "known SNI: %r" % out[:600])


@test(timeout=60)
def test_tls_curl_resolve_forwarded_proto_https(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)})
    r = subprocess.run(["curl", "-sS", "--cacert", ca.crt, "--resolve",
                        "a.test:%d:127.0.0.1" % p.port, "https://a.test:%d/x?do=echo" % p.port,
                        "https://a.test:%d/y?do=echo" % p.port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    eq(r.returncode, 0, "curl exit status (%s)" % r.stderr.decode()[-200:])
    docs = [json.loads(x) for x in r.stdout.replace(b"}{", b"}\n{").splitlines()]
    eq(len(docs), 2, "two responses on one connection")
    eq(hdrs(docs[1], "x-forwarded-proto"), ["https"], "X-Forwarded-Proto")
    eq(hdrs(docs[1], "host"), ["a.test:%d" % p.port], "Host")


@test(timeout=60)
def test_tls_versions_alpn_and_http_on_tls_port(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)})
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        eq(_tls_get(p.port, "a.test", ca.crt, cctx=_tls_client_ctx(ca.crt, v))[0], 200,
           "status over %s" % v.name)
    out = _s_client(p.port, "-servername", "a.test", "-tls1_1")
    expect("Cipher is (NONE)" in out or "alert" in out.lower(), "TLS 1.1 accepted: %r" % out[-400:])
    out = _s_client(p.port, "-servername", "a.test", "-alpn", "h2,http/1.1")
    expect("ALPN protocol: http/1.1" in out, "ALPN with h2 offered: %r" % out[-600:])
    out = _s_client(p.port, "-servername", "a.test", "-alpn", "h2")
    expect("No ALPN negotiated" in out, "ALPN with only h2: %r" % out[-600:])
    # Plain HTTP to the TLS port is a failed handshake, never a request.
    with RawConn(p.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        expect(c.closed_within(5 * SCALE), "plain HTTP on the TLS port left open")


@test(timeout=60)
def test_tls_session_resumption_survives_reload(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)})
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        cctx = _tls_client_ctx(ca.crt, v)
        with _tls_connect(p.port, "a.test", ca.crt, cctx) as s:
            s.sendall(b"GET /?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            _recv_all(s)   # a TLS 1.3 ticket arrives after the handshake
            sess = s.session
        with _tls_connect(p.port, "a.test", ca.crt, cctx, session=sess) as s:
            expect(s.session_reused, "%s session not resumed" % v.name)
        n = p.nlines()
        p.hup()
        expect(p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n), "reload")
        with _tls_connect(p.port, "a.test", ca.crt, cctx, session=sess) as s:
            expect(s.session_reused, "%s session not resumed after a reload" % v.name)


@test(timeout=60)
def test_tls_resumed_session_cannot_cross_certificates(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"]), ca.leaf(["b.test"])],
                     {"a": svc(o, ["a.test", "b.test"])})
    cctx = _tls_client_ctx(ca.crt, ssl.TLSVersion.TLSv1_2)
    with _tls_connect(p.port, "a.test", ca.crt, cctx) as s:
        sess = s.session
    cctx.check_hostname = False   # python refuses to offer a session to another name itself
    with _tls_connect(p.port, "b.test", ca.crt, cctx, session=sess) as s:
        expect(not s.session_reused, "a.test's session resumed for b.test")
        eq(_tls_cn(s), "b.test", "certificate")


def _tls_config_errors(ctx, mutate):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)}, start=False)
    mutate(p.cfg, ca)
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    return rc, out + err


@test()
def test_tls_config_errors_are_clear(ctx):
    def bad_cert(cfg, ca):
        path = os.path.join(ctx.dir, "junk.pem")
        with open(path, "w") as f:
            f.write("not a certificate\n")
        cfg["tls"]["certs"][0]["cert"] = path
    rc, out = _tls_config_errors(ctx, bad_cert)
    expect(rc != 0 and "cannot load certificate" in out and "junk.pem" in out, out)

    def mismatch(cfg, ca):
        cfg["tls"]["certs"][0]["key"] = ca.leaf(["b.test"])[1]
    rc, out = _tls_config_errors(ctx, mismatch)
    expect(rc != 0 and "does not match" in out, out)

    def no_san(cfg, ca):
        c, k = ca.leaf([], tag="nosan")
        cfg["tls"]["certs"][0] = {"cert": c, "key": k}
    rc, out = _tls_config_errors(ctx, no_san)
    expect(rc != 0 and "no DNS names" in out, out)

    def bad_default(cfg, ca):
        cfg["tls"]["default_cert"] = "zzz.test"
    rc, out = _tls_config_errors(ctx, bad_default)
    expect(rc != 0 and "default_cert" in out and "zzz.test" in out, out)

    def no_certs(cfg, ca):
        del cfg["tls"]
    rc, out = _tls_config_errors(ctx, no_certs)
    expect(rc != 0 and "tls.certs" in out, out)

    def missing_file(cfg, ca):
        cfg["tls"]["certs"][0]["key"] = os.path.join(ctx.dir, "nope.key")
    rc, out = _tls_config_errors(ctx, missing_file)
    expect(rc != 0 and "nope.key" in out, out)


@test(timeout=60)
def test_tls_broken_certificate_refused_on_reload_then_replacement_applied(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    crt, key = ca.leaf(["a.test"], tag="first")
    p = _tls_portico(ctx, [(crt, key)], {"a": svc(o)})
    eq(_tls_get(p.port, "a.test", ca.crt), (200, "first"), "before")
    c2, k2 = ca.leaf(["a.test"], tag="second")
    n = p.nlines()
    with open(crt + ".tmp", "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    os.replace(crt + ".tmp", crt)   # the inotify watcher sees this and tries a reload
    line = p.wait_line("reload refused", timeout=5 * SCALE, start=n)
    expect(line and "cannot load certificate" in line, "broken certificate: %r" % line)
    p.hup()
    expect(p.wait_line(lambda l: "reload refused" in l, timeout=5 * SCALE,
                       start=p.nlines() - 1), "SIGHUP with the broken file not refused")
    eq(_tls_get(p.port, "a.test", ca.crt), (200, "first"), "after the refused reload")
    n = p.nlines()
    os.replace(k2, key)
    os.replace(c2, crt)
    expect(p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n),
           "replacement on disk not picked up")
    eq(_tls_get(p.port, "a.test", ca.crt), (200, "second"), "after the renewal")


@test(timeout=120)
def test_tls_certificate_replaced_on_disk_during_download(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    crt, key = ca.leaf(["a.test"], tag="first")
    p = _tls_portico(ctx, [(crt, key)], {"a": svc(o, timeout="60s")})
    n_bytes = 256 * MiB
    s = _tls_connect(p.port, "a.test", ca.crt)
    try:
        eq(_tls_cn(s), "first", "certificate of the download")
        s.sendall(b"GET /big?do=download&mode=cl&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n_bytes)
        head, rest = _read_head(s)
        c2, k2 = ca.leaf(["a.test"], tag="second")
        n = p.nlines()
        os.replace(k2, key)
        os.replace(c2, crt)
        expect(p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n),
               "renewal on disk not picked up")
        eq(_tls_get(p.port, "a.test", ca.crt), (200, "second"), "a new connection")
        _expect_pattern(s, rest, n_bytes, "bytes of the download in flight")
    finally:
        s.close()


@test(timeout=400)
def test_tls_big_download_streams_in_constant_memory(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("big")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"v": svc(o, timeout="60s")})
    cctx = _tls_client_ctx(ca.crt)
    wrap = lambda raw: cctx.wrap_socket(raw, server_hostname="a.test")  # noqa: E731
    _download(p.port, 64 * MiB, wrap=wrap)
    base = p.rss()
    sampler = RssSampler(p)
    sampler.start()
    t0 = time.time()
    try:
        res = _download(p.port, BIG, wrap=wrap, timeout=120)
    finally:
        peak = sampler.stop()
    dt = time.time() - t0
    eq(res.total, BIG, "bytes received")
    expect(res.ok, "content mismatch in block %s" % res.bad_block)
    ctx.notes.append("TLS down %.2f GiB in %.1fs (%.0f MiB/s); VmRSS base %.1f MiB, peak %.1f MiB"
                     % (BIG / GiB, dt, BIG / MiB / dt, base / MiB, peak / MiB))
    expect(peak - base < RSS_LIMIT, "VmRSS grew by %.1f MiB (base %.1f, peak %.1f)"
           % ((peak - base) / MiB, base / MiB, peak / MiB))


@test(timeout=60)
def test_tls_pipelined_requests_in_one_record(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)})
    with _tls_connect(p.port, "a.test", ca.crt) as s:
        reqs = b"".join(b"GET /p%d?do=echo HTTP/1.1\r\nHost: a.test\r\n\r\n" % i
                        for i in range(20))
        s.sendall(reqs + b"GET /last?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = _recv_all(s)
    eq(data.count(b"HTTP/1.1 200 OK"), 21, "responses to 21 pipelined requests")
    eq([r.target for r in o.requests][-1], "/last?do=echo", "the last request")


@test(timeout=60)
def test_tls_upload_and_websocket(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)})
    n = 8 * MiB
    with _tls_connect(p.port, "a.test", ca.crt) as s:
        s.sendall(b"POST /?do=sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % n)
        send_pattern(s, n)
        data = _recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    expect(head.startswith(b"HTTP/1.1 200"), "upload head %r" % head[:100])
    doc = json.loads(body)
    expect(doc["len"] == n and doc["pattern_ok"], "upload at the upstream: %r" % doc)
    with _tls_connect(p.port, "a.test", ca.crt) as s:
        s.sendall(b"GET /?do=upgrade HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
                  b"Upgrade: echo\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            expect(d, "closed before the 101")
            buf += d
        expect(buf.startswith(b"HTTP/1.1 101"), "upgrade head %r" % buf[:100])
        rest = buf.partition(b"\r\n\r\n")[2]
        s.sendall(b"ping over tls")
        while len(rest) < len(b"ping over tls"):
            d = s.recv(4096)
            expect(d, "tunnel closed")
            rest += d
        eq(rest, b"ping over tls", "echo through the tunnel")


# ---- TLS passthrough ---------------------------------------------------------------------


class TlsBackend(TcpServer):
    """A TLS origin for passthrough and https upstreams. After the handshake
    it reads one request head: `GET /bytes/N` answers N pattern bytes,
    anything else a short text naming the backend and the SNI it saw."""

    def __init__(self, cert, key, name="backend"):
        self.name = name
        self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.sctx.load_cert_chain(cert, key)
        self.snis = []
        self.sctx.sni_callback = lambda s, n, c: self.snis.append(n) and None
        self.first = []   # the first bytes of each connection, before TLS (PROXY header)
        self.resumed = []  # per connection: was the TLS session resumed
        self.requests = 0
        super().__init__(self._serve)

    def _serve(self, raw):
        try:
            raw.settimeout(30 * SCALE)
            peek = raw.recv(1, socket.MSG_PEEK)
            if peek and peek[0] != 0x16:   # a PROXY header: record it, then TLS
                head = raw.recv(16, socket.MSG_PEEK)
                if head.startswith(b"PROXY "):
                    line = b""
                    while not line.endswith(b"\r\n"):
                        line += raw.recv(1)
                    self.first.append(line)
                else:
                    hdr = raw.recv(16)
                    hdr += raw.recv(int.from_bytes(hdr[14:16], "big"))
                    self.first.append(hdr)
            s = self.sctx.wrap_socket(raw, server_side=True)
            self.resumed.append(s.session_reused)
            buf = b""
            while True:   # keep-alive unless the path says /close
                while b"\r\n\r\n" not in buf:
                    d = s.recv(4096)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests += 1
                path = head.split(b" ")[1].decode()
                close = path.endswith("/close") or b"\nConnection: close" in head
                conn = b"Connection: close\r\n" if close else b""
                if path.startswith("/bytes/"):
                    n = int(path[7:])
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (n, conn))
                    send_pattern(s, n)
                else:
                    body = ("%s sni=%s" % (self.name, self.snis[-1] if self.snis else "-")).encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                              % (len(body), conn, body))
                if close:
                    s.close()
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()


def _pt_setup(ctx, **svc_extra):
    """A TLS listener that terminates a.test and passes vault.test through."""
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    b = TlsBackend(*ca.leaf(["vault.test"], tag="vault-backend"), name="vault")
    vault = {"hosts": ["vault.test"], "passthrough": "127.0.0.1:%d" % b.port}
    vault.update(svc_extra)
    p = _tls_portico(ctx, [ca.leaf(["a.test"], tag="portico")], {"a": svc(o), "vault": vault})
    return ca, b, p


def _tls_by_hand(port, name, ca, split=False,
                 request=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
    """A TLS client over memory BIOs, so that its ClientHello can be sent
    one byte at a time. Returns (certificate CN, response bytes)."""
    cctx = _tls_client_ctx(ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = cctx.wrap_bio(inc, out, server_hostname=name)
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        if split:
            for i in range(len(hello)):
                s.sendall(hello[i:i + 1])
                time.sleep(0.001)
        else:
            s.sendall(hello)
        while True:
            d = s.recv(65536)
            if not d:
                raise AssertionError("connection closed during the handshake")
            inc.write(d)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            finally:
                pending = out.read()
                if pending:
                    s.sendall(pending)
        cn = dict(x[0] for x in obj.getpeercert()["subject"])["commonName"]
        obj.write(request)
        s.sendall(out.read())
        resp = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break   # close_notify
                resp += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                break
            d = s.recv(65536)
            if not d:
                break
            inc.write(d)
        return cn, resp
    finally:
        s.close()


@test(timeout=60)
def test_passthrough_and_termination_share_one_port(ctx):
    ca, b, p = _pt_setup(ctx)
    status, cn = _tls_get(p.port, "vault.test", ca.crt)
    eq((status, cn), (200, "vault-backend"), "passthrough: the backend's own certificate")
    eq(b.snis, ["vault.test"], "SNI seen by the backend")
    eq(_tls_get(p.port, "a.test", ca.crt, "/?do=echo"), (200, "portico"), "terminated name")
    line = p.wait_line(lambda l: "method=TLS" in l, timeout=5 * SCALE)
    expect(line, "no access-log line for the passthrough connection")
    f = logfmt_parse(line)
    eq((f["service"], f["status"]), ("vault", "200"), "access-log fields")
    expect(int(f["in"]) > 100 and int(f["out"]) > 100, "bytes logged: %r" % line)
    # Plain HTTP naming the passthrough host is not routed anywhere.
    q = ctx.portico({"vault": {"hosts": ["vault.test"], "passthrough": "127.0.0.1:1"},
                     "a": svc(ctx.origin("plain"))}, start=False)
    q.cfg["listen"].append({"addr": "127.0.0.1:%d" % free_port(), "tls": True})
    q.write_config(q.cfg)
    q.start()
    eq(request(q.port, "GET", "/", host="vault.test").status, 404, "HTTP to a passthrough name")


@test(timeout=60)
def test_passthrough_client_hello_split_byte_by_byte(ctx):
    ca, b, p = _pt_setup(ctx)
    cn, resp = _tls_by_hand(p.port, "vault.test", ca.crt, split=True)
    eq(cn, "vault-backend", "certificate through passthrough")
    expect(resp.endswith(b"vault sni=vault.test"), "response %r" % resp[-100:])
    cn, resp = _tls_by_hand(p.port, "a.test", ca.crt, split=True,
                            request=b"GET /?do=echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    eq(cn, "portico", "terminated certificate after a split ClientHello")
    expect(resp.startswith(b"HTTP/1.1 200"), "response %r" % resp[:100])


@test(timeout=60)
def test_passthrough_hostile_client_hello_closed(ctx):
    ca, b, p = _pt_setup(ctx)
    junk = [
        b"GET / HTTP/1.1\r\nHost: vault.test\r\n\r\n",                  # not TLS
        bytes([22, 3, 1, 0x40, 0x01]) + b"\0" * 100,                     # record too long
        bytes([22, 3, 1, 0x00, 0x09, 1, 0x01, 0x00, 0x00]) + b"\0" * 4,  # 64 KiB hello
        bytes([22, 3, 1, 0x00, 0x06, 2, 0, 0, 2, 3, 3]),                 # not a ClientHello
        bytes([22, 3, 1, 0, 1, 1]) * 4000,                               # 1-byte fragments
    ]
    for j in junk:
        with RawConn(p.port) as c:
            c.sock.sendall(j)
            expect(c.closed_within(5 * SCALE), "connection left open after %r" % j[:20])
    eq(b.accepted, 0, "connections that reached the passthrough upstream")
    # A client that never finishes its ClientHello is closed after header_timeout.
    q = _tls_portico(ctx, [ca.leaf(["a.test"])], {"vault": {"hosts": ["vault.test"],
                     "passthrough": "127.0.0.1:%d" % b.port}}, limits={"header_timeout": "500ms"})
    with RawConn(q.port) as c:
        c.sock.sendall(bytes([22, 3, 1, 0, 200, 1, 0, 0, 196]))
        expect(c.closed_within(5 * SCALE), "half a ClientHello kept open")
    eq(b.accepted, 0, "connections that reached the passthrough upstream")


@test(timeout=60)
def test_passthrough_unknown_name_and_passthrough_only(ctx):
    ca = TestCA(ctx.dir)
    b = TlsBackend(*ca.leaf(["vault.test"], tag="vault-backend"))
    p = ctx.portico({"vault": {"hosts": ["vault.test"], "passthrough": "127.0.0.1:%d" % b.port}},
                    start=False)
    p.cfg["listen"][0]["tls"] = True   # no tls.certs at all
    p.write_config(p.cfg)
    p.start()
    eq(_tls_get(p.port, "vault.test", ca.crt)[1], "vault-backend", "passthrough only")
    try:
        _tls_get(p.port, "other.test", ca.crt)
        raise AssertionError("a name nobody serves got through")
    except (ssl.SSLError, OSError):
        pass
    eq(b.accepted, 1, "connections at the backend")


@test(timeout=60)
def test_passthrough_with_s_server_and_proxy_protocol(ctx):
    ca = TestCA(ctx.dir)
    crt, key = ca.leaf(["db.test"], tag="s_server")
    sport = free_port()
    srv = ctx.spawn(["openssl", "s_server", "-accept", "127.0.0.1:%d" % sport, "-cert", crt,
                     "-key", key, "-www", "-naccept", "3", "-quiet"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10 * SCALE
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", sport), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    p = _tls_portico(ctx, [ca.leaf(["a.test"])],
                     {"db": {"hosts": ["db.test"], "passthrough": "127.0.0.1:%d" % sport}})
    status, cn = _tls_get(p.port, "db.test", ca.crt)
    eq((status, cn), (200, "s_server"), "openssl s_server behind passthrough")
    srv.kill()
    # send_proxy_protocol toward a passthrough upstream.
    b = TlsBackend(*ca.leaf(["pp.test"], tag="pp-backend"))
    q = _tls_portico(ctx, [ca.leaf(["a.test"])],
                     {"pp": {"hosts": ["pp.test"], "passthrough": "127.0.0.1:%d" % b.port,
                             "send_proxy_protocol": "v1"}})
    eq(_tls_get(q.port, "pp.test", ca.crt)[1], "pp-backend", "through passthrough with PROXY")
    eq(len(b.first), 1, "PROXY headers at the backend")
    expect(re.match(rb"PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ %d\r\n" % q.port, b.first[0]),
           "PROXY header %r" % b.first[0])


@test(timeout=120)
def test_passthrough_stream_and_config_errors(ctx):
    ca, b, p = _pt_setup(ctx)
    n = 256 * MiB
    cctx = _tls_client_ctx(ca.crt)
    s = cctx.wrap_socket(socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE),
                         server_hostname="vault.test")
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: vault.test\r\n\r\n" % n)
        head, rest = _read_head(s)
        _expect_pattern(s, rest, n, "bytes through passthrough")
    finally:
        s.close()
    # Configuration mistakes.
    cfgs = [
        ({"v": {"hosts": ["v.test"], "passthrough": "127.0.0.1:1", "upstream": "http://127.0.0.1:2"}},
         True, "cannot have HTTP settings"),
        ({"v": {"hosts": ["v.test"], "passthrough": "nowhere"}}, True, "passthrough"),
        ({"v": {"hosts": ["v.test"], "passthrough": "127.0.0.1:1"}}, False, "no listener has tls: true"),
    ]
    for services, tls, want in cfgs:
        q = ctx.portico(services, start=False)
        q.cfg["listen"][0]["tls"] = tls
        q.write_config(q.cfg)
        rc, out, err = run_check(ctx.binary, q.path)
        expect(rc != 0 and want in out + err, "check of %r: %s" % (services, out + err))


# ---- https upstreams ----------------------------------------------------------------------


def _https_setup(ctx, names=("localhost",), ips=("127.0.0.1",), **svc_kw):
    ca = TestCA(ctx.dir)
    b = TlsBackend(*ca.leaf(list(names), tag="https-backend", ips=ips), name="secure")
    return ca, b


@test(timeout=60)
def test_https_upstream_verified_with_tls_ca_sni_and_keepalive(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt)}, metrics=True)
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SCALE)
    for i in range(5):
        r = request(p.port, "GET", "/x%d" % i, conn=conn)
        eq((r.status, r.body), (200, b"secure sni=localhost"), "response %d" % i)
    conn.close()
    eq(b.accepted, 1, "TLS connections to the upstream for 5 requests")
    eq(b.requests, 5, "requests at the upstream")
    # An IP literal is checked against the certificate's IP addresses; no SNI is sent.
    q = ctx.portico({"s": svc("https://127.0.0.1:%d" % b.port, tls_ca=ca.crt)})
    r = request(q.port, "GET", "/")
    eq((r.status, r.body), (200, b"secure sni=None"), "IP literal upstream")


@test(timeout=60)
def test_https_upstream_with_proxy_protocol_header_before_tls(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt,
                              send_proxy_protocol="v2")})
    for i in range(2):
        r = request(p.port, "GET", "/", headers={"Connection": "close"})
        eq((r.status, r.body), (200, b"secure sni=localhost"), "response %d" % i)
    eq(len(b.first), 2, "PROXY headers (one per upstream connection)")
    expect(all(h.startswith(b"\r\n\r\n\0\r\nQUIT\n\x21\x11") for h in b.first),
           "v2 headers from 127.0.0.1: %r" % b.first)


@test(timeout=60)
def test_https_upstream_untrusted_or_mismatched_certificate_502(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"sys": svc("https://localhost:%d" % b.port, ["sys.test"]),
                     "wrong": svc("https://127.0.0.2:%d" % b.port, ["wrong.test"],
                                  tls_ca=ca.crt)})
    r = request(p.port, "GET", "/", host="sys.test")
    eq(r.status, 502, "certificate from an unknown CA (system store)")
    line = p.wait_line("TLS handshake with", timeout=5 * SCALE)
    expect(line and "certificate" in line, "log line: %r" % line)
    b2 = TlsBackend(*ca.leaf(["other.test"], tag="other"))
    q = ctx.portico({"m": svc("https://localhost:%d" % b2.port, tls_ca=ca.crt)})
    r = request(q.port, "GET", "/")
    eq(r.status, 502, "certificate for another name")
    line = q.wait_line("TLS handshake with", timeout=5 * SCALE)
    expect(line and "mismatch" in line, "log line: %r" % line)
    eq(b2.requests, 0, "requests that reached the wrong upstream")


@test(timeout=60)
def test_https_upstream_insecure_skip_verify_is_explicit(ctx):
    ca, b = _https_setup(ctx, names=("x.invalid",), ips=())
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_insecure_skip_verify=True)})
    r = request(p.port, "GET", "/")
    eq((r.status, r.body), (200, b"secure sni=localhost"), "unverified upstream")


@test(timeout=60)
def test_https_upstream_sessions_resumed_on_new_connections(ctx):
    ca, b = _https_setup(ctx)
    # One worker: pools (and their sessions) are per worker.
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt)}, workers=1)
    for i in range(4):
        eq(request(p.port, "GET", "/x/close").status, 200, "request %d" % i)
    eq(b.resumed, [False, True, True, True], "sessions resumed, per upstream connection")


@test(timeout=120)
def test_https_upstream_big_download(ctx):
    ca, b = _https_setup(ctx)
    p = ctx.portico({"s": svc("https://localhost:%d" % b.port, tls_ca=ca.crt, timeout="60s")})
    n = 256 * MiB
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30 * SCALE)
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        head, rest = _read_head(s)
        _expect_pattern(s, rest, n, "bytes from the https upstream")
    finally:
        s.close()


@test(timeout=60)
def test_https_upstream_openssl_s_server(ctx):
    ca = TestCA(ctx.dir)
    crt, key = ca.leaf(["localhost"], tag="s_server")
    sport = free_port()
    ctx.spawn(["openssl", "s_server", "-accept", "127.0.0.1:%d" % sport, "-cert", crt,
               "-key", key, "-www", "-quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10 * SCALE
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", sport), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    p = ctx.portico({"s": svc("https://localhost:%d" % sport, tls_ca=ca.crt)})
    r = request(p.port, "GET", "/")
    eq(r.status, 200, "status from s_server")
    expect(b"Ciphers supported in s_server binary" in r.body, "s_server page: %r" % r.body[:200])


@test(timeout=60)
def test_tls_listener_with_proxy_protocol(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    b = TlsBackend(*ca.leaf(["vault.test"], tag="vault-backend"))
    p = _tls_portico(ctx, [ca.leaf(["a.test"])],
                     {"a": svc(o), "vault": {"hosts": ["vault.test"],
                                             "passthrough": "127.0.0.1:%d" % b.port,
                                             "send_proxy_protocol": "v1"}}, start=False)
    p.cfg["listen"][0]["proxy_protocol"] = True
    p.write_config(p.cfg)
    p.start()
    cctx = _tls_client_ctx(ca.crt)
    for name in ("a.test", "vault.test"):
        raw = socket.create_connection(("127.0.0.1", p.port), timeout=10 * SCALE)
        raw.sendall(b"PROXY TCP4 203.0.113.9 10.0.0.1 4444 443\r\n")
        with cctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(b"GET /?do=echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % name.encode())
            data = _recv_all(s)
        expect(data.startswith(b"HTTP/1.1 200"), "%s: %r" % (name, data[:100]))
        if name == "a.test":
            doc = json.loads(data.partition(b"\r\n\r\n")[2])
            eq(hdrs(doc, "x-real-ip"), ["203.0.113.9"], "client address behind PROXY + TLS")
    expect(b.first and b.first[0].startswith(b"PROXY TCP4 203.0.113.9 10.0.0.1 4444 443"),
           "PROXY header at the passthrough upstream: %r" % b.first)


@test()
def test_https_upstream_config_errors(ctx):
    cases = [
        ({"s": svc("https://localhost:1", tls_ca=os.path.join(ctx.dir, "nope.pem"))},
         "tls_ca: cannot load CA certificates from"),
        ({"s": svc("http://localhost:1", tls_ca="/etc/ssl/certs/ca-certificates.crt")},
         "tls_ca applies to https:// upstreams"),
        ({"s": svc("https://localhost:1", tls_ca="/x", tls_insecure_skip_verify=True)},
         "contradict"),
        ({"s": svc("https://localhost:1/path")}, "has a path"),
        ({"s": svc("ftp://localhost:1")}, "https://host:port"),
    ]
    for services, want in cases:
        q = ctx.portico(services, start=False)
        q.write_config(q.cfg)
        rc, out, err = run_check(ctx.binary, q.path)
        expect(rc != 0 and want in out + err, "check of %r: %s" % (services, out + err))
        expect(re.search(r"\.yaml:\d+: ", out + err), "file and line in %r" % (out + err))


# ============================================================== forward auth

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from authelia_emu import Authelia  # noqa: E402

APP = "app.example.com"
ALICE = {"Cookie": "authelia_session=alice-session"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _auth_portico(ctx, style="forward-auth", path=None, svc_extra=None, provider_extra=None,
                  authelia=None, **kw):
    a = authelia or Authelia()
    ctx.notes_cleanup = getattr(ctx, "notes_cleanup", [])
    o = ctx.origin("app")
    path = path or ("/api/authz/" + style)
    p = ctx.portico({"app": svc(o, [APP], auth="authelia", **(svc_extra or {}))}, start=False,
                    **kw)
    prov = {"url": a.url + path, "style": style, "timeout": "2s"}
    prov.update(provider_extra or {})
    p.cfg["auth"] = {"authelia": prov}
    p.cfg["listen"][0]["scheme"] = "https"   # as behind tailscaled serve
    p.write_config(p.cfg)
    p.start()
    return a, o, p


def _hdr_values(r, name):
    return [v for k, v in r.headers if k.lower() == name.lower()]


@test()
def test_auth_session_allows_with_copied_headers_and_subrequest_shape(ctx):
    a, o, p = _auth_portico(ctx)
    hs = dict(ALICE, **BROWSER)
    hs.update({"X-Forwarded-Host": "evil.example.com", "X-Forwarded-For": "169.254.1.2",
               "X-Original-URL": "https://x/", "Forwarded": "for=1.2.3.4", "X-Real-IP": "9.9.9.9",
               "User-Agent": "test-agent", "Content-Type": "text/plain"})
    r = request(p.port, "POST", "/some/path?q=1&r=%20", host=APP + ":8443", headers=hs,
                body=b"hello body")
    eq(r.status, 200, "status (%r)" % r.body[:200])
    d = r.json()
    eq(hdrs(d, "remote-user"), ["alice"], "Remote-User")
    eq(hdrs(d, "remote-groups"), ["admins,dev"], "Remote-Groups")
    eq(hdrs(d, "remote-name"), ["Alice Liddell"], "Remote-Name")
    eq(hdrs(d, "remote-email"), ["alice@example.com"], "Remote-Email")
    eq(d["body_len"], 10, "body reached the upstream")
    method, target, headers, body = a.last()
    eq((method, target, body), ("GET", "/api/authz/forward-auth", b""), "subrequest line and body")
    got = {}
    for k, v in headers:
        got.setdefault(k.lower(), []).append(v)
    eq(got.get("x-forwarded-method"), ["POST"], "X-Forwarded-Method")
    eq(got.get("x-forwarded-proto"), ["https"], "X-Forwarded-Proto")
    eq(got.get("x-forwarded-host"), [APP + ":8443"], "X-Forwarded-Host")
    eq(got.get("x-forwarded-uri"), ["/some/path?q=1&r=%20"], "X-Forwarded-Uri")
    eq(got.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For (the real client only)")
    eq(got.get("cookie"), ["authelia_session=alice-session"], "Cookie")
    eq(got.get("user-agent"), ["test-agent"], "User-Agent")
    for bad in ("content-length", "transfer-encoding", "expect", "x-original-url", "forwarded",
                "x-real-ip", "content-type"):
        expect(bad not in got, "%s sent to the provider: %r" % (bad, got.get(bad)))
    eq(got.get("host"), ["127.0.0.1:%d" % a.port], "Host toward the provider")
    line = p.wait_line(lambda l: "path=\"/some/path" in l, timeout=5 * SCALE)
    expect(line and "user=alice" in line, "access log: %r" % line)


@test()
def test_auth_not_logged_in_relays_redirect_cookies_and_body(ctx):
    a, o, p = _auth_portico(ctx)
    r = request(p.port, "GET", "/page?x=1", host=APP, headers=BROWSER)
    eq(r.status, 302, "browser without a session")
    loc = r.header("location")
    eq(loc, "https://auth.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fpage%3Fx%3D1&rm=GET",
       "Location exactly as the provider sent it")
    cookies = _hdr_values(r, "set-cookie")
    eq(len(cookies), 2, "Set-Cookie headers (%r)" % cookies)
    expect(cookies[0].startswith("authelia_session=fresh-"), "session cookie %r" % cookies[0])
    expect(b"302 Found" in r.body, "provider body %r" % r.body)
    r = request(p.port, "GET", "/api", host=APP, headers={"Accept": "application/json"})
    eq(r.status, 401, "API client")
    expect(r.header("location"), "Location on 401")
    r = request(p.port, "GET", "/x", host=APP, headers=dict(BROWSER, **{"X-Requested-With": "XMLHttpRequest"}))
    eq(r.status, 401, "XHR")
    r = request(p.port, "POST", "/form", host=APP, headers=BROWSER, body=b"a=b")
    eq(r.status, 303, "POST from a browser")
    r = request(p.port, "HEAD", "/x", host=APP, headers=BROWSER)
    eq((r.status, r.body), (302, b""), "HEAD: no body")
    eq(len(o.requests), 0, "requests that reached the upstream")


@test()
def test_auth_deny_basic_and_bad_basic(ctx):
    a, o, p = _auth_portico(ctx)
    r = request(p.port, "GET", "/admin/x", host=APP, headers=ALICE)
    eq((r.status, r.body), (403, b"403 Forbidden"), "deny rule")
    basic = "Basic " + base64.b64encode(b"carol:secret").decode()
    r = request(p.port, "GET", "/x?do=echo", host=APP, headers={"Authorization": basic})
    eq(r.status, 200, "valid Basic credentials")
    eq(hdrs(r.json(), "remote-user"), ["carol"], "Remote-User from Basic")
    bad = "Basic " + base64.b64encode(b"carol:wrong").decode()
    r = request(p.port, "GET", "/x", host=APP, headers={"Authorization": bad})
    eq(r.status, 401, "wrong password")
    eq(r.header("www-authenticate"), 'Basic realm="Authorization Required"', "WWW-Authenticate")
    eq(len(o.requests), 1, "requests that reached the upstream")
    # Plain http as seen by the provider is a 400 there: refused, as 403.
    q = ctx.portico({"app": svc(o, [APP], auth="authelia")}, start=False)
    q.cfg["auth"] = {"authelia": {"url": a.url + "/api/authz/forward-auth"}}
    q.write_config(q.cfg)
    q.start()
    r = request(q.port, "GET", "/x", host=APP, headers=ALICE)
    eq(r.status, 403, "provider 400 (http target)")
    eq(len(o.requests), 1, "requests that reached the upstream")


@test()
def test_auth_provider_body_and_cookies_never_pass_on_allow_and_legacy_verify(ctx):
    a, o, p = _auth_portico(ctx, path="/allowcookie")
    r = request(p.port, "GET", "/x?do=echo", host=APP)
    eq(r.status, 200, "allowed")
    eq(_hdr_values(r, "set-cookie"), [], "provider Set-Cookie on a 2xx")
    d = r.json()
    eq(hdrs(d, "remote-user"), ["dave"], "Remote-User")
    eq(hdrs(d, "set-cookie") + hdrs(d, "x-provider-extra"), [], "provider headers upstream")
    eq(d["body_len"], 0, "provider body upstream")
    b, o2, q = _auth_portico(ctx, path="/api/verify", authelia=Authelia())
    eq(request(q.port, "GET", "/x", host=APP, headers=ALICE).status, 200, "legacy, session")
    r = request(q.port, "GET", "/x", host=APP, headers=BROWSER)
    eq(r.status, 302, "legacy, no session")
    eq(len(o2.requests), 1, "requests upstream through /api/verify")


@test()
def test_auth_request_style(ctx):
    a, o, p = _auth_portico(ctx, style="auth-request")
    r = request(p.port, "GET", "/page", host=APP, headers={"Accept": "application/json"})
    eq(r.status, 302, "401 with Location becomes 302")
    expect(r.header("location").startswith("https://auth.example.com/?rd="), r.header("location"))
    _, _, headers, _ = a.last()
    names = {k.lower(): v for k, v in headers}
    eq(names.get("x-original-method"), "GET", "X-Original-Method")
    eq(names.get("x-original-url"), "https://app.example.com/page", "X-Original-URL")
    r = request(p.port, "GET", "/x?do=echo", host=APP, headers=ALICE)
    eq(hdrs(r.json(), "remote-user"), ["alice"], "allowed")
    r = request(p.port, "GET", "/admin", host=APP, headers=ALICE)
    eq(r.status, 403, "deny")
    bad = "Basic " + base64.b64encode(b"carol:wrong").decode()
    r = request(p.port, "GET", "/x", host=APP, headers={"Authorization": bad})
    eq((r.status, r.header("www-authenticate")), (401, 'Basic realm="Authorization Required"'),
       "401 without Location keeps WWW-Authenticate")
    # A provider that answers a bare 401: the configured portal with rd.
    b, o2, q = _auth_portico(ctx, style="auth-request", path="/status/401",
                             provider_extra={"portal": "https://login.example.com/"})
    r = request(q.port, "GET", "/a b?c=d".replace(" ", "%20"), host=APP)
    eq(r.status, 302, "bare 401 with a portal")
    eq(r.header("location"),
       "https://login.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fa%2520b%3Fc%3Dd",
       "portal Location")
    eq(len(o.requests) + len(o2.requests), 1, "requests that reached the upstreams")


@test(timeout=60)
def test_auth_provider_failures_fail_closed(ctx):
    a = Authelia()
    cases = [("/hang", 504), ("/reset", 502), ("/status/500", 502), ("/status/204", 200),
             ("/status/404", 502), ("/huge", 502)]
    reached = 0
    for path, want in cases:
        _, o, p = _auth_portico(ctx, path=path, authelia=a,
                                provider_extra={"timeout": "700ms"})
        r = request(p.port, "GET", "/x", host=APP, headers=ALICE, timeout=10 * SCALE)
        eq(r.status, want, "provider %s" % path)
        reached += len(o.requests)
        if want != 200:
            expect(p.wait_line("auth provider authelia", timeout=3 * SCALE),
                   "no log line for %s" % path)
    o = ctx.origin("app")
    refused = ctx.portico({"app": svc(o, [APP], auth="authelia")}, start=False)
    refused.cfg["auth"] = {"authelia": {"url": "http://127.0.0.1:%d/api/authz/forward-auth"
                                        % closed_port()}}
    refused.write_config(refused.cfg)
    refused.start()
    eq(request(refused.port, "GET", "/x", host=APP, headers=ALICE).status, 502, "refused")
    eq(reached + len(o.requests), 1, "requests that reached an upstream (only the 204 case)")


@test()
def test_auth_client_identity_headers_never_pass(ctx):
    a, o, p = _auth_portico(ctx, svc_extra={"auth_skip": ["/public", "/hooks/"]})
    forged = {"Remote-User": "admin", "Remote_User": "admin", "remote-groups": "admins",
              "Remote-Email": "x@y", "X-Forwarded-User": "admin"}
    r = request(p.port, "GET", "/x?do=echo", host=APP,
                headers=dict(forged, Cookie="authelia_session=bob-session"))
    d = r.json()
    eq(hdrs(d, "remote-user"), ["bob"], "Remote-User")
    eq(hdrs(d, "remote_user"), [], "Remote_User")
    eq(hdrs(d, "remote-groups"), ["users"], "Remote-Groups")
    eq(hdrs(d, "remote-email"), [], "empty Remote-Email from the provider is dropped")
    r = request(p.port, "GET", "/public/x?do=echo", host=APP, headers=forged)
    d = r.json()
    for n in ("remote-user", "remote_user", "remote-groups", "remote-email"):
        eq(hdrs(d, n), [], "%s on a skipped path" % n)
    # The provider's own bypass rule: 200 without Remote-*; forged ones still go.
    n0 = a.count()
    r = request(p.port, "GET", "/publicity?do=echo", host=APP, headers=forged)
    d = r.json()
    eq(a.count(), n0 + 1, "asked the provider")
    for n in ("remote-user", "remote_user", "remote-groups", "remote-email"):
        eq(hdrs(d, n), [], "%s after an anonymous bypass" % n)
    # No session at all: nothing reaches the upstream, forged headers or not.
    before = len(o.requests)
    eq(request(p.port, "GET", "/x", host=APP, headers=forged).status, 401, "no session")
    eq(len(o.requests), before, "requests upstream without a session")
    # Connection tokens cannot remove what portico sets.
    r = request(p.port, "GET", "/x?do=echo", host=APP,
                headers=dict(ALICE, Connection="Remote-User, X-Forwarded-For, X-Real-IP"))
    d = r.json()
    eq(hdrs(d, "remote-user"), ["alice"], "Remote-User despite Connection")
    eq(hdrs(d, "x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For despite Connection")


@test()
def test_auth_skip_is_matched_on_the_normalised_path(ctx):
    a, o, p = _auth_portico(ctx, svc_extra={"auth_skip": ["/health", "/hooks/"]})
    n0 = a.count()
    skipped = ["/health", "/health/deep", "/hooks/github", "//health", "/%68ealth", "/x/../health"]
    for path in skipped:
        eq(request(p.port, "GET", path, host=APP).status, 200, "skipped %s" % path)
    eq(a.count(), n0, "subrequests for skipped paths")
    asked = ["/healthz", "/health/../admin", "/health%2F..%2Fadmin", "/hooks", "/HEALTH",
             "/%2e%2e/health/../admin", "/health/%2e%2e/admin"]
    for path in asked:
        before = a.count()
        r = request(p.port, "GET", path, host=APP, headers={"Accept": "application/json"})
        if r.status == 400:   # not a valid path at all (".." above the root): nothing to ask
            eq(a.count(), before, "subrequest for the invalid %s" % path)
        else:
            eq((r.status in (401, 403), a.count()), (True, before + 1),
               "%s: refused after asking the provider (status %d)" % (path, r.status))
    eq(len([x for x in o.requests if "admin" in x.target]), 0, "admin requests upstream")


@test()
def test_auth_cache_on_and_off(ctx):
    a, o, p = _auth_portico(ctx, provider_extra={"cache": "5s"}, workers=1)
    for _ in range(20):
        eq(request(p.port, "GET", "/media/x?range=1", host=APP, headers=ALICE).status, 200, "cached")
    eq(a.count(), 1, "subrequests with the cache on")
    request(p.port, "GET", "/media/x?range=1", host=APP,
            headers={"Cookie": "authelia_session=bob-session"})
    request(p.port, "GET", "/media/y", host=APP, headers=ALICE)
    eq(a.count(), 3, "another cookie or URI is asked again")
    r = request(p.port, "GET", "/media/z", host=APP, headers={"Accept": "application/json"})
    request(p.port, "GET", "/media/z", host=APP, headers={"Accept": "application/json"})
    eq((r.status, a.count()), (401, 5), "denials are never cached")
    b, o2, q = _auth_portico(ctx, authelia=Authelia(), workers=1)
    for _ in range(20):
        request(q.port, "GET", "/media/x", host=APP, headers=ALICE)
    eq(b.count(), 20, "subrequests with the cache off")


@test()
def test_auth_keepalive_to_provider_and_metrics(ctx):
    a, o, p = _auth_portico(ctx, metrics=True)
    for i in range(30):
        request(p.port, "GET", "/k%d" % i, host=APP, headers=ALICE)
    request(p.port, "GET", "/k", host=APP, headers=BROWSER)
    request(p.port, "GET", "/admin", host=APP, headers=ALICE)
    expect(a.connections <= 2, "connections to the provider for 32 requests: %d" % a.connections)
    m = _scrape(p.metrics_port)
    key = lambda r: ("portico_auth_decisions_total",  # noqa: E731
                     (("provider", "authelia"), ("result", r), ("service", "app")))
    eq([m.get(key(r), 0) for r in ("allowed", "redirected", "denied", "error")], [30, 1, 1, 0],
       "decisions")
    eq(m.get(("portico_auth_duration_seconds_count",
              (("provider", "authelia"), ("service", "app"))), 0), 32, "latency samples")


@test(timeout=60)
def test_auth_https_provider_verified_with_tls_ca(ctx):
    ca = TestCA(ctx.dir)
    a = Authelia(tls=ca.leaf(["localhost"], tag="authelia", ips=["127.0.0.1"]))
    _, o, p = _auth_portico(ctx, authelia=a, provider_extra={"tls_ca": ca.crt})
    r = request(p.port, "GET", "/x?do=echo", host=APP, headers=ALICE)
    eq(hdrs(r.json(), "remote-user"), ["alice"], "allowed through an https provider")
    os.makedirs(os.path.join(ctx.dir, "other"))
    other = TestCA(os.path.join(ctx.dir, "other"))
    _, o2, q = _auth_portico(ctx, authelia=a, provider_extra={"tls_ca": other.crt})
    eq(request(q.port, "GET", "/x", host=APP, headers=ALICE).status, 502,
       "a provider certificate from another CA")
    eq(len(o2.requests), 0, "requests upstream")
    line = q.wait_line("auth provider authelia", timeout=3 * SCALE)
    expect(line and "certificate" in line, "log line %r" % line)


@test()
def test_auth_expect_continue_only_after_allow(ctx):
    a, o, p = _auth_portico(ctx)
    head = ("POST /up?do=sink HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n"
            "Expect: 100-continue\r\n" % APP).encode()
    with RawConn(p.port) as c:
        c.send(head + b"Accept: text/html\r\n\r\n")
        r = c.read_response(skip_100=False)
        eq(r.status, 303, "refused before any 100 Continue")
        expect(c.closed_within(5 * SCALE), "connection with an unsent body left open")
    with RawConn(p.port) as c:
        c.send(head + b"Cookie: authelia_session=alice-session\r\n\r\n")
        r = c.read_response(skip_100=False)
        eq(r.status, 100, "100 Continue once allowed")
        c.send(b"hello")
        r = c.read_response()
        eq(r.status, 200, "upload after 100")
    eq(len(o.requests), 1, "requests upstream")


@test()
def test_auth_websocket_authorised_before_101(ctx):
    a, o, p = _auth_portico(ctx)
    up = b"GET /?do=upgrade HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n" % APP.encode()
    with RawConn(p.port) as c:
        c.send(up + b"Accept: text/html\r\n\r\n")
        r = c.read_response()
        eq(r.status, 302, "upgrade without a session")
    with RawConn(p.port) as c:
        c.send(up + b"Cookie: authelia_session=alice-session\r\n\r\n")
        r = c.read_response()
        eq(r.status, 101, "upgrade with a session")
        c.send(b"ping")
        eq(c.exact(4), b"ping", "tunnel echo")
    eq(len(o.requests), 1, "upgrades that reached the upstream")


@test()
def test_auth_config_errors(ctx):
    o = ctx.origin("app")
    cases = [
        ({"authelia": {"url": "ftp://x/y"}}, {"auth": "authelia"}, "unsupported URL"),
        ({"authelia": {"url": "http://127.0.0.1:1/a", "style": "nginx"}}, {"auth": "authelia"},
         "expected forward-auth or auth-request"),
        ({"authelia": {"url": "http://127.0.0.1:1/a", "portal": "https://p/"}},
         {"auth": "authelia"}, "auth-request only"),
        ({"authelia": {"url": "http://127.0.0.1:1/a"}}, {"auth": "other"},
         "no auth provider named \"other\""),
        ({"authelia": {"url": "http://127.0.0.1:1/a"}},
         {"auth": "authelia", "auth_bypass_tailnet": True}, "tailnet identity"),
        ({"authelia": {"url": "http://127.0.0.1:1/a"}},
         {"auth": "authelia", "auth_skip": ["/a/../b"]}, "not a normalised path prefix"),
        ({"authelia": {"url": "http://127.0.0.1:1/a", "cache": "1h"}}, {"auth": "authelia"},
         "at most 5m"),
        ({"authelia": {"url": "http://127.0.0.1:1/a", "copy_headers": ["Bad Name"]}},
         {"auth": "authelia"}, "not a header name"),
    ]
    for providers, extra, want in cases:
        q = ctx.portico({"app": svc(o, [APP], **extra)}, start=False)
        q.cfg["auth"] = providers
        q.write_config(q.cfg)
        rc, out, err = run_check(ctx.binary, q.path)
        expect(rc != 0 and want in out + err, "check of %r %r: %s" % (providers, extra, out + err))
        expect(re.search(r"\.yaml:\d+: ", out + err), "file and line in %r" % (out + err))


def run_one(binary, name, fn, timeout):
    ctx = Ctx(binary, name)
    box = {}

    def body():
        try:
            fn(ctx)
        except AssertionError as e:
            box["err"] = str(e) or "assertion failed"
        except Exception as e:
            box["err"] = "%s: %s" % (type(e).__name__, e)
            box["tb"] = traceback.format_exc()
    t0 = time.time()
    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(timeout * SCALE)
    timed_out = th.is_alive()
    tail = ctx.stderr_tail()
    problems = ctx.cleanup()
    if timed_out:
        th.join(10)
    dt = time.time() - t0
    reason = None
    if timed_out:
        reason = "timed out after %.0fs" % (timeout * SCALE)
    elif "err" in box:
        reason = box["err"]
    if problems:
        reason = (reason + "; " if reason else "") + "teardown: " + "; ".join(problems)
    return reason, dt, ctx.notes, tail, box.get("tb")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--portico", required=True)
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true", help="print portico stderr tail and tracebacks on failure")
    a = ap.parse_args()
    binary = os.path.abspath(a.portico)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # atexit kills the porticos
    sel = [t for t in TESTS if not a.k or any(k in t[0] for k in a.k)]
    if a.list:
        for n, _, _ in sel:
            print(n)
        return 0
    if not os.access(binary, os.X_OK):
        print("FAIL e2e: portico binary %s not found or not executable" % binary)
        print("e2e: 0 passed, 1 failed")
        return 1
    print("e2e: %d tests against %s%s (big streams %.2f GiB)"
          % (len(sel), binary, " [ASan]" if ASAN else "", BIG / GiB), flush=True)
    passed, failed = 0, []
    t_all = time.time()
    for name, fn, timeout in sel:
        reason, dt, notes, tail, tb = run_one(binary, name, fn, timeout)
        if reason is None:
            passed += 1
            print("ok %s (%.2fs)" % (name, dt), flush=True)
        else:
            failed.append(name)
            print("FAIL %s: %s (%.2fs)" % (name, reason, dt), flush=True)
            if a.v or os.environ.get("E2E_VERBOSE"):
                if tb:
                    print("    " + tb.replace("\n", "\n    "))
                for l in tail:
                    print("    | " + l[:300])
        for n in notes:
            print("    %s" % n, flush=True)
    print("e2e: %.1fs total" % (time.time() - t_all))
    if failed:
        print("e2e failed: " + " ".join(failed))
    print("e2e: %d passed, %d failed" % (passed, len(failed)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
