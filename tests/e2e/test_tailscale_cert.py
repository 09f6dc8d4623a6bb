"""Certificates from tailscaled for the TLS portico terminates (tls.tailscale).

tailscaled is the emulation in tests/tailscale_emu.py: its cert/ endpoint
hands out pairs signed by a test CA, so a client that trusts that CA
verifies what portico serves."""

import os
import ssl
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import SUFFIX, LocalAPI, TestCA as EmuCA  # noqa: E402

ALPHA = "alpha." + SUFFIX
BETA = "beta." + SUFFIX   # under the suffix, but not in CertDomains


def _setup(ctx, cert_seconds=90 * 86400, backdate=60, start=True, state_dir=None):
    ca = EmuCA(os.path.join(ctx.dir, "ca"))
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"), ca=ca, cert_seconds=cert_seconds)
    ts.cert_backdate = backdate
    ts.extra_cert_domains = [ALPHA]
    ctx.cleanups.append(ts.close)
    o = ctx.origin()
    p = ctx.portico({"alpha": svc(o, [ALPHA]), "beta": svc(o, [BETA])}, metrics=True,
                    start=False)
    p.cfg["listen"][0]["tls"] = True
    p.cfg["tls"] = {"tailscale": True}
    p.cfg["tailscale"] = {"socket": ts.path,
                          "state_dir": state_dir or os.path.join(ctx.dir, "state")}
    p.write_config(p.cfg)
    if start:
        p.start()
    return ca, ts, p


def _wait_log(p, text, n=1, timeout=20):
    end = time.time() + timeout * SCALE
    while time.time() < end:
        lines = [l for l in p.stderr() if text in l]
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError("no %d log lines with %r; stderr: %s"
                         % (n, text, " | ".join(p.stderr()[-10:])))


def _serial(port, name, ca):
    """The serial number (hex, upper case) of the certificate portico
    presents for SNI name, verified against the test CA."""
    c = ssl.create_default_context(cafile=ca.root)
    with _tls_connect(port, name, ca.root, c) as s:
        der = s.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return out.strip().split("=", 1)[1].upper()


def _emu_serial(ts, name):
    chain = ts.certs[name][1]
    leaf = chain[:chain.index(b"-----END CERTIFICATE-----") + 26]
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=leaf,
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return out.strip().split("=", 1)[1].upper()


def _curl(port, name, ca):
    return subprocess.run(["curl", "-sS", "--max-time", str(int(10 * SCALE)), "--cacert", ca.root,
                           "--resolve", "%s:%d:127.0.0.1" % (name, port),
                           "-o", "/dev/null", "-w", "%{http_code}", "https://%s:%d/" % (name, port)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _metric(p, metric, **labels):
    return _scrape(p.metrics_port).get((metric, tuple(sorted(labels.items()))))


@test(timeout=90)
def test_tscert_fetched_cached_and_served_by_sni(ctx):
    ca, ts, p = _setup(ctx)
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA)
    r = _curl(p.port, ALPHA, ca)
    eq((r.returncode, r.stdout), (0, b"200"), "curl verifies %s with the test CA (%s)"
       % (ALPHA, r.stderr.decode()[-300:]))
    eq(_serial(p.port, ALPHA, ca), _emu_serial(ts, ALPHA), "the certificate tailscaled issued")
    req = [q for q in ts.requests if q.path.startswith("/localapi/v0/cert/")]
    eq([(q.path, q.query) for q in req], [("/localapi/v0/cert/" + ALPHA, {"type": ["pair"]})],
       "one fetch, for the name in CertDomains only")
    # Cached: key then chain, exactly as tailscaled sent them, mode 0600.
    path = os.path.join(ctx.dir, "state", "certs", ALPHA + ".pem")
    with open(path, "rb") as f:
        eq(f.read(), ts.certs[ALPHA][0] + ts.certs[ALPHA][1], "the cache holds the pair")
    eq(stat.S_IMODE(os.stat(path).st_mode), 0o600, "cache file mode")
    eq(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700, "cache directory mode")
    # beta is under the tailnet's suffix but tailscaled has no certificate for it.
    _wait_log(p, "no certificate for %s yet: tailscaled does not list it in CertDomains" % BETA)
    r = _curl(p.port, BETA, ca)
    expect(r.returncode != 0, "no certificate for beta: the handshake fails")
    eq(_metric(p, "portico_tailscale_cert_fetches_total", result="ok"), 1, "fetches ok")
    exp = _metric(p, "portico_tailscale_cert_expiry_timestamp_seconds", name=ALPHA)
    expect(exp and abs(exp - ts.cert_not_after[ALPHA]) < 5, "expiry gauge %r" % exp)


@test(timeout=120)
def test_tscert_cache_serves_when_tailscaled_is_down_at_start(ctx):
    ca, ts, p = _setup(ctx)
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA)
    first = _serial(p.port, ALPHA, ca)
    p.stop()
    ts.down()
    # The same configuration in a new process (a Portico object reads its
    # ports from the first start's lines, so a restart gets a new one).
    p = ctx.portico({}, start=False, name="portico2", metrics=True)
    p.write_config(ctx.porticos[0].cfg)
    p.start()
    _wait_log(p, "certificate for %s read from %s" % (ALPHA, os.path.join(ctx.dir, "state")))
    eq(_serial(p.port, ALPHA, ca), first, "the cached certificate, without tailscaled")
    r = _curl(p.port, ALPHA, ca)
    eq((r.returncode, r.stdout), (0, b"200"), "verified from the cache")
    _wait_log(p, "cannot read tailscaled's status for certificates")
    # tailscaled back: the cached certificate is still valid for long, so
    # nothing is fetched, and nothing changes.
    n = ts.count("GET", "cert")
    ts.up()
    _wait_log(p, "tailscaled's status is readable again", timeout=30)
    time.sleep(0.5 * SCALE)
    eq(ts.count("GET", "cert"), n, "no fetch while the cached certificate is not due")
    eq(_serial(p.port, ALPHA, ca), first, "still the cached certificate")


@test(timeout=120)
def test_tscert_renewed_in_the_background_without_restart(ctx):
    # 14 s of validity, renewed at two thirds: about 9 s after issue.
    ca, ts, p = _setup(ctx, cert_seconds=13, backdate=1)
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA)
    first = _serial(p.port, ALPHA, ca)
    ts.cert_seconds = 90 * 86400   # the renewal gives a long-lived one
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA, n=2, timeout=40)
    second = _serial(p.port, ALPHA, ca)
    expect(second != first, "a new certificate is served: %s then %s" % (first, second))
    eq(second, _emu_serial(ts, ALPHA), "the renewed one")
    renewal = [q for q in ts.requests if q.path.startswith("/localapi/v0/cert/")][-1]
    expect("min_validity" in renewal.query, "a renewal asks for more validity: %s"
           % renewal.target)
    eq(sum(1 for l in p.stderr() if "serving" in l and "portico " in l), 1, "no restart")
    path = os.path.join(ctx.dir, "state", "certs", ALPHA + ".pem")
    with open(path, "rb") as f:
        eq(f.read(), ts.certs[ALPHA][0] + ts.certs[ALPHA][1], "the cache has the new pair")
    eq(_metric(p, "portico_tailscale_cert_fetches_total", result="ok"), 2, "two fetches")


@test(timeout=120)
def test_tscert_failed_renewal_keeps_the_old_certificate(ctx):
    ca, ts, p = _setup(ctx, cert_seconds=13, backdate=1)
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA)
    first = _serial(p.port, ALPHA, ca)
    ts.fail(500, "acme: urn:ietf:params:acme:error:rateLimited", endpoint="cert", times=1)
    ts.cert_seconds = 90 * 86400
    lines = _wait_log(p, "cannot fetch the certificate for %s from tailscaled" % ALPHA,
                      timeout=40)
    expect("rateLimited" in lines[0] and "keeping the current one (serial %s" % first in lines[0],
           "the log says why and what is kept: " + lines[0])
    eq(_serial(p.port, ALPHA, ca), first, "the old certificate is still served")
    eq(_metric(p, "portico_tailscale_cert_fetches_total", result="refused"), 1, "counted")
    # The retry (after back-off) gets the renewed certificate.
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA, n=2, timeout=40)
    expect(_serial(p.port, ALPHA, ca) != first, "renewed after the failure")


@test(timeout=60)
def test_tscert_check_refuses_tls_tailscale_without_a_tls_listener(ctx):
    _, ts, p = _setup(ctx, start=False)
    p.cfg["listen"][0]["tls"] = False
    p.write_config(p.cfg)
    rc, out, err = run_check(ctx.binary, p.path)
    out += err
    expect(rc != 0 and "tls.tailscale is true, but no listener has tls: true" in out,
           "check: %r" % out)


@test(timeout=90)
def test_tscert_waits_while_tailscaled_is_not_connected(ctx):
    ca, ts, p = _setup(ctx, start=False)
    ts.backend_state = "NeedsLogin"
    p.start()
    _wait_log(p, "tailscaled is not connected to a tailnet (BackendState NeedsLogin)")
    eq(ts.count("GET", "cert"), 0, "nothing fetched while not connected")
    expect(_curl(p.port, ALPHA, ca).returncode != 0, "no certificate yet: the handshake fails")
    ts.backend_state = "Running"
    p.reload()   # (or the next status poll, a minute later)
    _wait_log(p, "certificate for %s from tailscaled: serial" % ALPHA)
    r = _curl(p.port, ALPHA, ca)
    eq((r.returncode, r.stdout), (0, b"200"), "served once tailscaled is connected")
