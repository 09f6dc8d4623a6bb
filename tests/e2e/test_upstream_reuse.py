"""End-to-end tests: upstream keep-alive connections reused, not reopened."""

from common import *  # noqa: F401,F403


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
