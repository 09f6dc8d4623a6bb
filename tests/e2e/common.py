"""common.py - what every end-to-end test module shares: the test registry,
the per-test context, assertions, and helpers used by more than one area.

Each tests/e2e/test_<area>.py does `from common import *` (see __all__ at the end)."""


import argparse
import base64
import ctypes
import asyncio
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (ASAN, SCALE, Portico, RawConn, dead_port_socket,  # noqa: E402
                     fixed_port, get_json, log_parse, logfmt_parse, make_config, port_of,
                     raw_exchange, request, run_check, status_of, to_yaml)
from upstream import BLOCK, BlockVerifier, Origin, gen_body, send_pattern  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
BIG = int(os.environ.get("E2E_BIG_BYTES") or (GiB if ASAN else 10 * GiB))
DEFAULT_TIMEOUT = float(os.environ.get("E2E_TEST_TIMEOUT") or 30)
RSS_LIMIT = 16 * MiB

TESTS = []   # (name, function, timeout in seconds, serial), in file order


def test(timeout=None, serial=False):
    """Register a test. serial=True: it must have the machine to itself
    (it measures memory or CPU, moves big streams, stops threads with
    ptrace, or bounds a time from above): run.py runs it alone, after the
    tests that run in parallel."""
    def deco(fn):
        TESTS.append((fn.__name__, fn, timeout or DEFAULT_TIMEOUT, serial))
        return fn
    return deco


class Ctx:
    """Per-test resources; cleanup() stops everything and reports problems."""

    def __init__(self, binary, name):
        self.binary = binary
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="portico-e2e-")
        self.porticos = []
        self.origins = []
        self.procs = []
        self.socks = []
        self.notes = []
        self.cleanups = []  # functions run first by cleanup()

    def origin(self, name="origin", **kw):
        o = Origin(name, **kw)
        self.origins.append(o)
        return o

    def dead_port(self):
        """A loopback port that refuses connections for the whole test: held
        bound, never listening (see harness.dead_port_socket)."""
        s = dead_port_socket()
        self.socks.append(s)
        return s.getsockname()[1]

    def portico(self, services, limits=None, metrics=False, domain=None, start=True,
                name="portico", workers=2):
        """A portico on 127.0.0.1:0 (and metrics on port 0 with metrics=True);
        p.port and p.metrics_port are known once it started."""
        cfg = make_config(services, limits=limits, metrics=metrics, domain=domain,
                          workers=workers)
        p = Portico(self.binary, cfg, self.dir, name=name)
        p.cfg = cfg
        self.porticos.append(p)
        if start:
            p.start()
        return p

    def spawn(self, args, **kw):
        pr = subprocess.Popen(args, **kw)
        self.procs.append(pr)
        harness._ALL.append(pr)
        return pr

    def cleanup(self):
        problems = []
        for fn in self.cleanups:
            try:
                fn()
            except Exception as e:
                problems.append("cleanup: %r" % e)
        for p in self.porticos:
            try:
                for pr in p.stop():
                    problems.append("%s: %s" % (p.name, pr))
            except Exception as e:  # never leave one running
                problems.append("%s: stop failed: %r" % (p.name, e))
                p.kill()
        for pr in self.procs:
            if pr.poll() is None:
                pr.terminate()
                try:
                    pr.wait(5)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait(5)
        for o in self.origins:
            o.close()
        for s in self.socks:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def stderr_tail(self, n=6):
        out = []
        for p in self.porticos:
            out += p.stderr()[-n:]
        return out


def svc(origin, hosts=None, **kw):
    d = {"hosts": hosts or ["a.test"], "upstream": origin if isinstance(origin, str) else origin.url}
    d.update(kw)
    return d


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, what):
    if a != b:
        raise AssertionError("%s: expected %r, got %r" % (what, b, a))


def hdrs(doc, name):
    """Values of header `name` in an echo document (case-insensitive)."""
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def _wait_origin(port, name, timeout, host="a.test"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            r = request(port, "GET", "/probe", host=host, timeout=2)
            if r.status == 200 and r.json()["origin"] == name:
                return True
        except Exception:
            pass
        time.sleep(0.05)
    return False


class RssSampler(threading.Thread):
    """The peak VmRSS of portico while it runs. A sample that cannot be read
    fails stop() (a peak of 0 would pass any growth check)."""

    def __init__(self, p):
        super().__init__(daemon=True)
        self.p = p
        self.max = 0
        self.error = None
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.max = max(self.max, self.p.rss())
            except Exception as e:
                self.error = self.error or e
                return
            self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join()
        if self.error is not None:
            raise AssertionError("cannot read portico's VmRSS: %r" % self.error)
        self.max = max(self.max, self.p.rss())
        return self.max


def _read_head(s, first=b""):
    """A 200 response head from s (first: bytes already received); returns
    (head, the body bytes that came with it)."""
    buf = bytearray(first)
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise AssertionError("closed before the response head")
        buf += d
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    expect(head.startswith(b"HTTP/1.1 200"), "response head %r" % head[:200])
    return head, rest


def _expect_pattern(s, first, n, what):
    """The rest of a generated body of n bytes arrives whole and intact."""
    v = _read_pattern(s, first, n)
    eq(v.total, n, what)
    expect(v.ok, "%s: content mismatch in block %s" % (what, v.bad_block))


def _read_pattern(s, first, n):
    """Read a generated body of n bytes from s, of which first already
    arrived; returns the BlockVerifier that checked it."""
    v = BlockVerifier()
    v.feed(memoryview(first))
    rb = bytearray(1 << 20)
    mv = memoryview(rb)
    while v.total < n:
        got = s.recv_into(mv, min(len(rb), n - v.total))
        if not got:
            break
        v.feed(mv[:got])
    v.finish()
    return v


def _download(port, n, timeout=60.0, wrap=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
    if wrap:
        s = wrap(s)
    try:
        s.sendall(b"GET /big?do=download&mode=cl&n=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        head, rest = _read_head(s)
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        expect(m and int(m.group(1)) == n, "Content-Length in %r" % head[:300])
        return _read_pattern(s, rest, n)
    finally:
        s.close()


def _scrape(mport):
    r = request(mport, "GET", "/metrics", host="127.0.0.1:%d" % mport, timeout=5 * SCALE)
    eq(r.status, 200, "metrics status")
    out = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            raise AssertionError("bad metrics line %r" % line)
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class TcpServer:
    """A raw TCP origin: each accepted connection runs handler(sock) in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.handler, args=(c,), daemon=True).start()

    def close(self):
        self.sock.close()


def _recv_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


class TestCA:
    """A test CA and leaf certificates made with the openssl command line."""

    def __init__(self, d):
        self.dir = d
        self.key = os.path.join(d, "ca.key")
        self.crt = os.path.join(d, "ca.pem")
        self._run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out", self.crt,
                   "-days", "2", "-subj", "/CN=portico test CA"])
        self.n = 0

    def _run(self, args):
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode:
            raise AssertionError("%s: %s" % (" ".join(args[:3]), r.stderr.decode()[-300:]))

    def leaf(self, names, tag=None, rsa=False, ips=()):
        """Issue a certificate whose subjectAltName lists names (and IP
        addresses ips); CN = tag or the first name. Returns (cert, key) paths."""
        self.n += 1
        base = os.path.join(self.dir, "leaf%d" % self.n)
        key, csr, crt, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        with open(ext, "w") as f:
            if names or ips:
                f.write("subjectAltName=" + ",".join(["DNS:" + n for n in names]
                                                     + ["IP:" + i for i in ips]) + "\n")
            f.write("extendedKeyUsage=serverAuth\n")
        kind = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt",
                                                      "ec_paramgen_curve:P-256"]
        self._run(["openssl", "req"] + kind + ["-nodes", "-keyout", key, "-out", csr, "-subj",
                                               "/CN=%s" % (tag or names[0])])
        self._run(["openssl", "x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key,
                   "-CAcreateserial", "-days", "2", "-out", crt, "-extfile", ext])
        return crt, key

    def leaves(self, names_list):
        """leaf(names) for each list of names, made in this process with
        python3-cryptography: leaf() runs openssl twice a certificate, which
        for hundreds of them takes longer than the test itself (and far
        longer on a busy machine). The same certificates: CN the first name,
        the names as DNS subjectAltNames, serverAuth, key identifiers, EC
        P-256, two days, signed by this CA's key. Returns (cert, key) paths."""
        import datetime
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        with open(self.key, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        with open(self.crt, "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        now = datetime.datetime.now(datetime.timezone.utc)
        out = []
        for names in names_list:
            self.n += 1
            base = os.path.join(self.dir, "leaf%d" % self.n)
            k = ec.generate_private_key(ec.SECP256R1())
            c = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                 .issuer_name(ca.subject).public_key(k.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=2))
                 .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                                critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()),
                                critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                     ca_key.public_key()), critical=False)
                 .sign(ca_key, hashes.SHA256()))
            with open(base + ".key", "wb") as f:
                f.write(k.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
            with open(base + ".pem", "wb") as f:
                f.write(c.public_bytes(serialization.Encoding.PEM))
            out.append((base + ".pem", base + ".key"))
        return out


def _tls_portico(ctx, certs, services, default=None, start=True, **kw):
    p = ctx.portico(services, start=False, **kw)
    p.cfg["listen"][0]["tls"] = True
    tls = {"certs": [{"cert": c, "key": k} for c, k in certs]}
    if default:
        tls["default_cert"] = default
    p.cfg["tls"] = tls
    p.write_config(p.cfg)
    if start:
        p.start()
    return p


def _tls_client_ctx(ca, version=None):
    c = ssl.create_default_context(cafile=ca)
    if version:
        c.minimum_version = c.maximum_version = version
    return c


def _tls_connect(port, name, ca, cctx=None, session=None):
    cctx = cctx or _tls_client_ctx(ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE)
    try:
        return cctx.wrap_socket(raw, server_hostname=name, session=session)
    except BaseException:
        raw.close()
        raise


def _tls_cn(s):
    return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def _tls_get(port, name, ca, path="/", cctx=None):
    """GET over TLS with SNI name; returns (status, certificate CN)."""
    with _tls_connect(port, name, ca, cctx) as s:
        cn = _tls_cn(s)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (path.encode(), name.encode()))
        data = _recv_all(s)
    return int(data.split(b" ", 2)[1]), cn


class TlsBackend(TcpServer):
    """A TLS origin for passthrough and https upstreams. After the handshake
    it reads one request head: `GET /bytes/N` answers N pattern bytes,
    anything else a short text naming the backend and the SNI it saw."""

    def __init__(self, cert, key, name="backend"):
        self.name = name
        self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.sctx.load_cert_chain(cert, key)
        self.snis = []
        self.sctx.sni_callback = lambda s, n, c: self.snis.append(n) and None
        self.first = []   # the first bytes of each connection, before TLS (PROXY header)
        self.resumed = []  # per connection: was the TLS session resumed
        self.requests = 0
        super().__init__(self._serve)

    def _serve(self, raw):
        try:
            raw.settimeout(30 * SCALE)
            peek = raw.recv(1, socket.MSG_PEEK)
            if peek and peek[0] != 0x16:   # a PROXY header: record it, then TLS
                head = raw.recv(16, socket.MSG_PEEK)
                if head.startswith(b"PROXY "):
                    line = b""
                    while not line.endswith(b"\r\n"):
                        line += raw.recv(1)
                    self.first.append(line)
                else:
                    hdr = raw.recv(16)
                    hdr += raw.recv(int.from_bytes(hdr[14:16], "big"))
                    self.first.append(hdr)
            s = self.sctx.wrap_socket(raw, server_side=True)
            self.resumed.append(s.session_reused)
            buf = b""
            while True:   # keep-alive unless the path says /close
                while b"\r\n\r\n" not in buf:
                    d = s.recv(4096)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests += 1
                path = head.split(b" ")[1].decode()
                close = path.endswith("/close") or b"\nConnection: close" in head
                conn = b"Connection: close\r\n" if close else b""
                if path.startswith("/bytes/"):
                    n = int(path[7:])
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (n, conn))
                    send_pattern(s, n)
                else:
                    body = ("%s sni=%s" % (self.name, self.snis[-1] if self.snis else "-")).encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                              % (len(body), conn, body))
                if close:
                    s.close()
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()


def _s_server(ctx, crt, key, *extra):
    """openssl s_server -www on a port it chooses (-accept 127.0.0.1:0);
    returns (process, port), the port read from its `ACCEPT host:port` line
    (printed once it listens)."""
    out = os.path.join(ctx.dir, "s_server.%d.out" % len(ctx.procs))
    with open(out, "wb") as f:
        srv = ctx.spawn(["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", crt,
                         "-key", key, "-www"] + list(extra),
                        stdout=f, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.time() + 10 * SCALE
    while True:
        m = re.search(rb"^ACCEPT (\S+)$", open(out, "rb").read(), re.M)
        if m:
            return srv, port_of(m.group(1).decode())
        expect(srv.poll() is None, "openssl s_server exited with %s" % srv.returncode)
        expect(time.time() < deadline, "openssl s_server printed no ACCEPT line")
        time.sleep(0.05)


APP = "app.example.com"



def client_hello(name):
    """The first flight of a TLS client asking for name."""
    cctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = cctx.wrap_bio(inc, out, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def get_in_background(port, path, timeout, host="a.test"):
    """GET path on a fresh connection from a thread, started at once.
    Returns (thread, result): result gets "r" (the Response) or "e" (the
    exception) by the time the thread ends."""
    result = {}

    def run():
        try:
            with RawConn(port, timeout=timeout) as c:
                c.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
                result["r"] = c.read_response()
        except Exception as e:
            result["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def tailscale_cli(ctx, sub, path):
    """Run `portico tailscale SUB -c PATH`: (exit status, stdout, stderr)."""
    r = subprocess.run([ctx.binary, "tailscale", sub, "-c", path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30 * SCALE)
    return r.returncode, r.stdout, r.stderr


def _peer_socket(pid, lport, rport):
    """A duplicate (pidfd_getfd) of the TCP socket process pid holds with
    local port lport and remote port rport."""
    want = None
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if (int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16)) \
                        == (lport, rport):
                    want = "socket:[%s]" % cols[9]
    expect(want, "no socket from port %d to port %d" % (lport, rport))
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != want:
                continue
        except OSError:
            continue
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(pid)
        try:
            dup = libc.syscall(438, pidfd, int(fd), 0)  # pidfd_getfd
        finally:
            os.close(pidfd)
        expect(dup >= 0, "pidfd_getfd: %s" % os.strerror(ctypes.get_errno()))
        return socket.socket(fileno=dup)
    raise AssertionError("portico holds no %s" % want)


def read_chunked_pattern(c, n):
    """Read a chunked body of n pattern bytes from RawConn c, checking the
    framing; returns (BlockVerifier, number of chunks)."""
    v = BlockVerifier()
    chunks = 0
    while True:
        line = c.until(b"\r\n")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            eq(c.until(b"\r\n"), b"\r\n", "end of the chunked body")
            break
        chunks += 1
        left = size
        while left:
            part = c.exact(min(left, 1 << 20))
            v.feed(memoryview(part))
            left -= len(part)
        eq(c.exact(2), b"\r\n", "CRLF after a chunk's data")
    v.finish()
    eq(v.total, n, "body bytes")
    expect(v.ok, "content mismatch in block %s" % v.bad_block)
    return v, chunks


# ---------------------------------------------------------------- tailnet, systemd, upgrade

def ts_request(path_sock, target="/", xfh="grafana.tail1234.ts.net", xff="100.64.0.2",
               headers=(), host="tailnet.sock", method="GET", proto="https"):
    """One request as tailscaled's serve proxy sends it over portico's
    backend socket (the default X-Forwarded-Host is in the emulated
    tailnet, tailscale_emu.SUFFIX); None for xfh/xff leaves that header
    out. Returns (status, headers dict lower-case, body bytes)."""
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: " + host]
    if xfh is not None:
        lines.append("X-Forwarded-Host: " + xfh)
    if xff is not None:
        lines.append("X-Forwarded-For: " + xff)
    if proto:
        lines.append("X-Forwarded-Proto: " + proto)
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * SCALE)
    s.connect(path_sock)
    s.sendall(data)
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1])
    h = {}
    for l in hl[1:]:
        k, _, v = l.partition(":")
        h[k.strip().lower()] = v.strip()
    return status, h, body


def echo(status_h_body):
    """The echo document of a ts_request answer, which must be 200."""
    status, _, body = status_h_body
    eq(status, 200, "status (body %r)" % body[:200])
    return json.loads(body)


class NotifySocket:
    """A datagram socket where systemd's would be: every message with the
    time.monotonic() it arrived at, as a dict of its KEY=VALUE lines, and
    the sender's pid (from the credentials the kernel attaches, as systemd
    reads them)."""

    def __init__(self, ctx, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "portico-e2e-%d-%d" % (os.getpid(), random.randrange(1 << 30))
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.env = os.path.join(ctx.dir, "notify.sock")
            self.sock.bind(self.env)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.1)
        self.msgs = []   # (arrival, {key: value}, raw text, sender pid)
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        ctx.cleanups.append(self.close)

    def _read(self):
        while not self.stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, cred in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(cred[:4], sys.byteorder)
            text = data.decode("utf-8", "replace")
            kv = dict(l.split("=", 1) for l in text.split("\n") if "=" in l)
            with self.lock:
                self.msgs.append((time.monotonic(), kv, text, pid))

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()

    def all(self):
        with self.lock:
            return list(self.msgs)

    def count(self):
        with self.lock:
            return len(self.msgs)

    def wait(self, key, timeout, start=0, pid=None):
        """Index and fields of the first message from index start that has
        key (and comes from pid, when given)."""
        end = time.time() + timeout
        while True:
            for i, (_, kv, _, sender) in enumerate(self.all()[start:], start):
                if key in kv and pid in (None, sender):
                    return i, kv
            if time.time() > end:
                raise AssertionError("no %s message within %.0fs; got %r"
                                     % (key, timeout, [m[2] for m in self.all()[start:]]))
            time.sleep(0.01)

    def states(self, start=0):
        """The messages from start without the watchdog pings."""
        return [m[1] for m in self.all()[start:] if "WATCHDOG" not in m[1]]


def pid_alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "State:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def stop_pid(pid, timeout):
    """SIGTERM a portico that is not the test's child (the one an upgrade
    started) and wait until it is gone. True if it went."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    end = time.time() + timeout
    while time.time() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return False


def upgrade_portico(ctx, p, timeout=None):
    """SIGUSR2 p and wait for the new process's serving line: returns its
    pid and its ports (http list, metrics); the new process is stopped at
    cleanup."""
    timeout = timeout or 10 * SCALE
    n0 = p.nlines()
    p.signal(signal.SIGUSR2)
    line = p.wait_line(lambda l: " serving " in l and "pid=" in l, timeout, start=n0)
    expect(line, "no new process serving %.0fs after SIGUSR2; stderr: %s"
           % (timeout, p.stderr()[n0:][-6:]))
    pid = int(logfmt_parse(line)["pid"])
    ctx.cleanups.append(lambda: stop_pid(pid, 10 * SCALE))
    lines = p.stderr()[n0:]
    http_ports, metrics = [], None
    for l in lines[:lines.index(line)]:
        if 'msg="listening"' in l:
            f = logfmt_parse(l)
            if f.get("listener") == "http":
                http_ports.append(port_of(f["addr"]))
            elif f.get("listener") == "metrics":
                metrics = port_of(f["addr"])
    return pid, http_ports, metrics


# ---------------------------------------------------------------- system calls

_STRACE_CALL = re.compile(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\((\d+)?)")
_STRACE_RESULT = re.compile(r"= (-?\d+)(?: (E[A-Z0-9]+))?(?: \(.*\))?\s*$")


class Strace:
    """strace -f attached to a running process, counting the calls it makes."""

    def __init__(self, ctx, pid, calls):
        self.path = os.path.join(ctx.dir, "strace.%d.txt" % pid)
        self.pr = ctx.spawn(["strace", "-f", "-e", "trace=" + calls, "-o", self.path,
                             "-p", str(pid)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # "strace: Process N attached with K threads" once every thread is traced
        line = self.pr.stderr.readline().decode("latin-1")
        expect("attached" in line, "strace did not attach: %r" % line)

    def stop(self):
        """Detach; the calls made meanwhile as (name, result, errno name or None,
        first argument when it is a number: the fd)."""
        self.pr.send_signal(signal.SIGINT)
        self.pr.wait(10 * SCALE)
        calls = []
        with open(self.path, encoding="latin-1") as f:
            for line in f:
                m = _STRACE_CALL.match(line)
                if not m or "<unfinished ...>" in line:
                    continue  # counted where it resumes
                r = _STRACE_RESULT.search(line)
                calls.append((m.group(1) or m.group(2), int(r.group(1)) if r else None,
                              r.group(2) if r else None, m.group(3)))
        return calls


__all__ = [n for n in dir() if not n.startswith('__')]
