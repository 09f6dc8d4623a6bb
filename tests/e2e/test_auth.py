"""End-to-end tests: forward auth."""

from common import *  # noqa: F401,F403

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from authelia_emu import AUTHELIA_VERSION, Authelia  # noqa: E402,F401
import urllib.parse  # noqa: E402

ALICE = {"Cookie": "authelia_session=alice-session"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _auth_portico(ctx, style="forward-auth", path=None, svc_extra=None, provider_extra=None,
                  authelia=None, hosts=None, listen_extra=(), origin_kw=None, **kw):
    a = authelia or Authelia()
    ctx.notes_cleanup = getattr(ctx, "notes_cleanup", [])
    o = ctx.origin("app", **(origin_kw or {}))
    path = path or ("/api/authz/" + style)
    p = ctx.portico({"app": svc(o, hosts or [APP], auth="authelia", **(svc_extra or {}))},
                    start=False, **kw)
    p.cfg["listen"] += list(listen_extra)
    # The default timeout (5s): Authelia answers a failed Basic login after 2s.
    prov = {"url": a.url + path, "style": style}
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
    # second_cookie: a test hook (Authelia sends one), so that relaying
    # every Set-Cookie is checked.
    a, o, p = _auth_portico(ctx, authelia=Authelia(second_cookie=True))
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
    # Accept is matched by media type: text/htmlx is not text/html.
    r = request(p.port, "GET", "/api", host=APP,
                headers={"Accept": "application/json, text/htmlx;q=0.9"})
    eq(r.status, 401, "Accept without text/html itself")
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
    eq(r.status, 401, "wrong password (answered after Authelia's 2s delay)")
    eq(r.header("www-authenticate"), 'Basic realm="Authorization Required"', "WWW-Authenticate")
    eq(len(o.requests), 1, "requests that reached the upstream")
    # On a bypass rule Authelia ignores bad credentials.
    r = request(p.port, "GET", "/public/x?do=echo", host=APP, headers={"Authorization": bad})
    eq(r.status, 200, "bad Basic credentials on a bypass rule")
    eq(hdrs(r.json(), "remote-user"), [], "Remote-User after an anonymous bypass")
    del o.requests[:]
    # Plain http as seen by the provider is a 400 there: refused, as 403.
    q = ctx.portico({"app": svc(o, [APP], auth="authelia")}, start=False)
    q.cfg["auth"] = {"authelia": {"url": a.url + "/api/authz/forward-auth"}}
    q.write_config(q.cfg)
    q.start()
    r = request(q.port, "GET", "/x", host=APP, headers=ALICE)
    eq(r.status, 403, "provider 400 (http target)")
    eq(len(o.requests), 0, "requests that reached the upstream")


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
    # Without rd the legacy endpoint knows no portal: a plain 401.
    r = request(q.port, "GET", "/x", host=APP, headers=BROWSER)
    eq((r.status, r.header("location"), r.body), (401, None, b"401 Unauthorized"),
       "legacy without rd, no session")
    # It reads Basic credentials from Proxy-Authorization.
    basic = "Basic " + base64.b64encode(b"carol:secret").decode()
    r = request(q.port, "GET", "/x?do=echo", host=APP,
                headers={"Proxy-Authorization": basic, "Accept-Language": "fr-CH, fr;q=0.9"})
    eq(r.status, 200, "legacy, Proxy-Authorization")
    eq(hdrs(r.json(), "remote-user"), ["carol"], "Remote-User from Proxy-Authorization")
    _, _, headers, _ = b.last()
    eq([v for k, v in headers if k.lower() == "accept-language"], ["fr-CH, fr;q=0.9"],
       "Accept-Language to the provider")
    eq(len(o2.requests), 2, "requests upstream through /api/verify")
    c, o3, v = _auth_portico(
        ctx, authelia=Authelia(),
        path="/api/verify?rd=" + urllib.parse.quote("https://auth.example.com/", safe=""))
    r = request(v.port, "GET", "/x", host=APP, headers=BROWSER)
    eq((r.status, r.header("location")),
       (302, "https://auth.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fx&rm=GET"),
       "legacy with rd, no session")
    eq(len(o3.requests), 0, "requests upstream through /api/verify?rd=")


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
                                        % ctx.dead_port()}}
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
    # Each path has one right answer: the provider is asked and says 401 (log in) or 403 (the
    # deny rule for /admin, which it matches on the decoded, cleaned path); or 400 unasked.
    asked = {"/healthz": 401, "/health/../admin": 403, "/health%2F..%2Fadmin": 403, "/hooks": 401,
             "/HEALTH": 401, "/%2e%2e/health/../admin": 400, "/health/%2e%2e/admin": 403}
    for path, want in asked.items():
        before = a.count()
        r = request(p.port, "GET", path, host=APP, headers={"Accept": "application/json"})
        eq((r.status, a.count()), (want, before + (want != 400)),
           "%s: (status, subrequests)" % path)
    eq(len([x for x in o.requests if "admin" in x.target]), 0, "admin requests upstream")


def _auth_skip_readings(ctx, reading, attacks, fine):
    a, o, p = _auth_portico(ctx, svc_extra={"auth_skip": ["/health/", "/public/"]},
                            origin_kw={"reading": reading})
    anon = {"Accept": "application/json"}
    for path in attacks:
        n_auth, n_up = a.count(), len(o.requests)
        r = request(p.port, "GET", path, host=APP, headers=anon)
        eq((r.status, a.count() - n_auth, len(o.requests) - n_up), (400, 0, 0),
           "%s to a %s origin: (status, subrequests, upstream requests)" % (path, reading))
    for path, resolved in fine:
        n_auth = a.count()
        r = request(p.port, "GET", path, host=APP, headers=anon)
        eq((r.status, a.count() - n_auth), (200, 0), "%s: (status, subrequests)" % path)
        eq(r.json()["resolved"], resolved, "%s as the %s origin reads it" % (path, reading))
    # the property: whatever reached the origin without auth, it read under a skip prefix
    for q in o.requests:
        expect(q.resolved.startswith(("/health/", "/public/")),
               "%s reached the origin unauthenticated and it served %s" % (q.target, q.resolved))


@test()
def test_auth_skip_holds_for_an_origin_that_decodes_first(ctx):
    _auth_skip_readings(ctx, "decode",
                        ["/health/..%2fsecret.txt", "/public/%2e%2e%2fadmin/",
                         "/health/%2F/../secret.txt", "/public/x/..%2F..%2F..%2Fadmin",
                         "/health/..%2F..%2Fhealth/../admin"],
                        [("/health/a%2Fb", "/health/a/b"), ("/public/x%2F..%2Fy", "/public/y"),
                         ("/public/%2e%2e%2fpublic/z", "/public/z")])


@test()
def test_auth_skip_holds_for_an_origin_that_splits_parameters(ctx):
    _auth_skip_readings(ctx, "params",
                        ["/health/..;/admin", "/health/;x/../admin", "/public/..;a=b/admin/",
                         "/health/..%3B/admin"],
                        [("/health/x;jsessionid=1", "/health/x"), ("/public/a;v=1/b", "/public/a/b")])


@test()
def test_auth_skip_holds_for_an_origin_that_reads_backslash_as_slash(ctx):
    _auth_skip_readings(ctx, "backslash",
                        ["/health/..%5csecret.txt", "/health/..\\secret.txt",
                         "/public/%2e%2e%5cadmin/"],
                        [("/health/a%5Cb", "/health/a/b"), ("/health/a\\b", "/health/a/b")])


@test()
def test_route_prefix_holds_for_an_origin_that_decodes_first(ctx):
    api = ctx.origin("api", reading="decode")
    a, o, p = _auth_portico(ctx, svc_extra={"routes": [{"prefix": "/api/", "upstream": api.url}]})
    for path in ("/api/..%2fsecret.txt", "/api/v1/..%2F..%2Fsecret/"):
        r = request(p.port, "GET", path, host=APP, headers=ALICE)
        eq(r.status, 400, "%s: the /api/ upstream would read it outside /api/" % path)
    r = request(p.port, "GET", "/api/v4/projects/group%2Fproject", host=APP, headers=ALICE)
    eq((r.status, r.json()["origin"], r.json()["resolved"]), (200, "api", "/api/v4/projects/group/project"),
       "an encoded slash that stays under the prefix")
    eq([q.target for q in api.requests], ["/api/v4/projects/group%2Fproject"], "targets at the /api/ upstream")


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
    up = b"GET /?do=upgrade HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" % APP.encode()
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
         {"auth_bypass_tailnet": True}, "auth_bypass_tailnet applies to a service with auth"),
        ({"authelia": {"url": "http://127.0.0.1:1/a"}},
         {"auth": "authelia", "auth_bypass_tailnet": "yes"}, "expected a boolean"),
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


@test()
def test_auth_check_warns_on_a_provider_timeout_under_3s(ctx):
    o = ctx.origin("app")
    for timeout, warned in (("2s", True), ("2999ms", True), ("3s", False), (None, False)):
        q = ctx.portico({"app": svc(o, [APP], auth="authelia")}, start=False)
        prov = {"url": "http://127.0.0.1:9/api/authz/forward-auth"}
        if timeout:
            prov["timeout"] = timeout
        q.cfg["auth"] = {"authelia": prov}
        q.write_config(q.cfg)
        rc, out, err = run_check(ctx.binary, q.path)
        eq(rc, 0, "check with timeout %s: %s" % (timeout, out + err))
        m = re.search(r"\.yaml:(\d+): warning: auth\.authelia\.timeout is under 3s", err)
        eq(bool(m), warned, "warning for timeout %s in %r" % (timeout, err))
        if m:
            line = q.config_text.split("\n")[int(m.group(1)) - 1]
            expect("timeout:" in line, "the warning names line %r" % line)
    # run starts with that configuration and logs the same warning.
    q.cfg["auth"]["authelia"]["timeout"] = "2s"
    q.write_config(q.cfg)
    q.start()
    line = q.wait_line("warning: auth.authelia.timeout is under 3s", timeout=3 * SCALE)
    expect(line and "level=warn" in line, "log line %r" % line)


@test()
def test_auth_mixed_case_host_is_lowercased_for_the_provider(ctx):
    # Authelia compares the cookie domain and domain_regex rules with the host
    # as sent; only a lower-cased X-Forwarded-Host keeps these rules in force.
    rules = [{"domain_regex": r"^app\.example\.com$", "resources": [r"^/secret"],
              "policy": "deny"}]
    a, o, p = _auth_portico(ctx, authelia=Authelia(rules=rules))
    r = request(p.port, "GET", "/x?do=echo", host="App.Example.COM", headers=ALICE)
    eq(r.status, 200, "mixed-case Host with a session")
    _, _, headers, _ = a.last()
    eq([v for k, v in headers if k.lower() == "x-forwarded-host"], [APP], "X-Forwarded-Host")
    r = request(p.port, "GET", "/secret", host="APP.example.com", headers=ALICE)
    eq(r.status, 403, "a deny rule for app.example.com, asked as APP.example.com")
    r = request(p.port, "GET", "/secret", host=APP + ":8443", headers=ALICE)
    eq(r.status, 403, "the same rule with a port")
    eq(len(o.requests), 1, "requests upstream")


@test()
def test_auth_provider_url_query_kept_as_sent(ctx):
    path = "/api/authz/forward-auth?authelia_url=" + urllib.parse.quote(
        "https://login.example.com/", safe="")
    a, o, p = _auth_portico(ctx, path=path)
    r = request(p.port, "GET", "/page", host=APP, headers=BROWSER)
    eq((r.status, r.header("location")),
       (302, "https://login.example.com/?rd=https%3A%2F%2Fapp.example.com%2Fpage&rm=GET"),
       "redirect to the authelia_url of the provider URL")
    eq(a.last()[1], path, "subrequest target")
    request(p.port, "GET", "/page?x=1&authelia_url=https://evil.test/", host=APP, headers=BROWSER)
    eq(a.last()[1], path, "subrequest target with a client query")
    # A portal outside the cookie domain is refused by Authelia (400): 403.
    foreign = "/api/authz/forward-auth?authelia_url=" + urllib.parse.quote("https://evil.test/", safe="")
    b, o2, q = _auth_portico(ctx, path=foreign, authelia=Authelia())
    r = request(q.port, "GET", "/page", host=APP, headers=ALICE)
    eq(r.status, 403, "an authelia_url outside the cookie domain")
    eq(len(o.requests) + len(o2.requests), 0, "requests upstream")


@test(timeout=60)
def test_auth_retry_on_a_pooled_connection_the_provider_closed(ctx):
    # The moment Authelia's idle timeout fires while portico's request is on
    # the wire: the pooled connection closes without an answer; portico asks
    # again on a new connection.
    a, o, p = _auth_portico(ctx, authelia=Authelia(idle_timeout=0.3, idle_race=True), workers=1)
    eq(request(p.port, "GET", "/x", host=APP, headers=ALICE).status, 200, "first request")
    time.sleep(0.6)
    r = request(p.port, "GET", "/x?do=echo", host=APP, headers=ALICE)
    eq(r.status, 200, "request whose pooled provider connection was closed")
    eq(hdrs(r.json(), "remote-user"), ["alice"], "Remote-User after the retry")
    eq((a.connections, a.idle_closed, a.count()), (2, 1, 3),
       "provider connections, connections closed idle, subrequests")
    # Authelia's own idle close (30s by default, short here): the pool drops
    # the closed connection before anything is sent on it.
    b, o2, q = _auth_portico(ctx, authelia=Authelia(idle_timeout=0.3), workers=1)
    eq(request(q.port, "GET", "/x", host=APP, headers=ALICE).status, 200, "first request")
    end = time.time() + 5 * SCALE
    while b.idle_closed == 0 and time.time() < end:
        time.sleep(0.05)
    eq(b.idle_closed, 1, "idle provider connection closed by the provider")
    time.sleep(0.2)
    eq(request(q.port, "GET", "/x", host=APP, headers=ALICE).status, 200, "after the idle close")
    eq((b.connections, b.count()), (2, 2), "provider connections, subrequests")
    expect(not [l for l in p.stderr() + q.stderr() if "auth provider" in l],
           "provider errors logged: %r" % [l for l in p.stderr() + q.stderr() if "auth provider" in l])


@test()
def test_auth_provider_body_limit_is_16k(ctx):
    a = Authelia()
    for framing in ("length", "chunked", "close"):
        for n, want in ((16384, 403), (16385, 502)):
            _, o, p = _auth_portico(ctx, authelia=a, path="/body/403/%d/%s" % (n, framing))
            r = request(p.port, "GET", "/x", host=APP, headers=ALICE)
            eq(r.status, want, "a %d-byte provider body, %s" % (n, framing))
            if want == 403:
                eq(r.body, b"b" * n, "the provider's body relayed")
            else:
                line = p.wait_line("auth provider authelia", timeout=3 * SCALE)
                expect(line and "too large" in line, "log line %r" % line)
            eq(len(o.requests), 0, "requests upstream")


@test()
def test_auth_provider_answer_that_does_not_parse_is_502(ctx):
    a = Authelia()
    for kind in ("status", "noversion", "header", "length", "chunk"):
        _, o, p = _auth_portico(ctx, authelia=a, path="/garbage/" + kind)
        r = request(p.port, "GET", "/x?do=echo", host=APP, headers=ALICE)
        eq(r.status, 502, "provider answer %s" % kind)
        eq(len(o.requests), 0, "requests upstream after %s" % kind)
        expect(p.wait_line("auth provider authelia", timeout=3 * SCALE), "no log line for %s" % kind)


@test()
def test_auth_copy_headers_custom_list_first_value_and_size(ctx):
    a, o, p = _auth_portico(ctx, path="/allowcustom", provider_extra={
        "copy_headers": ["X-Team", "X-Big", "X-Fits", "Remote-User", "X-Absent"]})
    r = request(p.port, "GET", "/x?do=echo", host=APP,
                headers={"X-Team": "green", "X_Big": "forged", "X-Absent": "forged"})
    eq(r.status, 200, "allowed")
    d = r.json()
    eq(hdrs(d, "x-team"), ["blue"], "X-Team: the first of the provider's values")
    eq(hdrs(d, "x-big") + hdrs(d, "x_big"), [], "a 4096-byte value is dropped")
    eq(hdrs(d, "x-fits"), ["f" * 4095], "a 4095-byte value is copied")
    eq(hdrs(d, "remote-user"), ["erin"], "Remote-User")
    eq(hdrs(d, "x-absent"), [], "a name the provider did not send (client copy removed)")
    eq(hdrs(d, "x-not-copied") + hdrs(d, "remote-groups"), [], "names not in copy_headers")


@test()
def test_auth_forwarded_for_after_a_proxy_header(ctx):
    # Authelia's network rules see the leftmost X-Forwarded-For.
    rules = [{"networks": ["203.0.113.0/24"], "policy": "deny"}]
    a = Authelia(rules=rules)
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o, [APP], auth="authelia")}, start=False)
    p.cfg["auth"] = {"authelia": {"url": a.url + "/api/authz/forward-auth"}}
    p.cfg["listen"][0].update({"scheme": "https", "proxy_protocol": True})
    p.write_config(p.cfg)
    p.start()
    req = ("GET /x?do=echo HTTP/1.1\r\nHost: %s\r\nCookie: authelia_session=alice-session\r\n"
           "X-Forwarded-For: 198.51.100.1\r\n\r\n" % APP).encode()
    with RawConn(p.port) as c:
        c.send(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 443\r\n" + req)
        eq(c.read_response().status, 403, "client 203.0.113.7 (a denied network)")
    _, _, headers, _ = a.last()
    eq([v for k, v in headers if k.lower() == "x-forwarded-for"], ["203.0.113.7"],
       "X-Forwarded-For to the provider")
    with RawConn(p.port) as c:
        c.send(b"PROXY TCP4 198.51.100.9 10.0.0.1 5555 443\r\n" + req)
        r = c.read_response()
        eq(r.status, 200, "client 198.51.100.9")
    _, _, headers, _ = a.last()
    eq([v for k, v in headers if k.lower() == "x-forwarded-for"], ["198.51.100.9"],
       "X-Forwarded-For to the provider")
    eq(len(o.requests), 1, "requests upstream")


@test(timeout=60)
def test_auth_https_provider_verified_by_name_with_sni(ctx):
    ca = TestCA(ctx.dir)
    # The address a resolver gives portico first for "localhost".
    addr = socket.getaddrinfo("localhost", None, 0, socket.SOCK_STREAM)[0][4][0]
    a = Authelia(tls=ca.leaf(["localhost"], tag="authelia"), bind=addr)
    url = "https://localhost:%d/api/authz/forward-auth" % a.port
    _, o, p = _auth_portico(ctx, authelia=a, provider_extra={"url": url, "tls_ca": ca.crt})
    r = request(p.port, "GET", "/x?do=echo", host=APP, headers=ALICE)
    eq(hdrs(r.json(), "remote-user"), ["alice"], "allowed through https://localhost")
    eq(sorted(set(a.sni)), ["localhost"], "TLS server names the provider was asked for")
    b = Authelia(tls=ca.leaf(["auth.example.net"], tag="other"), bind=addr)
    url = "https://localhost:%d/api/authz/forward-auth" % b.port
    _, o2, q = _auth_portico(ctx, authelia=b, provider_extra={"url": url, "tls_ca": ca.crt})
    eq(request(q.port, "GET", "/x", host=APP, headers=ALICE).status, 502,
       "a certificate from the right CA for another name")
    eq(len(o2.requests), 0, "requests upstream")
    line = q.wait_line("auth provider authelia", timeout=3 * SCALE)
    expect(line and "hostname mismatch" in line, "log line %r" % line)


@test()
def test_auth_cache_keyed_by_every_input(ctx):
    a, o, p = _auth_portico(ctx, provider_extra={"cache": "30s"}, workers=1,
                            hosts=[APP, "two.example.com"], listen_extra=[{"addr": "127.0.0.1:0"}])
    plain = p.ports[1]   # the second listener: plain http, no scheme: https
    basic = "Basic " + base64.b64encode(b"carol:secret").decode()

    def ask(what, port=None, method="GET", path="/k", host=APP, headers=ALICE, src=None,
            want=200):
        n0 = a.count()
        for i in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", port or p.port, timeout=5,
                                              source_address=(src, 0) if src else None)
            r = request(port or p.port, method, path, host=host, headers=headers,
                        body=b"" if method == "POST" else None, conn=conn)
            conn.close()
            eq(r.status, want, "%s (request %d)" % (what, i + 1))
        eq(a.count() - n0, 1 if want == 200 else 2, "subrequests for %s (twice)" % what)

    ask("the first request")
    ask("another method", method="POST")
    ask("another URI", path="/k?v=2")
    ask("another host", host="two.example.com")
    ask("another port", host=APP + ":8443")
    ask("Authorization", headers=dict(ALICE, Authorization=basic))
    ask("another cookie", headers={"Cookie": "authelia_session=bob-session"})
    ask("another client address", src="127.0.0.2")
    # Plain http is a target Authelia refuses (400 -> 403), never served
    # from the decision cached for https.
    ask("another scheme", port=plain, want=403)
    eq(len(o.requests), 16, "requests upstream")


@test()
def test_auth_cache_emptied_on_reload(ctx):
    a, o, p = _auth_portico(ctx, provider_extra={"cache": "30s"}, workers=1,
                            svc_extra={"headers": {"X-Gen": "1"}})
    for _ in range(3):
        r = request(p.port, "GET", "/k?do=echo", host=APP, headers=ALICE)
        eq(hdrs(r.json(), "x-gen"), ["1"], "allowed, first configuration")
    eq(a.count(), 1, "subrequests with the cache on")
    p.cfg["services"]["app"]["headers"]["X-Gen"] = "2"
    p.write_config(p.cfg)
    expect("configuration reloaded" in p.reload(), "reload")
    end = time.time() + 5 * SCALE
    gen = None
    while gen != ["2"] and time.time() < end:
        gen = hdrs(request(p.port, "GET", "/k?do=echo", host=APP, headers=ALICE).json(), "x-gen")
        if gen != ["2"]:
            eq(a.count(), 1, "subrequests before the reload took effect")
    eq(gen, ["2"], "the reloaded configuration")
    eq(a.count(), 2, "subrequests once the reload took effect")
    eq(request(p.port, "GET", "/k?do=echo", host=APP, headers=ALICE).status, 200, "allowed")
    eq(a.count(), 2, "subrequests after the reload, cached again")
