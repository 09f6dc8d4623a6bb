"""bench/pyorigin.py - the origin for chunked and close-delimited downloads
and for uploads in the body benchmarks (bench/bodies.sh, bench/dlcost.sh).

    python3 bench/pyorigin.py FILE PORT

Listens on 127.0.0.1:PORT. GET /close: FILE delimited by the close of the
connection; GET anything else: FILE chunked in 1 MiB chunks (sendfile
between the framing); POST /up: reads the whole body (Content-Length or
chunked) before it answers."""
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)

class Reader:
    def __init__(self, c, buf):
        self.c, self.buf, self.mv = c, bytearray(buf), memoryview(bytearray(1 << 20))
    def line(self):
        while b"\r\n" not in self.buf:
            n = self.c.recv_into(self.mv)
            if not n:
                raise EOFError
            self.buf += self.mv[:n]
        i = self.buf.index(b"\r\n")
        out = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return out
    def skip(self, n):
        take = min(n, len(self.buf))
        del self.buf[:take]
        n -= take
        while n:
            got = self.c.recv_into(self.mv, min(n, len(self.mv)))
            if not got:
                raise EOFError
            n -= got

def sink(c, head, rest):
    """Read the whole upload, then answer: a sink that does not answer
    early, so every byte goes through the proxy."""
    r = Reader(c, rest)
    h = head.lower()
    if b"transfer-encoding: chunked" in h:
        while True:
            n = int(r.line().split(b";")[0], 16)
            if n == 0:
                while r.line():
                    pass
                break
            r.skip(n + 2)
    else:
        r.skip(int(h.split(b"content-length:")[1].split(b"\r\n")[0]))
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")

def serve(c):
    with c:
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        target = head.split(b"\r\n", 1)[0].split(b" ")[1]
        if target == b"/up":
            if b"100-continue" in head.lower():
                c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            return sink(c, head, rest)
        close = target == b"/close"
        fd = os.open(path, os.O_RDONLY)
        try:
            if close:
                c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            off = 0
            while off < size:
                n = min(1 << 20, size - off)
                if not close:
                    c.sendall(b"%x\r\n" % n)
                left = n
                while left:
                    left -= os.sendfile(c.fileno(), fd, off + n - left, left)
                if not close:
                    c.sendall(b"\r\n")
                off += n
            if not close:
                c.sendall(b"0\r\n\r\n")
        finally:
            os.close(fd)

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
