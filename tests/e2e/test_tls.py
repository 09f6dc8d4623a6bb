"""End-to-end tests: TLS termination."""

from common import *  # noqa: F401,F403


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
    certs = ca.leaves([[n] for n in names])
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
def test_tls_certificate_errors_say_what_went_wrong(ctx):
    # The first OpenSSL error, the file, and what to do; never only OpenSSL's
    # summary ("system lib", "PEM lib").
    ca = TestCA(ctx.dir)
    crt, key = ca.leaf(["a.test"])
    junk = os.path.join(ctx.dir, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    enc = os.path.join(ctx.dir, "enc.key")
    subprocess.run(["openssl", "pkey", "-in", key, "-aes128", "-passout", "pass:x", "-out", enc],
                   check=True, timeout=30)
    missing = os.path.join(ctx.dir, "nope.key")
    cases = [
        ({"cert": crt, "key": missing}, [missing, "No such file or directory"]),
        ({"cert": key, "key": crt}, [key, "private key, not a certificate", "swapped"]),
        ({"cert": crt, "key": crt}, [crt, "certificate, not a private key"]),
        ({"cert": junk, "key": key}, [junk, "no certificate in it", "BEGIN CERTIFICATE"]),
        ({"cert": crt, "key": enc}, [enc, "passphrase"]),
        ({"cert": ctx.dir, "key": key}, ["is a directory"]),
        ({"cert": crt, "key": ca.leaf(["b.test"])[1]}, ["does not match"]),
    ]
    for spec, wants in cases:
        p = _tls_portico(ctx, [(spec["cert"], spec["key"])], {"a": svc("http://127.0.0.1:9")},
                         start=False)
        # stdin closed: an encrypted key must not prompt for a passphrase.
        r = subprocess.run([ctx.binary, "check", "-c", p.path], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20 * SCALE)
        out = r.stdout + r.stderr
        expect(r.returncode == 1, "exit status %d for %r: %r" % (r.returncode, spec, out))
        expect(out.startswith(p.path + ":"), "FILE:LINE first: %r" % out)
        for w in wants:
            expect(w in out, "%r not in %r" % (w, out))
        for bad in ("system lib", "PEM lib", "pass phrase"):
            expect(bad not in out, "%r in %r" % (bad, out))


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
    line = p.reload()
    expect("reload refused" in line and "cannot load certificate" in line,
           "SIGHUP with the broken file: %r" % line)
    eq(_tls_get(p.port, "a.test", ca.crt), (200, "first"), "after the refused reload")
    n = p.nlines()
    os.replace(k2, key)
    os.replace(c2, crt)
    expect(p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n),
           "replacement on disk not picked up")
    eq(_tls_get(p.port, "a.test", ca.crt), (200, "second"), "after the renewal")


def _cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reloads(p, start):
    return sum("configuration reloaded" in l for l in p.stderr()[start:])


@test(timeout=60)
def test_tls_reload_does_not_start_a_reload_loop(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)})
    n = p.nlines()
    p.hup()
    expect(p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n), "SIGHUP reload")
    # Removing a watch queues IN_IGNORED; that, or any event but a real
    # change to a certificate or key, must not reload (settle time is 0.5 s).
    time.sleep(2.5)
    eq(_reloads(p, n), 1, "reloads after one SIGHUP (%s)" % " | ".join(p.stderr()[n:][-4:]))
    # Another file in the certificates' directory is not a certificate.
    with open(os.path.join(ctx.dir, "notes.txt"), "w") as f:
        f.write("not a certificate\n")
    p.write_config(p.cfg)   # same directory: renamed into place, unchanged
    time.sleep(1.5)
    eq(_reloads(p, n), 1, "reloads after writing other files beside the certificates")
    # Idle means no CPU: at most a few clock ticks in 2 s, however loaded the machine.
    t0 = _cpu_seconds(p.proc.pid)
    time.sleep(2)
    used = _cpu_seconds(p.proc.pid) - t0
    expect(used <= 0.05 * SCALE, "idle portico used %.2f s of CPU in 2 s" % used)
    eq(_tls_get(p.port, "a.test", ca.crt)[0], 200, "still serving")


@test(timeout=60)
def test_tls_renewal_on_disk_reloads_exactly_once(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    crt, key = ca.leaf(["a.test"], tag="first")
    p = _tls_portico(ctx, [(crt, key)], {"a": svc(o)})
    c2, k2 = ca.leaf(["a.test"], tag="second")
    n = p.nlines()
    # A renewal writes the key, then the certificate: one burst, one reload.
    os.replace(k2, key)
    os.replace(c2, crt)
    expect(p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n),
           "renewal on disk not picked up")
    time.sleep(2.5)
    eq(_reloads(p, n), 1, "reloads for one renewal (%s)" % " | ".join(p.stderr()[n:][-4:]))
    line = p.wait_line("changed: reloading", start=n)
    expect(line and (os.path.basename(key) in line or os.path.basename(crt) in line),
           "the reload names the changed file: %r" % line)
    eq(_tls_get(p.port, "a.test", ca.crt), (200, "second"), "the renewed certificate")


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


@test(timeout=400, serial=True)
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
                  b"Upgrade: websocket\r\n\r\n")
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


@test(timeout=60)
def test_tls_failed_handshakes_logged_at_most_once_a_second(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    p = _tls_portico(ctx, [ca.leaf(["a.test"])], {"a": svc(o)}, workers=1)

    def fail_one():
        with socket.create_connection(("127.0.0.1", p.port), timeout=5 * SCALE) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")   # plain HTTP to TLS
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass

    def logged(start):
        return [l for l in p.stderr()[start:] if "TLS handshake with" in l]

    n = p.nlines()
    fail_one()
    line = p.wait_line("TLS handshake with", timeout=3 * SCALE, start=n)
    expect(line and "127.0.0.1" in line and "failed: http request" in line,
           "a failed handshake is logged with the client and why: %r" % line)
    # A burst: the worker logs at most one line per second of it.
    n = p.nlines()
    t0 = time.time()
    burst = 40
    for _ in range(burst):
        fail_one()
    took = time.time() - t0
    time.sleep(0.3)
    during = len(logged(n))
    expect(during <= int(took) + 1, "%d lines for %d failures in %.1fs" % (during, burst, took))
    # The next line after a quiet second says how many were not logged.
    time.sleep(1.1)
    fail_one()
    line = p.wait_line(lambda l: "more since the last one logged" in l, timeout=3 * SCALE, start=n)
    expect(line, "no count of the suppressed lines: %s" % logged(n))
    m = re.search(r"\((\d+) more since", line)
    eq(int(m.group(1)), burst - during, "failures not logged during the burst")
    eq(_tls_get(p.port, "a.test", ca.crt)[0], 200, "still serving")


def _tls_ask(port, sni, hosts, ca, verify=True):
    """Requests for hosts, in order, on one TLS connection with SNI sni (None: no SNI);
    returns [status, ...] and whether the connection was closed after them."""
    if sni and verify:
        cctx = _tls_client_ctx(ca)
    else:
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
    with cctx.wrap_socket(raw, server_hostname=sni) as s:
        c = RawConn(None, timeout=10 * SCALE, sock=s)
        statuses = []
        for h in hosts:
            c.send(b"GET /?do=echo HTTP/1.1\r\nHost: %s\r\n\r\n" % h.encode())
            statuses.append(c.read_response().status)
        closed = c.closed_within(1 * SCALE)
    return statuses, closed


@test(timeout=60)
def test_tls_host_outside_the_certificate_gets_421(ctx):
    ca = TestCA(ctx.dir)
    o = ctx.origin("tls")
    certs = [ca.leaf(["a.test"]), ca.leaf(["*.w.test"]), ca.leaf(["d.test"], tag="dflt")]
    p = _tls_portico(ctx, certs, {"a": svc(o, ["a.test"]), "b": svc(o, ["b.test"]),
                                  "w": svc(o, ["*.w.test", "w.test"]), "d": svc(o, ["d.test"])},
                     default="d.test", start=False)
    p.cfg["listen"].append({"addr": "127.0.0.1:0", "tls": True, "strict_sni_host": False})
    p.write_config(p.cfg)
    p.start()
    strict, lax = p.ports[0], p.ports[1]
    n0 = len(o.requests)
    eq(_tls_ask(strict, "a.test", ["b.test"], ca.crt), ([421], True),
       "SNI a.test, Host b.test: (statuses, closed)")
    eq(len(o.requests), n0, "misdirected requests that reached the upstream")
    eq(_tls_ask(strict, "a.test", ["a.test", "A.Test.:443", "b.test"], ca.crt), ([200, 200, 421], True),
       "SNI a.test: its own name (any case, port, trailing dot), then another one")
    eq(_tls_ask(strict, "x.w.test", ["y.w.test", "w.test"], ca.crt), ([200, 421], True),
       "SNI x.w.test: a name *.w.test covers, then its parent")
    eq(_tls_ask(strict, "x.w.test", ["a.y.w.test"], ca.crt), ([421], True),
       "*.w.test covers one label only")
    eq(_tls_ask(strict, "unknown.test", ["d.test", "a.test"], ca.crt, verify=False), ([200, 421], True),
       "unknown SNI (default certificate): its names only")
    eq(_tls_ask(strict, None, ["a.test", "b.test", "d.test"], ca.crt), ([200, 200, 200], False),
       "no SNI: the Host is not tied to the default certificate")
    eq(_tls_ask(lax, "a.test", ["b.test", "x.w.test"], ca.crt), ([200, 200], False),
       "strict_sni_host: false")
