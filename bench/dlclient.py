"""bench/dlclient.py - one download, read and dropped, with what it cost the
client: for bench/dlcost.sh.

    python3 bench/dlclient.py PORT HOST PATH

Prints one line: bytes, seconds, the client's CPU-seconds (user + system,
from getrusage) and the segments its socket received (TCP_INFO
tcpi_segs_in, counted by the kernel). Exits non-zero on an answer other
than a 200 or a cut body (a Content-Length not reached)."""
import resource
import socket
import struct
import sys
import time

port, host, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
          % (path.encode(), host.encode()))
buf = bytearray(1 << 20)
mv = memoryview(buf)
head = b""
n = 0
while True:
    k = s.recv_into(mv)
    if not k:
        break
    if head is not None:
        head += bytes(mv[:k])
        end = head.find(b"\r\n\r\n")
        if end < 0:
            continue
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            sys.exit("dlclient: %r" % status)
        cl = [int(l.split(b":", 1)[1]) for l in head[:end].split(b"\r\n")
              if l.lower().startswith(b"content-length:")]
        n = len(head) - end - 4
        head = None
    else:
        n += k
t = time.monotonic() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
ti = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
segs_in, = struct.unpack_from("I", ti, 140)  # tcpi_segs_in
if cl and n != cl[0]:
    sys.exit("dlclient: %d of %d body bytes" % (n, cl[0]))
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(n, "%.6f" % t, "%.6f" % cpu, segs_in)
