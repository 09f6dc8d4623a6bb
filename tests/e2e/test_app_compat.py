"""End-to-end tests: what real apps need from the proxy in front of them —
the Host they check, redirects to their own address, forwarding headers
they trust, secrets kept out of the log, and plain HTTP sent to https."""

import urllib.parse

from common import *  # noqa: F401,F403


def _access_lines(p, n0, path_prefix, count=1):
    """Wait for `count` access-log lines whose path starts with path_prefix."""
    end = time.time() + 3 * SCALE
    found = []
    while time.time() < end:
        found = [f for f in (logfmt_parse(l) for l in p.stderr()[n0:])
                 if f.get("path", "").startswith(path_prefix) and "status" in f]
        if len(found) >= count:
            break
        time.sleep(0.05)
    return found


@test()
def test_host_header_upstream_sends_the_apps_own_address(ctx):
    o = ctx.origin("jupyter")
    lit = ctx.origin("syncthing")
    p = ctx.portico({"nb": svc(o, ["nb.test"], host_header="upstream"),
                     "sync": svc(lit, ["sync.test"], host_header="localhost:8384"),
                     "plain": svc(o, ["plain.test"])})
    d = get_json(p.port, "/tree?x=1", host="NB.test:8080")
    eq(hdrs(d, "host"), ["127.0.0.1:%d" % o.port], "Host the app sees")
    eq(hdrs(d, "x-forwarded-host"), ["NB.test:8080"], "X-Forwarded-Host keeps the public name")
    d = get_json(p.port, "/", host="sync.test")
    eq(hdrs(d, "host"), ["localhost:8384"], "literal host_header")
    eq(hdrs(d, "x-forwarded-host"), ["sync.test"], "X-Forwarded-Host")
    d = get_json(p.port, "/", host="plain.test")
    eq(hdrs(d, "host"), ["plain.test"], "without host_header the client's Host goes upstream")


@test()
def test_host_header_sends_the_apps_own_origin_for_its_own_pages(ctx):
    # Jupyter (Tornado) refuses API calls and WebSockets whose Origin is not
    # its Host ("Blocking Cross Origin API request"): with host_header, a
    # request from the public page must carry the app's own origin too.
    o = ctx.origin("jupyter")
    p = ctx.portico({"nb": svc(o, ["nb.test"], host_header="upstream"),
                     "lit": svc(o, ["lit.test"], host_header="localhost:8888"),
                     "plain": svc(o, ["plain.test"])})
    own = "http://127.0.0.1:%d" % o.port
    d = get_json(p.port, "/api/sessions", host="nb.test:8080",
                 headers={"Origin": "http://nb.test:8080"})
    eq(hdrs(d, "origin"), [own], "Origin of the public page becomes the app's own")
    d = get_json(p.port, "/ws", host="nb.test:8080",
                 headers={"Origin": "http://NB.test:8080", "Upgrade": "websocket",
                          "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    eq(hdrs(d, "origin"), [own], "a WebSocket handshake from the public page")
    d = get_json(p.port, "/", host="lit.test", headers={"Origin": "http://lit.test"})
    eq(hdrs(d, "origin"), ["http://localhost:8888"], "literal host_header")
    # Cross-site and other origins stay as sent, so the app's check still works.
    for other in ("http://evil.test", "https://nb.test:8080", "http://nb.test:8081", "null"):
        d = get_json(p.port, "/", host="nb.test:8080", headers={"Origin": other})
        eq(hdrs(d, "origin"), [other], "Origin %s" % other)
    d = get_json(p.port, "/", host="plain.test", headers={"Origin": "http://plain.test"})
    eq(hdrs(d, "origin"), ["http://plain.test"], "without host_header Origin is untouched")


@test()
def test_redirects_to_the_upstream_address_rewritten_to_public_name(ctx):
    o = ctx.origin("app")
    api = ctx.origin("api")
    own = "http://127.0.0.1:%d" % o.port
    p = ctx.portico({
        "app": svc(o, ["app.test"], routes=[{"prefix": "/api/", "upstream": api.url,
                                             "strip_prefix": True}]),
        "keep": svc(o, ["keep.test"], rewrite_redirects=False),
        "nb": svc(o, ["nb.test"], host_header="localhost:8888"),
    })
    q = urllib.parse.quote
    r = request(p.port, "GET", "/?do=redirect&to=" + q(own + "/login?next=/x"), host="app.test:8080")
    eq(r.status, 302, "status")
    eq(r.header("location"), "http://app.test:8080/login?next=/x", "Location")
    eq(r.header("refresh"), "0; url=http://app.test:8080/login?next=/x", "Refresh")
    # A route with strip_prefix: the app's "/v1" is the public "/api/v1".
    api_own = "http://127.0.0.1:%d" % api.port
    r = request(p.port, "GET", "/api/?do=redirect&to=" + q(api_own + "/v1"), host="app.test")
    eq(r.header("location"), "http://app.test/api/v1", "Location through a stripped prefix")
    # Somewhere else, and relative redirects, are left alone.
    for to in ("https://login.example.org/x", "/relative", "http://127.0.0.1:1/x"):
        r = request(p.port, "GET", "/?do=redirect&to=" + q(to), host="app.test")
        eq(r.header("location"), to, "Location %s" % to)
    r = request(p.port, "GET", "/?do=redirect&to=" + q(own + "/x"), host="keep.test")
    eq(r.header("location"), own + "/x", "rewrite_redirects: false")
    # The name portico told the app (host_header) is rewritten too.
    r = request(p.port, "GET", "/?do=redirect&to=" + q("http://localhost:8888/tree"), host="nb.test")
    eq(r.header("location"), "http://nb.test/tree", "Location to the host_header name")


@test()
def test_client_forwarded_headers_replaced_with_what_portico_saw(ctx):
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o, ["app.test"], routes=[{"prefix": "/sub/", "upstream": o.url,
                                                         "strip_prefix": True}])})
    forged = {"Forwarded": "for=6.6.6.6;host=evil.test;proto=https", "X-Forwarded-Port": "6666",
              "X-Forwarded-Prefix": "/evil", "X_Forwarded_Port": "7777"}
    d = get_json(p.port, "/x", host="app.test:8080", headers=forged)
    eq(hdrs(d, "forwarded"), ['for=127.0.0.1;host="app.test:8080";proto=http'], "Forwarded")
    eq(hdrs(d, "x-forwarded-port"), ["8080"], "X-Forwarded-Port")
    eq(hdrs(d, "x-forwarded-prefix"), [], "no prefix outside a stripped route")
    eq(hdrs(d, "x_forwarded_port"), [], "underscore variant removed")
    d = get_json(p.port, "/sub/y", host="app.test", headers=forged)
    eq(d["target"], "/y", "stripped target")
    eq(hdrs(d, "x-forwarded-prefix"), ["/sub"], "X-Forwarded-Prefix")
    eq(hdrs(d, "x-forwarded-port"), ["80"], "default port for http")
    p.cfg["listen"][0]["scheme"] = "https"
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reload refused")
    d = get_json(p.port, "/x", host="app.test")
    eq(hdrs(d, "forwarded"), ['for=127.0.0.1;host="app.test";proto=https'], "Forwarded behind TLS")
    eq(hdrs(d, "x-forwarded-port"), ["443"], "default port for https")


@test()
def test_access_log_redacts_secrets_in_the_query(ctx):
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o)})
    n0 = p.nlines()
    get_json(p.port, "/tree?token=s3cr3t-jupyter&x=1&Password=hunter2&keyboard=ok")
    lines = _access_lines(p, n0, "/tree")
    eq(len(lines), 1, "access lines")
    eq(lines[0]["path"], "/tree?token=REDACTED&x=1&Password=REDACTED&keyboard=ok", "logged path")
    expect(not any("s3cr3t" in l or "hunter2" in l for l in p.stderr()), "a secret reached stderr")
    # The upstream still gets the query as sent.
    eq(get_json(p.port, "/t?token=abc")["target"], "/t?token=abc", "target upstream")

    p.cfg["access_log"] = {"query": "drop"}
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reload refused")
    n0 = p.nlines()
    get_json(p.port, "/dropped?sid=1")
    eq([f["path"] for f in _access_lines(p, n0, "/dropped")], ["/dropped"], "query: drop")

    p.cfg["access_log"] = {"redact_params": ["sid"]}
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reload refused")
    n0 = p.nlines()
    get_json(p.port, "/own?sid=1&token=visible")
    eq([f["path"] for f in _access_lines(p, n0, "/own")], ["/own?sid=REDACTED&token=visible"],
       "own redact_params list")


@test()
def test_redirect_https_listener_sends_known_names_to_https(ctx):
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o, ["app.test"])}, start=False)
    p.cfg["listen"][0]["redirect_https"] = True
    p.write_config(p.cfg)
    p.start()
    r = request(p.port, "GET", "/a/b?c=d", host="App.Test:8080")
    eq((r.status, r.header("location")), (301, "https://app.test/a/b?c=d"), "GET")
    r = request(p.port, "HEAD", "/h", host="app.test")
    eq((r.status, r.header("location")), (301, "https://app.test/h"), "HEAD")
    r = request(p.port, "POST", "/form", host="app.test", body=b"x=1")
    eq((r.status, r.header("location")), (308, "https://app.test/form"), "POST keeps its method")
    eq(request(p.port, "GET", "/", host="other.test").status, 404, "unknown host is not redirected")
    with RawConn(p.port) as c:
        c.send(b"GET http://app.test/abs?q=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.header("location")), (301, "https://app.test/abs?q=1"), "absolute-form")
        c.send(b"GET /again HTTP/1.1\r\nHost: app.test\r\n\r\n")
        eq(c.read_response().header("location"), "https://app.test/again", "keep-alive")
    eq(o.completed, 0, "a redirected request reached the upstream")

    p.cfg["listen"][0]["https_port"] = 8443
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reload refused")
    r = request(p.port, "GET", "/x", host="app.test")
    eq(r.header("location"), "https://app.test:8443/x", "https_port")
