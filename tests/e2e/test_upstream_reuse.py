"""End-to-end tests: upstream keep-alive connections reused, not reopened."""

import select

from common import *  # noqa: F401,F403


class IdleClosingOrigin(TcpServer):
    """An HTTP/1.1 origin that answers every request with 200 "ok" and keeps
    the connection, until close_idle() makes it close the connections that
    are idle at that moment (an origin's keep-alive timeout firing)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gen = 0
        self.seen = []          # (connection number, method, path) in arrival order
        self.idle_closed = threading.Event()
        super().__init__(self._serve)

    def close_idle(self):
        self.idle_closed.clear()
        with self.lock:
            self.gen += 1

    def _serve(self, s):
        with self.lock:
            mine, conn = self.gen, self.accepted
        f = s.makefile("rb")
        dropped = False
        try:
            while True:
                while not select.select([s], [], [], 0.02)[0]:
                    with self.lock:
                        dropped = self.gen > mine
                    if dropped:
                        return
                line = f.readline()
                if not line:
                    return
                method, path = line.decode("latin-1").split(" ")[:2]
                length = 0
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                f.read(length)
                with self.lock:
                    self.seen.append((conn, method, path))
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            f.close()
            s.close()
            if dropped:
                self.idle_closed.set()  # after the close: its FIN is on its way


def _wait_stopped(pid):
    """Until every thread of pid is stopped (SIGSTOP takes effect a little
    after kill returns)."""
    end = time.time() + 5 * SCALE
    while time.time() < end:
        states = []
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass
        if states and all(st in "tT" for st in states):
            return
        time.sleep(0.01)
    raise AssertionError("portico did not stop on SIGSTOP")


@test()
def test_request_on_pooled_connection_the_origin_just_closed(ctx):
    # The origin closes an idle pooled connection while portico is busy
    # elsewhere (here: stopped), after the client's next request has
    # arrived: when portico runs again, both events wait in one batch, the
    # request first. A POST cannot be retried once sent, so it must not be
    # sent on that connection at all; a GET is retried on a fresh one.
    o = IdleClosingOrigin()
    ctx.cleanups.append(o.close)
    p = ctx.portico({"v": svc("http://127.0.0.1:%d" % o.port)}, workers=1)
    with RawConn(p.port, timeout=10 * SCALE) as c:
        for i, method in enumerate(["POST", "GET", "POST"]):
            body = b"payload" if method == "POST" else b""
            req = (b"%s /r%d HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n%s"
                   % (method.encode(), i, len(body), body))
            if i == 0:
                c.send(req)
                eq(c.read_response(method).status, 200, "first request")
                continue
            p.signal(signal.SIGSTOP)
            try:
                _wait_stopped(p.proc.pid)
                c.send(req)
                time.sleep(0.1)
                o.close_idle()
                expect(o.idle_closed.wait(5 * SCALE), "the origin did not close its idle connection")
                time.sleep(0.2)  # its FIN is at portico's socket
            finally:
                p.signal(signal.SIGCONT)
            r = c.read_response(method)
            eq((r.status, r.body), (200, b"ok"),
               "%s on a pooled connection the origin closed meanwhile" % method)
    with o.lock:
        seen = list(o.seen)
    eq([(m, path) for _, m, path in seen], [("POST", "/r0"), ("GET", "/r1"), ("POST", "/r2")],
       "requests that reached the origin, each once")
    eq(len(set(n for n, _, _ in seen)), 3, "upstream connections the three requests arrived on (%r)" % (seen,))


def _keepalive_load(port, clients, per_client, services, path):
    """clients threads, each with one keep-alive connection, sending
    per_client GETs that rotate over the services' host names. Returns the
    statuses that were not 200."""
    bad = []
    start = threading.Barrier(clients)

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30 * SCALE)
        try:
            start.wait(10 * SCALE)
            for i in range(per_client):
                host = "s%02d.test" % ((k + i) % services)
                r = request(port, "GET", path, host=host, conn=conn)
                if r.status != 200:
                    bad.append(r.status)
        except Exception as e:  # counted, not raised in a thread
            bad.append(repr(e))
        finally:
            conn.close()
    ths = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    [t.start() for t in ths]
    [t.join(60 * SCALE) for t in ths]
    return bad


@test(timeout=60)
def test_many_services_and_clients_reuse_upstream_connections(ctx):
    # 64 services naming one origin share its pool. 96 keep-alive clients
    # (at least 48 in one of the 2 workers) keep about as many requests in
    # flight, and the origin answers them together, every 50 ms: the
    # connections come back to the pool at once, more of them than
    # limits.upstream_keepalive (32), and are taken again at once. A
    # connection is only opened when every pooled one is busy, so the
    # origin never sees more connections than there are clients, however
    # many requests go through. (When idle connections beyond
    # upstream_keepalive were closed at once, a third of the requests
    # opened a new one.)
    o = ctx.origin("many")
    services = 64
    p = ctx.portico({"s%02d" % i: svc(o, hosts=["s%02d.test" % i]) for i in range(services)})
    clients, per_client = 96, 30
    bad = _keepalive_load(p.port, clients, per_client, services, "/?do=slow&align=0.05")
    eq(bad, [], "failed requests")
    eq(len(o.requests), clients * per_client, "requests at the origin")
    expect(o.connections <= clients,
           "%d upstream connections for %d requests from %d keep-alive clients"
           % (o.connections, clients * per_client, clients))
