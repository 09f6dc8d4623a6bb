#!/usr/bin/python3
"""authelia_emu.py - an emulation of Authelia's authz endpoints for tests.

Authelia is not packaged for Debian, so the forward-auth tests run against
this emulation. It follows Authelia v4.39.20 (AUTHELIA_VERSION), read from
its source: internal/handlers/handler_authz*.go, internal/middlewares/
authelia_context.go, timing_attack_delay.go and wrap.go, internal/
configuration/schema/server.go and internal/server/handlers.go. Where
portico can tell the difference it behaves like that version:

  GET|HEAD /api/authz/forward-auth  target from X-Forwarded-{Method,Proto,Host,Uri};
                                    other methods 405
  GET|HEAD /api/authz/auth-request  target from X-Original-{Method,URL}
  any      /api/verify[/...]        legacy: X-Original-URL, else X-Forwarded-*
                                    (Host and the request-URI as fallbacks)

The configuration it stands for: one session cookie domain (example.com,
cookie authelia_session, authelia_url https://auth.example.com/), static
sessions and Basic users, access rules (domain, domain_regex, resources,
networks; first match wins) with default_policy one_factor, and the
default authn strategies of schema.DefaultServerConfiguration:
`Authorization: Basic` then the session cookie on the modern endpoints,
`Proxy-Authorization: Basic` (or `Authorization` with `?auth=basic`) then
the cookie on /api/verify.

Behaviours that matter to a proxy:
  * 400 `400 Bad Request` when the target cannot be judged: a method that is
    not A-Z only, a URL that does not parse, a scheme other than https/wss,
    a host outside the cookie domain (compared as sent, case and all), an
    `authelia_url` query whose host is outside the cookie domain; legacy
    answers 401 for all of these.
  * Rules see the host exactly as sent: `domain` compares without case
    (EqualFold; wildcards too since 4.39.20), `domain_regex` is a regular
    expression on the host as sent. A proxy must lower-case the host
    (CVE-2026-48794 class). Resources match the cleaned, decoded path with
    its query; networks match the leftmost X-Forwarded-For, else the peer.
  * A failed Basic attempt (unknown user or wrong password) is answered
    after at least 2 s plus up to 85 ms of jitter (the timing-attack delay);
    a successful one at once. On a bypass rule a failed attempt is ignored
    and the answer is 200.
  * Accept is matched by media type (`text/html` anywhere, `*/*` only
    first), X-Requested-With: XMLHttpRequest case-insensitively.
  * Not logged in: Location <authelia_url>?rd=<target>&rm=<method> with a
    fresh session Set-Cookie and an HTML body (none for HEAD); 302 for
    GET/HEAD/OPTIONS, 303 otherwise, 401 for XHR or non-HTML clients; always
    401 on auth-request. Legacy without `rd` (or X-Authelia-URL) has no
    portal: a plain 401.
  * 200 `200 OK` with Remote-User/-Groups/-Name/-Email (none when anonymous);
    403 `403 Forbidden` on deny; Basic failure: 401 with
    WWW-Authenticate: Basic realm="Authorization Required".
  * Idle keep-alive connections are closed after idle_timeout (Authelia's
    server.timeouts.idle, 30 s by default; tests set it short).

Test hooks, not Authelia behaviour (each says so where it is implemented):
paths /hang (never answers), /reset (closes at once), /status/N (answers N),
/huge (an oversized head), /allowcookie (200 with Remote-User dave, a
Set-Cookie, another header and a body), /allowcustom (200 with repeated and
oversized headers for copy_headers), /body/STATUS/N/FRAMING (a body of N
bytes, framed by length, chunked or close), /garbage/KIND (an answer that
does not parse); second_cookie=True (a second Set-Cookie on redirects, to
test that several are relayed); idle_race=True (see __init__). Every
request is recorded with its headers, connections and TLS SNI names are
counted, so tests can check what portico sent and that it reuses
connections.
"""

import base64
import html
import ipaddress
import random
import re
import socket
import threading
import time
import urllib.parse

AUTHELIA_VERSION = "4.39.20"

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
# Access rules as in Authelia's access_control.rules: the first that matches
# wins; keys domain / domain_regex / resources / networks / methods, policy.
RULES = [
    {"resources": [r"^/public"], "policy": "bypass"},
    {"resources": [r"^/admin"], "policy": "deny"},
]
DEFAULT_POLICY = "one_factor"

BASIC_FAIL_DELAY = 2.0   # middlewares.NewTimingAttackDelay(..., 2s).SetMinimumDelayDuration(2s)
BASIC_FAIL_JITTER = 0.085
IDLE_TIMEOUT = 30.0      # schema.DefaultServerConfiguration.Timeouts.Idle
READ_TIMEOUT = 6.0       # schema.DefaultServerConfiguration.Timeouts.Read

REASONS = {200: "OK", 302: "Found", 303: "See Other", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class BadTarget(Exception):
    """The target or portal URL cannot be judged: 400 (legacy: 401)."""


def _parse_request_uri(raw):
    """Go's url.ParseRequestURI, as far as proxies can reach it: an absolute
    URL with a host, no control bytes, valid escapes, a numeric port. The
    scheme is lower-cased, the host kept as sent."""
    if not raw or any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in raw):
        raise BadTarget("control byte in %r" % raw)
    u = urllib.parse.urlsplit(raw)
    if not u.scheme or not u.netloc or "#" in raw:
        raise BadTarget("not an absolute URL: %r" % raw)
    if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
        raise BadTarget("invalid escape in %r" % raw)
    hostport = u.netloc.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if port and not port.isdigit():
        raise BadTarget("invalid port in %r" % raw)
    if not re.fullmatch(r"[A-Za-z0-9.\-_~:%!$&'()*+,;=]*", host):
        raise BadTarget("invalid host in %r" % raw)
    return u._replace(scheme=u.scheme.lower()), host


def _has_domain_suffix(host, domain):
    """utils.HasDomainSuffix: exact, case-sensitive."""
    return host == domain or host.endswith("." + domain)


def _clean_path(u):
    """utils.URLPathFullClean: the decoded path, path.Clean'ed, with the query."""
    p = urllib.parse.unquote(u.path)
    slash = len(p) > 1 and p.endswith("/")
    if len(p) == 1:
        return p + ("?" + u.query if u.query else "")
    parts = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    c = "/" + "/".join(parts) if p.startswith("/") else ("/".join(parts) or ".")
    if slash and c != "/":
        c += "/"
    return c + ("?" + u.query if u.query else "")


class Authelia:
    def __init__(self, rules=None, sessions=None, tls=None, bind="127.0.0.1",
                 basic_fail_delay=BASIC_FAIL_DELAY, idle_timeout=IDLE_TIMEOUT, idle_race=False,
                 second_cookie=False, default_policy=DEFAULT_POLICY):
        """tls: (cert, key) to serve HTTPS instead of HTTP; bind: the loopback
        address to listen on. idle_race (test hook): instead of closing an idle
        connection when idle_timeout passes, close it, unanswered, when the next
        request arrives after that long; this is the moment Authelia's idle
        timer fires while a proxy's request is on the wire, made certain."""
        self.rules = RULES if rules is None else rules
        self.default_policy = default_policy
        self.sessions = SESSIONS if sessions is None else sessions
        self.basic_fail_delay = basic_fail_delay
        self.idle_timeout = idle_timeout
        self.idle_race = idle_race
        self.second_cookie = second_cookie
        self.tls = None
        self.sni = []          # TLS server names the clients asked for (None: no SNI)
        if tls:
            import ssl
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
            self.tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.sock = socket.socket(family)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        host = "[%s]" % bind if ":" in bind else bind
        self.url = "%s://%s:%d" % ("https" if tls else "http", host, self.port)
        self.requests = []     # (method, target, [(name, value)], body bytes)
        self.connections = 0
        self.idle_closed = 0   # connections closed for being idle
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
                c, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            if self.tls:
                try:
                    c.settimeout(READ_TIMEOUT)
                    c = self.tls.wrap_socket(c, server_side=True)
                except OSError:
                    c.close()
                    continue
            self.open.append(c)
            threading.Thread(target=self._serve, args=(c, peer[0]), daemon=True).start()

    def _serve(self, c, peer):
        buf = b""
        served = 0
        idle_since = time.time()
        try:
            while True:
                # Waiting for a request: the idle timeout applies until its
                # first byte, the read timeout after that.
                while b"\r\n\r\n" not in buf:
                    if not buf and served and not self.idle_race:
                        c.settimeout(self.idle_timeout)
                    else:
                        c.settimeout(READ_TIMEOUT)
                    try:
                        d = c.recv(65536)
                    except socket.timeout:
                        if not buf and served:
                            with self.lock:
                                self.idle_closed += 1
                        return
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
                if self.idle_race and served and time.time() - idle_since >= self.idle_timeout:
                    with self.lock:
                        self.idle_closed += 1
                    return   # test hook: the idle timer fired as this request arrived
                if target.startswith("/hang"):       # test hook
                    time.sleep(3600)
                    return
                if target.startswith("/reset"):      # test hook
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    return
                if target.startswith("/garbage/"):   # test hook
                    c.sendall(self._garbage(target[9:]))
                    return
                status, extra, rbody, framing = self._answer(method, target, headers, peer)
                out = "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status"))
                for k, v in extra:
                    out += "%s: %s\r\n" % (k, v)
                if framing == "chunked":
                    out += "Transfer-Encoding: chunked\r\n\r\n"
                    wire = b"".join(b"%x\r\n%s\r\n" % (len(rbody[i:i + 4096]), rbody[i:i + 4096])
                                    for i in range(0, len(rbody), 4096)) + b"0\r\n\r\n"
                elif framing == "close":
                    out += "Connection: close\r\n\r\n"
                    wire = rbody
                else:
                    out += "Content-Length: %d\r\n\r\n" % len(rbody)
                    wire = rbody
                c.sendall(out.encode("latin-1") + (b"" if method == "HEAD" else wire))
                if framing == "close":
                    return
                served += 1
                idle_since = time.time()
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def _get(headers, name):
        """fasthttp's Peek: the first value, or None."""
        for k, v in headers:
            if k.lower() == name:
                return v
        return None

    @staticmethod
    def _garbage(kind):
        """Test hook: answers that do not parse as HTTP/1.1."""
        return {
            "status": b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
            "noversion": b"200 OK\r\nRemote-User: mallory\r\nContent-Length: 0\r\n\r\n",
            "header": b"HTTP/1.1 200 OK\r\nRemote-User mallory\r\nContent-Length: 0\r\n\r\n",
            "length": (b"HTTP/1.1 200 OK\r\nRemote-User: mallory\r\nContent-Length: 0\r\n"
                       b"Content-Length: 5\r\n\r\n"),
            "chunk": (b"HTTP/1.1 200 OK\r\nRemote-User: mallory\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\nzz\r\n\r\n"),
        }[kind]

    # ---- test hooks ---------------------------------------------------------------------

    def _hook(self, path, query):
        """Answers of the test hooks (none of this is Authelia), or None."""
        if path.startswith("/status/"):
            return int(path[8:11]), TEXT, b"status from the test hook", "length"
        if path.startswith("/huge"):
            return 200, [("X-Filler", "x" * 60000)], b"", "length"
        if path.startswith("/allowcookie"):
            return 200, [("Remote-User", "dave"), ("Set-Cookie", "provider=1; Path=/"),
                         ("X-Provider-Extra", "1")] + TEXT, b"a body the upstream never sees", \
                "length"
        if path.startswith("/allowcustom"):
            return 200, [("X-Team", "blue"), ("X-Team", "red"), ("Remote-User", "erin"),
                         ("X-Big", "b" * 4096), ("X-Fits", "f" * 4095),
                         ("X-Not-Copied", "1")] + TEXT, b"", "length"
        if path.startswith("/body/"):
            status, n, framing = path[6:].split("/")
            return int(status), TEXT, b"b" * int(n), framing
        return None

    # ---- Authelia's decision -----------------------------------------------------------

    def _answer(self, method, target, headers, peer):
        path, _, rawq = target.partition("?")
        query = urllib.parse.parse_qs(rawq, keep_blank_values=True)
        hooked = self._hook(path, query)
        if hooked:
            return hooked
        if path in ("/api/authz/forward-auth", "/api/authz/auth-request"):
            if method not in ("GET", "HEAD"):
                return 405, TEXT, b"405 Method Not Allowed", "length"
            impl = "forward-auth" if path.endswith("forward-auth") else "auth-request"
        elif path == "/api/verify" or path.startswith("/api/verify/"):
            impl = "legacy"
        else:
            return 404, TEXT, b"404 Not Found", "length"
        bad = 401 if impl == "legacy" else 400
        try:
            status, extra, body = self._authz(impl, method, target, query, headers, peer)
        except BadTarget:
            status, extra, body = bad, TEXT, self._text(bad)
        return status, extra, body, "length"

    @staticmethod
    def _text(status):
        return ("%d %s" % (status, REASONS[status])).encode()

    def _object(self, impl, method, target, headers):
        """handleAuthzGetObject*: (url split, host as sent, full URL, method)."""
        g = lambda n: self._get(headers, n)  # noqa: E731
        fallback_proto = "https" if self.tls else "http"   # XForwardedProto(): the TLS state
        if impl == "auth-request":
            raw, tmethod = g("x-original-url"), g("x-original-method")
            if not raw or not tmethod:
                raise BadTarget("X-Original-URL and X-Original-Method are required")
        elif impl == "forward-auth":
            proto, host = g("x-forwarded-proto") or fallback_proto, g("x-forwarded-host")
            if not host:
                raise BadTarget("X-Forwarded-Host is required")
            raw = "%s://%s%s" % (proto, host, g("x-forwarded-uri") or "")
            tmethod = g("x-forwarded-method")
            if not tmethod:
                raise BadTarget("X-Forwarded-Method is required")
        else:
            raw = g("x-original-url")
            if raw is None:
                host = g("x-forwarded-host") or g("host")
                if not host:
                    raise BadTarget("no host")
                raw = "%s://%s%s" % (g("x-forwarded-proto") or fallback_proto, host,
                                     g("x-forwarded-uri") or target)
            tmethod = g("x-forwarded-method") or method
        if not re.fullmatch(r"[A-Z]*", tmethod):
            raise BadTarget("method %r" % tmethod)
        u, host = _parse_request_uri(raw)
        url = urllib.parse.urlunsplit(u)
        return u, host, url, tmethod

    def _portal(self, impl, query, headers):
        """getAutheliaURL: the authelia_url query (under the cookie domain),
        else the session's authelia_url; legacy: the rd query, else
        X-Authelia-URL, else none."""
        if impl == "legacy":
            raw = query.get("rd", [None])[0] or self._get(headers, "x-authelia-url")
            if raw is None:
                return None
            return _parse_request_uri(raw)[0]
        raw = query.get("authelia_url", [None])[0]
        if raw is None:
            return urllib.parse.urlsplit(PORTAL)
        u, host = _parse_request_uri(raw)
        if not _has_domain_suffix(host, COOKIE_DOMAIN):
            raise BadTarget("authelia_url %r is not under %s" % (raw, COOKIE_DOMAIN))
        return u

    def _required(self, host, u, tmethod, client_ip):
        """GetRequiredLevel: the first matching rule's policy."""
        obj_path = _clean_path(u)
        for r in self.rules:
            d = r.get("domain")
            if d is not None and d != "*":
                d = d.lower()
                if d.startswith("*."):
                    if not host.lower().endswith(d[1:]):
                        continue
                elif host.lower() != d:
                    continue
            if "domain_regex" in r and not re.search(r["domain_regex"], host):
                continue
            if "resources" in r and not any(re.search(x, obj_path) for x in r["resources"]):
                continue
            if "methods" in r and tmethod not in r["methods"]:
                continue
            if "networks" in r and not any(
                    client_ip is not None and client_ip in ipaddress.ip_network(n)
                    for n in r["networks"]):
                continue
            return r["policy"]
        return self.default_policy

    def _basic(self, value):
        """handleGetBasic: an identity, or None. Credentials that do not
        decode fail at once (the header does not parse); an unknown user or
        a wrong password only after the timing-attack delay."""
        try:
            user, sep, pw = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep:
            return None
        entry = BASIC.get(user)
        if entry and entry[0] == pw:
            return entry[1]     # success: no delay
        time.sleep(self.basic_fail_delay + random.uniform(0, BASIC_FAIL_JITTER))
        return None

    def _authn(self, impl, query, headers):
        """authz.authn: (identity or None, failed header strategy or None,
        header strategy that identified, error)."""
        if impl == "legacy":
            use_authz = query.get("auth", [""])[0] == "basic"
            name = "authorization" if use_authz else "proxy-authorization"
            value = self._get(headers, name)
            if not value:
                if use_authz:
                    return None, "header", True
            else:
                scheme, _, cred = value.partition(" ")
                if scheme.lower() != "basic":
                    return None, "header", True
                ident = self._basic(cred.strip())
                if ident is None:
                    return None, "header", True
                return ident, "header", False
        else:
            value = self._get(headers, "authorization")
            if value:
                scheme, _, cred = value.partition(" ")
                if scheme.lower() == "basic":    # the only scheme allowed by default
                    ident = self._basic(cred.strip())
                    if ident is None:
                        return None, "header", True
                    return ident, "header", False
        for cookie in [v for k, v in headers if k.lower() == "cookie"]:
            for part in cookie.split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE and v in self.sessions:
                    return self.sessions[v], None, False
        return None, None, False

    def _client_ip(self, headers, peer):
        """RequestCtxRemoteIP: the leftmost X-Forwarded-For, else the peer."""
        xff = self._get(headers, "x-forwarded-for")
        for cand in ((xff or "").split(",", 1)[0].strip(), peer):
            try:
                return ipaddress.ip_address(cand)
            except ValueError:
                continue
        return None

    def _authz(self, impl, method, target, query, headers, peer):
        """Handler in handler_authz.go."""
        u, host, url, tmethod = self._object(impl, method, target, headers)
        if u.scheme not in ("https", "wss"):
            raise BadTarget("insecure scheme %r" % u.scheme)
        if not _has_domain_suffix(host, COOKIE_DOMAIN):
            raise BadTarget("no session cookie domain for %r" % host)
        portal = self._portal(impl, query, headers)
        ident, strategy, failed = self._authn(impl, query, headers)
        required = self._required(host, u, tmethod, self._client_ip(headers, peer))
        basic_401 = (401, TEXT + [("WWW-Authenticate", 'Basic realm="Authorization Required"')],
                     self._text(401))
        if failed and required != "bypass":
            return basic_401
        # A failed header attempt on a bypass rule is only logged: anonymous.
        if required == "bypass":
            return 200, self._identity(ident) + TEXT, self._text(200)
        if required == "deny":
            return 403, TEXT, self._text(403)
        level = 0 if ident is None else (1 if strategy == "header" else ident.get("level", 2))
        if level >= (2 if required == "two_factor" else 1):
            return 200, self._identity(ident) + TEXT, self._text(200)
        if strategy == "header":
            return basic_401     # identified by Basic but the level is too low
        return self._unauthorized(impl, u, url, tmethod, portal, headers)

    def _unauthorized(self, impl, u, url, tmethod, portal, headers):
        """handleAuthzUnauthorized{ForwardAuth,AuthRequest,Legacy}."""
        location = None
        if portal is not None:      # getRedirectionURL
            q = urllib.parse.parse_qs(portal.query, keep_blank_values=True)
            q["rd"] = [url]
            if tmethod:
                q["rm"] = [tmethod]
            location = urllib.parse.urlunsplit(portal._replace(
                path=portal.path or "/", query=urllib.parse.urlencode(sorted(q.items()), doseq=True)))
        accept = [a.split(";", 1)[0].strip(" ") for a in (self._get(headers, "accept") or "").split(",")]
        html_ok = "text/html" in accept or accept[0] == "*/*"                 # AcceptsMIME
        xhr = (self._get(headers, "x-requested-with") or "").lower() == "xmlhttprequest"
        if impl == "auth-request" or xhr or not html_ok or location is None:
            status = 401
        elif tmethod in ("GET", "HEAD", "OPTIONS") or (impl == "legacy" and tmethod == ""):
            status = 302
        else:
            status = 303
        if location is None:        # legacy without a portal: ReplyUnauthorized
            return 401, TEXT, self._text(401)
        cookie = ("%s=fresh-%d; Domain=%s; Path=/; HttpOnly; Secure; SameSite=Lax"
                  % (COOKIE, len(self.requests), COOKIE_DOMAIN))
        extra = [("Location", location), ("Set-Cookie", cookie)]
        if self.second_cookie:      # test hook: Authelia sends one cookie here
            extra.append(("Set-Cookie", "authelia_flow=x; Path=/; HttpOnly"))
        extra.append(("Content-Type", "text/html; charset=utf-8"))
        body = b"" if tmethod == "HEAD" else (
            '<a href="%s">%d %s</a>' % (html.escape(location), status, REASONS[status])).encode()
        return status, extra, body

    @staticmethod
    def _identity(ident):
        if ident is None:
            return []
        return [("Remote-User", ident["user"]), ("Remote-Groups", ",".join(ident["groups"])),
                ("Remote-Name", ident["name"]), ("Remote-Email", ident["email"])]


if __name__ == "__main__":
    a = Authelia()
    print("authelia emulation (Authelia %s) on %s" % (AUTHELIA_VERSION, a.url), flush=True)
    threading.Event().wait()
