"""End-to-end tests: routing."""

from common import *  # noqa: F401,F403


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


@test()
def test_absolute_form_routed_by_authority_and_sent_in_origin_form(ctx):
    a = ctx.origin("a")
    b = ctx.origin("b")
    p = ctx.portico({"a": svc(a, ["a.test"]), "b": svc(b, ["b.test"])})
    cases = [
        (b"GET http://b.test/abs?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n", "b", "/abs?q=1", "b.test"),
        (b"GET http://b.test HTTP/1.1\r\nHost: b.test\r\n\r\n", "b", "/", "b.test"),
        (b"GET http://b.test?x=1 HTTP/1.1\r\nHost: b.test\r\n\r\n", "b", "/?x=1", "b.test"),
        (b"GET http://a.test:%d/p HTTP/1.1\r\nHost: b.test\r\n\r\n" % p.port, "a", "/p",
         "a.test:%d" % p.port),
    ]
    with RawConn(p.port, timeout=5 * SCALE) as c:
        for data, origin, target, host in cases:
            c.send(data)
            r = c.read_response()
            eq(r.status, 200, "status for %r" % data[:40])
            d = r.json()
            eq((d["origin"], d["target"], hdrs(d, "host")), (origin, target, [host]),
               "(origin, target, Host) upstream for %r" % data[:40])


@test()
def test_routes_match_the_normalised_path(ctx):
    main = ctx.origin("main")
    api = ctx.origin("api")
    admin = ctx.origin("admin")
    p = ctx.portico({"app": svc(main, ["a.test"], routes=[
        {"prefix": "/api/", "upstream": api.url},
        {"prefix": "/admin/", "upstream": admin.url, "strip_prefix": True},
    ])})
    cases = [
        ("/api/../x", "main", None),          # names /x, not the api route
        ("/api/./../x", "main", None),
        ("/%61pi/v1", "api", None),           # %61 is "a"
        ("/%61%70%69/v1", "api", None),
        ("/x/../api/v1", "api", None),
        ("/api/%2e%2e/admin/u", "admin", "/u"),   # an encoded dot-segment is one too
        ("/admin/./u?q=1", "admin", "/u?q=1"),
        ("/x/../admin/u", "admin", "/u"),
    ]
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    for path, want, target in cases:
        d = get_json(p.port, path, conn=conn)
        eq(d["origin"], want, "route for %s" % path)
        if target:
            eq(d["target"], target, "target after strip_prefix for %s" % path)
    conn.close()
