#!/usr/bin/python3
"""mutate.py - plant small bugs in src/ one at a time and see whether the
tests notice (mutation testing). `make mutate` runs it.

    /usr/bin/python3 tests/mutate.py [--only B1,B2] [--list] [--check] [--no-baseline] [--keep]

Each mutant in MUTANTS below names a file, an exact snippet of the
original source, its replacement, the behaviour it breaks (as the README
promises it), and the end-to-end tests (-k substrings) that should catch it.
A snippet that is not found exactly once in the current source is reported
as STALE (the table needs updating) and counts as a failure: it is never
skipped silently.

Nothing in the checkout is modified: src/, tests/unit/ and the Makefile are
copied to a temporary directory, built there once (the baseline), and each
mutant is written into that copy, rebuilt (one object file and the links),
tested, and reverted. The temporary directory is removed at the end, also
on Ctrl-C (--keep leaves it for a look).

A mutant is CAUGHT when any unit test binary fails or its e2e subset fails,
SURVIVED when all pass, and INVALID when it does not build. Before the
mutants, the baseline build runs the e2e subsets of all selected mutants
once; if that fails, nothing is scored. Exit status: 0 when every mutant
not marked `equivalent` is caught, else 1.

Environment: E2E_BIG_BYTES (default 64 MiB here), MUTATE_JOBS (make -j,
default 2), MUTATE_TIMEOUT (seconds per e2e subset, default 600).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def M(mid, path, old, new, promise, k, equivalent=None):
    return {"id": mid, "file": path, "old": old, "new": new, "promise": promise, "k": k,
            "equivalent": equivalent}


# fmt: off
MUTANTS = [
    # ---- the audit's five (parsing and header core) --------------------------------------
    M("M1", "src/chunked.c",
      "d->remaining > (UINT64_C(0x7fffffffffffffff) >> 4)",
      "d->remaining >= (UINT64_C(0x7fffffffffffffff) >> 4)",
      "the largest legal chunk size is accepted", ["chunked"]),
    M("M2", "src/headers.c",
      'alias_prefix(name, "x-tailscale-") || alias_prefix(name, "tailscale-") ||',
      'alias_prefix(name, "x-tailscale-") ||',
      "client-sent Tailscale-* headers are removed", ["header_forwarding"]),
    M("M3", "src/headers.c",
      """            put(o, h->value.p, h->value.len);
            put(o, ", ", 2);
        }
    }
    put_str(o, client);""",
      """            put(o, h->value.p, h->value.len);
            put(o, "\\r\\n", 2);
            return;
        }
    }
    put_str(o, client);""",
      "X-Forwarded-For gets the client address appended", ["header_forwarding"]),
    M("M4", "src/http1.c",
      "if (f->has_cl) /* even with the same value */\n"
      "                return *why = \"Content-Length given more than once\", bad;",
      "uint64_t v = 0;\n            if (!parse_length(h[i].value, &v) || (f->has_cl && v != f->cl))\n"
      "                return bad;",
      "a repeated Content-Length (even with the same value) is 400",
      ["repeated_identical_content_length"],
      equivalent="libhttp-parser refuses a second Content-Length before portico's own check runs"),
    M("M5", "src/body.c",
      "        b->remaining -= n;\n",
      "",
      "Content-Length bodies are forwarded whole and the exchange ends",
      ["content_length", "pipelined", "http10"]),

    # ---- the audit's eleven survivors (timeouts, byte counts, forward auth) --------------
    M("B1", "src/exstate.c",
      "    uint64_t left = idle < lim->body_timeout_ms ? lim->body_timeout_ms - idle : 0;",
      "    uint64_t left = idle < lim->tunnel_timeout_ms ? lim->tunnel_timeout_ms - idle : 0;",
      "body_timeout: a client silent mid-body gets 408", ["body_timeout"]),
    M("B2", "src/conn.c",
      ": lim->keepalive_timeout_ms;",
      ": lim->tunnel_timeout_ms;",
      "keepalive_timeout closes an idle client connection", ["keepalive_timeout"]),
    M("B3", "src/auth.c",
      "    digest_part(md, t->method, strlen(t->method));\n",
      "",
      "the auth cache is keyed by the method", ["auth_cache"]),
    M("B4", "src/exstate.c",
      "    [WAIT_CONNECT] = {IN_SERVICE, offsetof(struct config_service, connect_timeout_ms)},",
      "    [WAIT_CONNECT] = {IN_SERVICE, offsetof(struct config_service, timeout_ms)},",
      "connect_timeout: a connect not done in time is 504", ["connect_timeout"]),
    M("B5", "src/conn.c",
      'reject(c, 408, "request timeout: the request head did not arrive in time");',
      "conn_close(c);",
      "a head that does not arrive within header_timeout gets 408", ["slowloris", "header_timeout"]),
    M("B6", "src/tunnel.c",
      "                ex->bytes_out += (uint64_t)n;\n                ex->resp_started = true;\n",
      "                ex->resp_started = true;\n",
      "out= and portico_bytes_sent_total count spliced responses", ["exact_bytes"]),
    M("B7", "src/authreq.c",
      "    if (w->auth_serial != cfg->serial) {",
      "    if (!w->auth_caches) {",
      "a reload empties the auth caches", ["auth_cache"]),
    M("B8", "src/authreq.c",
      "        if (ex->resp.content_length > LIMIT_AUTH_BODY_BYTES)\n",
      "        if (ex->resp.content_length > 4 * LIMIT_AUTH_BODY_BYTES)\n",
      "a provider answer whose body exceeds 16 KiB is 502", ["auth"]),
    M("B9", "src/auth.c",
      '"Cookie",         "Authorization", "Proxy-Authorization",',
      '"Cookie",         "Authorization",',
      "Proxy-Authorization is passed to the provider", ["auth"]),
    M("B10", "src/authreq.c",
      "    if (ex->u && ex->u->reused && !ex->auth_retried && !ex->auth_head_len) {",
      "    if (ex->u && ex->u->reused && !ex->auth_retried && !ex->auth_head_len && false) {",
      "a pooled provider connection the provider closed is retried once", ["auth"]),
    M("B11", "src/authreq.c",
      '    snprintf(ex->auth_host, sizeof ex->auth_host, "%s", host);',
      '    snprintf(ex->auth_host, sizeof ex->auth_host, "%.*s", (int)req->host.len, req->host.p);',
      "X-Forwarded-Host to the provider is lower-case", ["auth"]),

    # ---- forward auth, beyond the audit's survivors -----------------------------------------
    M("A1", "src/authreq.c",
      "        if (avail > LIMIT_AUTH_BODY_BYTES)\n",
      "        if (avail > 4 * LIMIT_AUTH_BODY_BYTES)\n",
      "a provider body read to EOF over 16 KiB is 502", ["auth_provider_body_limit"]),
    M("A2", "src/authreq.c",
      "    static __thread char dechunked[LIMIT_AUTH_BODY_BYTES];",
      "    static __thread char dechunked[4 * LIMIT_AUTH_BODY_BYTES];",
      "a chunked provider body over 16 KiB is 502", ["auth_provider_body_limit"]),
    M("A3", "src/auth.c",
      '                                        "Accept-Language"};',
      "};",
      "Accept-Language is passed to the provider", ["legacy_verify"]),
    M("A4", "src/config_auth.c",
      "    a->path = cfg_strdup(p, u.path[0] == '?' ? \"/\" : u.path);",
      "    a->path = cfg_strndup(p, u.path, strcspn(u.path, \"?\"));",
      "the provider url's query is sent as written", ["url_query", "legacy_verify"]),
    M("A5", "src/authreq.c",
      "        if (http1_parse_response(d, (size_t)hl, METHOD_GET, &ex->resp) < 0 || ex->resp.status < 200)\n",
      "        if ((http1_parse_response(d, (size_t)hl, METHOD_GET, &ex->resp), 0) || ex->resp.status < 200)\n",
      "a provider answer that does not parse is 502", ["does_not_parse"]),
    M("A6", "src/authreq.c",
      "    t->client = conn_addr(ex->c);",
      "    static __thread char peer[64];\n"
      "    void listener_format_peer(const struct sockaddr_storage *, socklen_t, char *, size_t);\n"
      "    struct sockaddr_storage ss;\n    socklen_t sl = sizeof ss;\n"
      "    getpeername(ex->c->s.io.fd, (struct sockaddr *)&ss, &sl);\n"
      "    listener_format_peer(&ss, sl, peer, sizeof peer);\n    t->client = peer;",
      "X-Forwarded-For to the provider is the client after any PROXY header",
      ["forwarded_for_after_a_proxy"]),
    M("A7", "src/auth.c",
      "            for (size_t j = 0; j < resp->nheaders && !h; j++)",
      "            for (size_t j = 0; j < resp->nheaders; j++)",
      "copy_headers takes the provider's first value of each name", ["copy_headers_custom"]),
    M("A8", "src/auth.c",
      "    if (v.len == 0 || v.len >= LIMIT_AUTH_VALUE_BYTES)",
      "    if (v.len == 0 || v.len > LIMIT_AUTH_VALUE_BYTES)",
      "copied values of 4 KiB or more are dropped", ["copy_headers_custom"]),
    M("A9", "src/upstream.c",
      "            ok = ok && SSL_set_tlsext_host_name(ssl, up->tls_name) == 1 &&\n",
      "            ok = ok &&\n",
      "an https provider named in the url is asked with SNI", ["with_sni"]),
    M("A10", "src/upstream.c",
      "&&\n                 SSL_set1_host(ssl, up->tls_name) == 1;",
      ";",
      "an https provider's certificate is checked against the name in the url", ["with_sni"]),
    M("A11", "src/config_auth.c",
      "    if (a->timeout_ms < TIMEOUT_AUTH_MS_WARN)",
      "    if (a->timeout_ms < 2000)",
      "check warns about a provider timeout under 3s", ["timeout_under_3s"]),

    # ---- more timeouts ----------------------------------------------------------------------
    M("T1", "src/exstate.c",
      "    [WAIT_CLIENT_WRITE] = {IN_LIMITS, offsetof(struct config_limits, send_timeout_ms)},",
      "    [WAIT_CLIENT_WRITE] = {IN_LIMITS, offsetof(struct config_limits, tunnel_timeout_ms)},",
      "send_timeout closes a client that does not read", ["send_timeout"]),
    M("T2", "src/exstate.c",
      "    [WAIT_TUNNEL] = {IN_LIMITS, offsetof(struct config_limits, tunnel_timeout_ms)},",
      "    [WAIT_TUNNEL] = {IN_LIMITS, offsetof(struct config_limits, keepalive_timeout_ms)},",
      "tunnel_timeout closes an idle WebSocket/upgraded connection", ["tunnel_timeout"]),
    M("T3", "src/upstream.c",
      "loop_timer_arm(w->loop, &u->idle_timer, lim->upstream_keepalive_timeout_ms);",
      "loop_timer_arm(w->loop, &u->idle_timer, lim->keepalive_timeout_ms);",
      "upstream_keepalive_timeout closes idle pooled connections", ["upstream_pool"]),
    M("T4", "src/upstream.c",
      "u->pool->nidle >= lim->upstream_keepalive) {",
      "u->pool->nidle > lim->upstream_keepalive) {",
      "upstream_keepalive bounds the idle pooled connections", ["upstream_pool"]),
    M("T5", "src/tcp.c",
      "uint64_t ms = t->connecting ? t->svc->connect_timeout_ms : quiet_limit(t);",
      "uint64_t ms = quiet_limit(t);",
      "a TCP forwarder's connect_timeout bounds the connect", ["connect_timeout", "tcp_forward"]),
    M("T6", "src/tcp.c",
      "        t->status = 504;",
      "        t->status = 502;",
      "a forwarder whose connect timed out logs status=504", ["connect_timeout", "tcp_forward"]),
    M("T7", "src/worker.c",
      "loop_timer_arm(l, &w->drain_timer, w->cfg->limits.shutdown_timeout_ms);",
      "loop_timer_arm(l, &w->drain_timer, w->cfg->limits.send_timeout_ms);",
      "shutdown_timeout ends the drain", ["shutdown_timeout", "sigterm"]),
    M("T8", "src/exstate.c",
      "    conn_arm_timer_within(ex->c, left ? left : 1);",
      "    (void)left;",
      "body_timeout fires on time after the head went upstream", ["body_timeout"]),

    # ---- draining and restarts ----------------------------------------------------------------
    M("D1", "src/conn.c",
      "    if (c->state == CONN_EXCHANGE && c->ex && proxy_close_tunnel(c->ex))\n"
      "        return CONN_DRAIN_TUNNEL;\n",
      "",
      "upgraded tunnels close at drain start; in-flight requests finish",
      ["closes_websocket_at_once"]),
    M("D2", "src/conn.c",
      "    if (c->nrequests == 0) {",
      "    if (c->nrequests == 0 && 0) {",
      "a connection accepted before the drain still gets its first request answered",
      ["just_accepted"]),
    M("D3", "src/tcp.c",
      "        if (now - t->last_activity >= LIMIT_DRAIN_TCP_QUIET_MS) {",
      "        if (now - t->last_activity >= LIMIT_DRAIN_TCP_QUIET_MS && 0) {",
      "a quiet TCP stream closes at drain start", ["quiet_tcp_stream"]),
    M("D4", "src/upgrade.c",
      "            __atomic_store_n(&u->srv->listeners[i]->keep_path, true, __ATOMIC_RELEASE);",
      "            ;",
      "after SIGUSR2 the old process leaves the Unix socket file to the new one",
      ["unix_socket_file"]),
    M("D5", "src/upgrade.c",
      "    if (r > 0 && u->child) {",
      "    if (r >= 0 && u->child) {",
      "a new process that fails at SIGUSR2 leaves the old one serving",
      ["sigusr2_broken_config"]),
    M("D6", "src/listener.c",
      "    if (pid != (long)getpid()) {",
      "    if (pid == (long)getpid()) {",
      "LISTEN_FDS sockets are used when LISTEN_PID is this process",
      ["socket_activation", "sigusr2_restart"]),

    # ---- header stripping and forwarding ---------------------------------------------------
    M("H1", "src/headers.c",
      '    return alias_prefix(name, "x-tailscale-") || alias_prefix(name, "tailscale-") ||\n'
      '           alias_prefix(name, "remote-");',
      '    return alias_prefix(name, "x-tailscale-") || alias_prefix(name, "tailscale-");',
      "client-sent Remote-* headers are removed", ["header_forwarding", "identity"]),
    M("H2", "src/headers.c",
      '"connection", "keep-alive",        "proxy-connection", "te",',
      '"connection", "keep-alive",        "proxy-connection",',
      "TE is hop-by-hop and not forwarded", ["header_forwarding"]),
    M("H3", "src/headers.c",
      '"trailer",    "transfer-encoding", "upgrade"};',
      '"transfer-encoding", "upgrade"};',
      "Trailer is hop-by-hop; trailers are dropped", ["trailers", "header_forwarding"]),
    M("H4", "src/exchange.c",
      '        .proto = conn_https(c) ? "https" : "http",',
      '        .proto = "http",',
      "X-Forwarded-Proto is https on scheme: https and TLS listeners",
      ["scheme_https", "forwarded_proto"]),
    M("H5", "src/headers.c",
      "    if (rest == end || *rest == '?')\n        put(o, \"/\", 1);",
      "    if (rest == end)\n        put(o, \"/\", 1);",
      "an absolute-form target goes upstream in origin-form", ["absolute_form"]),

    # ---- routing ---------------------------------------------------------------------------
    M("R1", "src/route.c",
      "route_match(svc, res->npath, res->npath_len);",
      "route_match(svc, rq->path.p, rq->path.len);",
      "routes match the normalised path", ["routes_match", "path_routes"]),
    M("R2", "src/http1.c",
      "        req->host = authority; /* RFC 9112 3.2.2: the target's authority wins */",
      "        (void)authority;",
      "an absolute-form request is routed by its authority", ["absolute_form"]),
    M("R3", "src/route.c",
      "    if (hlen > 1 && in[0] != '[' && in[hlen - 1] == '.')\n        hlen--;",
      "",
      "a trailing dot in Host is ignored", ["host_case"]),
    M("R4", "src/route.c",
      "                if (is_unreserved(d)) {",
      "                if (is_unreserved(d) && d != 'a') {",
      "percent-encoded unreserved characters are decoded for routing", ["routes_match"]),

    # ---- apps behind portico, slow bodies, log redaction ------------------------------------
    M("P1", "src/respond.c",
      "    int status = id == METHOD_GET || id == METHOD_HEAD ? 301 : 308;",
      "    int status = id == METHOD_GET || id == METHOD_HEAD ? 301 : 301;",
      "redirect_https: 308 for methods other than GET and HEAD", ["redirect_https"]),
    M("P2", "src/log.c",
      '            copy_cut(out, cap, &o, "REDACTED", 8);',
      "            copy_cut(out, cap, &o, eq + 1, (size_t)(pair_end - eq - 1));",
      "credential-like query values are REDACTED in the access log", ["redacts"]),
    M("P3", "src/headers.c",
      '        put_str(o, "\\"[");\n        put_str(o, client);\n        put_str(o, "]\\"");',
      "        put_str(o, client);",
      "Forwarded quotes an IPv6 client as \"[addr]\"", ["forwarded_headers", "ipv6"]),
    M("P4", "src/headers.c",
      '        put_str(o, "unknown");',
      "        put_str(o, client);",
      "Forwarded names a Unix-socket peer `unknown`", ["forwarded_headers", "unix_socket_listener"]),
    M("P5", "src/exchange.c",
      "    } else if (ex->svc->host_header_upstream) {",
      "    } else if (ex->svc->host_header_upstream && false) {",
      "host_header: upstream sends the app its own address", ["host_header"]),
    M("P6", "src/exstate.c",
      "    if (left == 0 || lim->body_min_rate == 0)\n        return left;",
      "    if (left || !left)\n        return left;",
      "a body under body_min_rate after body_rate_grace gets 408", ["min_rate"]),

    # ---- limits and byte counts ------------------------------------------------------------
    M("L1", "src/http1.c",
      "            if (line > lim->max_request_line)",
      "            if (line >= lim->max_request_line)",
      "a request line of max_request_line bytes is accepted", ["configured_max", "414"]),
    M("L2", "src/http1.c",
      "    if (have > lim->max_header_bytes)",
      "    if (have > lim->max_header_bytes + 1)",
      "a head over max_header_bytes is 431", ["configured_max", "431"]),
    M("L3", "src/h1client.c",
      "            if (wrote) {\n                ex->bytes_out += wrote;",
      "            if (wrote) {",
      "out= counts copied responses", ["exact_bytes"]),
    M("L4", "src/h1client.c",
      "                return progress;\n            }\n            ex->bytes_in += ex->rq.consumed;",
      "                return progress;\n            }",
      "in= counts uploaded bodies", ["exact_bytes"]),
    M("L5", "src/h1client.c",
      "    return ex->u && ex->u->reused && !ex->retried && !ex->upstream_spoke &&",
      "    return false && ex->u && ex->u->reused && !ex->retried && !ex->upstream_spoke &&",
      "a request on a pooled connection the upstream closed is retried once", ["retry"]),
]
# fmt: on


def log(msg):
    print(msg, flush=True)


def run(cmd, cwd, timeout, env=None):
    """Run cmd niced; returns (exit status or None on timeout, output)."""
    p = subprocess.Popen(["nice", "-n", "10"] + cmd, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None, "timed out after %ds" % timeout
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise


class Tree:
    """A private copy of the sources with its own build directory."""

    def __init__(self, keep):
        self.dir = tempfile.mkdtemp(prefix="portico-mutate-")
        self.keep = keep
        for d in ("src", "tests/unit", "tests/fixtures"):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(self.dir, d))
        shutil.copy2(os.path.join(ROOT, "Makefile"), self.dir)
        self.jobs = os.environ.get("MUTATE_JOBS", "2")

    def build(self):
        return run(["make", "-j", self.jobs, "all", "unit", "BUILD=build"], self.dir, 900)

    def unit(self):
        """Names of the failing unit binaries (all run)."""
        failed = []
        ud = os.path.join(self.dir, "build", "unit")
        for name in sorted(os.listdir(ud)):
            path = os.path.join(ud, name)
            if not os.access(path, os.X_OK):
                continue
            rc, _ = run([path], self.dir, 300)
            if rc != 0:
                failed.append(name)
        return failed

    def e2e(self, ks):
        env = dict(os.environ)
        env.setdefault("E2E_BIG_BYTES", str(64 << 20))
        cmd = [sys.executable, os.path.join(ROOT, "tests", "e2e", "run.py"),
               "--portico", os.path.join(self.dir, "build", "portico")]
        for k in ks:
            cmd += ["-k", k]
        rc, out = run(cmd, ROOT, int(os.environ.get("MUTATE_TIMEOUT", "600")), env)
        fails = [l.split()[1].rstrip(":") for l in out.splitlines() if l.startswith("FAIL ")]
        summary = [l[5:] for l in out.splitlines() if l.startswith("e2e: ") and "passed" in l]
        return rc, fails, (summary[-1] if summary else "".join(out.strip().splitlines()[-1:]))

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def remove(self):
        if self.keep:
            log("mutate: tree kept in %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated mutant ids (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the baseline run of the e2e subsets")
    ap.add_argument("--keep", action="store_true", help="keep the temporary tree")
    ap.add_argument("--check", action="store_true",
                    help="only look for stale snippets (no build, no tests)")
    a = ap.parse_args()

    ids = [m["id"] for m in MUTANTS]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        log("mutate: mutant ids used twice in the table: %s" % " ".join(dup))
        return 2
    sel = MUTANTS
    if a.only:
        want = [x.strip() for x in a.only.split(",") if x.strip()]
        ids = {m["id"] for m in MUTANTS}
        unknown = [w for w in want if w not in ids]
        if unknown:
            log("mutate: unknown mutant id(s): %s" % ", ".join(unknown))
            return 2
        sel = [m for m in MUTANTS if m["id"] in want]
    if a.list:
        for m in sel:
            log("%-4s %-15s %s  [-k %s]" % (m["id"], m["file"], m["promise"], " -k ".join(m["k"])))
        return 0

    # Stale snippets are found before anything is built.
    stale = []
    for m in sel:
        n = open(os.path.join(ROOT, m["file"])).read().count(m["old"])
        if n != 1:
            stale.append(m["id"])
            log("STALE %s: the original snippet occurs %d times in %s (expected once): %r"
                % (m["id"], n, m["file"], m["old"][:80]))
    if a.check:
        log("mutate: %d mutants, %d stale" % (len(sel), len(stale)))
        return 1 if stale else 0

    tree = Tree(a.keep)
    results = {}
    t_all = time.time()
    try:
        log("mutate: baseline build in %s" % tree.dir)
        rc, out = tree.build()
        if rc != 0:
            log("mutate: the unmutated sources do not build:\n" + out[-3000:])
            return 2
        bad = tree.unit()
        if bad:
            log("mutate: unit tests fail without any mutant: %s" % " ".join(bad))
            return 2
        live = [m for m in sel if m["id"] not in stale]
        if not a.no_baseline and live:
            ks = sorted({k for m in live for k in m["k"]})
            rc, fails, summary = tree.e2e(ks)
            if rc != 0:
                log("mutate: the e2e subsets fail without any mutant (%s): %s"
                    % (summary, " ".join(fails)))
                return 2
            log("mutate: baseline ok (unit, e2e %s)" % summary)
        for m in live:
            t0 = time.time()
            path = tree.path(m["file"])
            orig = open(path).read()
            try:
                with open(path, "w") as f:
                    f.write(orig.replace(m["old"], m["new"], 1))
                rc, out = tree.build()
                if rc != 0:
                    verdict, detail = "INVALID", "does not build: " + \
                        " | ".join(l for l in out.splitlines() if "error:" in l)[:300]
                else:
                    ufail = tree.unit()
                    erc, efail, summary = tree.e2e(m["k"])
                    caught = bool(ufail) or erc != 0
                    verdict = "caught" if caught else "SURVIVED"
                    detail = "unit %s; e2e %s%s" % (
                        ("failed: " + " ".join(ufail)) if ufail else "passed",
                        summary, (" (" + " ".join(efail) + ")") if efail else "")
            finally:
                with open(path, "w") as f:   # a new mtime: the next build recompiles it
                    f.write(orig)
            results[m["id"]] = verdict
            note = ""
            if verdict == "SURVIVED" and m["equivalent"]:
                note = " [equivalent: %s]" % m["equivalent"]
            log("%-8s %-4s %s (%.0fs): %s%s" % (verdict, m["id"], m["promise"], time.time() - t0,
                                               detail, note))
    except KeyboardInterrupt:
        log("mutate: interrupted; the checkout was not modified")
        return 130
    finally:
        tree.remove()

    caught = sum(1 for v in results.values() if v == "caught")
    survived = [i for i, v in results.items() if v == "SURVIVED"]
    invalid = [i for i, v in results.items() if v == "INVALID"]
    equiv = [m["id"] for m in sel if m["id"] in survived and m["equivalent"]]
    real = [i for i in survived if i not in equiv]
    total = len(sel)
    log("mutate: %d mutants, %d caught, %d survived (%d equivalent), %d invalid, %d stale; "
        "%.0fs" % (total, caught, len(survived), len(equiv), len(invalid), len(stale),
                   time.time() - t_all))
    killable = total - len(equiv)
    log("mutate: score %d/%d (%d/%d of the killable ones)%s"
        % (caught, total, caught, killable,
           ("; survivors: " + " ".join(survived)) if survived else ""))
    return 0 if not real and not invalid and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
