"""End-to-end tests: HTTP/1.1 semantics."""

from common import *  # noqa: F401,F403


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
        expect(c.closed_within(5 * SCALE), "connection not closed after Connection: close")
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
        expect(c.closed_within(5 * SCALE), "HTTP/1.0 connection without keep-alive not closed")
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


@test()
def test_trailers_dropped_both_ways(ctx):
    """Trailers are accepted and dropped: the client's request trailers never
    reach the upstream, the upstream's response trailers never reach the
    client, and neither does the Trailer header that announces them."""
    o = ctx.origin("tr")
    p = ctx.portico({"v": svc(o)})
    body = gen_body(3000, seed=11)
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
               b"Trailer: X-Sum, X-Other\r\n\r\n"
               b"bb8\r\n" + body + b"\r\n0\r\nX-Sum: 1234\r\nX-Other: abc\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "upload status")
        d = r.json()
        eq((d["body_len"], d["body_sha256"]), (len(body), hashlib.sha256(body).hexdigest()),
           "body at the upstream")
        eq(d["trailers"], [], "request trailers that reached the upstream")
        eq(hdrs(d, "trailer"), [], "Trailer header at the upstream")
        eq(hdrs(d, "x-sum") + hdrs(d, "x-other"), [], "trailer fields moved into the head")
        c.send(b"GET /t?do=trailers&n=20000&chunk=3000 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "download status")
        eq(r.header("transfer-encoding"), "chunked", "re-framed as chunked")
        eq(r.body, gen_body(20000, seed=7), "body")
        eq(r.trailers, [], "response trailers that reached the client")
        eq(r.header("trailer"), None, "Trailer header at the client")
        eq(r.header("x-body-sha256"), None, "trailer field moved into the head")
        c.send(b"GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "next request on the connection")


def _unix_get(path, target="/"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5 * SCALE)
    s.connect(path)
    s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    got = _recv_all(s)
    s.close()
    return status_of(got)


@test()
def test_unix_listener_mode_and_group(ctx):
    import grp
    import stat
    o = ctx.origin("ux")
    p = ctx.portico({"v": svc(o)}, start=False)
    plain = os.path.join(ctx.dir, "plain.sock")
    shared = os.path.join(ctx.dir, "shared.sock")
    daemon_gid = grp.getgrnam("daemon").gr_gid
    p.cfg["listen"] += [{"addr": "unix:" + plain},
                        {"addr": "unix:" + shared, "mode": "0640", "group": "daemon"}]
    p.write_config(p.cfg)
    old_umask = os.umask(0)   # portico must not depend on the umask it inherits
    try:
        p.start()
    finally:
        os.umask(old_umask)
    st = os.stat(plain)
    eq((stat.S_ISSOCK(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_gid),
       (True, oct(0o660), os.getegid()), "default socket: mode and group")
    st = os.stat(shared)
    eq((oct(stat.S_IMODE(st.st_mode)), st.st_gid), (oct(0o640), daemon_gid),
       "socket with mode 0640 and group daemon")
    eq((_unix_get(plain), _unix_get(shared)), (200, 200), "requests over both sockets")
    # a reload that keeps the socket applies a changed mode to it
    p.cfg["listen"][2]["mode"] = "0600"
    n = p.nlines()
    p.write_config(p.cfg)
    p.hup()
    expect(p.wait_line("configuration reloaded", 5 * SCALE, start=n), "reload not applied: %s" % p.stderr()[n:])
    end = time.time() + 5 * SCALE
    while stat.S_IMODE(os.stat(shared).st_mode) != 0o600 and time.time() < end:
        time.sleep(0.05)
    st = os.stat(shared)
    eq((oct(stat.S_IMODE(st.st_mode)), st.st_gid), (oct(0o600), daemon_gid), "after reload")
    eq(_unix_get(shared), 200, "request over the kept socket")
