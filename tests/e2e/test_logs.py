"""End-to-end tests: access_log.format (text and json), the levels of
operational lines, and a quiet log while nothing happens."""

from common import *  # noqa: F401,F403

LEVELS = ("info", "warn", "error")
ACCESS_NUMBERS = ("status", "in", "out")


def _requests():
    """(name, raw request) pairs, each on its own connection: ordinary ones
    and hostile ones (quotes, backslashes, control and non-ASCII bytes in
    the target, a target longer than the log keeps)."""
    close = b"Connection: close\r\n\r\n"
    host = b"Host: a.test\r\n"
    return [
        ("plain", b"GET /plain?x=1 HTTP/1.1\r\n" + host + close),
        ("redacted", b"GET /r?token=secret&x=%22y%22 HTTP/1.1\r\n" + host + close),
        ("quotes", b'GET /q"uo\\te\\\\"?a="b\\" HTTP/1.1\r\n' + host + close),
        ("post", b"POST /post HTTP/1.1\r\n" + host + b"Content-Length: 1000\r\n" + close
         + b"z" * 1000),
        ("method", b"PURGE /purge HTTP/1.1\r\n" + host + close),
        ("long", b"GET /long" + b"a" * 3000 + b" HTTP/1.1\r\n" + host + close),
        # Around the bytes an exchange keeps in itself (128), and a short
        # target that redaction makes longer than them.
        ("edge128", b"GET /" + b"b" * 127 + b" HTTP/1.1\r\n" + host + close),
        ("edge129", b"GET /" + b"c" * 128 + b" HTTP/1.1\r\n" + host + close),
        ("grown", b"GET /g?" + b"token=a&" * 14 + b"x=1 HTTP/1.1\r\n" + host + close),
        ("nohost", b"GET /nowhere HTTP/1.1\r\nHost: nope.test\r\n" + close),
        ("control", b"GET /ctl\x01\x1b[31m HTTP/1.1\r\n" + host + close),
        ("utf8", b"GET /caf\xc3\xa9\xff\xe2\x82 HTTP/1.1\r\n" + host + close),
        ("garbage", b"\x16\x03\x01\x00\xff\"\\\x00\r\n\r\n"),
    ]


def _send_all(p):
    """Send each request, wait for its access line; returns {name: line}."""
    out = {}
    for name, raw in _requests():
        n0 = p.nlines()
        raw_exchange(p.port, raw, timeout=5 * SCALE)
        line = p.wait_line(lambda l: '"status":' in l or " status=" in l, 5 * SCALE, start=n0)
        expect(line, "no access line for %s; stderr tail %r" % (name, p.stderr()[-3:]))
        out[name] = line
    return out


def _text_value(v):
    """A logfmt value as the bytes it stands for (the parser gives \\xHH
    as chr(0xHH)), read as UTF-8 the way the JSON format writes it."""
    return v.encode("latin-1").decode("utf-8", "replace")


def _json_or_fail(line, what):
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise AssertionError("%s: not one JSON object (%s): %r" % (what, e, line))
    expect(isinstance(obj, dict), "%s: not an object: %r" % (what, line))
    return obj


def _set_format(p, fmt):
    cfg = dict(p.cfg)
    cfg["access_log"] = {"format": fmt} if fmt else True
    p.cfg = cfg
    p.write_config(cfg)


@test(timeout=90)
def test_access_log_json_matches_text_after_reload(ctx):
    """The same requests, ordinary and hostile, logged in text, then in JSON
    after a reload switched the format: every JSON line is one object with
    the text line's fields and values (numbers as numbers)."""
    o = ctx.origin("logs")
    p = ctx.portico({"logsvc": svc(o)}, start=False)
    _set_format(p, None)   # the old form: access_log: true
    p.start()
    text = _send_all(p)
    _set_format(p, "json")
    n_reload = p.nlines()
    line = p.reload()
    expect("configuration reloaded" in line, "reload: %r" % line)
    # The reload's own outcome and the listening lines before it are JSON:
    # the format applies from the moment the configuration does.
    obj = _json_or_fail(line, "reload line")
    eq((obj.get("level"), obj.get("msg", "").startswith("configuration reloaded")), ("info", True),
       "the reload line")
    expect(p.port, "the listening line of the reload was read")
    sighup = [l for l in p.stderr()[n_reload:] if "SIGHUP received" in l]
    expect(sighup and sighup[0].startswith("ts="), "SIGHUP line, still under the old configuration: "
           "%r" % sighup)
    n_json = p.nlines()
    js = _send_all(p)
    for name, _ in _requests():
        t = logfmt_parse(text[name])
        j = _json_or_fail(js[name], name)
        eq(sorted(j), sorted(t), "%s: the fields of the JSON line and of the text line" % name)
        for k in ACCESS_NUMBERS:
            expect(type(j[k]) is int, "%s: %s=%r is not a JSON integer" % (name, k, j[k]))
        expect(type(j["ms"]) in (int, float) and j["ms"] >= 0, "%s: ms=%r" % (name, j["ms"]))
        expect(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", j["ts"]), "%s: ts" % name)
        for k in t:
            # The origin's echo varies by a byte or two (its port numbers):
            # out is compared on portico's own answers only.
            if k in ("ts", "ms") or (k == "out" and t["service"] != "-"):
                continue
            want = str(t[k]) if k in ACCESS_NUMBERS else _text_value(t[k])
            got = str(j[k]) if k in ACCESS_NUMBERS else j[k]
            eq(got, want, "%s: %s in the JSON line vs the text line" % (name, k))
    # What the hostile requests show, in both formats.
    j = {name: json.loads(js[name]) for name in js}
    eq(j["plain"]["path"], "/plain?x=1", "plain path")
    eq(j["redacted"]["path"], "/r?token=REDACTED&x=%22y%22", "redacted")
    eq(j["quotes"]["path"], '/q"uo\\te\\\\"?a="b\\"', "quotes and backslashes kept as sent")
    eq((j["post"]["method"], j["post"]["status"]), ("POST", 200), "post")
    expect(j["post"]["in"] >= 1000, "post in=%r" % j["post"]["in"])
    eq(j["method"]["method"], "PURGE", "method")
    eq(len(j["long"]["path"]), 2048, "a long target is cut at 2048 bytes")
    eq(j["long"]["path"], "/long" + "a" * 2043, "the long target's first 2048 bytes")
    eq(j["edge128"]["path"], "/" + "b" * 127, "a 128-byte target")
    eq(j["edge129"]["path"], "/" + "c" * 128, "a 129-byte target")
    eq(j["grown"]["path"], "/g?" + "token=REDACTED&" * 14 + "x=1", "a target redaction lengthens")
    eq((j["nohost"]["service"], j["nohost"]["status"]), ("-", 404), "unknown host")
    eq(j["nohost"]["reason"], "not found: no service for this host", "reason")
    for name in ("control", "utf8", "garbage"):
        eq(j[name]["status"], 400, "%s: refused" % name)
    # Every line written since the switch, access or operational, is JSON.
    for l in p.stderr()[n_json:]:
        _json_or_fail(l, "a line after the switch")


@test(timeout=60)
def test_operational_lines_json_with_level_and_hostile_sni(ctx):
    """With format: json the operational lines are JSON objects with ts,
    level and msg (and their fields as strings); a TLS client's raw SNI
    bytes (quotes, backslashes, controls, invalid UTF-8) in the warning
    about its failed handshake still give one valid object, with invalid
    UTF-8 as U+FFFD."""
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    # With a default certificate the handshake goes on whatever the name,
    # so OpenSSL keeps it and the warning names it when the next record is
    # garbage.
    p = _tls_portico(ctx, [ca.leaf(["a.test"]), ca.leaf(["dflt.test"])], {"a": svc(o)},
                     default="dflt.test", start=False, workers=1)
    p.cfg["access_log"] = {"format": "json"}
    p.write_config(p.cfg)
    p.start()
    start = p.stderr()
    expect(start, "start-up lines")
    for l in start:
        obj = _json_or_fail(l, "start-up line")
        expect(obj.get("level") in LEVELS and isinstance(obj.get("msg"), str) and "ts" in obj,
               "ts, level and msg: %r" % l)
    listening = [json.loads(l) for l in start if '"msg":"listening"' in l]
    expect(listening and listening[0]["listener"] == "http" and listening[0]["tls"] == "true",
           "listening line fields: %r" % listening)
    # The SNI host name as a client sends it: OpenSSL refuses only a NUL in it.
    name = "n" * 40 + ".test"
    hostile = b'q"\\\x01\x1b[2J\xff\xc3(\xe2\x82\xc2\x9b' + b"z" * 10 + b".test"
    hostile += b"y" * (len(name) - len(hostile))
    hello = client_hello(name)
    expect(hello.count(name.encode()) == 1, "the SNI appears once in the hello")
    hello = hello.replace(name.encode(), hostile)
    n0 = p.nlines()
    with socket.create_connection(("127.0.0.1", p.port), timeout=5 * SCALE) as s:
        s.sendall(hello)
        s.sendall(b"\x17\x03\x03\x00\x05hello")   # application data before the handshake ends
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
    line = p.wait_line("TLS handshake with", timeout=5 * SCALE, start=n0)
    expect(line, "the failed handshake is logged; stderr tail %r" % p.stderr()[-3:])
    obj = _json_or_fail(line, "the handshake warning")
    eq(obj["level"], "warn", "level of a failed handshake")
    want = hostile.decode("utf-8", "replace")
    expect(want in obj["msg"], "the SNI as sent, invalid UTF-8 replaced: %r not in %r"
           % (want, obj["msg"]))
    expect("\ufffd" in obj["msg"] and '"' in obj["msg"] and "\x1b" in obj["msg"],
           "controls and quotes survive the round trip: %r" % obj["msg"])
    raw = line.encode("utf-8")
    expect(b"\x1b" not in raw and b"\x01" not in raw and b"\xc2\x9b" not in raw,
           "no raw control byte on the line: %r" % raw)


@test()
def test_access_log_format_errors_name_file_and_line(ctx):
    o = ctx.origin("chk")
    path = os.path.join(ctx.dir, "bad.yaml")
    for body, line, want in [
        ("access_log:\n  enabled: true\n  format: xml\n", 3,
         'access_log.format: expected text or json, not "xml"'),
        ("access_log: json\n", 1,
         "access_log: expected a boolean (true or false); for the json format write "
         "access_log: {format: json}"),
        ("access_log: {formats: json}\n", 1, 'unknown key "formats" in access_log'),
    ]:
        with open(path, "w") as f:
            f.write(body + "listen: [{addr: 127.0.0.1:0}]\nservices:\n  a: {hosts: [a.test], "
                    "upstream: \"%s\"}\n" % o.url)
        rc, out, err = run_check(ctx.binary, path)
        eq(rc, 1, "check exit status for %r" % body)
        eq(err.strip(), "%s:%d: %s" % (path, line, want), "check message")
    with open(path, "w") as f:
        f.write("access_log: {format: json, query: drop}\nlisten: [{addr: 127.0.0.1:0}]\n"
                "services:\n  a: {hosts: [a.test], upstream: \"%s\"}\n" % o.url)
    rc, out, err = run_check(ctx.binary, path)
    eq((rc, out.strip()), (0, "ok: 1 service, 1 listener"), "a valid format: %s" % err)


@test(timeout=60)
def test_idle_portico_logs_nothing(ctx):
    """Started with HTTP and TCP services, a metrics listener, names that
    are re-resolved every second (one of them never resolves) and the
    tailnet off, portico writes nothing more once start-up is over."""
    o = ctx.origin("idle")
    p = ctx.portico({
        "web": svc("http://localhost:%d" % o.port, ["web.test"]),
        "lost": svc("http://portico-e2e-lost.invalid:80", ["lost.test"]),
        "db": {"tcp": {"listen": "127.0.0.1:0", "upstream": "localhost:%d" % o.port}},
    }, metrics=True, limits={"resolve_interval": "1s"})
    # Start-up is over once nothing has been written for 1.5 s (the name
    # that does not resolve is reported once, when its first lookup fails).
    end = time.time() + 15 * SCALE
    n, since = p.nlines(), time.time()
    while time.time() < end and time.time() - since < 1.5 * SCALE:
        time.sleep(0.1)
        if p.nlines() != n:
            n, since = p.nlines(), time.time()
    expect(any("portico-e2e-lost.invalid" in l for l in p.stderr()),
           "the name that does not resolve is reported once: %r" % p.stderr()[-4:])
    before = p.nlines()
    time.sleep(4)   # four re-resolution rounds
    eq(p.stderr()[before:], [], "lines written by an idle portico")
    eq(get_json(p.port, "/still", host="web.test")["target"], "/still", "it still serves")
