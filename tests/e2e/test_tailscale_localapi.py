"""portico's LocalAPI client and whois cache against the emulated tailscaled.

The request path does not call them yet, so the C side is the unit binary
test_localapi_emu (beside portico in BUILD/unit/): it runs the client in a
real event loop against the socket named by PORTICO_TS_SOCKET, in the state
PORTICO_TS_CASE names; this file starts the emulator, sets that state, runs
the binary and checks what the emulator saw."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *  # noqa: E402,F401,F403

from tailscale_emu import LocalAPI  # noqa: E402


def _emu(ctx):
    ts = LocalAPI(os.path.join(ctx.dir, "tailscaled.sock"))
    ctx.cleanups.append(ts.close)
    ts.add_user_node("100.64.0.2", "zoe@example.com", "Zoë Müller")
    ts.add_tagged_node("100.64.0.3", ["tag:monitoring"])
    return ts


def _run_c(ctx, ts, case, timeout=60):
    binary = os.path.join(os.path.dirname(ctx.binary), "unit", "test_localapi_emu")
    if not os.access(binary, os.X_OK):
        raise AssertionError("%s is missing: run `make unit` first" % binary)
    env = dict(os.environ, PORTICO_TS_SOCKET=ts.path, PORTICO_TS_CASE=case)
    p = subprocess.run([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout * SCALE)
    out = p.stdout.decode("utf-8", "replace")
    expect(p.returncode == 0 and "[  PASSED  ] " in out and "FAILED" not in out,
       "test_localapi_emu (%s) failed:\n%s" % (case, out[-3000:]))
    return out


@test(timeout=90)
def test_localapi_whois_burst_one_call_per_address(ctx):
    ts = _emu(ctx)
    out = _run_c(ctx, ts, "up")
    expect("[       OK ] test_emu_whois_burst_makes_one_call_per_address" in out, out[-2000:])
    expect("[       OK ] test_emu_status_parses" in out, out[-2000:])
    # 40 lookups for each of three addresses: one whois call per address.
    eq(ts.count("GET", "whois"), 3, "whois calls for 120 concurrent lookups of 3 addresses")
    for r in ts.requests:
        h = {k.lower(): v for k, v in r.headers}
        eq(h.get("host"), "local-tailscaled.sock", "Host of every call")
        eq((h.get("origin"), h.get("referer")), (None, None),
           "no Origin or Referer (tailscaled refuses them)")


@test(timeout=90)
def test_localapi_tailscaled_down_fails_cleanly(ctx):
    ts = _emu(ctx)
    ts.down()
    out = _run_c(ctx, ts, "down")
    expect("[       OK ] test_emu_down_fails_with_a_sentence" in out, out[-2000:])
    expect("tailscaled is not running: " in out, "the warning names the cause:\n" + out[-2000:])


@test(timeout=90)
def test_localapi_tailscaled_restart_recovers(ctx):
    ts = _emu(ctx)
    ts.restart(down_for=1.0)
    out = _run_c(ctx, ts, "restart")
    expect("[       OK ] test_emu_restart_recovers" in out, out[-2000:])
    expect("LocalAPI at %s answers again" % ts.path in out, "recovery is logged:\n" + out[-2000:])


@test(timeout=90)
def test_localapi_slow_tailscaled_times_out(ctx):
    ts = _emu(ctx)
    ts.delay = 3.0
    out = _run_c(ctx, ts, "slow")
    expect("[       OK ] test_emu_slow_times_out_without_blocking_the_loop" in out, out[-2000:])


@test(timeout=90)
def test_localapi_status_read_shared_by_modules_asking_together(ctx):
    ts = _emu(ctx)
    out = _run_c(ctx, ts, "status")
    expect("[       OK ] test_emu_status_read_shared_by_handles" in out, out[-2000:])
    # Three rounds of asking by two or three handles: one read each.
    eq(ts.count("GET", "status"), 3, "status reads")
