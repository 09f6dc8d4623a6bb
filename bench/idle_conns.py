#!/usr/bin/env python3
"""bench/idle_conns.py - hold N idle keep-alive connections to a proxy.

Opens N connections to 127.0.0.1:PORT (plain, or TLS with --tls), sends one
GET /small on each (Host rotating over svc00 ... svc63.example.test), reads
the whole response, and keeps every connection open and idle. Once all are
answered it writes "ok=N err=N" to --ready, then waits until --release
exists (or --hold seconds pass) and closes them with a reset (SO_LINGER 0),
so no TIME_WAIT piles up. Bounded by --deadline seconds overall.
Prints "ok err" at the end.
"""
import argparse
import errno
import os
import resource
import selectors
import socket
import ssl
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--ready", required=True)
    ap.add_argument("--release", required=True)
    ap.add_argument("--hold", type=float, default=60.0)
    ap.add_argument("--deadline", type=float, default=180.0)
    a = ap.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.n + 100 > hard:
        sys.exit(f"idle_conns: the fd limit {hard} is too low for {a.n} connections")
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    t_end = time.monotonic() + a.deadline
    sel = selectors.DefaultSelector()
    held, ok, err, made = [], 0, 0, 0

    def fail(s):
        nonlocal err
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        err += 1

    while made < a.n and time.monotonic() < t_end:
        pending = {}
        batch = min(a.batch, a.n - made)
        for k in range(batch):
            host = f"svc{(made + k) % 64:02d}.example.test"
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            if s.connect_ex(("127.0.0.1", a.port)) not in (0, errno.EINPROGRESS):
                s.close()
                err += 1
                continue
            st = {"req": f"GET /small HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), "buf": b"",
                  "phase": "connect", "host": host}
            pending[s] = st
            sel.register(s, selectors.EVENT_WRITE, st)
        made += batch
        while pending and time.monotonic() < t_end:
            for key, _ in sel.select(timeout=1.0):
                s, st = key.fileobj, key.data
                try:
                    if st["phase"] == "connect":
                        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if e:
                            raise OSError(e, os.strerror(e))
                        if ctx:
                            t = ctx.wrap_socket(s, server_hostname=st["host"],
                                                do_handshake_on_connect=False)
                            sel.unregister(s)
                            del pending[s]
                            s = t
                            pending[s] = st
                            sel.register(s, selectors.EVENT_WRITE, st)
                            st["phase"] = "handshake"
                        else:
                            st["phase"] = "send"
                    if st["phase"] == "handshake":
                        try:
                            s.do_handshake()
                        except ssl.SSLWantReadError:
                            sel.modify(s, selectors.EVENT_READ, st)
                            continue
                        except ssl.SSLWantWriteError:
                            sel.modify(s, selectors.EVENT_WRITE, st)
                            continue
                        st["phase"] = "send"
                    if st["phase"] == "send":
                        s.send(st["req"])  # small: fits the socket buffer
                        st["phase"] = "recv"
                        sel.modify(s, selectors.EVENT_READ, st)
                        continue
                    while True:
                        try:
                            chunk = s.recv(65536)
                        except (ssl.SSLWantReadError, BlockingIOError):
                            break
                        if not chunk:
                            raise OSError("closed before the whole response")
                        st["buf"] += chunk
                    b = st["buf"]
                    end = b.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    head = b[:end].decode("latin-1").lower()
                    clen = 0
                    for line in head.split("\r\n")[1:]:
                        if line.startswith("content-length:"):
                            clen = int(line.split(":", 1)[1])
                    if len(b) - end - 4 < clen:
                        continue
                    sel.unregister(s)
                    del pending[s]
                    if head.startswith("http/1.1 200"):
                        ok += 1
                        held.append(s)
                    else:
                        s.close()
                        err += 1
                except (OSError, ssl.SSLError):
                    del pending[s]
                    fail(s)
        for s in list(pending):
            fail(s)
    with open(a.ready + ".tmp", "w") as f:
        f.write(f"ok={ok} err={err}\n")
    os.rename(a.ready + ".tmp", a.ready)
    t_hold = min(time.monotonic() + a.hold, t_end)
    while time.monotonic() < t_hold and not os.path.exists(a.release):
        time.sleep(0.1)
    for s in held:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        s.close()
    print(ok, err)


if __name__ == "__main__":
    main()
