#!/usr/bin/python3
"""tailscale_emu.py - an emulation of tailscaled's LocalAPI and of the
Tailscale control API (vip-services, OAuth token) for tests.

tailscaled cannot run on the test machines, so the tests of portico's
Tailscale support run against this emulation. Every format below was read
in github.com/tailscale/tailscale at commit
de9ec7ee25627e0e518f53c710a3fc3d947c86c1 (2026-08-22, VERSION.txt 1.103.0;
TAILSCALE_SOURCE_COMMIT, TAILSCALE_SOURCE_VERSION):

  ipn/localapi/localapi.go  ServeHTTP (Host must be "local-tailscaled.sock"
                            or empty; any Referer or Origin: 403 "invalid
                            localapi request"; Tailscale-Version and
                            Tailscale-Cap on every answer; unknown paths 404),
                            serveWhoIsWithBackend, serveStatus, servePrefs,
                            WriteErrorJSON ({"error": ...}, 500)
  ipn/localapi/serve.go     GET/POST serve-config: Etag = hex sha256 of the
                            JSON body, If-Match, 412 "etag mismatch",
                            401 for path/unix handlers without local admin
  ipn/ipnlocal/serve.go     generateServeConfigETag, setServeConfigLocked,
                            validateServeConfigUpdate, reloadServeConfigLocked,
                            reverseProxy.ServeHTTP, addProxyForwardedHeaders,
                            addTailscaleIdentityHeaders, encTailscaleHeaderValue
                            (serve_proxy_headers; Go's mime.QEncoding rules)
  ipn/serve.go              ServeConfig, ServiceConfig, TCPPortHandler,
                            WebServerConfig, HTTPHandler (names, omitempty)
  ipn/prefs.go              Prefs, MaskedPrefs (PATCH applies FieldSet fields)
  ipn/ipnstate/ipnstate.go  Status, PeerStatus, TailnetStatus
  tailcfg/tailcfg.go        Node, UserProfile; client/tailscale/apitype
                            WhoIsResponse {Node, UserProfile, CapMap}
  ipn/localapi/cert.go,     cert/DOMAIN?type=pair: key PEM then cert PEM;
  feature/acme/cert.go      names outside CertDomains: 500 "invalid domain
                            %q; must be one of %q"; keys are P-256
                            "EC PRIVATE KEY" blocks
  internal/client/tailscale/vip_service.go, client/tailscale/tailscale.go
                            /api/v2/tailnet/{tailnet}/vip-services[/svc:NAME],
                            VIPService {name, addrs, comment, annotations,
                            ports, tags}, errors {"message": ...}
  feature/oauthkey/oauthkey.go, cmd/get-authkey
                            POST /api/v2/oauth/token through Go's
                            golang.org/x/oauth2/clientcredentials: a form
                            with grant_type=client_credentials, the client
                            ID and secret as HTTP Basic or form fields
                            (AuthStyleAutoDetect tries both), answered
                            {access_token, token_type, expires_in}

Not emulated (and answered as tailscaled answers an unknown path, 404, so
a client that needs them fails loudly): every other LocalAPI endpoint
(watch-ipn-bus, set-dns, ...), policy evaluation (each node has a fixed
CapMap for this node's IPs and one per Service for whois svc_name=/dst_ip=),
the data plane (no listener on the VIPs, no serving of the config), ACME
(certificates come from a local test CA at once; a min_validity longer
than the cached certificate's remaining validity renews it synchronously, as
shouldStartDomainRenewal does; without one, tailscaled's own background
renewal at two thirds of the lifetime is not emulated: renew() does it), the tailnet policy and the approval flow (approval is a method, or
automatic with auto_approve=True), OAuth scopes (recorded, not enforced).
Where the source says nothing about the control API's answers (the error
for a PUT that drops auto-allocated addrs, bad OAuth credentials) the
emulation picks a 4xx and says so where it does.

Use (see tests/e2e/test_tailscale_emu.py):

    ca = TestCA(dirpath)                      # openssl-made root + intermediate
    ts = LocalAPI(sockpath, ca=ca, version="1.94.2")
    ts.add_user_node("100.64.0.2", "zoe@example.com", "Zoë Müller")
    ts.add_tagged_node("100.64.0.3", ["tag:monitoring"])
    ts.approve("svc:grafana")                 # or LocalAPI(..., auto_approve=True, control=ctl)
    ts.delay = 2.0 / ts.fail(503, "busy", endpoint="whois", times=1)
    ts.down() / ts.up() / ts.restart(down_for=1.0)
    ts.count("POST", "serve-config"); ts.requests[-1].headers
    ts.race_serve_config(lambda sc: ...)      # another admin writes between GET and POST
    ctl = ControlAPI(ca, clients={"id": "secret"})   # ctl.url, trust ca.root
    host, hdrs = serve_proxy_headers(ts, "100.64.0.2", "grafana.tail1234.ts.net")
                                              # what tailscaled's serve proxy sends a backend
    ts.close(); ctl.close()

`python3 tests/tailscale_emu.py SOCKET [DIR]` runs the LocalAPI standalone.
"""

import base64
import collections
import datetime
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

TAILSCALE_SOURCE_COMMIT = "de9ec7ee25627e0e518f53c710a3fc3d947c86c1"
TAILSCALE_SOURCE_VERSION = "1.103.0"
LOCALAPI_HOST = "local-tailscaled.sock"     # apitype.LocalAPIHost
CAPABILITY_VERSION = 145                    # tailcfg.CurrentCapabilityVersion at that commit
TAGGED_LOGIN = "tagged-devices"             # control's pseudo-user for tagged nodes
TAGGED_USER_ID = 123456789
SUFFIX = "tail1234.ts.net"
READ_TIMEOUT = 10.0
# net/http: a handler's answer of up to this many bytes gets a
# Content-Length, a longer one is sent chunked (bufferBeforeChunkingSize).
CHUNK_AFTER = 2048

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           412: "Precondition Failed", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
TEXT = "text/plain; charset=utf-8"


# ---- Go encoding/json ---------------------------------------------------------------

class Struct(dict):
    """A Go struct value: keys are written in insertion order. A plain dict
    is a Go map: keys are written sorted, as encoding/json does."""


def _go_string(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or ch in "<>&\u2028\u2029":
            out.append("\\u%04x" % o)
        elif 0xd800 <= o <= 0xdfff:
            out.append("\ufffd")     # invalid UTF-8 is replaced
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(v, indent=None, _level=0):
    """encoding/json's Marshal (indent=None) or MarshalIndent("", indent)."""
    nl = "" if indent is None else "\n" + indent * (_level + 1)
    end = "" if indent is None else "\n" + indent * _level
    colon = ":" if indent is None else ": "
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _go_string(v)
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        return "[" + ",".join(nl + go_json(x, indent, _level + 1) for x in v) + end + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = list(v.items()) if isinstance(v, Struct) else sorted(
            ((str(k), x) for k, x in v.items()), key=lambda kv: kv[0])
        return "{" + ",".join(nl + _go_string(str(k)) + colon + go_json(x, indent, _level + 1)
                              for k, x in items) + end + "}"
    raise TypeError("go_json: %r" % (v,))


class GoJSONError(Exception):
    pass


class _Num(str):
    """A JSON number as written (Go decodes it by the target's type)."""


def _loads_first(body):
    """json.Decoder.Decode: the first JSON value of body; what follows it is
    not read. An empty body is io.EOF."""
    text = body.decode("utf-8", "replace")
    i = len(text) - len(text.lstrip(" \t\r\n"))
    if i == len(text):
        raise GoJSONError("EOF")
    dec = json.JSONDecoder(parse_float=_Num, parse_int=_Num, object_pairs_hook=_Obj)
    try:
        v, _ = dec.raw_decode(text, i)
    except json.JSONDecodeError as e:
        raise GoJSONError("invalid character at offset %d: %s" % (e.pos, e.msg))
    return v


# Go types for the decoder: "bool", "string", "int", "uint16", ("slice", T),
# ("map", KEY, T), ("ptr", STRUCTNAME), STRUCTNAME. Struct specs: a list of
# (field, type, omit) with omit "" (always written), "omitempty", "omitzero".
TYPES = {
    "TCPPortHandler": [("HTTPS", "bool", "omitempty"), ("HTTP", "bool", "omitempty"),
                       ("TCPForward", "string", "omitempty"),
                       ("TerminateTLS", "string", "omitempty"),
                       ("ProxyProtocol", "int", "omitzero")],
    "HTTPHandler": [("Path", "string", "omitempty"), ("Proxy", "string", "omitempty"),
                    ("Text", "string", "omitempty"),
                    ("AcceptAppCaps", ("slice", "string"), "omitempty"),
                    ("Redirect", "string", "omitempty")],
    "WebServerConfig": [("Handlers", ("map", "string", ("ptr", "HTTPHandler")), "")],
    "ServiceConfig": [("TCP", ("map", "uint16", ("ptr", "TCPPortHandler")), "omitempty"),
                      ("Web", ("map", "string", ("ptr", "WebServerConfig")), "omitempty"),
                      ("Tun", "bool", "omitempty")],
    "ServeConfig": [("TCP", ("map", "uint16", ("ptr", "TCPPortHandler")), "omitempty"),
                    ("Web", ("map", "string", ("ptr", "WebServerConfig")), "omitempty"),
                    ("Services", ("map", "string", ("ptr", "ServiceConfig")), "omitempty"),
                    ("AllowFunnel", ("map", "string", "bool"), "omitempty"),
                    ("Foreground", ("map", "string", ("ptr", "ServeConfig")), "omitempty")],
}
_ZERO = {"bool": False, "string": "", "int": 0, "uint16": 0}


class _Obj(list):
    """A JSON object as its (name, value) pairs, in order, duplicates kept."""


def _kind(v):
    return {bool: "bool", str: "string", _Num: "number", list: "array",
            _Obj: "object"}.get(type(v), "?")


def go_decode(v, typ, where):
    """encoding/json's Unmarshal of the parsed value v into a value of Go type
    typ: fields matched exactly, else without case; unknown fields ignored;
    null leaves non-nullable values at zero; type mismatches are errors."""
    if v is None:
        if isinstance(typ, str) and typ in _ZERO:
            return _ZERO[typ]
        return None
    kind = _kind(v)

    def bad():
        return GoJSONError("json: cannot unmarshal %s into Go value of type %s at %s"
                           % (kind if kind != "number" else "number " + v, _tname(typ), where))
    if typ == "bool":
        if kind != "bool":
            raise bad()
        return v
    if typ == "string":
        if kind != "string":
            raise bad()
        return v
    if typ in ("int", "uint16"):
        if kind != "number" or not re.fullmatch(r"-?[0-9]+", v):
            raise bad()
        n = int(v)
        if typ == "uint16" and not 0 <= n <= 65535:
            raise bad()
        return n
    if isinstance(typ, tuple) and typ[0] == "ptr":
        return go_decode(v, typ[1], where)
    if isinstance(typ, tuple) and typ[0] == "slice":
        if kind != "array":
            raise bad()
        return [go_decode(x, typ[1], where + "[]") for x in v]
    if isinstance(typ, tuple) and typ[0] == "map":
        if kind != "object":
            raise bad()
        out = {}
        for k, x in v:
            key = k
            if typ[1] == "uint16":
                if not re.fullmatch(r"[0-9]+", k) or int(k) > 65535:
                    raise GoJSONError("json: cannot unmarshal number %s into Go value of type "
                                      "uint16 at %s" % (k, where))
                key = str(int(k))
            out[key] = go_decode(x, typ[2], where + "." + k)
        return out
    spec = TYPES[typ]
    if kind != "object":
        raise bad()
    out = Struct((f, _ZERO.get(t) if isinstance(t, str) else None) for f, t, _ in spec)
    for k, x in v:
        field = next((f for f, _, _ in spec if f == k), None) or next(
            (f for f, _, _ in spec if f.lower() == k.lower()), None)
        if field is None:
            continue        # unknown fields are ignored
        t = next(t for f, t, _ in spec if f == field)
        out[field] = go_decode(x, t, typ + "." + field)
    return out


def _tname(typ):
    if isinstance(typ, str):
        return typ if typ in _ZERO else "ipn." + typ
    if typ[0] == "ptr":
        return "*" + _tname(typ[1])
    if typ[0] == "slice":
        return "[]" + _tname(typ[1])
    return "map[%s]%s" % (typ[1], _tname(typ[2]))


def go_encode(v, typ):
    """The Go value v (as go_decode returns it) ready for go_json: omitted
    fields dropped, maps as dicts (sorted when written)."""
    if v is None:
        return None
    if isinstance(typ, tuple) and typ[0] == "ptr":
        return go_encode(v, typ[1])
    if isinstance(typ, tuple) and typ[0] == "slice":
        return [go_encode(x, typ[1]) for x in v]
    if isinstance(typ, tuple) and typ[0] == "map":
        return {k: go_encode(x, typ[2]) for k, x in v.items()}
    if isinstance(typ, str) and typ in _ZERO:
        return v
    out = Struct()
    for f, t, omit in TYPES[typ]:
        x = v.get(f)
        if omit == "omitempty" and (x is None or x is False or x == "" or x == 0
                                    or x == [] or x == {}):
            continue
        if omit == "omitzero" and (x is None or x is False or x == "" or x == 0):
            continue
        out[f] = go_encode(x, t)
    return out


def serve_config_json(sc):
    """json.Marshal of a ServeConfigView: "null" when there is none."""
    return go_json(None if sc is None else go_encode(sc, "ServeConfig")).encode()


def parse_serve_config(body):
    """What tailscaled makes of a POSTed body: decoded as ipn.ServeConfig
    (top-level null leaves the new, empty config)."""
    v = _loads_first(body)
    if v is None:
        return go_decode(_Obj(), "ServeConfig", "ServeConfig")
    return go_decode(v, "ServeConfig", "ServeConfig")


def _serve_type(ph):
    if ph is None:
        return "unknownServeType"
    if ph["HTTP"]:
        return "http"
    if ph["HTTPS"]:
        return "https"
    if ph["TerminateTLS"]:
        return "tls-terminated-tcp"
    if ph["TCPForward"]:
        return "tcp"
    return "unknownServeType"


def validate_serve_config_update(existing, incoming):
    """validateServeConfigUpdate (foreground sessions aside): an error
    message, or None."""
    for name, svc in sorted((incoming.get("Services") or {}).items()):
        if svc and svc["Tun"] and (svc["TCP"] or svc["Web"]):
            return ("cannot configure TUN mode in combination with TCP or web handlers for %s"
                    % name)
    if existing is None:
        return None
    for port, ph in sorted((incoming.get("TCP") or {}).items()):
        old = (existing.get("TCP") or {}).get(port)
        if port in (existing.get("TCP") or {}) and _serve_type(ph) != _serve_type(old):
            return ('want to serve "%s", but port %s is already serving "%s"'
                    % (_serve_type(ph), port, _serve_type(old)))
    for name, svc in sorted((incoming.get("Services") or {}).items()):
        old = (existing.get("Services") or {}).get(name)
        if old is None or svc is None:
            continue
        for port, ph in sorted((svc["TCP"] or {}).items()):
            if port in (old["TCP"] or {}) and _serve_type(ph) != _serve_type(old["TCP"][port]):
                return ('want to serve "%s", but port %s is already serving "%s" for %s'
                        % (_serve_type(ph), port, _serve_type(old["TCP"][port]), name))
        if svc["Tun"] and (old["TCP"] or old["Web"]):
            return "cannot turn on TUN mode with existing TCP or web handlers for %s" % name
        if (svc["TCP"] or svc["Web"]) and old["Tun"]:
            return "cannot add TCP or web handlers as TUN mode is enabled for %s" % name
    return None


def _handlers(sc):
    """Every (TCPPortHandler or HTTPHandler, is_tcp) in a decoded config;
    None where the map held a null (tailscaled would dereference it)."""
    out = []
    for cfg in [sc] + list((sc.get("Services") or {}).values()) + list(
            (sc.get("Foreground") or {}).values()):
        if cfg is None:
            out.append((None, True))
            continue
        for ph in (cfg.get("TCP") or {}).values():
            out.append((ph, True))
        for web in (cfg.get("Web") or {}).values():
            if web is None:
                out.append((None, False))
                continue
            for h in (web["Handlers"] or {}).values():
                out.append((h, False))
    return out


def needs_local_admin(sc):
    """HasPathHandler() || IsServingUnixAny()."""
    for h, tcp in _handlers(sc):
        if h is None:
            continue
        if tcp and h["TCPForward"].startswith("unix:"):
            return True
        if not tcp and (h["Path"] or h["Proxy"].startswith("unix:")):
            return True
    return False


# ---- a test CA made with the openssl command line -----------------------------------

class TestCA:
    """A root CA, an intermediate that signs the leaves (as an ACME CA does),
    and P-256 leaf certificates with exact validity windows, made with the
    openssl command (Python's ssl module cannot sign). `root` is the file a
    client trusts."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
        self.lock = threading.Lock()
        with open(os.path.join(d, "index.txt"), "w"):
            pass
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("01\n")
        self.conf = os.path.join(d, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write("[ca]\ndefault_ca = emu\n[emu]\ndatabase = %s\nnew_certs_dir = %s\n"
                    "serial = %s\n"
                    "default_md = sha256\npolicy = pol\nunique_subject = no\n"
                    "copy_extensions = none\n[pol]\ncommonName = supplied\n"
                    "[v3_ca]\nbasicConstraints = critical,CA:true\n"
                    "keyUsage = critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
                    % (os.path.join(d, "index.txt"), os.path.join(d, "newcerts"),
                       os.path.join(d, "serial")))
        self.root_key = os.path.join(d, "root.key")
        self.root = os.path.join(d, "root.pem")
        self._run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.root_key, "-out",
                   self.root, "-days", "3", "-subj", "/CN=tailscale-emu test root"])
        self.inter_key = self._key(os.path.join(d, "inter.key"))
        csr = os.path.join(d, "inter.csr")
        self._run(["openssl", "req", "-new", "-key", self.inter_key, "-out", csr, "-subj",
                   "/CN=tailscale-emu test intermediate"])
        self.inter = os.path.join(d, "inter.pem")
        self._sign(csr, self.inter, self.root, self.root_key, 2 * 86400, ext="v3_ca")
        self.n = 0

    def _run(self, args):
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode:
            raise RuntimeError("%s: %s" % (" ".join(args[:3]), r.stderr.decode()[-400:]))
        return r.stdout

    def _key(self, path):
        # feature/acme: ecdsa P-256, x509.MarshalECPrivateKey, "EC PRIVATE KEY"
        self._run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                   "-out", path])
        return path

    @staticmethod
    def _stamp(t):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
            "%Y%m%d%H%M%SZ")

    def _sign(self, csr, out, ca, ca_key, seconds, ext=None, extfile=None, not_before=None):
        start = time.time() - 60 if not_before is None else not_before
        args = ["openssl", "ca", "-batch", "-config", self.conf, "-notext", "-rand_serial",
                "-in", csr, "-out", out, "-cert", ca, "-keyfile", ca_key,
                "-startdate", self._stamp(start), "-enddate", self._stamp(time.time() + seconds)]
        if ext:
            args += ["-extensions", ext]
        if extfile:
            args += ["-extfile", extfile]
        with self.lock:
            self._run(args)

    def issue(self, names, seconds=90 * 86400, ips=(), backdate=60):
        """A new key and a certificate for names (DNS) and ips, valid from
        `backdate` seconds ago until `seconds` from now, signed by the
        intermediate. Returns (key_pem, cert_chain_pem): the chain is leaf
        then intermediate."""
        with self.lock:
            self.n += 1
            base = os.path.join(self.dir, "leaf%d" % self.n)
        key = self._key(base + ".key")
        csr, crt, ext = base + ".csr", base + ".pem", base + ".ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(["DNS:" + n for n in names]
                                                 + ["IP:" + i for i in ips]) + "\n")
            f.write("extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
                    "basicConstraints=critical,CA:false\n")
        self._run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj",
                   "/CN=%s" % (names[0] if names else ips[0])])
        self._sign(csr, crt, self.inter, self.inter_key, seconds, extfile=ext,
                   not_before=time.time() - backdate)
        with open(key, "rb") as f:
            key_pem = f.read()
        with open(crt, "rb") as f, open(self.inter, "rb") as g:
            chain = f.read() + g.read()
        return key_pem, chain

    def files(self, names, seconds=86400, ips=()):
        """issue() written to files: (cert_path, key_path)."""
        key_pem, chain = self.issue(names, seconds, ips)
        with self.lock:
            self.n += 1
            base = os.path.join(self.dir, "files%d" % self.n)
        with open(base + ".key", "wb") as f:
            f.write(key_pem)
        with open(base + ".pem", "wb") as f:
            f.write(chain)
        return base + ".pem", base + ".key"


# ---- HTTP/1.1 server (the parts of net/http a client can see) ------------------------

Request = collections.namedtuple("Request", "t method target path query version headers body")


class Answer:
    def __init__(self, status, body=b"", ctype=None, headers=(), close=False, drop=False):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = list(headers)
        if ctype:
            self.headers.append(("Content-Type", ctype))
        self.close = close
        self.drop = drop      # close the connection without an answer (a handler panic)
        self.hangup = False   # close it after the answer without saying so (an idle timeout)


def http_error(status, msg):
    """net/http's Error: the message and a newline, as text/plain."""
    return Answer(status, msg + "\n", TEXT, [("X-Content-Type-Options", "nosniff")])


class _Server:
    """Threads that accept on a listening socket and answer HTTP/1.1 with
    keep-alive. handle(request) returns an Answer."""

    def __init__(self, sock, handle, tls=None):
        self.sock = sock
        self.handle = handle
        self.tls = tls
        self.lock = threading.Lock()
        self.conns = set()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns, self.conns = list(self.conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_head(self, c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, buf
            buf += d
            if len(buf) > 1 << 20:
                return None, buf
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def _serve(self, raw):
        c = raw
        buf = b""
        try:
            c.settimeout(READ_TIMEOUT)
            if self.tls:
                c = self.tls.wrap_socket(raw, server_side=True)
            while True:
                head, buf = self._read_head(c, buf)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                              b"charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")
                    return
                method, target, version = parts
                headers = []
                for line in lines[1:]:
                    k, sep, v = line.partition(":")
                    if not sep:
                        c.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
                                  b"400 Bad Request: malformed MIME header line")
                        return
                    headers.append((k.strip(), v.strip()))
                hmap = {}
                for k, v in headers:
                    hmap.setdefault(k.lower(), v)
                if version == "HTTP/1.1" and "host" not in hmap:
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                              b"charset=utf-8\r\nConnection: close\r\n\r\n"
                              b"400 Bad Request: missing required Host header")
                    return
                if "chunked" in hmap.get("transfer-encoding", "").lower():
                    body, buf = self._read_chunked(c, buf)
                    if body is None:
                        return
                else:
                    n = int(hmap.get("content-length") or 0)
                    while len(buf) < n:
                        d = c.recv(65536)
                        if not d:
                            return
                        buf += d
                    body, buf = buf[:n], buf[n:]
                u = urllib.parse.urlsplit(target)
                req = Request(time.time(), method, target, urllib.parse.unquote(u.path),
                              urllib.parse.parse_qs(u.query, keep_blank_values=True),
                              version, headers, body)
                ans = self.handle(req)
                if ans.drop:
                    return
                close = ans.close or hmap.get("connection", "").lower() == "close" or (
                    version == "HTTP/1.0" and hmap.get("connection", "").lower() != "keep-alive")
                out = ["HTTP/1.1 %d %s" % (ans.status, REASONS.get(ans.status, "Status"))]
                for k, v in ans.headers:
                    out.append("%s: %s" % (k, v))
                out.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
                body = ans.body
                if method == "HEAD":
                    wire = b""
                    out.append("Content-Length: %d" % len(body))
                elif len(body) > CHUNK_AFTER and version == "HTTP/1.1":
                    out.append("Transfer-Encoding: chunked")
                    wire = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + CHUNK_AFTER]),
                                                      body[i:i + CHUNK_AFTER])
                                    for i in range(0, len(body), CHUNK_AFTER)) + b"0\r\n\r\n"
                else:
                    out.append("Content-Length: %d" % len(body))
                    wire = body
                if close:
                    out.append("Connection: close")
                c.sendall(("\r\n".join(out) + "\r\n\r\n").encode("utf-8") + wire)
                if close or ans.hangup:
                    return
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.conns.discard(raw)
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def _read_chunked(c, buf):
        body = b""
        while True:
            while b"\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return None, buf
                buf += d
            line, _, buf = buf.partition(b"\r\n")
            n = int(line.split(b";")[0].strip() or b"0", 16)
            while len(buf) < n + 2:
                d = c.recv(65536)
                if not d:
                    return None, buf
                buf += d
            if n == 0:
                # trailers end with an empty line
                while not (buf.startswith(b"\r\n") or b"\r\n\r\n" in buf):
                    d = c.recv(65536)
                    if not d:
                        return None, buf
                    buf += d
                buf = buf[2:] if buf.startswith(b"\r\n") else buf.partition(b"\r\n\r\n")[2]
                return body, buf
            body += buf[:n]
            buf = buf[n + 2:]


# ---- LocalAPI --------------------------------------------------------------------------

def _ip_list(addrs):
    return [a.split("/")[0] for a in addrs]


def _node_key(i):
    return "nodekey:" + hashlib.sha256(b"node%d" % i).hexdigest()


def go_duration_seconds(s):
    """Seconds in a Go duration string ("90s", "1h30m", "0"), as
    time.ParseDuration reads the forms _cert_ep accepts."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", s))


def endpoint_of(path):
    """The LocalAPI route a path names: "status", "whois", "serve-config",
    "prefs", "cert" (for cert/NAME), or the path itself."""
    suff = path[len("/localapi/v0/"):] if path.startswith("/localapi/v0/") else path
    return "cert" if suff.startswith("cert/") else suff


class LocalAPI:
    """tailscaled's LocalAPI on a Unix socket at `path`.

    State a test sets up (all attributes may be changed while it runs):
      version        tailscaled's version, e.g. "1.94.2" (Status.Version is
                     the long form "1.94.2-t...-g...")
      hostname       this node's MagicDNS label; suffix the tailnet's
                     MagicDNS suffix; tailnet the tailnet name
      self_ips       the node's Tailscale IPs; self_tags its tags
      https          HTTPS certificates enabled (CertDomains not empty)
      funnel         the node has the "funnel" node attribute and the default
                     funnel-ports one (tailcfg/nodecap/nodecap.go) in Self.CapMap
      auto_approve   advertised Services are approved at once (as with
                     autoApprovers); else approve(name) does it
      backend_state  "Running", or "Starting"/"NeedsLogin"/"Stopped"
                     (no netmap: POST serve-config and cert fail as then)
      permit_write / permit_cert / local_admin
                     what the connecting client may do (tailscaled checks the
                     peer's uid): without write, POST serve-config and PATCH
                     prefs are 403; without local_admin a config with a
                     unix:/path handler is 401
    Fault injection: delay (seconds before every answer), delays[endpoint],
    fail(status, body, endpoint, times), down(), up(), restart(down_for),
    race_serve_config(fn).
    Observation: requests (every Request, answered or refused, with its
    headers), answers (status per request, same order), count(method,
    endpoint), serve_config (the current config, decoded), etag(),
    prefs["AdvertiseServices"], certs_issued.
    """

    def __init__(self, path, ca=None, version="1.103.0", hostname="portico",
                 suffix=SUFFIX, tailnet="example.com",
                 self_ips=("100.100.1.1", "fd7a:115c:a1e0::1"),
                 self_tags=("tag:portico",), https=True, auto_approve=False, control=None,
                 cert_seconds=90 * 86400, start=True, funnel=False):
        self.path = path
        self.ca = ca
        self.version = version
        self.hostname = hostname
        self.suffix = suffix
        self.tailnet = tailnet
        self.self_ips = list(self_ips)
        self.self_tags = list(self_tags)
        self.https = https
        self.funnel = funnel
        self.auto_approve = auto_approve
        self.control = control
        self.cert_seconds = cert_seconds
        self.cert_backdate = 60            # a new certificate's notBefore: this many seconds ago
        self.backend_state = "Running"
        self.permit_write = True
        self.permit_cert = True
        self.local_admin = True
        self.lock = threading.RLock()
        self.serve_config = None           # decoded ipn.ServeConfig, None = never set
        self.prefs = self._initial_prefs()
        self.approved = {}                 # "svc:NAME" -> [ipv4, ipv6]
        self.extra_cert_domains = []
        self.peers = {}                    # ip -> (node Struct, profile Struct, capmap)
        self.ipport_map = {}               # "127.0.0.1:5555" -> tailnet ip (userspace netstack)
        self.certs = {}                    # domain -> (key_pem, cert_pem)
        self.cert_not_after = {}           # domain -> its certificate's notAfter (Unix time)
        self.certs_issued = collections.Counter()
        self.requests = []
        self.answers = []
        self.delay = 0.0
        self.delays = {}
        self.faults = []                   # [endpoint or None, status, body, times left or None]
        self._race = []
        self._next_id = 10
        self._vip = 0
        self.server = None
        self.closed = False
        if start:
            self.up()

    # ---- lifecycle and faults ----

    def up(self):
        """Listen at path (tailscaled started): the socket file is created,
        mode 0666 as tailscaled makes it on Linux."""
        with self.lock:
            if self.server or self.closed:
                return
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.path)
            os.chmod(self.path, 0o666)
            s.listen(128)
            self.server = _Server(s, self._handle)

    def down(self):
        """tailscaled stopped: the socket file is gone and open connections
        are closed."""
        with self.lock:
            srv, self.server = self.server, None
        if srv:
            srv.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def restart(self, down_for=1.0, starting_for=0.0):
        """Down now, up again at the same path after down_for seconds (in the
        background); then, for starting_for seconds, BackendState "Starting"
        without a netmap. Serve config and prefs survive, as they live in
        tailscaled's state file. Returns the thread."""
        self.down()

        def later():
            time.sleep(down_for)
            if starting_for:
                self.backend_state = "Starting"
            self.up()
            if starting_for:
                time.sleep(starting_for)
                self.backend_state = "Running"
        t = threading.Thread(target=later, daemon=True)
        t.start()
        return t

    def close(self):
        self.closed = True      # a restart() under way stays down
        self.down()

    def fail(self, status, body="", endpoint=None, times=None):
        """Answer requests to endpoint (all when None) with status and body
        (text/plain, as net/http's Error writes it) instead of the real
        answer; times: how many (None: until clear_faults)."""
        with self.lock:
            self.faults.append([endpoint, status, body, times])

    def clear_faults(self):
        with self.lock:
            self.faults = []
            self.delay = 0.0
            self.delays = {}

    def race_serve_config(self, change, times=1):
        """Simulate another client writing the serve config between a
        client's GET and its POST: right after each of the next `times` GETs
        of serve-config is answered, change(config) is applied (it gets a
        copy of the decoded config, or None, and returns the new one), so
        the client's POST with If-Match meets a new ETag and gets 412."""
        with self.lock:
            self._race += [change] * times

    # ---- observation ----

    def count(self, method=None, endpoint=None):
        """How many requests (refused ones too) had this method and route
        (see endpoint_of)."""
        with self.lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method)
                       and (endpoint is None or endpoint_of(r.path) == endpoint))

    def etag(self):
        with self.lock:
            return hashlib.sha256(serve_config_json(self.serve_config)).hexdigest()

    def serve_config_doc(self):
        """The current config as a plain JSON document (as GET returns it)."""
        with self.lock:
            return json.loads(serve_config_json(self.serve_config))

    def set_serve_config(self, doc):
        """Write a config as `tailscale serve set-raw` would (no ETag check)."""
        with self.lock:
            self.serve_config = None if doc is None else parse_serve_config(
                json.dumps(doc).encode())

    # ---- data plane: a tailnet client connecting to a Service's TCP port ----

    def dial_service(self, svc, port, src, timeout=10.0):
        """A tailnet client at src ("IP:PORT") connects to svc ("svc:NAME")
        on port, and tailscaled forwards it: tcpHandlerForVIPService
        (ipn/ipnlocal/serve.go, 1.103.0) finds Services[svc].TCP[port] and
        dials its TCPForward (host:port, or unix:/path). When ProxyProtocol
        is 1 or 2 and this tailscaled is 1.94 or newer (commit 65182f211;
        1.92 stored the field for Services and ignored it there), a PROXY
        header goes first (forwardTCPWithProxyProtocol, go-proxyproto
        Header.Format): source = the client, IPv4-mapped addresses unmapped;
        destination = this node's own Tailscale IP of the client's family
        and the backend's port. HTTPS/HTTP/TLS-terminated ports are not
        modelled here. Returns the connected socket; LookupError when the
        service has no TCP forward on that port (tailscaled drops those)."""
        with self.lock:
            sc = self.serve_config or {}
            svc_cfg = (sc.get("Services") or {}).get(svc)
            ph = ((svc_cfg or {}).get("TCP") or {}).get(str(port)) if svc_cfg else None
            if not ph or not ph["TCPForward"] or ph["TerminateTLS"]:
                raise LookupError("%s has no TCP forward on port %s" % (svc, port))
            target, pp = ph["TCPForward"], ph["ProxyProtocol"] or 0
            send_pp = pp in (1, 2) and self.version_at_least(1, 94)
        if target.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(target[5:])
            return s   # the runtime refuses PROXY towards a unix: target
        host, _, bport = target.rpartition(":")
        host = host.strip("[]")
        s = socket.create_connection((host, int(bport)), timeout=timeout)
        if send_pp:
            sip, _, sport = src.rpartition(":")
            sip = ipaddress.ip_address(sip.strip("[]"))
            if sip.version == 6 and sip.ipv4_mapped:
                sip = sip.ipv4_mapped
            dip = next(ipaddress.ip_address(a) for a in self.self_ips
                       if ipaddress.ip_address(a).version == sip.version)
            s.sendall(proxy_header(pp, sip, int(sport), dip, int(bport)))
        return s

    def last(self, endpoint=None):
        with self.lock:
            rs = [r for r in self.requests if endpoint is None or endpoint_of(r.path) == endpoint]
            return rs[-1] if rs else None

    # ---- tailnet data ----

    def fqdn(self, name=None):
        return "%s.%s" % (name or self.hostname, self.suffix)

    def _profile(self, uid, login, display, pic=""):
        p = Struct([("ID", uid), ("LoginName", login), ("DisplayName", display)])
        if pic:
            p["ProfilePicURL"] = pic      # json:",omitzero"
        return p

    def _add_node(self, ips, name, user_id, tags, node_caps, os_name):
        with self.lock:
            self._next_id += 1
            nid = self._next_id
        addrs = [ip + ("/32" if ":" not in ip else "/128") for ip in ips]
        n = Struct()
        n["ID"] = nid
        n["StableID"] = "n%dCNTRL" % nid
        n["Name"] = self.fqdn(name) + "."
        n["User"] = user_id
        n["Key"] = _node_key(nid)
        n["KeyExpiry"] = "2027-05-26T12:00:00Z"
        n["Machine"] = "mkey:" + hashlib.sha256(b"m%d" % nid).hexdigest()
        n["DiscoKey"] = "discokey:" + hashlib.sha256(b"d%d" % nid).hexdigest()
        n["Addresses"] = addrs
        n["AllowedIPs"] = list(addrs)
        n["Endpoints"] = ["192.0.2.%d:41641" % (nid % 250)]
        n["HomeDERP"] = 1
        n["Hostinfo"] = Struct([("OS", os_name), ("Hostname", name)])
        n["Created"] = "2026-01-02T03:04:05Z"
        n["Cap"] = CAPABILITY_VERSION
        if tags:
            n["Tags"] = list(tags)
        n["Online"] = True
        n["MachineAuthorized"] = True
        if node_caps:
            n["Capabilities"] = sorted(node_caps)
            n["CapMap"] = {k: v for k, v in node_caps.items()}
        n["ComputedName"] = name
        n["ComputedNameWithHost"] = name
        return n

    def add_user_node(self, ips, login, display, name=None, user_id=None, pic="", caps=None,
                      node_caps=None, os_name="linux", svc_caps=None):
        """A node owned by a user: whois on any of ips (a string or a list)
        answers it. caps: the peer CapMap ({cap: [values]}) granted to this
        node's own IPs; svc_caps: {"svc:NAME": CapMap} granted to a Service
        (whois svc_name=, since 1.100.0); node_caps: the node's own CapMap.
        Returns the node (a dict)."""
        ips = [ips] if isinstance(ips, str) else list(ips)
        name = name or re.sub(r"[^a-z0-9-]", "-", login.split("@")[0].lower()) + "-laptop"
        with self.lock:
            if user_id is None:
                self._next_id += 1
                user_id = 1000 + self._next_id
        node = self._add_node(ips, name, user_id, (), node_caps, os_name)
        prof = self._profile(user_id, login, display, pic)
        with self.lock:
            for ip in ips:
                self.peers[ip] = (node, prof, caps, svc_caps or {})
        return node

    def add_tagged_node(self, ips, tags, name=None, caps=None, node_caps=None, os_name="linux",
                        svc_caps=None):
        """A tagged node: its profile is control's pseudo-user
        "tagged-devices" (DisplayName "Tagged Devices", inferred)."""
        ips = [ips] if isinstance(ips, str) else list(ips)
        name = name or "tagged-%d" % (len(self.peers) + 1)
        node = self._add_node(ips, name, TAGGED_USER_ID, tags, node_caps, os_name)
        prof = self._profile(TAGGED_USER_ID, TAGGED_LOGIN, "Tagged Devices")
        with self.lock:
            for ip in ips:
                self.peers[ip] = (node, prof, caps, svc_caps or {})
        return node

    def remove_node(self, ip):
        with self.lock:
            self.peers.pop(ip, None)

    def map_ipport(self, ipport, ip):
        """Userspace networking: netstack's RegisterIPPortIdentity maps the
        local address a proxied connection came from to the caller."""
        with self.lock:
            self.ipport_map[ipport] = ip

    def approve(self, name, addrs=None):
        """Control approved this node as host of Service `name` (service-host
        capability, and the Service's name in CertDomains)."""
        with self.lock:
            if addrs is None and self.control is not None:
                svc = self.control.services.get(name)
                addrs = list(svc["addrs"]) if svc else None
            if addrs is None:
                self._vip += 1
                addrs = ["100.124.%d.%d" % (self._vip // 250, self._vip % 250 + 1),
                         "fd7a:115c:a1e0:ab12:4843:cd96:6258:%x" % self._vip]
            self.approved[name] = list(addrs)

    def unapprove(self, name):
        with self.lock:
            self.approved.pop(name, None)

    def cert_domains(self):
        with self.lock:
            if not self.https:
                return []
            svc = [self.fqdn(n[4:]) for n in sorted(self.approved)
                   if n in (self.prefs["AdvertiseServices"] or [])]
            return [self.fqdn()] + svc + list(self.extra_cert_domains)

    def renew(self, domain):
        """A new key and certificate (new serial, new validity) for domain,
        as an ACME renewal gives; the next cert request gets them."""
        with self.lock:
            self.certs.pop(domain, None)
        return self._cert(domain)

    def _cert(self, domain):
        with self.lock:
            pair = self.certs.get(domain)
        if pair is None:
            if self.ca is None:
                raise RuntimeError("LocalAPI: no TestCA given, cannot issue certificates")
            end = time.time() + self.cert_seconds
            pair = self.ca.issue([domain], self.cert_seconds, backdate=self.cert_backdate)
            with self.lock:
                self.certs[domain] = pair
                self.cert_not_after[domain] = end
                self.certs_issued[domain] += 1
        return pair

    def _initial_prefs(self):
        p = Struct()
        p["ControlURL"] = "https://controlplane.tailscale.com"
        p["RouteAll"] = False
        p["ExitNodeID"] = ""
        p["ExitNodeIP"] = ""
        p["InternalExitNodePrior"] = ""
        p["ExitNodeAllowLANAccess"] = False
        p["CorpDNS"] = True
        p["RunSSH"] = False
        p["RunWebClient"] = False
        p["WantRunning"] = True
        p["LoggedOut"] = False
        p["ShieldsUp"] = False
        p["AdvertiseTags"] = list(self.self_tags)
        p["Hostname"] = ""
        p["NotepadURLs"] = False
        p["AdvertiseRoutes"] = None
        p["AdvertiseServices"] = None
        p["Sync"] = None
        p["NoSNAT"] = False
        p["NetfilterMode"] = 2
        p["AutoUpdate"] = Struct([("Check", True), ("Apply", None)])
        p["AppConnector"] = Struct([("Advertise", False)])
        p["PostureChecking"] = False
        p["NetfilterKind"] = ""
        p["RemoteConfig"] = False
        p["DriveShares"] = None
        p["Config"] = Struct([("NodeID", "nSELFCNTRL")])    # abbreviated Persist
        return p

    # ---- HTTP ----

    def _handle(self, req):
        with self.lock:
            self.requests.append(req)
            idx = len(self.answers)
            self.answers.append(None)
        ans = self._answer(req)
        with self.lock:
            self.answers[idx] = ans.status if not ans.drop else None
        return ans

    def _answer(self, req):
        hdr = {}
        for k, v in req.headers:
            hdr.setdefault(k.lower(), v)
        host = hdr.get("host", "")
        if hdr.get("referer") or hdr.get("origin") or host not in ("", LOCALAPI_HOST):
            return http_error(403, "invalid localapi request")
        ep = endpoint_of(req.path)
        d = self.delays.get(ep, self.delay)
        if d:
            time.sleep(d)
        common = [("Tailscale-Version", self.long_version()),
                  ("Tailscale-Cap", str(CAPABILITY_VERSION)),
                  ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; "
                   "script-src 'none'; script-src-elem 'none'; script-src-attr 'none'"),
                  ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff")]
        with self.lock:
            for f in self.faults:
                if f[0] in (None, ep) and (f[3] is None or f[3] > 0):
                    if f[3] is not None:
                        f[3] -= 1
                    a = http_error(f[1], f[2])
                    a.headers = common + a.headers
                    return a
        if req.path == "/":
            a = Answer(200, "tailscaled\n", TEXT)
        elif not req.path.startswith("/localapi/v0/"):
            a = http_error(404, "404 page not found")
        else:
            fn = {"status": self._status, "whois": self._whois, "serve-config": self._serve_cfg,
                  "prefs": self._prefs, "cert": self._cert_ep}.get(ep)
            a = fn(req) if fn else http_error(404, "404 page not found")
        a.headers = common + a.headers
        return a

    def long_version(self):
        return "%s-t%s-g%s" % (self.version, hashlib.sha1(self.version.encode()).hexdigest()[:9],
                               hashlib.sha1(b"g" + self.version.encode()).hexdigest()[:9])

    @staticmethod
    def _form(req, name):
        """Request.FormValue: the first value from the query."""
        v = req.query.get(name)
        return v[0] if v else ""

    def _has_netmap(self):
        return self.backend_state == "Running"

    def _status(self, req):
        peers = self._form(req, "peers").lower() not in ("false", "0", "f")
        with self.lock:
            running = self._has_netmap()
            st = Struct()
            st["Version"] = self.long_version()
            st["TUN"] = True
            st["BackendState"] = self.backend_state
            st["HaveNodeKey"] = True
            st["AuthURL"] = ""
            st["TailscaleIPs"] = list(self.self_ips) if running else None
            st["Self"] = self._self_status() if running else None
            st["Health"] = []
            st["MagicDNSSuffix"] = self.suffix if running else ""
            st["CurrentTailnet"] = Struct([("Name", self.tailnet),
                                           ("MagicDNSSuffix", self.suffix),
                                           ("MagicDNSEnabled", True)]) if running else None
            st["CertDomains"] = (self.cert_domains() or None) if running else None
            st["ExtraRecords"] = None
            if peers and running:
                st["Peer"] = {}
                for node, _, _, _ in self.peers.values():
                    st["Peer"].setdefault(node["Key"], self._peer_status(node))
            else:
                st["Peer"] = None
            users = {TAGGED_USER_ID: self._profile(TAGGED_USER_ID, TAGGED_LOGIN, "Tagged Devices")}
            if peers:
                for _, prof, _, _ in self.peers.values():
                    users[prof["ID"]] = prof
            st["User"] = {str(k): v for k, v in users.items()} if running else None
            st["ClientVersion"] = None
        return Answer(200, go_json(st, "\t") + "\n", "application/json")

    def _self_status(self):
        ps = Struct()
        ps["ID"] = "nSELFCNTRL"
        ps["NodeID"] = 1
        ps["PublicKey"] = _node_key(1)
        ps["HostName"] = self.hostname
        ps["DNSName"] = self.fqdn() + "."
        ps["OS"] = "linux"
        ps["UserID"] = TAGGED_USER_ID
        ps["TailscaleIPs"] = list(self.self_ips)
        ps["AllowedIPs"] = [ip + ("/32" if ":" not in ip else "/128") for ip in self.self_ips]
        if self.self_tags:
            ps["Tags"] = list(self.self_tags)
        ps.update(self._status_tail(online=True))
        caps = {}
        if self.https:
            caps["https"] = None
        if self.funnel:
            caps["funnel"] = None
            caps["https://tailscale.com/cap/funnel-ports?ports=443,8443,10000"] = None
        advertised = self.prefs["AdvertiseServices"] or []
        hosted = {n: a for n, a in self.approved.items() if n in advertised}
        if hosted:
            # nodecap.ServiceHost, value tailcfg.ServiceIPMappings
            caps["service-host"] = [dict(hosted)]
        if caps:
            ps["Capabilities"] = sorted(caps)
            ps["CapMap"] = caps
        ps["InNetworkMap"] = True
        ps["InMagicSock"] = False
        ps["InEngine"] = False
        return ps

    @staticmethod
    def _status_tail(online):
        t = Struct()
        t["Addrs"] = None
        t["CurAddr"] = ""
        t["Relay"] = "nyc"
        t["PeerRelay"] = ""
        t["RxBytes"] = 0
        t["TxBytes"] = 0
        t["Created"] = "2026-01-02T03:04:05Z"
        t["LastWrite"] = "0001-01-01T00:00:00Z"
        t["LastSeen"] = "0001-01-01T00:00:00Z"
        t["LastHandshake"] = "0001-01-01T00:00:00Z"
        t["Online"] = online
        t["ExitNode"] = False
        t["ExitNodeOption"] = False
        t["Active"] = False
        t["PeerAPIURL"] = None
        t["TaildropTarget"] = 0
        t["NoFileSharingReason"] = ""
        return t

    def _peer_status(self, node):
        ps = Struct()
        ps["ID"] = node["StableID"]
        ps["NodeID"] = node["ID"]
        ps["PublicKey"] = node["Key"]
        ps["HostName"] = node["ComputedName"]
        ps["DNSName"] = node["Name"]
        ps["OS"] = node["Hostinfo"]["OS"]
        ps["UserID"] = node["User"]
        ps["TailscaleIPs"] = _ip_list(node["Addresses"])
        ps["AllowedIPs"] = list(node["Addresses"])
        if node.get("Tags"):
            ps["Tags"] = list(node["Tags"])
        ps.update(self._status_tail(online=True))
        ps["InNetworkMap"] = True
        ps["InMagicSock"] = True
        ps["InEngine"] = False
        return ps

    def _whois(self, req):
        v = self._form(req, "addr")
        if not v:
            return http_error(400, "missing 'addr' parameter")
        if v.startswith("nodekey:"):
            if not re.fullmatch(r"nodekey:[0-9a-f]{64}", v):
                return http_error(400, "invalid nodekey in 'addr' parameter")
            with self.lock:
                hit = next((p for p in self.peers.values() if p[0]["Key"] == v), None)
        else:
            try:
                ip = ipaddress.ip_address(v)
                port = None
            except ValueError:
                m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", v)
                try:
                    if not m:
                        raise ValueError(v)
                    ip = ipaddress.ip_address(m.group(1) or m.group(3))
                    port = int(m.group(2) or m.group(4))
                    if port > 65535 or (m.group(1) and ip.version == 4):
                        raise ValueError(v)
                except ValueError:
                    return http_error(400, "invalid 'addr' parameter")
            if ip.version == 6 and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            with self.lock:
                key = str(ip)
                if key not in self.peers and port is not None:
                    key = self.ipport_map.get("%s:%d" % (ip, port) if ip.version == 4
                                              else "[%s]:%d" % (ip, port), key)
                hit = self.peers.get(key)
        if hit is None:
            return http_error(404, "no match for IP:port")
        node, prof, caps, svc_caps = hit
        svc, dst = self._form(req, "svc_name"), self._form(req, "dst_ip")
        if self.version_at_least(1, 100) and svc:
            if not re.fullmatch(r"svc:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", svc):
                return http_error(400, "invalid svc_name")
            caps = svc_caps.get(svc)           # PeerCapsForService
        elif self.version_at_least(1, 100) and dst:
            try:
                dst = str(ipaddress.ip_address(dst))
            except ValueError:
                return http_error(400, "invalid dst_ip")
            with self.lock:
                owner = next((n for n, a in self.approved.items() if dst in a), None)
            caps = svc_caps.get(owner) if owner else (caps if dst in self.self_ips else None)
        res = Struct([("Node", node), ("UserProfile", prof), ("CapMap", caps or None)])
        return Answer(200, go_json(res, "\t"), "application/json")

    def _serve_cfg(self, req):
        if req.method == "GET":
            with self.lock:
                body = serve_config_json(self.serve_config)
                tag = hashlib.sha256(body).hexdigest()
                if self._race:
                    change = self._race.pop(0)
                    cur = None if self.serve_config is None else json.loads(body)
                    new = change(cur)
                    self.serve_config = None if new is None else parse_serve_config(
                        json.dumps(new).encode())
            return Answer(200, body, "application/json", [("Etag", tag)])
        if req.method != "POST":
            return http_error(405, "method not allowed")
        if not self.permit_write:
            return http_error(403, "serve config denied")
        try:
            incoming = self._strip_unknown(parse_serve_config(req.body))
        except GoJSONError as e:
            return self._error_json("decoding config: %s" % e)
        if any(h is None for h, _ in _handlers(incoming)):
            # a null handler: tailscaled dereferences it and the handler
            # panics; net/http closes the connection without an answer
            return Answer(500, drop=True)
        if needs_local_admin(incoming) and not self.local_admin:
            return http_error(401, "must be root, or be an operator and able to run "
                                   "'sudo tailscale' to serve a path or Unix socket")
        with self.lock:
            if not self._has_netmap():
                return self._error_json("updating config: netMap is nil")
            match = ""
            for k, v in req.headers:
                if k.lower() == "if-match":
                    match = v
                    break
            if match and match != self.etag():
                return http_error(412, "etag mismatch")
            err = validate_serve_config_update(self.serve_config, incoming)
            if err:
                return self._error_json("updating config: " + err)
            incoming["Foreground"] = None   # no watcher holds a session here
            self.serve_config = incoming
        return Answer(200)

    def version_at_least(self, major, minor):
        m = re.match(r"(\d+)\.(\d+)", self.version)
        return (int(m.group(1)), int(m.group(2))) >= (major, minor)

    def _strip_unknown(self, sc):
        """Fields this tailscaled version does not know are dropped by its
        JSON decoder: ServeConfig.Services since 1.80.0 (0fa7b4a23),
        TCPPortHandler.ProxyProtocol since 1.92.0 (3a41c0c58)."""
        if not self.version_at_least(1, 80):
            sc["Services"] = None
        if not self.version_at_least(1, 92):
            for h, tcp in _handlers(sc):
                if tcp and h is not None:
                    h["ProxyProtocol"] = 0
        return sc

    @staticmethod
    def _error_json(msg):
        """WriteErrorJSON."""
        return Answer(500, go_json(Struct([("error", msg)])) + "\n", "application/json")

    def _prefs(self, req):
        if req.method in ("GET", "HEAD"):
            pass
        elif req.method == "PATCH":
            if not self.permit_write:
                return http_error(403, "prefs write access denied")
            try:
                v = _loads_first(req.body)
            except GoJSONError as e:
                return http_error(400, str(e))
            if _kind(v) != "object":
                return http_error(400, "json: cannot unmarshal %s into Go value of type "
                                       "ipn.MaskedPrefs" % _kind(v))
            exact, folded = {}, {}
            for k, x in v:
                exact[k] = x
                folded[k.lower()] = x

            def field(name):
                # encoding/json: the exact name first, else without case
                return exact[name] if name in exact else folded.get(name.lower())
            if field("InternalExitNodePriorSet") is True:
                return Answer(400, go_json(Struct([("Error", "can't set Internal fields")]))
                              + "\n", "application/json")
            try:
                with self.lock:
                    new = Struct(self.prefs)
                    for name, cur in self.prefs.items():
                        if not go_decode(field(name + "Set"), "bool", "MaskedPrefs." + name
                                         + "Set"):
                            continue
                        x = field(name)
                        if name in ("AdvertiseServices", "AdvertiseTags", "AdvertiseRoutes"):
                            new[name] = go_decode(x, ("slice", "string"), "Prefs." + name)
                        elif isinstance(cur, bool):
                            new[name] = go_decode(x, "bool", "Prefs." + name)
                        elif isinstance(cur, str):
                            new[name] = go_decode(x, "string", "Prefs." + name)
                        elif isinstance(cur, int):
                            new[name] = go_decode(x, "int", "Prefs." + name)
                        else:
                            return http_error(400, "emulation: setting %s is not emulated"
                                              % name)
                    self.prefs = new
                    if self.auto_approve:
                        for n in new["AdvertiseServices"] or []:
                            # control approves only a Service defined in the tailnet
                            if n not in self.approved and (
                                    self.control is None or n in self.control.services):
                                self.approve(n)
            except GoJSONError as e:
                return http_error(400, str(e))
        else:
            return http_error(405, "unsupported method")
        with self.lock:
            body = go_json(self.prefs, "\t") + "\n"
        return Answer(200, body, "application/json")

    def _cert_ep(self, req):
        if not (self.permit_write or self.permit_cert):
            return http_error(403, "cert access denied")
        domain = req.path[len("/localapi/v0/cert/"):]
        mv = self._form(req, "min_validity")
        if mv and not re.fullmatch(r"([0-9.]+(ns|us|µs|ms|s|m|h))+|0", mv):
            return http_error(400, "invalid validity parameter: time: invalid duration %s"
                              % go_json(mv))
        domain = domain[:-1] if domain.endswith(".") else domain
        if not domain:
            return http_error(500, "missing domain name")
        if not re.fullmatch(r"[A-Za-z0-9*][A-Za-z0-9.-]*", domain) or ".." in domain:
            return http_error(500, "invalid domain")
        if not self._has_netmap():
            return http_error(500, "no netmap available")
        domains = self.cert_domains()
        if not domains:
            return http_error(500, "your Tailscale account does not support getting TLS certs")
        if domain.startswith("*."):
            return http_error(500, "wildcard certificates are not enabled for this node")
        if domain not in domains:
            return http_error(500, "invalid domain %s; must be one of [%s]"
                              % (go_json(domain), " ".join(go_json(d) for d in domains)))
        if mv and go_duration_seconds(mv) > 0:
            # feature/acme/cert.go shouldStartDomainRenewal: with a
            # min_validity, a cached certificate that expires sooner than
            # that is renewed synchronously; one valid longer is returned.
            with self.lock:
                left = self.cert_not_after.get(domain, 0) - time.time()
                have = domain in self.certs
            if have and left < go_duration_seconds(mv):
                self.renew(domain)
        key_pem, cert_pem = self._cert(domain)
        t = self._form(req, "type")
        if t in ("", "crt", "cert"):
            return Answer(200, cert_pem, "text/plain")
        if t == "key":
            return Answer(200, key_pem, "text/plain")
        if t == "pair":
            return Answer(200, key_pem + cert_pem, "text/plain")
        return http_error(400, 'invalid type; want "cert" (default), "key", or "pair"')


# ---- what tailscaled's serve proxy sends to a backend ---------------------------------

def q_encode(v):
    """encTailscaleHeaderValue: "" for invalid UTF-8 (a str with lone
    surrogates here), v itself when it has only printable ASCII and tabs,
    else Go's mime.QEncoding.Encode("utf-8", v): =?utf-8?q?...?= words of at
    most 75 bytes, a space between words, runes never split."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    if all(" " <= ch <= "~" or ch == "\t" for ch in v):
        return v
    words, cur, cur_len = [], [], 0
    for ch in v:
        b = ch.encode("utf-8")
        plain = len(b) == 1 and " " <= ch <= "~" and ch not in "=?_"
        enc_len = 1 if plain else 3 * len(b)
        if cur_len + enc_len > 75 - len("=?UTF-8?q?") - len("?="):
            words.append("".join(cur))
            cur, cur_len = [], 0
        for x in b:
            c = chr(x)
            if c == " ":
                cur.append("_")
            elif "!" <= c <= "~" and c not in "=?_":
                cur.append(c)
            else:
                cur.append("=%02X" % x)
        cur_len += enc_len
    words.append("".join(cur))
    return " ".join("=?utf-8?q?%s?=" % w for w in words)


def proxy_header(version, src_ip, src_port, dst_ip, dst_port):
    """A PROXY protocol header as go-proxyproto's Header.Format writes it
    for a TCP connection: v1 text or v2 binary (command PROXY, no TLVs)."""
    fam4 = src_ip.version == 4
    if version == 1:
        return ("PROXY %s %s %s %d %d\r\n" % ("TCP4" if fam4 else "TCP6", src_ip, dst_ip,
                                              src_port, dst_port)).encode()
    addrs = src_ip.packed + dst_ip.packed + src_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big")
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11 if fam4 else 0x21])
            + len(addrs).to_bytes(2, "big") + addrs)


HOP_BY_HOP = ("connection", "proxy-connection", "keep-alive", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade")


def serve_proxy_headers(ts, src_ip, host, headers=(), tls=True, funnel=False,
                        unix_backend=True):
    """The Host and headers tailscaled's serve reverse proxy sends to a Proxy
    backend for a request from src_ip (ipn/ipnlocal/serve.go
    reverseProxy.ServeHTTP with httputil.ReverseProxy's Rewrite):
    hop-by-hop headers and the client's Forwarded / X-Forwarded-* are
    dropped; Host is "localhost" for a unix: backend, else the caller's;
    X-Forwarded-Host = the caller's Host, X-Forwarded-Proto https on TLS,
    X-Forwarded-For = src_ip; the client's Tailscale-User-*, -Funnel-Request,
    -Headers-Info and -App-Capabilities are removed; then Funnel traffic
    gets Tailscale-Funnel-Request: ?1, a user node found by whois gets
    Tailscale-User-Login/-Name (Q-encoded), -Profile-Pic and -Headers-Info,
    a tagged node or an unknown address nothing. Returns (host, [(name,
    value)]) with names sorted, as Go writes a Header. The Upgrade of a
    WebSocket request is not modelled."""
    conn_named = set()
    for k, v in headers:
        if k.lower() == "connection":
            conn_named |= {x.strip().lower() for x in v.split(",")}
    drop = set(HOP_BY_HOP) | conn_named | {
        "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
        "tailscale-user-login", "tailscale-user-name", "tailscale-user-profile-pic",
        "tailscale-funnel-request", "tailscale-headers-info", "tailscale-app-capabilities"}
    out = [(k, v) for k, v in headers if k.lower() not in drop and k.lower() != "host"]
    out.append(("X-Forwarded-Host", host))
    if tls:
        out.append(("X-Forwarded-Proto", "https"))
    out.append(("X-Forwarded-For", src_ip))
    if funnel:
        out.append(("Tailscale-Funnel-Request", "?1"))
    else:
        with ts.lock:
            hit = ts.peers.get(src_ip)
        if hit is not None and not hit[0].get("Tags"):
            prof = hit[1]
            out += [("Tailscale-User-Login", q_encode(prof["LoginName"])),
                    ("Tailscale-User-Name", q_encode(prof["DisplayName"])),
                    ("Tailscale-User-Profile-Pic", prof.get("ProfilePicURL", "")),
                    ("Tailscale-Headers-Info", "https://tailscale.com/s/serve-headers")]
    out.sort(key=lambda kv: kv[0].lower())
    return ("localhost" if unix_backend else host), out


# ---- control API (api.tailscale.com) -------------------------------------------------

class ControlAPI:
    """The Tailscale control API over HTTPS on 127.0.0.1 (certificate from
    the TestCA for 127.0.0.1, localhost and api.tailscale.test):

      POST /api/v2/oauth/token        client credentials in the form body or
                                      HTTP Basic; grant_type=client_credentials;
                                      -> {access_token, token_type: "Bearer",
                                          expires_in: 3600, scope}
      GET  /api/v2/tailnet/T/vip-services          {"vipServices": [...]}
      GET|PUT|DELETE /api/v2/tailnet/T/vip-services/svc:NAME

    The certificate covers cert_names and cert_ips (a test of host name
    checking gives it other names).

    T is "-" or `tailnet`. Requests need `Authorization: Bearer TOKEN` (a
    token from the endpoint, not expired) or Basic with an API key from
    api_keys. Errors are JSON {"message": ...} (what the Go client's
    HandleErrorResponse reads). Attributes: services (name -> VIPService
    dict, as stored), requests, answers, count(method, prefix),
    tokens_issued, token_seconds (lifetime of new tokens)."""

    def __init__(self, ca, clients=None, api_keys=(), tailnet="example.com",
                 token_seconds=3600, cert_names=("localhost", "api.tailscale.test"),
                 cert_ips=("127.0.0.1",)):
        self.ca = ca
        self.clients = dict(clients or {})
        self.api_keys = set(api_keys)
        self.tailnet = tailnet
        self.token_seconds = token_seconds
        self.tokens = {}         # token -> (client id, expiry, scope)
        self.tokens_issued = 0
        self.revoke_after = None
        self.hangups = set()     # answers (0-based) after which the connection is closed
        self.delay = 0.0         # seconds before each answer
        self.services = {}
        self.requests = []
        self.answers = []
        self.faults = []
        self.lock = threading.RLock()
        self._vip = 0
        cert, key = ca.files(list(cert_names), ips=list(cert_ips))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.server = _Server(s, self._handle, tls=ctx)

    def close(self):
        self.server.close()

    def fail(self, status, message="", prefix=None, times=None):
        """Answer requests whose path starts with prefix (all when None)
        with status and {"message": message}."""
        with self.lock:
            self.faults.append([prefix, status, message, times])

    def count(self, method=None, prefix=""):
        with self.lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and r.path.startswith(prefix))

    def hang_up_after(self, *answers):
        """Close the connection after the given answers (0-based, counting
        every request), without a Connection: close header, as a server
        whose idle timeout ran out between two requests does."""
        with self.lock:
            self.hangups.update(answers)

    def revoke_tokens_after(self, n):
        """After n more requests with a token, every token issued so far is
        revoked (as an admin revoking the OAuth client's keys would): the
        next request with one of them gets 401."""
        with self.lock:
            self.revoke_after = n

    def expire_tokens(self):
        with self.lock:
            self.tokens = {k: (c, 0, s) for k, (c, _, s) in self.tokens.items()}

    def define(self, name, ports=("tcp:443",), tags=(), addrs=None, comment=""):
        """A Service defined by an admin in the console."""
        with self.lock:
            self.services[name] = self._stored(name, addrs or self._allocate(), comment, None,
                                               list(ports), list(tags), auto=addrs is None)

    def _allocate(self):
        self._vip += 1
        return ["100.124.%d.%d" % (self._vip // 250, self._vip % 250 + 1),
                "fd7a:115c:a1e0:ab12:4843:cd96:6258:%x" % self._vip]

    @staticmethod
    def _stored(name, addrs, comment, annotations, ports, tags, auto):
        s = {"name": name, "addrs": addrs, "comment": comment, "annotations": annotations,
             "ports": ports, "tags": tags, "_auto": auto}
        return s

    @staticmethod
    def _public(s):
        out = Struct()
        for k in ("name", "addrs", "comment", "annotations", "ports", "tags"):
            if s.get(k):           # json:",omitempty" on every field
                out[k] = s[k]
        return out

    @staticmethod
    def _msg(status, message, headers=()):
        return Answer(status, go_json(Struct([("message", message)])), "application/json",
                      headers)

    def _handle(self, req):
        with self.lock:
            self.requests.append(req)
            idx = len(self.answers)
            self.answers.append(None)
        if self.delay:
            time.sleep(self.delay)
        ans = self._answer(req)
        with self.lock:
            self.answers[idx] = ans.status
            ans.hangup = idx in self.hangups
        return ans

    def _answer(self, req):
        with self.lock:
            for f in self.faults:
                if (f[0] is None or req.path.startswith(f[0])) and (f[3] is None or f[3] > 0):
                    if f[3] is not None:
                        f[3] -= 1
                    return self._msg(f[1], f[2])
        if req.path == "/api/v2/oauth/token":
            return self._token(req)
        m = re.fullmatch(r"/api/v2/tailnet/([^/]+)/vip-services(?:/([^/]+))?", req.path)
        if not m:
            return self._msg(404, "not found")
        who = self._auth(req)
        if who is None:
            return self._msg(401, "API token invalid",
                             [("WWW-Authenticate", 'Bearer realm="api"')])
        if m.group(1) not in ("-", self.tailnet):
            return self._msg(404, "tailnet not found")   # inferred
        name = m.group(2)
        if name is None:
            if req.method != "GET":
                return self._msg(405, "method not allowed")
            with self.lock:
                lst = [self._public(s) for _, s in sorted(self.services.items())]
            return Answer(200, go_json(Struct([("vipServices", lst)])), "application/json")
        if not re.fullmatch(r"svc:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
            return self._msg(400, "invalid service name %s" % go_json(name))
        if req.method == "GET":
            with self.lock:
                s = self.services.get(name)
            if s is None:
                return self._msg(404, "not found")
            return Answer(200, go_json(self._public(s)), "application/json")
        if req.method == "DELETE":
            with self.lock:
                s = self.services.pop(name, None)
            if s is None:
                return self._msg(404, "not found")
            return Answer(200, "", "application/json")
        if req.method != "PUT":
            return self._msg(405, "method not allowed")
        return self._put(name, req)

    def _put(self, name, req):
        try:
            doc = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return self._msg(400, "invalid JSON body")
        if not isinstance(doc, dict):
            return self._msg(400, "invalid JSON body")
        if doc.get("name") not in (None, "", name):
            return self._msg(400, "service name in body %s does not match the path"
                             % go_json(doc.get("name")))
        ports = doc.get("ports") or []
        tags = doc.get("tags") or []
        addrs = doc.get("addrs") or []
        for p in ports:
            if not (isinstance(p, str) and (p == "do-not-validate" or re.fullmatch(
                    r"(tcp|udp):[0-9]{1,5}(-[0-9]{1,5})?", p))):
                return self._msg(400, "invalid port %s" % go_json(p))
        for t in tags:
            if not (isinstance(t, str) and re.fullmatch(r"tag:[A-Za-z0-9][A-Za-z0-9-]*", t)):
                return self._msg(400, "invalid tag %s" % go_json(t))
        with self.lock:
            old = self.services.get(name)
            if old is None:
                if addrs and (len(addrs) > 1 or ":" in addrs[0]):
                    return self._msg(400, "only an IPv4 address may be requested for a new "
                                          "service")
                new_addrs = self._allocate()
                if addrs:
                    new_addrs[0] = addrs[0]
                auto = not addrs
            else:
                # vip_service.go: an update that does not resend auto-allocated
                # addresses errors (the status is not documented: 400 here);
                # addresses that differ from the ones held are refused too
                # (inferred: an IPv6 address cannot be chosen)
                if (not addrs and old["_auto"]) or (addrs and sorted(addrs) != sorted(old["addrs"])):
                    return self._msg(400, "addrs must be resent unchanged when updating a "
                                          "service (got %s, have %s)"
                                     % (go_json(addrs), go_json(old["addrs"])))
                new_addrs, auto = list(old["addrs"]), old["_auto"]   # kept when not resent
            self.services[name] = self._stored(name, new_addrs, doc.get("comment") or "",
                                               doc.get("annotations") or None, ports, tags, auto)
            out = self._public(self.services[name])
        return Answer(200, go_json(out), "application/json")

    def _auth(self, req):
        a = next((v for k, v in req.headers if k.lower() == "authorization"), "")
        now = time.time()
        with self.lock:
            if a.startswith("Bearer "):
                if self.revoke_after == 0:
                    self.tokens.clear()
                    self.revoke_after = None
                elif self.revoke_after is not None:
                    self.revoke_after -= 1
                t = self.tokens.get(a[7:])
                if t and t[1] > now:
                    return t[0]
                return None
            if a.startswith("Basic "):
                try:
                    user = base64.b64decode(a[6:]).decode().split(":", 1)[0]
                except (ValueError, UnicodeDecodeError):
                    return None
                return user if user in self.api_keys else None
        return None

    def _token(self, req):
        if req.method != "POST":
            return self._msg(405, "method not allowed")
        form = urllib.parse.parse_qs(req.body.decode("latin-1"), keep_blank_values=True)
        cid = (form.get("client_id") or [""])[0]
        sec = (form.get("client_secret") or [""])[0]
        a = next((v for k, v in req.headers if k.lower() == "authorization"), "")
        if a.startswith("Basic ") and not cid:
            try:
                cid, _, sec = base64.b64decode(a[6:]).decode().partition(":")
                cid, sec = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)
            except (ValueError, UnicodeDecodeError):
                cid = sec = ""
        if (form.get("grant_type") or [""])[0] != "client_credentials":
            # RFC 6749 5.2 (the real endpoint's error body is not in the source)
            return Answer(400, go_json(Struct([("error", "unsupported_grant_type")])),
                          "application/json")
        if not cid or cid not in self.clients or not secrets.compare_digest(
                self.clients[cid].encode(), sec.encode()):
            return Answer(401, go_json(Struct([("error", "invalid_client"),
                                               ("error_description",
                                                "invalid client credentials")])),
                          "application/json")
        token = "tskey-api-" + secrets.token_hex(8) + "-" + secrets.token_hex(16)
        scope = (form.get("scope") or ["all"])[0] or "all"
        with self.lock:
            self.tokens[token] = (cid, time.time() + self.token_seconds, scope)
            self.tokens_issued += 1
        body = Struct([("access_token", token), ("token_type", "Bearer"),
                       ("expires_in", self.token_seconds), ("scope", scope)])
        return Answer(200, go_json(body), "application/json")


if __name__ == "__main__":
    import sys
    if len(sys.argv) < 2:
        print("usage: tailscale_emu.py SOCKET [DIR]", file=sys.stderr)
        sys.exit(2)
    d = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="tailscale-emu-")
    ca = TestCA(d)
    ts = LocalAPI(sys.argv[1], ca=ca, auto_approve=True)
    ts.add_user_node(["100.64.0.2", "fd7a:115c:a1e0::2"], "zoe@example.com", "Zoë Müller",
                     pic="https://example.com/zoe.png")
    ts.add_tagged_node("100.64.0.3", ["tag:monitoring"])
    ctl = ControlAPI(ca, clients={"client-id": "client-secret"})
    print("tailscaled LocalAPI emulation (Tailscale %s source, reporting version %s) on %s; "
          "control API on %s (CA %s)" % (TAILSCALE_SOURCE_VERSION, ts.version, ts.path,
                                         ctl.url, ca.root), flush=True)
    threading.Event().wait()
