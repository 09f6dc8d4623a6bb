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
