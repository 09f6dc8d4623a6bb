"""upstream.py - a raw-socket HTTP/1.1 origin for the end-to-end tests.

One Origin listens on one or many loopback ports (or a Unix socket) and
serves every connection in its own thread. It records everything it
receives, so a test can assert that nothing reached it, and it can
misbehave on purpose. What it does for a request is chosen by the query
parameter `do` (so path routing and prefix stripping do not change it):

  do=echo (default)   JSON of what arrived: method, target, version, headers,
                      body length and sha256, trailers, origin name, port,
                      connection id and index of the request on it
  do=download         n=BYTES mode=cl|chunked|close chunk=K: a generated body
                      (pattern() repeated; see BlockVerifier)
  do=sink             count and verify a PATTERN body of any size; JSON reply
  do=trailers         chunked response with trailers (n=, chunk=)
  do=slow             delay=SECONDS, then echo; or align=SECONDS: echo at the
                      next multiple of SECONDS of the clock, so that requests
                      in flight together are answered together
  do=silent           read the request, never answer
  do=closehead        send a head announcing 100 bytes, 10 bytes, then close
  do=status           code=204|304|...: a response without a body (204/304)
  do=sse              mode=chunked|close gap=SECONDS: two events; the second
                      once the test calls sse_release.set(), or after gap
                      (sse_second_sent tells whether it went)
  do=ws               WebSocket handshake, then a frame-level echo
  do=upgrade          if the request has an Upgrade header (or proto=NAME is
                      given): 101 with `Upgrade: ` the first protocol offered
                      (or NAME), then a raw byte echo; otherwise a plain echo,
                      as an origin that honours h2c or any other offer would
  do=redirect         to=URL: 302 with `Location: URL` and `Refresh: 0; url=URL`

Origin(reading=...): the origin also works out which path it would serve,
as some real servers read a target (see read_path), into req.resolved and
the echo document's "resolved".

Origin(drop_reused=True): a request that arrives on a connection which
already carried one is read whole and then the connection is closed without
a response byte (a pooled keep-alive connection the origin dropped).
"""

import base64
import hashlib
import json
import os
import posixpath
import selectors
import socket
import threading
import time
import urllib.parse
import zlib

BLOCK = 1048573  # a prime number of bytes, so no buffer size lines up with it


def _make_pattern():
    # Deterministic, incompressible-looking, generated once per process.
    out = bytearray()
    seed = b"portico-e2e"
    i = 0
    while len(out) < BLOCK:
        out += hashlib.sha256(seed + i.to_bytes(8, "little")).digest() * 64
        i += 1
    return bytes(out[:BLOCK])


_PATTERN = None
_PATTERN_LOCK = threading.Lock()


def pattern():
    global _PATTERN
    with _PATTERN_LOCK:
        if _PATTERN is None:
            _PATTERN = _make_pattern()
    return _PATTERN


class BlockVerifier:
    """Checks a stream that must be pattern() repeated, cheaply: the CRC-32 of
    every BLOCK-aligned block is compared with the pattern's. No copies."""

    def __init__(self):
        p = pattern()
        self.crc_full = zlib.crc32(p)
        self.total = 0
        self.crc = 0
        self.ok = True
        self.bad_block = None

    def feed(self, mv):
        n = len(mv)
        off = 0
        while off < n:
            inblock = self.total % BLOCK
            take = min(n - off, BLOCK - inblock)
            self.crc = zlib.crc32(mv[off:off + take], self.crc)
            off += take
            self.total += take
            if self.total % BLOCK == 0:
                if self.crc != self.crc_full and self.ok:
                    self.ok = False
                    self.bad_block = self.total // BLOCK - 1
                self.crc = 0

    def finish(self):
        rem = self.total % BLOCK
        if rem and self.crc != zlib.crc32(memoryview(pattern())[:rem]) and self.ok:
            self.ok = False
            self.bad_block = self.total // BLOCK
        return self.ok


def send_pattern(sock, n, chunked=False, chunk=None):
    """Send n bytes of pattern() (optionally chunk-framed) on sock."""
    mv = memoryview(pattern())
    sent = 0
    if not chunked:
        while sent < n:
            off = sent % BLOCK
            take = min(n - sent, BLOCK - off)
            sock.sendall(mv[off:off + take])
            sent += take
        return
    chunk = chunk or 65536
    while sent < n:
        off = sent % BLOCK
        take = min(n - sent, BLOCK - off, chunk)
        sock.sendall(b"%x\r\n" % take)
        sock.sendall(mv[off:off + take])
        sock.sendall(b"\r\n")
        sent += take
    sock.sendall(b"0\r\n\r\n")


def gen_body(n, seed=1):
    """Small deterministic bodies (not pattern-aligned), for exact comparisons."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d-%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


class Closed(Exception):
    pass


class Reader:
    def __init__(self, sock, origin, conn_id):
        self.sock = sock
        self.buf = bytearray()
        self.origin = origin
        self.conn_id = conn_id

    def _fill(self, want=65536):
        data = self.sock.recv(max(want, 65536))
        if not data:
            raise Closed()
        self.origin._record(self.conn_id, data)
        self.buf += data

    def until(self, sep, limit=1 << 20):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise Closed()
            self._fill()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill(n - len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def stream(self, n, cb):
        """Pass n bytes to cb(memoryview) without accumulating them."""
        if self.buf:
            take = min(n, len(self.buf))
            cb(memoryview(self.buf)[:take])
            del self.buf[:take]
            n -= take
        if n <= 0:
            return
        rb = bytearray(1 << 20)
        mv = memoryview(rb)
        while n > 0:
            got = self.sock.recv_into(mv, min(n, len(rb)))
            if not got:
                raise Closed()
            self.origin._count(got)
            cb(mv[:got])
            n -= got


class Request:
    pass


def _parse_head(head):
    lines = head.split(b"\r\n")
    reqline = lines[0].decode("latin-1")
    parts = reqline.split(" ")
    if len(parts) != 3:
        raise Closed()
    method, target, version = parts
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.decode("latin-1").partition(":")
        headers.append([k, v.strip()])
    return method, target, version, headers


def _hget(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def read_path(target, how):
    """The path a server would serve for target:
    decode     decode first, then resolve dot-segments (Python's http.server
               translate_path, Go's net/http, most frameworks)
    params     drop ";..." from each segment, then decode (Tomcat, Jetty)
    backslash  decode, and '\\' is a '/' (IIS and many Windows servers)"""
    path = target.split("?", 1)[0].split("#", 1)[0]
    trailing = path.endswith("/")
    if how == "params":
        path = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
        trailing = path.endswith("/")
    path = urllib.parse.unquote(path)
    if how == "backslash":
        path = path.replace("\\", "/")
    elif how != "params" and how != "decode":
        raise ValueError("unknown reading %r" % how)
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = path[1:]
    if trailing and not path.endswith("/"):
        path += "/"
    return path


class Origin:
    def __init__(self, name="origin", nports=1, unix_path=None, drop_reused=False, reading=None,
                 host="127.0.0.1", port=0):
        self.name = name
        self.reading = reading
        self.host = host
        self.drop_reused = drop_reused
        self.lock = threading.Lock()
        self.requests = []       # Request objects with parsed heads (in arrival order)
        self.completed = 0       # requests whose body was read whole
        self.connections = 0     # accepted connections
        self.bytes_received = 0
        self.sse_release = threading.Event()
        self.sse_second_sent = False
        self.raw = {}            # conn id -> first 64 KiB received
        self.active = set()
        self.closed = False
        self.listeners = []
        self.ports = []
        self.unix_path = unix_path
        if unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(unix_path)
            s.listen(512)
            self.listeners.append(s)
        else:
            for _ in range(nports):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
                s.listen(512)
                self.listeners.append(s)
                self.ports.append(s.getsockname()[1])
        self.port = self.ports[0] if self.ports else None
        self.sel = selectors.DefaultSelector()
        for s in self.listeners:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    # ---- addresses ----
    @property
    def url(self):
        if self.unix_path:
            return "unix:" + self.unix_path
        return "http://%s:%d" % (self.host, self.port)

    def url_for(self, i):
        return "http://%s:%d" % (self.host, self.ports[i])

    # ---- bookkeeping ----
    def _record(self, cid, data):
        with self.lock:
            self.bytes_received += len(data)
            r = self.raw.setdefault(cid, bytearray())
            if len(r) < 65536:
                r += data[:65536 - len(r)]

    def _count(self, n):
        with self.lock:
            self.bytes_received += n

    def all_raw(self):
        with self.lock:
            return b"".join(bytes(v) for v in self.raw.values())

    def seen_paths(self):
        with self.lock:
            return [r.target for r in self.requests]

    def reset(self):
        with self.lock:
            self.requests = []
            self.completed = 0
            self.connections = 0
            self.bytes_received = 0
            self.raw = {}

    def wait_requests(self, n, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.requests) >= n:
                    return True
            time.sleep(0.01)
        return False

    def close(self):
        self.closed = True
        try:
            self.sel.close()
        except Exception:
            pass
        for s in self.listeners:
            try:
                s.close()
            except Exception:
                pass
        with self.lock:
            act = list(self.active)
        for c in act:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
            try:
                c.close()
            except Exception:
                pass
        if self.unix_path:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass

    # ---- serving ----
    def _accept_loop(self):
        while not self.closed:
            try:
                events = self.sel.select(0.2)
            except Exception:
                return
            for key, _ in events:
                try:
                    c, _ = key.fileobj.accept()
                except (BlockingIOError, OSError):
                    continue
                c.setblocking(True)
                if c.family == socket.AF_INET:
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    lport = c.getsockname()[1]
                else:
                    lport = 0
                with self.lock:
                    self.connections += 1
                    cid = self.connections
                    self.active.add(c)
                threading.Thread(target=self._serve, args=(c, cid, lport), daemon=True).start()

    def _serve(self, c, cid, lport):
        rd = Reader(c, self, cid)
        idx = 0
        try:
            while not self.closed:
                head = rd.until(b"\r\n\r\n", limit=256 * 1024)
                method, target, version, headers = _parse_head(head[:-4])
                req = Request()
                req.method, req.target, req.version, req.headers = method, target, version, headers
                req.conn, req.idx, req.port, req.head = cid, idx, lport, head
                req.resolved = read_path(target, self.reading) if self.reading else None
                with self.lock:
                    self.requests.append(req)
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
                req.q = {k: v[0] for k, v in q.items()}
                do = req.q.get("do", "echo")
                keep = self._keepalive(req)
                if do == "sink":
                    self._read_body(rd, req, sink=True)
                else:
                    self._read_body(rd, req)
                with self.lock:
                    self.completed += 1
                if self.drop_reused and idx >= 1:
                    return
                idx += 1
                handler = getattr(self, "_do_" + do, None) or self._do_echo
                if handler(c, rd, req, keep) is False or not keep:
                    return
        except (Closed, OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.active.discard(c)
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def _keepalive(req):
        conn = (_hget(req.headers, "connection") or "").lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def _read_body(self, rd, req, sink=False):
        h = hashlib.sha256()
        ver = BlockVerifier() if sink else None
        length = 0
        req.trailers = []

        def take(mv):
            nonlocal length
            length += len(mv)
            if ver is not None:
                ver.feed(mv)
            else:
                h.update(mv)

        te = _hget(req.headers, "transfer-encoding")
        cl = _hget(req.headers, "content-length")
        if te and "chunked" in te.lower():
            while True:
                line = rd.until(b"\r\n", limit=8192)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = rd.until(b"\r\n", limit=65536)
                        if t == b"\r\n":
                            break
                        req.trailers.append(t[:-2].decode("latin-1"))
                    break
                rd.stream(size, take)
                if rd.exact(2) != b"\r\n":
                    raise Closed()
        elif cl is not None:
            rd.stream(int(cl), take)
        req.body_len = length
        req.body_sha256 = h.hexdigest()
        if ver is not None:
            req.pattern_ok = ver.finish()

    # ---- responses ----
    def _send(self, c, status, reason, headers, body=b"", keep=True, head_only=False):
        hs = ["HTTP/1.1 %d %s" % (status, reason)]
        hs += ["%s: %s" % kv for kv in headers]
        hs.append("X-Origin: %s" % self.name)
        if not keep:
            hs.append("Connection: close")
        data = ("\r\n".join(hs) + "\r\n\r\n").encode("latin-1")
        if not head_only:
            data += body
        c.sendall(data)

    def _echo_doc(self, req):
        return {
            "origin": self.name,
            "port": req.port,
            "conn": req.conn,
            "idx": req.idx,
            "method": req.method,
            "target": req.target,
            "version": req.version,
            "headers": req.headers,
            "body_len": req.body_len,
            "body_sha256": req.body_sha256,
            "trailers": req.trailers,
            "resolved": req.resolved,
        }

    def _do_echo(self, c, rd, req, keep):
        body = json.dumps(self._echo_doc(req)).encode()
        self._send(c, 200, "OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))],
                   body, keep, head_only=req.method == "HEAD")

    def _do_redirect(self, c, rd, req, keep):
        to = req.q.get("to", "/")
        self._send(c, 302, "Found", [("Location", to), ("Refresh", "0; url=" + to),
                                     ("Content-Length", "0")], b"", keep)

    def _do_sink(self, c, rd, req, keep):
        body = json.dumps({"origin": self.name, "len": req.body_len,
                           "pattern_ok": req.pattern_ok}).encode()
        self._send(c, 200, "OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))], body, keep)

    def _do_download(self, c, rd, req, keep):
        n = int(req.q.get("n", "0"))
        mode = req.q.get("mode", "cl")
        chunk = int(req.q.get("chunk", "65536"))
        if mode == "chunked":
            self._send(c, 200, "OK", [("Content-Type", "application/octet-stream"),
                                      ("Transfer-Encoding", "chunked")], b"", keep)
            send_pattern(c, n, chunked=True, chunk=chunk)
        elif mode == "close":
            self._send(c, 200, "OK", [("Content-Type", "application/octet-stream")], b"", False)
            send_pattern(c, n)
            return False
        else:
            self._send(c, 200, "OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(n))], b"", keep)
            if req.method != "HEAD":
                send_pattern(c, n)
        return None

    def _do_trailers(self, c, rd, req, keep):
        n = int(req.q.get("n", "100000"))
        chunk = int(req.q.get("chunk", "7000"))
        body = gen_body(n, seed=7)
        self._send(c, 200, "OK", [("Content-Type", "application/octet-stream"),
                                  ("Transfer-Encoding", "chunked"),
                                  ("Trailer", "X-Body-Sha256")], b"", keep)
        out = bytearray()
        for i in range(0, n, chunk):
            part = body[i:i + chunk]
            out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
        out += b"0\r\nX-Body-Sha256: " + hashlib.sha256(body).hexdigest().encode() + b"\r\n\r\n"
        c.sendall(bytes(out))

    def _do_slow(self, c, rd, req, keep):
        if "align" in req.q:
            step = float(req.q["align"])
            time.sleep(step - time.time() % step)
        else:
            time.sleep(float(req.q.get("delay", "1")))
        return self._do_echo(c, rd, req, keep)

    def _do_silent(self, c, rd, req, keep):
        while not self.closed:
            try:
                c.settimeout(0.5)
                d = c.recv(65536)
                if not d:
                    return False
            except socket.timeout:
                continue
            except OSError:
                return False
        return False

    def _do_closehead(self, c, rd, req, keep):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Origin: %s\r\n\r\n0123456789"
                  % self.name.encode())
        time.sleep(0.1)
        return False

    def _do_status(self, c, rd, req, keep):
        code = int(req.q.get("code", "204"))
        reasons = {204: "No Content", 304: "Not Modified"}
        if code in (204, 304):
            hs = [("ETag", '"abc"')] if code == 304 else []
            self._send(c, code, reasons[code], hs, b"", keep)
        else:
            body = b"status %d\n" % code
            self._send(c, code, "Status", [("Content-Type", "text/plain"),
                                           ("Content-Length", str(len(body)))],
                       body, keep, head_only=req.method == "HEAD")

    def _do_sse(self, c, rd, req, keep):
        gap = float(req.q.get("gap", "1"))
        mode = req.q.get("mode", "chunked")
        ev1, ev2 = b"data: one\n\n", b"data: two\n\n"
        if mode == "chunked":
            self._send(c, 200, "OK", [("Content-Type", "text/event-stream"),
                                      ("Cache-Control", "no-cache"),
                                      ("Transfer-Encoding", "chunked")], b"", keep)
            c.sendall(b"%x\r\n%s\r\n" % (len(ev1), ev1))
            self.sse_release.wait(gap)
            self.sse_second_sent = True
            c.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(ev2), ev2))
            return None
        self._send(c, 200, "OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-cache")], b"", False)
        c.sendall(ev1)
        self.sse_release.wait(gap)
        self.sse_second_sent = True
        c.sendall(ev2)
        return False

    def _do_upgrade(self, c, rd, req, keep):
        offered = (_hget(req.headers, "upgrade") or "").split(",")[0].strip()
        proto = req.q.get("proto") or offered
        if not proto:
            return self._do_echo(c, rd, req, keep)
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n"
                   % proto).encode("latin-1"))
        if rd.buf:
            c.sendall(bytes(rd.buf))
            rd.buf.clear()
        c.settimeout(30)
        while True:
            d = c.recv(65536)
            if not d:
                try:
                    c.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return False
            self._count(len(d))
            c.sendall(d)

    def _do_ws(self, c, rd, req, keep):
        key = _hget(req.headers, "sec-websocket-key") or ""
        acc = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
        c.settimeout(60)
        while True:
            b0, b1 = rd.exact(2)
            opcode = b0 & 0x0F
            masked = b1 & 0x80
            ln = b1 & 0x7F
            if ln == 126:
                ln = int.from_bytes(rd.exact(2), "big")
            elif ln == 127:
                ln = int.from_bytes(rd.exact(8), "big")
            mask = rd.exact(4) if masked else b"\0\0\0\0"
            payload = bytearray(rd.exact(ln))
            if masked:
                m = (mask * (ln // 4 + 1))[:ln]
                payload = bytes(a ^ b for a, b in zip(payload, m)) if ln < 4096 else \
                    (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(ln, "big")
            payload = bytes(payload)
            if opcode == 9:  # ping -> pong
                opcode = 10
            hdr = bytes([0x80 | opcode if b0 & 0x80 else opcode])
            if ln < 126:
                hdr += bytes([ln])
            elif ln < 65536:
                hdr += bytes([126]) + ln.to_bytes(2, "big")
            else:
                hdr += bytes([127]) + ln.to_bytes(8, "big")
            c.sendall(hdr + payload)
            if opcode == 8:
                return False
