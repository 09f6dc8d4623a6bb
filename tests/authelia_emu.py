#!/usr/bin/python3
"""authelia_emu.py - an emulation of Authelia's authz endpoints for tests.

Authelia is not packaged for Debian, so the forward-auth tests run against
this emulation of its documented proxy protocol (Authelia's "Proxy
Authorization" reference guide and its handlers for the endpoints below):

  GET|HEAD /api/authz/forward-auth   target from X-Forwarded-{Method,Proto,Host,Uri}
  GET|HEAD /api/authz/auth-request   target from X-Original-{Method,URL}
  any      /api/verify               legacy: X-Original-URL, else X-Forwarded-*

Identity, in Authelia's default order: `Authorization: Basic` (static users),
then the `authelia_session` cookie (static sessions). Access rules map
(host, path prefix) to bypass / one_factor / deny; the default is one_factor.
Answers:
  200 `200 OK` with Remote-User, Remote-Groups, Remote-Name, Remote-Email
      (no Remote-* for an anonymous bypass);
  403 `403 Forbidden` for a deny rule;
  not logged in: Location https://auth.example.com/?rd=<target>&rm=<method>
      with a fresh Set-Cookie; 302 (303 for other methods) on forward-auth
      and legacy when Accept takes text/html and X-Requested-With is not
      XMLHttpRequest, else 401; always 401 on auth-request; no body for HEAD;
  bad Basic credentials: 401 with WWW-Authenticate: Basic realm=...;
  400 `400 Bad Request` for a malformed target: a method that is not
      upper-case letters, a scheme other than https/wss, a host outside the
      cookie domain, a missing X-Forwarded-Host (legacy answers 401).
Test hooks: paths /hang (never answers), /reset (closes at once), /status/N
(answers N), /huge (an oversized head), /allowcookie (200 with Remote-User
dave, a Set-Cookie, another header and a body); every request is recorded with its
headers, and connections are counted, so tests can check what portico sent
and that it reuses connections.
"""

import base64
import socket
import threading
import time
import urllib.parse

COOKIE = "authelia_session"
COOKIE_DOMAIN = "example.com"
PORTAL = "https://auth.example.com/"

SESSIONS = {
    "alice-session": {"user": "alice", "groups": ["admins", "dev"], "name": "Alice Liddell",
                      "email": "alice@example.com"},
    "bob-session": {"user": "bob", "groups": ["users"], "name": "Bob", "email": ""},
}
BASIC = {"carol": ("secret", {"user": "carol", "groups": ["users"], "name": "Carol",
                              "email": "carol@example.com"})}
# (host, path prefix, policy); first match wins; default one_factor.
RULES = [
    ("*", "/public", "bypass"),
    ("*", "/admin", "deny"),
]


class Authelia:
    def __init__(self, rules=None, sessions=None, tls=None):
        """tls: (cert, key) to serve HTTPS instead of HTTP."""
        self.rules = RULES if rules is None else rules
        self.tls = None
        if tls:
            import ssl
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.sessions = SESSIONS if sessions is None else sessions
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.requests = []     # (method, target, [(name, value)], body bytes)
        self.connections = 0
        self.lock = threading.Lock()
        self.open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.open):
            try:
                c.close()
            except OSError:
                pass

    def count(self, path_prefix="/api"):
        with self.lock:
            return sum(1 for r in self.requests if r[1].startswith(path_prefix))

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    # ---- HTTP/1.1 server, keep-alive ------------------------------------------------

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            if self.tls:
                try:
                    c = self.tls.wrap_socket(c, server_side=True)
                except OSError:
                    c.close()
                    continue
            self.open.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = []
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.append((k, v.strip()))
                clen = int(self._get(headers, "content-length") or 0)
                while len(buf) < clen:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:clen], buf[clen:]
                with self.lock:
                    self.requests.append((method, target, headers, body))
                if target.startswith("/hang"):
                    time.sleep(3600)
                    return
                if target.startswith("/reset"):
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    return
                status, extra, rbody = self._answer(method, target, headers)
                reason = {200: "OK", 302: "Found", 303: "See Other", 400: "Bad Request",
                          401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}
                out = "HTTP/1.1 %d %s\r\n" % (status, reason.get(status, "Status"))
                for k, v in extra:
                    out += "%s: %s\r\n" % (k, v)
                out += "Content-Length: %d\r\n\r\n" % len(rbody)
                c.sendall(out.encode("latin-1") + rbody)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def _get(headers, name):
        for k, v in headers:
            if k.lower() == name:
                return v
        return None

    # ---- Authelia's decision -----------------------------------------------------------

    def _answer(self, method, target, headers):
        path = target.split("?", 1)[0]
        text = [("Content-Type", "text/plain; charset=utf-8")]
        if path.startswith("/status/"):
            return int(path[8:11]), text, b"status from the test hook"
        if path.startswith("/huge"):
            return 200, [("X-Filler", "x" * 60000)], b""
        if path.startswith("/allowcookie"):
            return 200, [("Remote-User", "dave"), ("Set-Cookie", "provider=1; Path=/"),
                         ("X-Provider-Extra", "1")] + text, b"a body the upstream never sees"
        if path in ("/api/authz/forward-auth", "/api/authz/auth-request"):
            if method not in ("GET", "HEAD"):
                return 405, text, b"405 Method Not Allowed"
            style = "forward-auth" if path.endswith("forward-auth") else "auth-request"
        elif path.startswith("/api/verify"):
            style = "legacy"
        else:
            return 404, text, b"404 Not Found"
        bad = 401 if style == "legacy" else 400
        g = lambda n: self._get(headers, n)  # noqa: E731
        if style == "auth-request":
            tmethod, url = g("x-original-method"), g("x-original-url")
            if not tmethod or not url:
                return bad, text, b"400 Bad Request"
        elif style == "legacy" and g("x-original-url"):
            url = g("x-original-url")
            tmethod = g("x-forwarded-method") or method
        else:
            tmethod = g("x-forwarded-method") or ("" if style == "forward-auth" else method)
            host = g("x-forwarded-host")
            proto = g("x-forwarded-proto") or "http"
            if not host:
                return bad, text, b"400 Bad Request"
            url = "%s://%s%s" % (proto, host, g("x-forwarded-uri") or "")
        if not tmethod or not tmethod.isalpha() or not tmethod.isupper():
            return bad, text, b"400 Bad Request"
        u = urllib.parse.urlsplit(url)
        hostname = (u.hostname or "")
        if "\0" in url or u.scheme not in ("https", "wss") or not (
                hostname == COOKIE_DOMAIN or hostname.endswith("." + COOKIE_DOMAIN)):
            return bad, text, b"400 Bad Request"
        policy = "one_factor"
        for rhost, prefix, pol in self.rules:
            if (rhost == "*" or rhost == hostname) and (u.path or "/").startswith(prefix):
                policy = pol
                break

        ident = None
        auth = g("authorization")
        if auth and auth.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = "", None
            entry = BASIC.get(user)
            if not entry or entry[0] != pw:
                return 401, text + [("WWW-Authenticate", 'Basic realm="Authorization Required"')], \
                    b"401 Unauthorized"
            ident = entry[1]
        if ident is None:
            for cookie in [v for k, v in headers if k.lower() == "cookie"]:
                for part in cookie.split(";"):
                    k, _, v = part.strip().partition("=")
                    if k == COOKIE and v in self.sessions:
                        ident = self.sessions[v]
        if policy == "bypass":
            return 200, self._identity(ident) + text, b"200 OK"
        if policy == "deny":
            return 403, text, b"403 Forbidden"
        if ident is not None:
            return 200, self._identity(ident) + text, b"200 OK"
        # Not logged in: the redirect flow.
        location = PORTAL + "?" + urllib.parse.urlencode(sorted({"rd": url, "rm": tmethod}.items()))
        accept = g("accept") or ""
        xhr = (g("x-requested-with") or "").lower() == "xmlhttprequest"
        html = "text/html" in accept or accept.split(",")[0].strip().startswith("*/*")
        if style == "auth-request" or xhr or not html:
            status = 401
        else:
            status = 302 if tmethod in ("GET", "HEAD", "OPTIONS") else 303
        cookie = ("%s=fresh-%d; Domain=%s; Path=/; HttpOnly; Secure; SameSite=Lax"
                  % (COOKIE, len(self.requests), COOKIE_DOMAIN))
        extra = [("Location", location), ("Set-Cookie", cookie),
                 ("Set-Cookie", "authelia_flow=x; Path=/; HttpOnly"),
                 ("Content-Type", "text/html; charset=utf-8")]
        body = b"" if tmethod == "HEAD" else (
            '<a href="%s">%d %s</a>' % (location.replace("&", "&amp;"), status,
                                       {302: "Found", 303: "See Other"}.get(status, "Unauthorized"))
        ).encode()
        return status, extra, body

    @staticmethod
    def _identity(ident):
        if ident is None:
            return []
        return [("Remote-User", ident["user"]), ("Remote-Groups", ",".join(ident["groups"])),
                ("Remote-Name", ident["name"]), ("Remote-Email", ident["email"])]


if __name__ == "__main__":
    a = Authelia()
    print("authelia emulation on %s" % a.url, flush=True)
    threading.Event().wait()
