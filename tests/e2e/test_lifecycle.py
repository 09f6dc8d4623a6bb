"""End-to-end tests: reload and lifecycle."""

from common import *  # noqa: F401,F403


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
    t, result = get_in_background(p.port, "/s?do=slow&delay=1.5", 10 * SCALE)
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
        expect(c.closed_within(5 * SCALE), "idle keep-alive connection not closed on SIGTERM")
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


def _open_idle(port, n, deadline):
    """Open up to n connections that send nothing (bounded by count and time)."""
    socks = []
    for _ in range(n):
        if time.time() > deadline:
            break
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2 * SCALE))
        except OSError:
            break
    return socks


def _alive(s):
    """False once portico has closed s (EOF or reset); s must have nothing to read."""
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


@test(timeout=90)
def test_max_connections_reclaims_idle_connections_for_new_clients(ctx):
    # 500 connections that never send a request against max_connections 200:
    # instead of pausing accepts (everyone locked out), portico drops the
    # oldest request-less connections, so a normal client is answered at
    # once, and exchanges in progress are never dropped. One worker: each
    # worker drops the oldest of its own connections, so with two, the
    # oldest of all may sit on a worker that accepts nothing more, and the
    # newest may be the only one its worker has when the normal request
    # lands there.
    o = ctx.origin("mc")
    p = ctx.portico({"v": svc(o)}, metrics=True, workers=1,
                    limits={"max_connections": 200, "max_connections_per_client": 0})
    busy = []
    for i in range(4):
        c = RawConn(p.port, timeout=15 * SCALE)
        c.send(b"GET /?do=slow&delay=3 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        busy.append(c)
    flood = _open_idle(p.port, 500, time.time() + 30 * SCALE)
    try:
        expect(len(flood) == 500, "opened only %d idle connections" % len(flood))
        t0 = time.time()
        r = request(p.port, "GET", "/normal", timeout=10 * SCALE)
        dt = time.time() - t0
        eq(r.status, 200, "status of a normal request with 500 idle connections open")
        expect(dt < 1.0 * SCALE, "normal request answered in %.2fs" % dt)
        for i, c in enumerate(busy):
            eq(c.read_response().status, 200, "in-flight request %d during the flood" % i)
        m = _scrape(p.metrics_port)
        reclaimed = m.get(("portico_connections_reclaimed_total", (("state", "waiting"),)), 0)
        expect(reclaimed >= 300, "portico_connections_reclaimed_total{state=waiting} = %r" % reclaimed)
        expect(m[("portico_connections_active", ())] <= 200, "active %r above max_connections"
               % m[("portico_connections_active", ())])
        expect(not _alive(flood[0]), "the oldest idle connection is still open")
        expect(_alive(flood[-1]), "the newest idle connection was closed")
    finally:
        for s in flood:
            s.close()
        for c in busy:
            c.close()


@test()
def test_max_connections_reclaims_keepalive_before_request_less(ctx):
    # One worker, so one set of queues. At the limit, an idle keep-alive
    # connection goes first even when it is the newest; then the oldest
    # connection that never sent a request.
    o = ctx.origin("mc")
    p = ctx.portico({"v": svc(o)}, workers=1,
                    limits={"max_connections": 6, "max_connections_per_client": 0})
    waiting = _open_idle(p.port, 3, time.time() + 10 * SCALE)
    time.sleep(0.2)
    ka = RawConn(p.port, timeout=5 * SCALE)
    ka.send(b"GET /ka HTTP/1.1\r\nHost: a.test\r\n\r\n")
    eq(ka.read_response().status, 200, "keep-alive request")
    waiting += _open_idle(p.port, 2, time.time() + 10 * SCALE)
    time.sleep(0.2)
    try:
        eq(len(waiting), 5, "connections opened")
        eq(request(p.port, "GET", "/new1", timeout=5 * SCALE).status, 200, "first new client")
        expect(ka.closed_within(2 * SCALE), "idle keep-alive connection kept at the limit")
        expect(all(_alive(s) for s in waiting), "a request-less connection was dropped first")
        waiting += _open_idle(p.port, 1, time.time() + 10 * SCALE)   # at the limit again
        time.sleep(0.2)
        eq(request(p.port, "GET", "/new2", timeout=5 * SCALE).status, 200, "second new client")
        time.sleep(0.2)
        expect(not _alive(waiting[0]), "the oldest request-less connection is still open")
        expect(all(_alive(s) for s in waiting[1:]), "a newer request-less connection was dropped")
    finally:
        ka.close()
        for s in waiting:
            s.close()


def _proxied_portico(ctx, o, **kw):
    """portico with its listener behind PROXY headers."""
    p = ctx.portico({"h": svc(o)}, start=False, **kw)
    p.cfg["listen"][0]["proxy_protocol"] = True
    p.write_config(p.cfg)
    p.start()
    return p


def _conn_as(p, src):
    """A connection whose PROXY header names src as the client."""
    c = RawConn(p.port, timeout=5 * SCALE)
    c.send(b"PROXY TCP4 %s 10.0.0.1 5555 80\r\n" % src.encode())
    return c


@test()
def test_max_connections_per_client_refuses_beyond_the_limit(ctx):
    o = ctx.origin("pc")
    p = _proxied_portico(ctx, o, metrics=True, limits={"max_connections_per_client": 5})
    held = []
    for i in range(5):
        c = _conn_as(p, "192.0.2.7")
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "status on connection %d" % i)
        held.append(c)
    extra = _conn_as(p, "192.0.2.7")
    expect(extra.closed_within(2 * SCALE), "a sixth connection from the same address was kept")
    extra.close()
    m = _scrape(p.metrics_port)
    eq(m.get(("portico_connections_refused_total", (("reason", "per_client_limit"),))), 1.0,
       "portico_connections_refused_total{reason=per_client_limit}")
    expect(p.wait_line("limits.max_connections_per_client", 2 * SCALE), "no log line for the refusal")
    held.pop().close()
    time.sleep(0.2)
    again = _conn_as(p, "192.0.2.7")
    again.send(b"GET /again HTTP/1.1\r\nHost: a.test\r\n\r\n")
    eq(again.read_response().status, 200, "a new connection once one closed")
    for c in held + [again]:
        c.close()


@test()
def test_max_connections_per_client_counts_the_proxy_header_address(ctx):
    # Behind a frontend that sends PROXY headers, every client has its own
    # quota even though all connections come from the frontend's address.
    o = ctx.origin("pp")
    p = _proxied_portico(ctx, o, limits={"max_connections_per_client": 2})
    held = [_conn_as(p, "203.0.113.1"), _conn_as(p, "203.0.113.1"), _conn_as(p, "203.0.113.2"),
            _conn_as(p, "203.0.113.2")]
    for c in held:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "a client within its limit")
    third = _conn_as(p, "203.0.113.1")
    expect(third.closed_within(2 * SCALE), "a third connection for 203.0.113.1 was kept")
    other = _conn_as(p, "203.0.113.3")
    other.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    eq(other.read_response().status, 200, "another client behind the same frontend")
    for c in held + [third, other]:
        c.close()


@test()
def test_max_connections_per_client_does_not_count_loopback_peers(ctx):
    # A frontend on this host (tailscale serve, a local reverse proxy,
    # hairpin clients) brings every user from 127.0.0.1: that address is
    # not one client, so it is not held to the per-client limit.
    o = ctx.origin("lo")
    p = ctx.portico({"v": svc(o)}, metrics=True, limits={"max_connections_per_client": 4})
    held = []
    for i in range(12):
        c = RawConn(p.port, timeout=5 * SCALE)
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "status on connection %d from 127.0.0.1" % i)
        held.append(c)
    for i, c in enumerate(held):
        c.send(b"GET /again HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "second request on connection %d" % i)
    m = _scrape(p.metrics_port)
    eq(m.get(("portico_connections_refused_total", (("reason", "per_client_limit"),)), 0.0), 0.0,
       "portico_connections_refused_total{reason=per_client_limit}")
    for c in held:
        c.close()


@test()
def test_max_connections_per_client_counts_a_loopback_proxy_header_address(ctx):
    # A PROXY header naming 127.0.0.1 speaks for one client on the
    # frontend's host, not for a frontend carrying many users: counted.
    o = ctx.origin("pl")
    p = _proxied_portico(ctx, o, limits={"max_connections_per_client": 2})
    held = [_conn_as(p, "127.0.0.1"), _conn_as(p, "127.0.0.1")]
    for c in held:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "a client within its limit")
    third = _conn_as(p, "127.0.0.1")
    expect(third.closed_within(2 * SCALE), "a third connection for 127.0.0.1 by PROXY header was kept")
    for c in held + [third]:
        c.close()


def _listening_sockets(pid):
    """The TCP sockets in LISTEN state that process pid holds (by inode)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:   # 0A: TCP_LISTEN
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


@test()
def test_port_zero_listeners_report_their_port_and_keep_it_on_reload(ctx):
    o = ctx.origin("zero")
    srv = TcpServer(lambda c: (c.sendall(b"tcp ok"), c.close()))
    services = {"web": svc(o), "fwd": {"tcp": {"listen": "127.0.0.1:0",
                                               "upstream": "127.0.0.1:%d" % srv.port}}}
    p = ctx.portico(services, metrics=True, workers=4, start=False)
    p.cfg["listen"].append({"addr": "127.0.0.1:0"})
    p.write_config(p.cfg)
    p.start()
    http_ports, fwd, mport = list(p.ports), p.tcp_ports["fwd"], p.metrics_port
    every = sorted(http_ports + [fwd, mport])
    eq(len(set(every)), 4, "distinct ports for 2 listen entries, a forwarder and metrics %r" % every)
    expect(0 not in every, "a port 0 reported: %r" % every)
    # Port 0 is resolved once: the 4 workers share one socket per listener.
    eq(_listening_sockets(p.proc.pid), every, "listening sockets of the process")
    for port in http_ports:
        eq(get_json(port, "/")["origin"], "zero", "answer on listen port %d" % port)
    s = socket.create_connection(("127.0.0.1", fwd), timeout=5 * SCALE)
    eq(_recv_all(s), b"tcp ok", "bytes through the forwarder")
    s.close()
    eq(request(mport, "GET", "/metrics", host="127.0.0.1").status, 200, "metrics")
    # A reload keeps each port-0 entry on its port, even with a forwarder
    # added in front of it; a new port-0 entry gets a new port.
    cfg = dict(p.cfg)
    cfg["services"] = {"early": {"tcp": {"listen": "127.0.0.1:0",
                                         "upstream": "127.0.0.1:%d" % srv.port}}}
    cfg["services"].update(services)
    cfg["listen"] = p.cfg["listen"] + [{"addr": "127.0.0.1:0"}]
    p.write_config(cfg)
    l = p.reload()
    expect("configuration reloaded" in l, "reload: %s" % l)
    eq((p.ports[:2], p.tcp_ports["fwd"], p.metrics_port), (http_ports, fwd, mport),
       "ports after the reload")
    added = [p.ports[2], p.tcp_ports["early"]]
    expect(not set(added) & set(every), "new entries took old ports: %r %r" % (added, every))
    eq(_listening_sockets(p.proc.pid), sorted(every + added), "listening sockets after reload")
    for port in p.ports:
        eq(get_json(port, "/")["origin"], "zero", "answer on listen port %d after reload" % port)
    # Writing the port it got in place of the 0 keeps the same socket.
    cfg["listen"] = [dict(cfg["listen"][0], addr="127.0.0.1:%d" % http_ports[0])] + cfg["listen"][1:]
    p.write_config(cfg)
    l = p.reload()
    expect("configuration reloaded" in l, "reload with the port written out: %s" % l)
    eq(p.ports[0], http_ports[0], "port of the entry written out")
    eq(_listening_sockets(p.proc.pid), sorted(every + added), "listening sockets after that reload")
    srv.close()


@test()
def test_sigterm_stops_accepting_new_connections(ctx):
    """While a request drains, a connection made after SIGTERM is never
    served: it is refused, or queued and closed unanswered at exit."""
    o = ctx.origin("drain")
    p = ctx.portico({"v": svc(o)}, limits={"shutdown_timeout": "20s"})
    t, result = get_in_background(p.port, "/s?do=slow&delay=2", 10 * SCALE)
    expect(o.wait_requests(1, 5 * SCALE), "request did not reach the upstream")
    n = p.nlines()
    p.term()
    expect(p.wait_line("draining", 3 * SCALE, start=n), "no 'draining' log line after SIGTERM")
    time.sleep(0.2)   # the workers drop their listeners
    got = b""
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5 * SCALE)
    except ConnectionRefusedError:
        s = None
    if s:
        try:
            s.sendall(b"GET /new HTTP/1.1\r\nHost: a.test\r\n\r\n")
            s.settimeout(10 * SCALE)
            got = _recv_all(s)   # until portico exits and the queued connection goes
        except OSError:
            pass
        s.close()
    eq(got, b"", "answer to a connection made after SIGTERM")
    t.join(10 * SCALE)
    expect("r" in result and result["r"].status == 200, "in-flight request: %r" % result)
    eq(o.seen_paths(), ["/s?do=slow&delay=2"], "requests that reached the upstream")
    eq(p.wait_exit(10 * SCALE), 0, "exit status")


@test()
def test_shutdown_timeout_forces_exit_with_request_in_flight(ctx):
    o = ctx.origin("stuck")
    p = ctx.portico({"v": svc(o, timeout="60s")},
                    limits={"shutdown_timeout": "1s", "send_timeout": "60s", "body_timeout": "60s"})
    c = RawConn(p.port, timeout=10 * SCALE)
    c.send(b"GET /s?do=silent HTTP/1.1\r\nHost: a.test\r\n\r\n")
    expect(o.wait_requests(1, 5 * SCALE), "request did not reach the upstream")
    n = p.nlines()
    t0 = time.time()
    p.term()
    rc = p.wait_exit(1 + 4 * SCALE)
    dt = time.time() - t0
    expect(rc is not None, "portico still running %.1fs after SIGTERM with shutdown_timeout 1s" % dt)
    eq(rc, 0, "exit status")
    expect(dt >= 0.8, "exited after %.2fs, before shutdown_timeout (1s)" % dt)
    expect(p.wait_line("shutdown_timeout reached", 1, start=n), "no 'shutdown_timeout reached' line")
    expect(c.closed_within(2 * SCALE), "client connection not closed at exit")
    c.close()


@test()
def test_reload_inflight_request_finishes_under_old_config(ctx):
    """A request in flight when its service is removed by a reload finishes
    with the old service: its upstream, its headers, its name in the log."""
    o = ctx.origin("old")
    o2 = ctx.origin("other")
    p = ctx.portico({"v": svc(o, headers={"X-Gen": "old"})})
    result = {}
    reloaded = threading.Event()

    def client():
        try:
            with RawConn(p.port, timeout=10 * SCALE) as c:
                c.send(b"POST /inflight HTTP/1.1\r\nHost: a.test\r\n"
                       b"Content-Length: 10\r\n\r\n01234")
                reloaded.wait(10 * SCALE)   # the reload happens in the middle of the body
                c.send(b"56789")
                result["r"] = c.read_response()
        except Exception as e:
            result["e"] = e
    n = p.nlines()
    t = threading.Thread(target=client)
    t.start()
    expect(o.wait_requests(1, 5 * SCALE), "the request head did not reach the upstream")
    cfg = dict(p.cfg)
    cfg["services"] = {"w": svc(o2, ["b.test"])}
    p.write_config(cfg)
    p.hup()
    expect(p.wait_line("configuration reloaded", 3 * SCALE, start=n), "reload not logged")
    eq(request(p.port, "GET", "/new").status, 404, "a.test after the reload removed it")
    reloaded.set()
    t.join(10 * SCALE)
    expect("r" in result, "in-flight request failed: %r" % result.get("e"))
    r = result["r"]
    eq(r.status, 200, "status of the in-flight request")
    d = r.json()
    eq((d["origin"], d["body_len"], hdrs(d, "x-gen")), ("old", 10, ["old"]),
       "(origin, body length, service header) of the in-flight request")
    line = p.wait_line(lambda l: 'path="/inflight' in l, 3 * SCALE, start=n)
    expect(line and logfmt_parse(line).get("service") == "v", "access-log line %r" % line)
    eq(len(o2.requests), 0, "requests at the new config's upstream")


def _refused(port, host="127.0.0.1"):
    s = socket.socket()
    s.settimeout(2 * SCALE)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def _target_at(host, port, path):
    """GET path from host:port (Connection: close); the target the origin saw."""
    s = socket.create_connection((host, port), timeout=5 * SCALE)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % path.encode())
        data = _recv_all(s)
    finally:
        s.close()
    eq(status_of(data), 200, "status from %s:%d (%r)" % (host, port, data[:100]))
    return json.loads(data.split(b"\r\n\r\n", 1)[1])["target"]


@test()
def test_reload_adds_removes_and_changes_listen_addresses(ctx):
    o = ctx.origin("ls")
    p = ctx.portico({"v": svc(o)})
    a = p.port

    def reload_with(addrs):
        cfg = dict(p.cfg)
        cfg["listen"] = [{"addr": x} for x in addrs]
        p.write_config(cfg)
        l = p.reload()
        expect("configuration reloaded" in l, "reload to %s: %s" % (addrs, l))
        eq(len(p.ports), len(addrs), "listening lines after the reload to %s" % addrs)
    # add 127.0.0.2, and keep a connection to a open across the reloads
    keep = http.client.HTTPConnection("127.0.0.1", a, timeout=5 * SCALE)
    get_json(a, "/a0", conn=keep)
    reload_with(["127.0.0.1:0", "127.0.0.2:0"])
    eq(p.ports[0], a, "port of the unchanged entry")
    b = p.ports[1]
    eq(_target_at("127.0.0.2", b, "/b1"), "/b1", "added listener 127.0.0.2")
    eq(_target_at("127.0.0.1", a, "/a1"), "/a1", "kept listener 127.0.0.1")
    # remove 127.0.0.1
    reload_with(["127.0.0.2:0"])
    eq(p.ports[0], b, "port of the unchanged entry")
    expect(_refused(a), "removed listener 127.0.0.1:%d still accepts connections" % a)
    eq(_target_at("127.0.0.2", b, "/b2"), "/b2", "listener 127.0.0.2 after the other was removed")
    eq(get_json(a, "/a2", conn=keep)["target"], "/a2",
       "a connection accepted on 127.0.0.1 before its listener was removed")
    keep.close()
    # change 127.0.0.2 to 127.0.0.3
    reload_with(["127.0.0.3:0"])
    c = p.ports[0]
    expect(_refused(b, "127.0.0.2"), "listener 127.0.0.2 still accepts after it was changed")
    eq(_target_at("127.0.0.3", c, "/c1"), "/c1", "listener 127.0.0.3")


@test()
def test_reload_changes_and_removes_tcp_forwarder_keeping_open_connections(ctx):
    def echo(tag):
        def handler(s):
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    s.sendall(tag + d)
            except OSError:
                pass
            s.close()
        return handler
    s1, s2 = TcpServer(echo(b"1:")), TcpServer(echo(b"2:"))
    o = ctx.origin("http")

    def fwd(up):
        return {"tcp": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:%d" % up}}
    p = ctx.portico({"web": svc(o), "fwd": fwd(s1.port)}, limits={"tunnel_timeout": "60s"})
    lport = p.tcp_ports["fwd"]

    def reload_with(services):
        cfg = dict(p.cfg)
        cfg["services"] = services
        p.write_config(cfg)
        l = p.reload()
        expect("configuration reloaded" in l, "reload: %s" % l)

    def say(s, what):
        s.sendall(what)
        want = len(what) + 2
        got = b""
        while len(got) < want:
            d = s.recv(want - len(got))
            if not d:
                break
            got += d
        return got
    old = socket.create_connection(("127.0.0.1", lport), timeout=5 * SCALE)
    eq(say(old, b"hi"), b"1:hi", "through the forwarder to upstream 1")
    reload_with({"web": svc(o), "fwd": fwd(s2.port)})
    eq(p.tcp_ports.get("fwd"), lport, "the forwarder's port after its upstream changed")
    new = socket.create_connection(("127.0.0.1", lport), timeout=5 * SCALE)
    eq(say(new, b"yo"), b"2:yo", "a new connection after the upstream changed")
    eq(say(old, b"still"), b"1:still", "the connection opened before the change")
    reload_with({"web": svc(o)})
    expect(_refused(lport), "removed forwarder's listen address still accepts")
    eq(say(old, b"old"), b"1:old", "first connection after the forwarder was removed")
    eq(say(new, b"new"), b"2:new", "second connection after the forwarder was removed")
    old.close()
    new.close()
    eq(request(p.port).status, 200, "HTTP still served")
    s1.close()
    s2.close()


@test()
def test_reload_keeps_worker_count_fixed_at_start(ctx):
    o1, o2 = ctx.origin("w1"), ctx.origin("w2")
    p = ctx.portico({"v": svc(o1)}, workers=2)

    def threads():
        return len(os.listdir("/proc/%d/task" % p.proc.pid))
    before = threads()
    cfg = dict(p.cfg)
    cfg["workers"] = 4
    cfg["services"] = {"v": svc(o2)}
    n = p.nlines()
    p.write_config(cfg)
    p.hup()
    expect(p.wait_line("configuration reloaded", 3 * SCALE, start=n), "reload not logged")
    expect(p.wait_line("workers changed from 2 to 4", 1, start=n),
           "no warning that the worker count applies on restart")
    expect(_wait_origin(p.port, "w2", 3 * SCALE), "the rest of the new configuration not applied")
    time.sleep(0.2)
    eq(threads(), before, "threads after a reload asking for 4 workers")


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@test(timeout=90)
def test_out_of_descriptors_pauses_accepts_with_one_warning(ctx):
    # An open-file limit far below limits.max_connections: start warns that
    # it is too low; when the descriptors run out, accepts pause and are
    # tried again every 100 ms without burning a core, each worker says so
    # once (not at every retry), and once connections close, new clients
    # are served again.
    o = ctx.origin("fd")
    p = ctx.portico({"v": svc(o)}, start=False, workers=2,
                    limits={"max_connections_per_client": 0})
    p.wrap = ["prlimit", "--nofile=128:128", "--"]
    p.start()
    expect(any("the open-file limit is 128" in l and "limits.max_connections 16384" in l
               for l in p.stderr()), "no start-up warning about the open-file limit: %s"
           % " | ".join(p.stderr()[-5:]))
    eq(request(p.port, "GET", "/before").status, 200, "a request before the flood")
    flood = _open_idle(p.port, 300, time.time() + 30 * SCALE)
    try:
        eq(len(flood), 300, "connections queued (the kernel completes them for the backlog)")
        out_of_fds = lambda l: "Too many open files" in l and "accepts paused" in l
        expect(p.wait_line(out_of_fds, timeout=10 * SCALE),
               "no warning about accepts running out of descriptors: %s"
               % " | ".join(p.stderr()[-5:]))
        c0 = _cpu_seconds(p.proc.pid)
        time.sleep(3)
        c1 = _cpu_seconds(p.proc.pid)
        n1 = sum(1 for l in p.stderr() if out_of_fds(l))
        expect(p.alive(), "portico died out of descriptors")
        expect(n1 <= 2, "%d warnings about accepts within 3 s (one per worker per 10 s expected)"
               % n1)
        # A loop retrying accept without pause would use a whole core.
        expect(c1 - c0 < 1.5, "portico used %.2f s of CPU in 3 s while out of descriptors"
               % (c1 - c0))
    finally:
        for s in flood:
            s.close()
    r = request(p.port, "GET", "/after", timeout=10 * SCALE)
    eq(r.status, 200, "a request once the flood closed")
