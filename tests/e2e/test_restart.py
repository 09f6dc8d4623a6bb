"""End-to-end tests: draining on SIGTERM, restarts and upgrades without a
refused connection (SIGUSR2, systemd socket activation)."""

from common import *  # noqa: F401,F403


async def _ws_open(port, path="/ws?do=ws", host="a.test"):
    import websockets
    s = socket.create_connection(("127.0.0.1", port))
    return await websockets.connect("ws://%s%s" % (host, path), sock=s, open_timeout=5 * SCALE,
                                    close_timeout=2 * SCALE, max_size=None, compression=None)


def _drain_line(p, start=0):
    return p.wait_line('msg="drained in ', 5 * SCALE, start=start)


@test(timeout=90)
def test_sigterm_closes_websocket_at_once_and_finishes_slow_request(ctx):
    o = ctx.origin("o")
    # A drain held by the WebSocket would last the whole shutdown_timeout.
    p = ctx.portico({"v": svc(o)}, limits={"shutdown_timeout": "%ds" % int(30 * SCALE)})
    result = {}

    async def main():
        import websockets
        ws = await _ws_open(p.port)
        await ws.send("hi")
        eq(await asyncio.wait_for(ws.recv(), 5 * SCALE), "hi", "echo before SIGTERM")
        t, result["slow"] = get_in_background(p.port, "/s?do=slow&delay=2", 20 * SCALE)
        ok = await asyncio.to_thread(o.wait_requests, 2, 5 * SCALE)
        expect(ok, "the slow request did not reach the upstream")
        t0 = time.time()
        p.term()
        closed = None
        try:
            await asyncio.wait_for(ws.recv(), 10 * SCALE)
        except websockets.ConnectionClosed as e:
            closed = time.time() - t0
            result["ws_code"] = e.rcvd.code if e.rcvd else None
        except asyncio.TimeoutError:
            pass
        expect(closed is not None, "the WebSocket was still open %.0fs after SIGTERM" % (10 * SCALE))
        result["ws_closed"] = closed
        rc = await asyncio.to_thread(p.wait_exit, 15 * SCALE)
        result["exit"] = time.time() - t0
        result["rc"] = rc
        await asyncio.to_thread(t.join, 10 * SCALE)
    asyncio.run(main())
    expect(result["rc"] is not None, "portico still running %.0fs after SIGTERM with a WebSocket "
           "open (shutdown_timeout %ds)" % (15 * SCALE, 30 * SCALE))
    eq(result["rc"], 0, "exit status")
    slow = result["slow"]
    expect("r" in slow, "the in-flight slow request failed: %r" % slow.get("e"))
    eq(slow["r"].status, 200, "status of the slow request finished during the drain")
    eq(slow["r"].json()["target"], "/s?do=slow&delay=2", "its body")
    line = _drain_line(p)
    expect(line and "closed 1 upgraded tunnel," in line and "1 connection finished" in line
           and "0 cut" in line, "drain line: %r" % line)
    ws_log = p.wait_line(lambda l: "do=ws" in l and "status=101" in l, 2 * SCALE)
    expect(ws_log and "shutting down" in ws_log, "access line of the closed tunnel: %r" % ws_log)
    ctx.notes.append("WebSocket closed %.2fs after SIGTERM, exit after %.2fs (slow request 2s)"
                     % (result["ws_closed"], result["exit"]))


@test()
def test_sigterm_serves_first_request_of_a_just_accepted_connection(ctx):
    # A client that connected just before the drain began may be sending its
    # request right now: it is answered (with Connection: close), not cut.
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, limits={"shutdown_timeout": "%ds" % int(30 * SCALE)})
    with RawConn(p.port, timeout=10 * SCALE) as c:
        time.sleep(0.3)  # accepted by now; nothing sent yet
        p.term()
        time.sleep(0.3)  # the drain has begun
        c.send(b"GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status of the first request sent after the drain began")
        eq((r.header("connection") or "").lower(), "close", "Connection header")
    eq(p.wait_exit(15 * SCALE), 0, "exit status")


@test()
def test_sigterm_closes_quiet_tcp_stream_at_once(ctx):
    def handler(c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()
    srv = TcpServer(handler)
    p = ctx.portico({"fwd": {"tcp": {"listen": "127.0.0.1:0",
                                     "upstream": "127.0.0.1:%d" % srv.port}}},
                    limits={"shutdown_timeout": "%ds" % int(30 * SCALE)})
    s = socket.create_connection(("127.0.0.1", p.tcp_ports["fwd"]), timeout=10 * SCALE)
    s.sendall(b"hello")
    time.sleep(1.5)  # quiet for longer than the drain's 1 s
    t0 = time.time()
    p.term()
    try:
        got = s.recv(10)
    except OSError:
        got = b""
    eq(got, b"", "the quiet TCP stream closed on SIGTERM")
    rc = p.wait_exit(15 * SCALE)
    expect(rc is not None, "portico still running %.0fs after SIGTERM with a quiet TCP stream"
           % (15 * SCALE))
    eq(rc, 0, "exit status")
    line = _drain_line(p)
    expect(line and "1 quiet TCP stream at once" in line, "drain line: %r" % line)
    ctx.notes.append("exit %.2fs after SIGTERM" % (time.time() - t0))
    s.close()
    srv.close()


class Load:
    """Client threads sending GETs until stopped (bounded in count and time):
    one opens a new connection for every request, one keeps its connection
    alive. Counts refused connects and failed requests. A request on a reused
    keep-alive connection that the server closed before any response byte
    came back (idle connections close at drain start) is retried once on a
    new connection, as HTTP clients do for idempotent requests (RFC 9112
    9.3.1); those retries are counted apart."""

    def __init__(self, port, seconds, limit=20000):
        self.port = port
        self.deadline = time.time() + seconds
        self.limit = limit
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.refused = 0
        self.failed = []
        self.retried = 0
        self.threads = [threading.Thread(target=self._fresh), threading.Thread(target=self._keep)]
        [t.start() for t in self.threads]

    def _running(self):
        with self.lock:
            n = self.ok + self.refused + len(self.failed)
        return not self.stop_ev.is_set() and time.time() < self.deadline and n < self.limit

    def _done(self, r):
        with self.lock:
            if r.status == 200:
                self.ok += 1
            else:
                self.failed.append("status %d" % r.status)

    def _fresh(self):
        while self._running():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10 * SCALE)
            except ConnectionRefusedError:
                with self.lock:
                    self.refused += 1
                continue
            except OSError as e:
                with self.lock:
                    self.failed.append("connect: %r" % e)
                continue
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SCALE)
                c.sock = s
                c.request("GET", "/fresh", headers={"Host": "a.test", "Connection": "close"})
                r = c.getresponse()
                r.read()
                self._done(r)
            except Exception as e:
                with self.lock:
                    self.failed.append("fresh: %r" % e)
            finally:
                s.close()

    def _keep(self):
        c, used = None, 0
        while self._running():
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SCALE)
                    c.connect()
                    used = 0
                c.request("GET", "/keep", headers={"Host": "a.test"})
                r = c.getresponse()
                r.read()
                used += 1
                self._done(r)
                if r.will_close:
                    c.close()
                    c = None
            except ConnectionRefusedError:
                with self.lock:
                    self.refused += 1
                c = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                c.close()
                c = None
                if used == 0:
                    with self.lock:
                        self.failed.append("keep-alive, first request: %r" % e)
                else:
                    with self.lock:
                        self.retried += 1  # stale keep-alive connection: the loop retries
            except Exception as e:
                with self.lock:
                    self.failed.append("keep-alive: %r" % e)
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    def finish(self):
        self.stop_ev.set()
        [t.join(30 * SCALE) for t in self.threads]
        return self

    def summary(self):
        return ("%d requests served, %d refused connects, %d failed, %d stale keep-alive retries"
                % (self.ok, self.refused, len(self.failed), self.retried))

    def check(self, min_ok):
        expect(self.refused == 0, "%d refused connects (%s)" % (self.refused, self.summary()))
        expect(not self.failed, "%d failed requests: %s" % (len(self.failed), self.failed[:3]))
        expect(self.ok >= min_ok, "only %d requests completed" % self.ok)


@test(timeout=90)
def test_sigusr2_restart_under_load_refuses_nothing(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, metrics=True)
    old_pid, old_ports, old_metrics = p.proc.pid, list(p.ports), p.metrics_port
    load = Load(p.port, seconds=20 * SCALE)
    time.sleep(0.5)
    new_pid, new_ports, new_metrics = upgrade_portico(ctx, p)
    rc = p.wait_exit(15 * SCALE)
    time.sleep(0.5)  # and some load on the new process alone
    load.finish()
    expect(rc is not None, "the old process still runs %.0fs after the new one served" % (15 * SCALE))
    eq(rc, 0, "exit status of the old process")
    expect(new_pid != old_pid, "the new process has a new pid")
    eq(new_ports, old_ports, "listen ports of the new process")
    eq(new_metrics, old_metrics, "metrics port of the new process")
    expect(pid_alive(new_pid), "the new process died")
    load.check(min_ok=20)
    eq(get_json(p.port, "/after")["origin"], "o", "served by the new process")
    expect(any(k[0].startswith("portico_") for k in _scrape(new_metrics)),
           "metrics from the new process")
    expect(p.wait_line("serves on the same sockets: draining", 1), "old process's handover line")
    ctx.notes.append(load.summary())


@test(timeout=60)
def test_sigusr2_keeps_unix_socket_file(ctx):
    o = ctx.origin("o")
    path = os.path.join(ctx.dir, "p.sock")
    p = ctx.portico({"v": svc(o)}, start=False)
    p.cfg["listen"].append({"addr": "unix:" + path})
    p.write_config(p.cfg)
    p.start()

    def get_unix():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5 * SCALE)
        s.connect(path)
        s.sendall(b"GET /u HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = _recv_all(s)
        s.close()
        return data
    expect(get_unix().startswith(b"HTTP/1.1 200"), "served on the Unix socket")
    pid, ports, _ = upgrade_portico(ctx, p)
    eq(p.wait_exit(15 * SCALE), 0, "exit status of the old process")
    expect(os.path.exists(path), "the old process removed the socket file the new one listens on")
    expect(get_unix().startswith(b"HTTP/1.1 200"), "the new process serves on the Unix socket")
    eq(get_json(ports[0], "/tcp")["origin"], "o", "and on the TCP listener")


@test(timeout=60)
def test_sigusr2_broken_config_keeps_old_process_serving(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)})
    good = to_yaml(p.cfg) + "\n"
    p.write_config(good + "bogus_top_key: 1\n")
    n0 = p.nlines()
    p.signal(signal.SIGUSR2)
    line = p.wait_line("upgrade failed", 10 * SCALE, start=n0)
    expect(line, "no 'upgrade failed' line; stderr: %s" % p.stderr()[n0:][-5:])
    expect("exited with status 1" in line, "the child's exit status in %r" % line)
    expect(p.wait_line("bogus_top_key", 1, start=n0), "the new process's config error in the log")
    expect(p.alive(), "the old process died")
    eq(get_json(p.port, "/still")["origin"], "o", "the old process still serves")
    # Fixed, the next SIGUSR2 goes through.
    p.write_config(good)
    pid, ports, _ = upgrade_portico(ctx, p)
    eq(p.wait_exit(15 * SCALE), 0, "exit status of the old process")
    eq(ports, p.ports, "ports of the new process")
    eq(get_json(p.port, "/new")["origin"], "o", "served by the new process")


def _listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


@test(timeout=90)
def test_socket_activation_restart_refuses_nothing(ctx):
    o = ctx.origin("o")
    web, mon, extra = _listening_socket(), _listening_socket(), _listening_socket()
    ctx.socks += [web, mon, extra]
    wport, mport = web.getsockname()[1], mon.getsockname()[1]
    cfg = make_config({"v": svc(o)}, metrics=True)
    cfg["listen"] = [{"addr": "127.0.0.1:%d" % wport}]
    cfg["metrics"] = {"listen": "127.0.0.1:%d" % mport}
    fds = [mon.fileno(), extra.fileno(), web.fileno()]  # any order: matched by address
    a = Portico(ctx.binary, cfg, ctx.dir, name="a")
    ctx.porticos.append(a)
    a.start(fds=fds, fdnames=["mon", "extra", "web"])
    eq((a.ports, a.metrics_port), ([wport], mport), "ports of the activated process")
    expect(a.wait_line(lambda l: "inherited socket 127.0.0.1:%d" % extra.getsockname()[1] in l
                       and "not in the configuration" in l, 2 * SCALE),
           "no warning for the inherited socket the configuration does not use")
    eq(get_json(wport, "/a")["origin"], "o", "served through the inherited socket")
    # A reload keeps the inherited sockets (same ports, same sockets).
    a.reload()
    eq((a.ports, a.metrics_port), ([wport], mport), "ports after a reload")
    load = Load(wport, seconds=20 * SCALE)
    time.sleep(0.5)
    # systemctl restart: stop the old process, then start a new one on the
    # same sockets, which stayed open (here in the test, there in systemd).
    t0 = time.time()
    a.term()
    eq(a.wait_exit(15 * SCALE), 0, "exit status of the old process")
    b = Portico(ctx.binary, cfg, ctx.dir, name="b")
    ctx.porticos.append(b)
    b.start(fds=fds)
    gap = time.time() - t0
    time.sleep(0.5)
    load.finish()
    eq((b.ports, b.metrics_port), ([wport], mport), "ports of the restarted process")
    load.check(min_ok=20)
    expect(any(k[0].startswith("portico_") for k in _scrape(mport)),
           "metrics through the inherited socket")
    ctx.notes.append("%s; stop-to-serving %.2fs" % (load.summary(), gap))
