"""End-to-end tests: nginx as an origin."""

from common import *  # noqa: F401,F403


@test()
def test_nginx_origin(ctx):
    nginx = "/usr/sbin/nginx"
    expect(os.path.exists(nginx), "nginx is not installed (%s missing; apt-get install nginx)" % nginx)
    d = ctx.dir
    www = os.path.join(d, "www")
    os.makedirs(www)
    static = gen_body(300000, seed=21)
    open(os.path.join(www, "file.bin"), "wb").write(static)
    open(os.path.join(www, "index.html"), "w").write("<h1>hello from nginx</h1>\n")
    # nginx serves on a socket the test bound (port 0) and hands over as an
    # inherited socket (the NGINX variable nginx's binary upgrade uses).
    lsock = socket.socket()
    ctx.socks.append(lsock)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    port = lsock.getsockname()[1]
    conf = os.path.join(d, "nginx.conf")
    user = "user root;\n" if os.geteuid() == 0 else ""
    open(conf, "w").write(user + """
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 64; }
http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/tmp_body;
    proxy_temp_path %(d)s/tmp_proxy;
    fastcgi_temp_path %(d)s/tmp_fastcgi;
    uwsgi_temp_path %(d)s/tmp_uwsgi;
    scgi_temp_path %(d)s/tmp_scgi;
    types { text/html html; application/octet-stream bin; }
    server {
        listen 127.0.0.1:%(port)d;
        root %(www)s;
        location /api/ { return 200 "api ok\\n"; }
    }
}
""" % {"d": d, "port": port, "www": www})
    env = dict(os.environ, NGINX="%d;" % lsock.fileno())
    ng = ctx.spawn([nginx, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf, "-g", "daemon off;"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=[lsock.fileno()],
                   env=env)
    # A connection to the socket waits in its backlog until nginx accepts.
    try:
        r = request(port, "GET", "/", host="www.test", timeout=10 * SCALE)
    except OSError as e:
        raise AssertionError("nginx did not answer on the inherited socket (%r); exit status %s"
                             % (e, ng.poll()))
    eq(r.status, 200, "nginx directly")
    p = ctx.portico({"web": svc("http://127.0.0.1:%d" % port, ["www.test"])})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5 * SCALE)
    r = request(p.port, "GET", "/file.bin", host="www.test", conn=conn)
    eq(r.status, 200, "static file status")
    eq(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(static).hexdigest(), "static file content")
    etag = r.header("etag")
    expect(etag, "no ETag from nginx through portico: %r" % r.headers)
    r = request(p.port, "HEAD", "/file.bin", host="www.test", conn=conn)
    eq((r.status, r.header("content-length"), r.body), (200, "300000", b""), "HEAD")
    r = request(p.port, "GET", "/file.bin", host="www.test", headers={"If-None-Match": etag}, conn=conn)
    eq((r.status, r.header("etag"), r.body), (304, etag, b""), "conditional GET")
    r = request(p.port, "GET", "/", host="www.test", conn=conn)
    eq((r.status, r.body), (200, b"<h1>hello from nginx</h1>\n"), "index")
    r = request(p.port, "GET", "/api/x", host="www.test", conn=conn)
    eq((r.status, r.body), (200, b"api ok\n"), "api location")
    r = request(p.port, "GET", "/missing", host="www.test", conn=conn)
    eq(r.status, 404, "nginx 404")
    expect(b"nginx" in r.body, "404 should come from nginx: %r" % r.body[:100])
    r = request(p.port, "POST", "/api/y", host="www.test", body=b"x" * 5000, conn=conn)
    eq(r.status, 200, "POST to nginx")
    conn.close()
