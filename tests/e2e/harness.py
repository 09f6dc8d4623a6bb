"""harness.py - start and drive the real portico binary for the e2e tests.

Portico(binary, config, workdir) writes the config (a dict, dumped as YAML
text, or a string) to workdir/portico.yaml, starts `portico run -c`, waits
until the listener accepts, and collects stderr lines in a thread. It can
send SIGHUP/SIGTERM, read VmRSS, wait for log lines, and stop() checks the
exit status and sanitizer reports.

Ports: portico listens on 127.0.0.1:0 and logs one `msg="listening"` line
per socket with the port it got (Portico.port, .ports, .tcp_ports,
.metrics_port come from those lines). No port is ever chosen by binding,
closing and binding again: test servers bind 0 and keep their socket, and a
port that must refuse connections is one the test keeps bound without
listening (dead_port), and a port that must be known before portico starts
comes from fixed_port (below the ephemeral range).

Also: a minimal YAML emitter, raw-socket HTTP helpers.
"""

import atexit
import fcntl
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ASAN = os.environ.get("PORTICO_ASAN") == "1"
SCALE = 4.0 if ASAN else 1.0  # multiply timeouts by this under ASan

SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                          r"WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined)")


def dead_port_socket():
    """A socket bound to a loopback port and never listening: connections to
    its port are refused, and while it stays open nothing else can bind the
    port (no SO_REUSEADDR). Close it when done (Ctx.dead_port does)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def fixed_port():
    """A loopback port for an address that must be written into a
    configuration before portico binds it (`portico tailscale apply` reads
    it from the file). It is chosen below the kernel's ephemeral range, so no
    bind to port 0 and no outgoing connection (another test's, or anyone's)
    can take it meanwhile, as they could a port found by binding port 0 and
    closing; it is free (nothing bound to it) when chosen."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    lo, hi = max(1024, low - 12000), low - 1
    for _ in range(200):
        port = random.randint(lo, hi)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise AssertionError("no free loopback port between %d and %d" % (lo, hi))


def port_of(addr):
    """The port of "127.0.0.1:43211" or "[::1]:43211"; None for "unix:/path"."""
    if addr.startswith("unix:"):
        return None
    return int(addr.rsplit(":", 1)[1])


# ---------------------------------------------------------------- YAML

_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./:@\-]*\Z")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED and not re.match(r"[0-9.+-]+\Z", s):
        return s
    return json.dumps(s)


def to_yaml(obj, indent=0):
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _scalar(k)
            if isinstance(v, dict):
                if not v:
                    lines.append("%s%s: {}" % (pad, key))
                else:
                    lines.append("%s%s:" % (pad, key))
                    lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list):
                if not v:
                    lines.append("%s%s: []" % (pad, key))
                elif all(not isinstance(i, (dict, list)) for i in v):
                    lines.append("%s%s: [%s]" % (pad, key, ", ".join(_scalar(i) for i in v)))
                else:
                    lines.append("%s%s:" % (pad, key))
                    lines.append(to_yaml(v, indent + 2))
            else:
                lines.append("%s%s: %s" % (pad, key, _scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)):
                sub = to_yaml(item, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0].lstrip()
                lines.extend(sub)
            else:
                lines.append("%s- %s" % (pad, _scalar(item)))
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


# ---------------------------------------------------------------- config

def base_limits():
    return {
        "header_timeout": "%ds" % int(5 * SCALE),
        "shutdown_timeout": "%ds" % int(3 * SCALE),
    }


def make_config(services, limits=None, metrics=False, domain=None, workers=2):
    """A configuration listening on 127.0.0.1:0 (and metrics on another
    port 0): portico reports the ports it got."""
    cfg = {}
    if domain:
        cfg["domain"] = domain
    cfg["workers"] = workers
    cfg["listen"] = [{"addr": "127.0.0.1:0"}]
    lim = base_limits()
    lim.update(limits or {})
    cfg["limits"] = lim
    if metrics:
        cfg["metrics"] = {"listen": "127.0.0.1:0"}
    cfg["services"] = services
    return cfg


def sanitizer_env():
    env = dict(os.environ)
    if ASAN:
        # A small quarantine: freed blocks (OpenSSL frees its record buffers
        # whenever they drain) would otherwise pile up to 256 MiB and hide
        # what the RSS checks measure.
        env.setdefault("ASAN_OPTIONS",
                       "detect_leaks=1:abort_on_error=0:exitcode=99:quarantine_size_mb=8")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


# ---------------------------------------------------------------- portico

_ALL = []  # every portico process started, killed at exit whatever happens


def kill_all():
    for pr in list(_ALL):
        try:
            if pr.poll() is None:
                pr.kill()
                pr.wait(5)
        except Exception:
            pass


atexit.register(kill_all)


# argv[1]: the fds to hand over, comma-separated; argv[2:]: the command.
_MOVE_FDS_AND_EXEC = """
import fcntl, os, sys
src = [int(f) for f in sys.argv[1].split(",")]
n = len(src)
tmp = [fcntl.fcntl(f, fcntl.F_DUPFD, 3 + n) for f in src]
for i, t in enumerate(tmp):
    os.dup2(t, 3 + i, inheritable=True)
for t in tmp:
    os.close(t)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execvp(sys.argv[2], sys.argv[2:])
"""


class Portico:
    """A portico process. After start() (and reload()), the ports it bound
    are known from its "listening" log lines: port (the first listen
    entry), ports (every listen entry, in file order), tcp_ports (TCP
    forwarder name -> port) and metrics_port (None without metrics)."""

    def __init__(self, binary, config, workdir, name="portico"):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.path = os.path.join(workdir, name + ".yaml")
        self.port = None
        self.ports = []
        self.tcp_ports = {}
        self.metrics_port = None
        self.proc = None
        self.lines = []
        self.lock = threading.Lock()
        self.rc = None
        self.problems = []
        self.wrap = []  # a command prefix (e.g. a private mount namespace), exec'ing portico
        self.env = {}   # environment variables added for portico (NOTIFY_SOCKET, ...)
        self.write_config(config)

    def write_config(self, config):
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)
        self.config_text = text

    def start(self, wait=True, timeout=None, fds=None, fdnames=None):
        """Start portico; with wait, return once it logged that it serves
        (every listener accepts by then), with the ports it bound.

        fds: listening sockets (fd numbers) handed over as systemd does
        (socket activation): they become fds 3.. in the child, with
        LISTEN_FDS, optional LISTEN_FDNAMES, and LISTEN_PID set by a shell
        that then execs portico (so the pid is portico's)."""
        args = self.wrap + [self.binary, "run", "-c", self.path]
        env = sanitizer_env()
        env.update(self.env)
        kw = {}
        if fds is not None:
            srcs = list(fds)
            # The fds are moved to 3.. by a small Python program that then
            # execs portico in its own process (so LISTEN_PID is portico's):
            # moving them in a preexec_fn would race with the fds Popen
            # itself keeps open in the child (its error pipe, pass_fds).
            args = [sys.executable, "-c", _MOVE_FDS_AND_EXEC, ",".join(map(str, srcs))] + args
            env["LISTEN_FDS"] = str(len(srcs))
            if fdnames:
                env["LISTEN_FDNAMES"] = ":".join(fdnames)
            kw = {"pass_fds": tuple(srcs)}
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, **kw)
        _ALL.append(self.proc)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if wait:
            self.wait_ready(timeout or 10 * SCALE)
        return self

    def _read_stderr(self):
        log = open(os.path.join(self.workdir, self.name + ".stderr"), "wb")
        for raw in self.proc.stderr:
            log.write(raw)
            log.flush()
            with self.lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        log.close()

    def _take_ports(self, lines):
        """Ports from the "listening" lines among lines (one start or reload)."""
        http, tcp, metrics = [], {}, None
        for l in lines:
            f = log_parse(l)
            if f.get("msg") != "listening":
                continue
            if f["addr"].startswith("unix:"):
                continue   # a Unix socket has no port; tests know its path
            kind, port = f.get("listener"), port_of(f["addr"])
            if kind == "http":
                http.append(port)
            elif kind == "tcp":
                tcp[f["name"]] = port
            elif kind == "metrics":
                metrics = port
        self.ports = http
        self.port = http[0] if http else None
        self.tcp_ports = tcp
        self.metrics_port = metrics

    def wait_ready(self, timeout=10.0):
        end = time.time() + timeout
        while True:
            lines = self.stderr()
            for i, l in enumerate(lines):
                if _msg(l).startswith("portico ") and " serving " in _msg(l):
                    self._take_ports(lines[:i])
                    return
            if self.proc.poll() is not None:
                time.sleep(0.1)
                raise AssertionError("portico exited with %s before serving; stderr: %s"
                                     % (self.proc.returncode, " | ".join(self.stderr()[-8:])))
            if time.time() > end:
                raise AssertionError("portico not serving after %.0fs; stderr: %s"
                                     % (timeout, " | ".join(self.stderr()[-8:])))
            time.sleep(0.02)

    def reload(self, timeout=None):
        """SIGHUP and wait for the outcome of this signal's reload (the first
        one after its "SIGHUP received" line, not one a certificate change
        started): returns the "configuration reloaded" line (the ports are
        read again from the lines before it) or the "reload refused" line."""
        timeout = timeout or 5 * SCALE
        end = time.time() + timeout
        n = self.nlines()
        self.hup()
        while True:
            lines = self.stderr()
            got = [i for i in range(n, len(lines)) if _msg(lines[i]).startswith("SIGHUP received")]
            if got:
                for i in range(got[0] + 1, len(lines)):
                    if "configuration reloaded" in lines[i]:
                        self._take_ports(lines[got[0] + 1:i])
                        return lines[i]
                    if "reload refused" in lines[i]:
                        return lines[i]
            if time.time() > end:
                raise AssertionError("no reload outcome logged within %.0fs of SIGHUP; stderr: %s"
                                     % (timeout, " | ".join(lines[n:][-8:])))
            time.sleep(0.02)

    def stderr(self):
        with self.lock:
            return list(self.lines)

    def nlines(self):
        with self.lock:
            return len(self.lines)

    def wait_line(self, pred, timeout=5.0, start=0):
        """First stderr line (from index start) for which pred(line) (or substring) holds."""
        if isinstance(pred, str):
            sub = pred
            pred = lambda l: sub in l  # noqa: E731
        end = time.time() + timeout
        while True:
            for l in self.stderr()[start:]:
                if pred(l):
                    return l
            if time.time() > end:
                return None
            time.sleep(0.02)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def term(self):
        self.signal(signal.SIGTERM)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def wait_exit(self, timeout):
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(2)
        return self.rc

    def stop(self, timeout=None):
        """SIGTERM and wait. Returns a list of problems (empty when it exited 0
        cleanly without sanitizer reports)."""
        if self.proc is None:
            return []
        timeout = timeout or 10 * SCALE
        if self.proc.poll() is None:
            try:
                self.term()
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                self.problems.append("did not exit within %.0fs of SIGTERM" % timeout)
                self.proc.kill()
                self.proc.wait(5)
        self.rc = self.proc.returncode
        self.reader.join(3)
        if self.rc != 0 and not any("exit" in p for p in self.problems):
            self.problems.append("exit status %s after SIGTERM" % self.rc)
        reports = [l for l in self.stderr() if SANITIZER_RE.search(l)]
        if reports:
            self.problems.append("sanitizer report: " + " | ".join(reports[:3]))
        return self.problems

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def run_check(binary, path, timeout=20):
    p = subprocess.run([binary, "check", "-c", path], capture_output=True, text=True,
                       timeout=timeout * SCALE, env=sanitizer_env())
    return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------- logfmt

def log_parse(line):
    """The fields of a log line in either format: a JSON object (access_log:
    {format: json}) or logfmt."""
    if line.startswith("{"):
        try:
            return json.loads(line)
        except ValueError:
            return {}
    return logfmt_parse(line)


def _msg(line):
    """The msg of an operational line, "" for any other line. Cheap on the
    lines that cannot be one."""
    if 'msg"' not in line and "msg=" not in line:
        return ""
    m = log_parse(line).get("msg")
    return m if isinstance(m, str) else ""


def logfmt_parse(line):
    """key=value pairs; quoted values unescaped (\\" \\\\ \\xHH)."""
    out = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        j = i
        while j < n and line[j] not in "= ":
            j += 1
        key = line[i:j]
        if j >= n or line[j] != "=":
            if key:
                out[key] = True
            i = j
            continue
        j += 1
        if j < n and line[j] == '"':
            j += 1
            val = []
            while j < n and line[j] != '"':
                if line[j] == "\\" and j + 1 < n:
                    c = line[j + 1]
                    if c == "x" and j + 3 < n:
                        val.append(chr(int(line[j + 2:j + 4], 16)))
                        j += 4
                        continue
                    val.append({"n": "\n", "t": "\t", "r": "\r"}.get(c, c))
                    j += 2
                    continue
                val.append(line[j])
                j += 1
            out[key] = "".join(val)
            i = j + 1
        else:
            k = j
            while k < n and line[k] != " ":
                k += 1
            out[key] = line[j:k]
            i = k
    return out


# ---------------------------------------------------------------- HTTP helpers

class Response:
    def __init__(self, status, reason, headers, body, version="HTTP/1.1", raw_head=b""):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.version = version
        self.raw_head = raw_head
        self.trailers = []

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:120])


class RawConn:
    """A client socket with a read buffer and an HTTP/1.1 response parser."""

    def __init__(self, port, timeout=5.0, sock=None):
        """sock: use this connected socket (a TLS one, say) instead of connecting to port."""
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if not sock:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed by portico")
        d = self.sock.recv(1 << 20)
        if not d:
            self.eof = True
            raise EOFError("connection closed by portico")
        self.buf += d

    def until(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            self._fill()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_head(self):
        head = self.until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        first = lines[0].decode("latin-1")
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError("bad status line %r" % first)
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            headers.append((k, v.strip()))
        return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, b"",
                        parts[0], head)

    def read_response(self, method="GET", skip_100=True):
        while True:
            r = self.read_head()
            if r.status == 100 and skip_100:
                continue
            break
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te and "chunked" in te.lower():
            body = bytearray()
            while True:
                line = self.until(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.until(b"\r\n")
                        if t == b"\r\n":
                            break
                        r.trailers.append(t[:-2].decode("latin-1"))
                    break
                body += self.exact(size)
                if self.exact(2) != b"\r\n":
                    raise AssertionError("bad chunk framing from portico")
            r.body = bytes(body)
        elif cl is not None:
            r.body = self.exact(int(cl))
        else:
            r.body = self.read_to_eof()
        return r

    def closed_within(self, timeout):
        """True if the peer closes (EOF or reset) within timeout, ignoring data."""
        end = time.time() + timeout
        while time.time() < end:
            self.sock.settimeout(max(0.01, end - time.time()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not d:
                self.eof = True
                return True
            self.buf += d
        return False


def raw_exchange(port, data, timeout=5.0):
    """Send data, read until the peer closes or timeout. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        out = bytearray()
        end = time.time() + timeout
        closed = False
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not d:
                closed = True
                break
            out += d
        return bytes(out), closed
    finally:
        s.close()


def status_of(data):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def request(port, method="GET", path="/", host="a.test", headers=None, body=None, timeout=5.0,
            conn=None):
    """One request with http.client; returns a Response. If conn (an
    http.client.HTTPConnection) is given it is reused (keep-alive)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hs = {"Host": host}
    hs.update(headers or {})
    conn.request(method, path, body=body, headers=hs)
    r = conn.getresponse()
    data = r.read()
    resp = Response(r.status, r.reason, r.getheaders(), data)
    if own:
        conn.close()
    return resp


def get_json(port, path="/", host="a.test", **kw):
    r = request(port, "GET", path, host, **kw)
    if r.status != 200:
        raise AssertionError("%s %s -> %d %r" % (host, path, r.status, r.body[:200]))
    return r.json()
