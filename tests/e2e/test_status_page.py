"""End-to-end tests: the status page (GET / and GET /status.json on the
metrics listener), in the JSON and in a real browser."""

import datetime
import json

from common import *  # noqa: F401,F403

# A string that breaks HTML and JSON unless escaped; it goes into an
# upstream socket path and a certificate file's directory.
MARKUP = "a\"<i>x</i>&'b"


def _expired_cert(d, names):
    """A self-signed certificate for names that expired two days ago (made
    with python3-cryptography: the openssl command line cannot backdate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    os.makedirs(d, exist_ok=True)
    crt, kp = os.path.join(d, "expired.pem"), os.path.join(d, "expired.key")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return crt, kp


def _three_services(ctx):
    """web (a working origin), dead (connections refused) and odd (a Unix
    socket upstream that does not exist, its path full of markup), with a
    plain listener first, a TLS one serving an expired certificate and a
    valid one, and metrics on."""
    o = ctx.origin("st")
    odd_dir = os.path.join(ctx.dir, MARKUP)
    os.makedirs(odd_dir)
    ca = TestCA(ctx.dir)
    good = ca.leaf(["web.test"])
    expired = _expired_cert(os.path.join(ctx.dir, "certs" + MARKUP), ["old.test"])
    services = {
        "web": svc(o, ["web.test"]),
        "dead": svc("http://127.0.0.1:%d" % ctx.dead_port(), ["dead.test"]),
        "odd": svc("unix:" + os.path.join(odd_dir, "sock"), ["odd.test", "old.test"]),
    }
    p = ctx.portico(services, metrics=True, start=False)
    p.cfg["listen"].append({"addr": "127.0.0.1:0", "tls": True})
    p.cfg["tls"] = {"certs": [{"cert": good[0], "key": good[1]},
                              {"cert": expired[0], "key": expired[1]}]}
    p.write_config(p.cfg)
    p.start()
    return p, odd_dir, expired[0]


def _status(p):
    r = request(p.metrics_port, "GET", "/status.json", host="127.0.0.1", timeout=5 * SCALE)
    eq(r.status, 200, "status.json status")
    expect((r.header("content-type") or "").startswith("application/json"),
           "status.json content type: %r" % r.header("content-type"))
    return json.loads(r.body.decode("ascii"))  # escaped to ASCII: raw bytes would fail here


def _svc(doc, name):
    for s in doc["services"]:
        if s["name"] == name:
            return s
    raise AssertionError("service %s missing from %r" % (name, [s["name"] for s in doc["services"]]))


def _wait_status(p, cond, what, secs=5):
    end = time.time() + secs * SCALE
    while True:
        d = _status(p)
        if cond(d) or time.time() > end:
            break
        time.sleep(0.2)
    expect(cond(d), "%s: %s" % (what, json.dumps(d)[:1500]))
    return d


@test(timeout=60)
def test_status_json_fields_and_counts(ctx):
    p, odd_dir, expired_path = _three_services(ctx)
    d0 = _status(p)
    eq([s["name"] for s in d0["services"]], ["web", "dead", "odd"], "services in file order")
    web = _svc(d0, "web")
    eq(web["hosts"], ["web.test"], "web hosts")
    expect(web["upstreams"][0].startswith("http://127.0.0.1:"), "web upstream %r" % web["upstreams"])
    eq(web["last"], None, "no request yet")
    eq(web["requests"]["1m"], 0, "no request yet")
    eq(_svc(d0, "odd")["upstreams"], ["unix:" + os.path.join(odd_dir, "sock")], "markup upstream")
    eq(web["auth"], None, "no auth")
    for i in range(4):
        get_json(p.port, "/s%d" % i, host="web.test")
    eq(request(p.port, "GET", "/", host="dead.test").status, 502, "dead upstream")
    eq(request(p.port, "GET", "/", host="odd.test").status, 502, "missing socket")
    d1 = _wait_status(p, lambda d: _svc(d, "web")["requests"]["1m"] == 4
                      and _svc(d, "dead")["errors"]["1m"] == 1, "counts after requests")
    web = _svc(d1, "web")
    eq((web["requests"]["5m"], web["requests"]["total"], web["errors"]["1m"]), (4, 4, 0), "web counts")
    eq((web["last"]["status"], web["last"]["error"]), (200, None), "web last result")
    expect(web["last"]["latency_ms"] >= 0 and web["last"]["age_s"] <= 60, "web last %r" % web["last"])
    dead = _svc(d1, "dead")
    eq((dead["last"]["status"], dead["last"]["error"]), (502, "connect failed"), "dead last result")
    eq((dead["requests"]["1m"], dead["errors"]["connect_errors"]), (1, 1), "dead counts")
    certs = {tuple(c["names"]): c for c in d1["certificates"]}
    eq(sorted(certs), [("old.test",), ("web.test",)], "certificate names")
    old, fresh = certs[("old.test",)], certs[("web.test",)]
    eq((old["expired"], old["warning"], old["days_left"]), (True, True, -2), "expired certificate")
    eq(old["file"], expired_path, "markup in a certificate path")
    # TestCA leaves are valid for 2 days from now: closer to expiry than 7 days.
    eq((fresh["expired"], fresh["warning"]), (False, True), "fresh certificate")
    expect(fresh["days_left"] in (1, 2), "fresh certificate: %r days left" % fresh["days_left"])
    eq(d1["tailnet"], None, "no tailnet configured")


@test()
def test_status_json_escapes_markup(ctx):
    p, odd_dir, expired_path = _three_services(ctx)
    raw = request(p.metrics_port, "GET", "/status.json", host="127.0.0.1").body
    expect(json.dumps(MARKUP)[1:-1].encode() in raw, "the quote is not escaped: %r" % raw[:300])
    expect(json.loads(raw)["services"][2]["upstreams"][0].endswith(MARKUP + "/sock"),
           "the path did not survive the round trip")
    page = request(p.metrics_port, "GET", "/", host="127.0.0.1")
    eq(page.status, 200, "page status")
    expect((page.header("content-type") or "").startswith("text/html"), "page content type")
    body = page.body.decode()
    expect(MARKUP not in body and "odd.test" not in body and "web.test" not in body,
           "the page's HTML holds data (it must set it as text from the JSON)")
    expect('name="viewport"' in body, "no viewport meta")
    for ext in ("src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url("):
        expect(ext not in body, "the page loads an external asset: %s" % ext)


@test()
def test_status_json_counts_auth_decisions(ctx):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from authelia_emu import Authelia
    a = Authelia()
    ctx.cleanups.append(a.close)
    o = ctx.origin("app")
    p = ctx.portico({"app": svc(o, [APP], auth="authelia")}, metrics=True, start=False)
    p.cfg["auth"] = {"authelia": {"url": a.url + "/api/authz/forward-auth"}}
    p.cfg["listen"][0]["scheme"] = "https"
    p.write_config(p.cfg)
    p.start()
    eq(_svc(_status(p), "app")["auth"], {"provider": "authelia", "allowed": 0, "redirected": 0,
                                          "denied": 0, "error": 0}, "auth before requests")
    alice = {"Cookie": "authelia_session=alice-session"}
    eq(request(p.port, "GET", "/x", host=APP, headers=alice).status, 200, "allowed")
    eq(request(p.port, "GET", "/admin/x", host=APP, headers=alice).status, 403, "denied")
    _wait_status(p, lambda d: _svc(d, "app")["auth"]["allowed"] == 1
                 and _svc(d, "app")["auth"]["denied"] == 1, "auth decisions counted")


@test()
def test_status_page_off_without_metrics(ctx):
    o = ctx.origin("off")
    p = ctx.portico({"web": svc(o, ["web.test"])})
    eq(p.metrics_port, None, "a metrics listener without metrics.listen")
    r = request(p.port, "GET", "/status.json", host="web.test")
    expect(b'"services"' not in r.body, "the proxy listener answered with the status")
    r = request(p.port, "GET", "/status.json", host="127.0.0.1")
    expect(r.status == 404 and b'"services"' not in r.body, "unknown host got %d" % r.status)


@test()
def test_status_page_unknown_path_and_method(ctx):
    o = ctx.origin("np")
    p = ctx.portico({"web": svc(o, ["web.test"])}, metrics=True)
    eq(request(p.metrics_port, "GET", "/status", host="127.0.0.1").status, 404, "unknown path")
    eq(request(p.metrics_port, "POST", "/status.json", host="127.0.0.1", body=b"x").status, 405,
       "POST")
    eq(request(p.metrics_port, "GET", "/metrics", host="127.0.0.1").status, 200, "metrics")


# ------------------------------------------------------------------ browser

def _browser(ctx):
    """Headless Chromium from Debian through chromedriver. Missing or
    unable to start, it fails the test: a skipped browser test proves
    nothing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    home = os.path.join(ctx.dir, "browser")
    os.makedirs(home)
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--no-first-run", "--disable-sync",
              "--disable-background-networking", "--disable-component-update",
              "--disable-default-apps", "--disable-extensions", "--no-proxy-server",
              "--user-data-dir=" + os.path.join(home, "profile")):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service("/usr/bin/chromedriver", env=dict(os.environ, HOME=home),
                      log_path=os.path.join(home, "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=o)
    ctx.cleanups.append(drv.quit)
    drv.set_page_load_timeout(60 * SCALE)
    return drv


def _wait_for(drv, fn, what, secs=20):
    end = time.time() + secs * SCALE
    last = None
    while time.time() < end:
        try:
            last = drv.execute_script(fn)
            if last:
                return last
        except Exception as e:  # the page is still loading
            last = repr(e)
        time.sleep(0.3)
    raise AssertionError("%s (last: %r)" % (what, last))


ROWS = ("return Array.from(document.querySelectorAll('#services tr.svc')).map(function(r){"
        "var o={};r.querySelectorAll('td').forEach(function(td){"
        "o[td.getAttribute('data-label')]={text:td.innerText,cls:td.className};});return o;});")


def _row(rows, name):
    for r in rows:
        if r["Service"]["text"] == name:
            return r
    raise AssertionError("no row %s in %r" % (name, rows))


@test(timeout=180)
def test_status_page_in_browser(ctx):
    p, odd_dir, _ = _three_services(ctx)
    drv = _browser(ctx)
    drv.get("http://127.0.0.1:%d/" % p.metrics_port)
    rows = _wait_for(drv, ROWS.replace("return Array", "var x=Array") + "; return x.length==3&&x;",
                     "three service rows")
    eq([r["Service"]["text"] for r in rows], ["web", "dead", "odd"], "rows a person sees")
    eq(_row(rows, "web")["Requests 1 / 5 min"]["text"], "0 / 0", "web before requests")
    eq(_row(rows, "odd")["Upstream"]["text"], "unix:" + os.path.join(odd_dir, "sock"),
       "the markup path shows as text")
    eq(drv.execute_script("return document.querySelectorAll('#services i').length"), 0,
       "markup from the data became elements")
    warn = _wait_for(drv, "var w=document.querySelectorAll('.certwarn');"
                          "return Array.from(w).map(function(e){return e.innerText;}).join('|');",
                     "certificate warnings")
    expect("old.test" in warn and "EXPIRED 2 days ago" in warn, "expired warning: %r" % warn)
    drv.execute_script("window.__not_reloaded = 1;")
    for i in range(3):
        get_json(p.port, "/b%d" % i, host="web.test")
    eq(request(p.port, "GET", "/", host="dead.test").status, 502, "dead upstream")
    rows = _wait_for(drv, ROWS.replace("return Array", "var x=Array") +
                     "; var w=x.filter(function(r){return r.Service.text=='web';})[0];"
                     "return w['Requests 1 / 5 min'].text=='3 / 3'&&x;",
                     "the web count to change to 3 without a reload")
    eq(drv.execute_script("return window.__not_reloaded"), 1, "the page reloaded itself")
    dead = _row(rows, "dead")
    expect("502" in dead["Last result"]["text"] and "connect failed" in dead["Last result"]["text"],
           "dead last result: %r" % dead["Last result"]["text"])
    expect("bad" in dead["Last result"]["cls"].split(), "the failing upstream is not marked")
    expect("bad" in dead["Errors 1 / 5 min"]["cls"].split(), "dead errors are not marked")
    expect("ok" in _row(rows, "web")["Last result"]["cls"].split(), "web not shown as healthy")
    # One column on a phone: the table's cells stack.
    drv.set_window_size(400, 800)
    disp = _wait_for(drv, "var td=document.querySelector('#services tr.svc td');"
                          "return getComputedStyle(td).display=='block'&&'block';",
                     "cells stacked on a narrow screen")
    eq(disp, "block", "narrow layout")
    severe = [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    eq(severe, [], "browser console errors")
