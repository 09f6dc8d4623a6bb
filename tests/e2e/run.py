#!/usr/bin/python3
"""run.py - portico end-to-end tests against the real binary.

    /usr/bin/python3 tests/e2e/run.py --portico build/portico [-k SUBSTR]... [--list]

The tests live in tests/e2e/test_<area>.py (see tests/README.md for the map
from documented behaviour to test); shared helpers are in common.py,
harness.py (portico processes, configs, raw HTTP) and upstream.py (origins).
Every test starts its own portico(s) on loopback ports with its own origins
and prints `ok NAME (1.23s)` or `FAIL NAME: reason (1.23s)` followed by where
it failed (file:line, or the traceback of an unexpected exception) and the
last lines of each portico's stderr (more with -v); the last line is
`e2e: N passed, N failed`. A -k that selects no test is a failure.
Environment: PORTICO_ASAN=1 (sanitizer build: smaller streams, longer
timeouts), E2E_BIG_BYTES (size of the big download/upload, default 10 GiB,
1 GiB under ASan), E2E_TEST_TIMEOUT (default per-test limit in seconds).
"""

import argparse
import glob
import importlib
import os
import resource
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ASAN, BIG, SCALE, TESTS, Ctx, GiB  # noqa: E402

for _path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "test_*.py"))):
    importlib.import_module(os.path.basename(_path)[:-3])


VERBOSE = False


def run_one(binary, name, fn, timeout):
    ctx = Ctx(binary, name)
    box = {}

    def body():
        try:
            fn(ctx)
        except AssertionError as e:
            box["err"] = str(e) or "assertion failed"
            box["where"] = _where(e.__traceback__)
        except Exception as e:
            box["err"] = "%s: %s" % (type(e).__name__, e)
            box["tb"] = traceback.format_exc()
    t0 = time.time()
    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(timeout * SCALE)
    timed_out = th.is_alive()
    tail = ctx.stderr_tail(30 if VERBOSE else 6)
    problems = ctx.cleanup()
    if timed_out:
        th.join(10)
    dt = time.time() - t0
    reason = None
    if timed_out:
        reason = "timed out after %.0fs" % (timeout * SCALE)
    elif "err" in box:
        reason = box["err"]
    if problems:
        reason = (reason + "; " if reason else "") + "teardown: " + "; ".join(problems)
    return reason, dt, ctx.notes, tail, box.get("tb") or box.get("where")


def _where(tb):
    """"at FILE:LINE in FUNCTION": the innermost frame in a test_<area>.py
    file (or in common.py when the assertion came from a helper there)."""
    frames = [fr for fr in traceback.extract_tb(tb)
              if os.path.basename(fr.filename).startswith(("test_", "common"))]
    tests = [fr for fr in frames if os.path.basename(fr.filename).startswith("test_")]
    fr = (tests or frames or [None])[-1]
    if fr is None:
        return None
    return "at %s:%d in %s" % (os.path.basename(fr.filename), fr.lineno, fr.name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--portico", required=True)
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true",
                    help="on failure, print more of portico's stderr (30 lines per process)")
    a = ap.parse_args()
    global VERBOSE
    VERBOSE = a.v or bool(os.environ.get("E2E_VERBOSE"))
    binary = os.path.abspath(a.portico)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # atexit kills the porticos
    sel = [t for t in TESTS if not a.k or any(k in t[0] for k in a.k)]
    if a.list:
        for n, _, _ in sel:
            print(n)
        return 0
    if not sel:
        print("FAIL e2e: no test matches %s" % " ".join(a.k))
        print("e2e: 0 passed, 1 failed")
        return 1
    if not os.access(binary, os.X_OK):
        print("FAIL e2e: portico binary %s not found or not executable" % binary)
        print("e2e: 0 passed, 1 failed")
        return 1
    print("e2e: %d tests against %s%s (big streams %.2f GiB)"
          % (len(sel), binary, " [ASan]" if ASAN else "", BIG / GiB), flush=True)
    passed, failed = 0, []
    t_all = time.time()
    for name, fn, timeout in sel:
        reason, dt, notes, tail, tb = run_one(binary, name, fn, timeout)
        if reason is None:
            passed += 1
            print("ok %s (%.2fs)" % (name, dt), flush=True)
        else:
            failed.append(name)
            print("FAIL %s: %s (%.2fs)" % (name, reason, dt), flush=True)
            # Always the detail: where it failed (the traceback of an
            # unexpected exception) and the tail of each portico's stderr.
            if tb:
                print("    " + tb.rstrip("\n").replace("\n", "\n    "))
            for l in tail:
                print("    | " + l[:300])
        for n in notes:
            print("    %s" % n, flush=True)
    print("e2e: %.1fs total" % (time.time() - t_all))
    if failed:
        print("e2e failed: " + " ".join(failed))
    print("e2e: %d passed, %d failed" % (passed, len(failed)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
