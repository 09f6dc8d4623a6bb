#!/usr/bin/python3
"""run.py - portico end-to-end tests against the real binary.

    /usr/bin/python3 tests/e2e/run.py --portico build/portico [-j N] [-k SUBSTR]... [--list]
                                      [--tests DIR]

The tests live in tests/e2e/test_<area>.py (see tests/README.md for the map
from documented behaviour to test); shared helpers are in common.py,
harness.py (portico processes, configs, raw HTTP) and upstream.py (origins).
Every test starts its own portico(s) on loopback ports with its own origins
and prints `ok NAME (1.23s)` or `FAIL NAME: reason (1.23s)` followed by where
it failed (file:line, or the traceback of an unexpected exception) and the
last lines of each portico's stderr (more with -v); the last line is
`e2e: N passed, N failed`. A -k that selects no test is a failure.

Tests run in worker processes, N at a time (-j N, or E2E_JOBS; default
DEFAULT_JOBS): most of a test's time is spent waiting on timeouts, so more
workers than cores pay. Each worker is its own process group and runs one
test at a time; the runner prints each test's block whole when it ends.
Tests registered with @test(serial=True) run after the others, one at a
time, with the machine to themselves. A test still running E2E_KILL_GRACE
(60s, x SCALE) after its own timeout is killed with its worker's process
group. At the end, and on SIGINT or SIGTERM, every worker and every process
they started (found by a marker in their environment) is killed.

Environment: PORTICO_ASAN=1 (sanitizer build: smaller streams, longer
timeouts), E2E_BIG_BYTES (size of the big download/upload, default 10 GiB,
1 GiB under ASan), E2E_TEST_TIMEOUT (default per-test limit in seconds),
E2E_JOBS (tests at a time), E2E_KILL_GRACE (seconds after its timeout at
which a test that has not reported is killed, default 60). --tests DIR runs
the test_*.py files of another directory (the runner's own tests use it).
"""

import argparse
import collections
import ctypes
import glob
import importlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from common import ASAN, BIG, SCALE, TESTS, Ctx, GiB  # noqa: E402


def load_tests(d):
    """Import every test_*.py in d; their @test functions register in TESTS."""
    if d not in sys.path:
        sys.path.insert(0, d)
    for path in sorted(glob.glob(os.path.join(d, "test_*.py"))):
        importlib.import_module(os.path.basename(path)[:-3])


# Tests at a time unless -j or E2E_JOBS says otherwise. Measured on two
# cores (tests/README.md): the suite's time falls until about 6 and no
# further after 8, where tests start to wait for the CPU rather than for
# their timeouts.
DEFAULT_JOBS = 6
# How long after its own timeout a test that has not reported is killed:
# the worker's timeout handling (stopping porticos, each up to 10s x SCALE)
# must have had its chance first.
KILL_GRACE = float(os.environ.get("E2E_KILL_GRACE") or 60)
# Every process the tests start inherits this variable (with a value unique
# to the run), so that none is missed by the final sweep even when it left
# its worker's process group or lost its parent.
MARK = "PORTICO_E2E_RUN"

VERBOSE = False
CURRENT = None   # in a worker: the Ctx of the test it runs


def run_one(binary, name, fn, timeout, on_ctx=None):
    global CURRENT
    ctx = Ctx(binary, name)
    CURRENT = ctx
    if on_ctx:
        on_ctx(ctx)
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
    CURRENT = None
    dt = time.time() - t0
    reason = None
    if timed_out:
        reason = "timed out after %.0fs" % (timeout * SCALE)
    elif "err" in box:
        reason = box["err"]
    if problems:
        reason = (reason + "; " if reason else "") + "teardown: " + "; ".join(problems)
    return {"reason": reason, "dt": dt, "notes": ctx.notes, "tail": tail,
            "tb": box.get("tb") or box.get("where"), "timed_out": timed_out}


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


def render(name, res):
    """A test's block: its ok/FAIL line, then for a failure where it failed
    and the tail of each portico's stderr, then its notes and whatever the
    test or the programs it ran wrote to stdout or stderr."""
    out = []
    if res["reason"] is None:
        out.append("ok %s (%.2fs)" % (name, res["dt"]))
    else:
        out.append("FAIL %s: %s (%.2fs)" % (name, res["reason"], res["dt"]))
        if res.get("tb"):
            out.append("    " + res["tb"].rstrip("\n").replace("\n", "\n    "))
        for l in res.get("tail", []):
            out.append("    | " + l[:300])
    for n in res.get("notes", []):
        out.append("    %s" % n)
    for l in res.get("output", []):
        out.append("    > " + l[:300])
    return "\n".join(out)


# ---------------------------------------------------------------- workers

def _worker_term(signum, frame):
    harness.kill_all()
    if CURRENT is not None:
        shutil.rmtree(CURRENT.dir, ignore_errors=True)
    os._exit(128 + signum)


def _worker_main(binary, cmd_fd, res_fd):
    """Run the tests whose indexes arrive on cmd_fd, one at a time; write
    one JSON line per test to res_fd ({"dir": ...} when it starts, the
    result when it ends). Returns after a test that timed out: its thread
    may still run, and the next test gets a fresh worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the runner handles Ctrl-C
    signal.signal(signal.SIGTERM, _worker_term)
    try:   # the runner gone (SIGKILL), the worker goes too
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        return
    # Whatever the test and its programs write goes to a file, shown in the
    # test's block, never into another test's output.
    path = "%s/portico-e2e-out.%d" % (os.environ.get("TMPDIR", "/tmp"), os.getpid())
    out = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.unlink(path)
    os.dup2(out, 1)
    os.dup2(out, 2)

    def send(obj):
        data = (json.dumps(obj) + "\n").encode()
        while data:
            data = data[os.write(res_fd, data):]

    with os.fdopen(cmd_fd, "r") as cmds:
        for line in cmds:
            name, fn, timeout, _ = TESTS[int(line)]
            os.ftruncate(out, 0)
            res = run_one(binary, name, fn, timeout, on_ctx=lambda c: send({"dir": c.dir}))
            sys.stdout.flush()
            sys.stderr.flush()
            os.lseek(out, 0, os.SEEK_SET)
            text = b""
            while True:
                d = os.read(out, 1 << 16)
                if not d:
                    break
                text = (text + d)[-(1 << 16):]
            res["output"] = text.decode("utf-8", "replace").splitlines()[-100:]
            send(res)
            if res["timed_out"]:
                return


class Worker:
    """A forked worker process, leader of its own process group."""

    def __init__(self, binary, others, close):
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.setpgid(0, 0)
                signal.set_wakeup_fd(-1)
                for w in others:
                    w.close_fds()
                for fd in close:
                    os.close(fd)
                os.close(cmd_w)
                os.close(res_r)
                _worker_main(binary, cmd_r, res_w)
            except BaseException:
                traceback.print_exc()
                code = 70
            finally:
                harness.kill_all()
                os._exit(code)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass   # the child did it first
        os.close(cmd_r)
        os.close(res_w)
        self.pid, self.cmd, self.res = pid, cmd_w, res_r
        self.buf = b""
        self.test = None      # index of the test it runs
        self.t0 = self.deadline = 0.0
        self.dir = None
        self.status = None

    def close_fds(self):
        for fd in (self.cmd, self.res):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.cmd = self.res = None

    def start(self, i):
        _, _, timeout, _ = TESTS[i]
        self.test = i
        self.dir = None
        self.t0 = time.time()
        self.deadline = self.t0 + (timeout + KILL_GRACE) * SCALE
        os.write(self.cmd, b"%d\n" % i)

    def messages(self):
        """Read what is there: the complete messages, and whether the worker
        closed its end (exited)."""
        d = os.read(self.res, 1 << 16)
        self.buf += d
        msgs = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msgs.append(json.loads(line))
        return msgs, not d

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.pid, sig)
        except OSError:
            pass

    def exited(self, timeout):
        """Wait up to timeout for the worker to exit, without reaping it:
        while it is a zombie its process group id cannot be reused, so the
        group can still be killed safely. True once it has exited."""
        end = time.time() + timeout
        while self.status is None:
            try:
                if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            if time.time() >= end:
                return False
            time.sleep(0.02)
        return True

    def reap(self):
        """Kill what is left in the worker's group, then collect its status
        (the worker is killed too if it still runs)."""
        if self.status is not None:
            return
        self.kill()
        try:
            self.status = os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            self.status = -1


def _sweep(marker):
    """Kill every process that still carries this run's marker; returns
    "pid (command)" for each."""
    want = ("%s=%s" % (MARK, marker)).encode()
    killed = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
            os.kill(int(d), signal.SIGKILL)
            killed.append("%s (%s)" % (d, comm))
        except OSError:
            pass
    return killed


class Runner:
    def __init__(self, binary, jobs, say):
        self.binary = binary
        self.jobs = jobs
        self.say = say
        self.workers = []
        self.results = {}     # test index -> result
        self.marker = "%d.%d" % (os.getpid(), time.time_ns())
        os.environ[MARK] = self.marker
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.stop_signal = None

    def _on_signal(self, signum, frame):
        self.stop_signal = signum

    def run(self, order):
        """Run the tests (indexes into TESTS): the parallel ones first, then
        the serial ones one at a time. Returns False when interrupted."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            par = [i for i in order if not TESTS[i][3]]
            ser = [i for i in order if TESTS[i][3]]
            for tests, n in ((par, self.jobs), (ser, 1)):
                if not self._phase(collections.deque(tests), n):
                    return False
            return True
        finally:
            self._shutdown()

    def _phase(self, pending, n):
        while pending or any(w.test is not None for w in self.workers):
            if self.stop_signal:
                return False
            idle = [w for w in self.workers if w.test is None]
            while pending and len(self.workers) - len(idle) < n:
                w = idle.pop() if idle else self._spawn()
                w.start(pending.popleft())
            busy = [w for w in self.workers if w.test is not None]
            wait = max(0.0, min(w.deadline for w in busy) - time.time())
            try:
                ready, _, _ = select.select([w.res for w in busy] + [self.wake_r], [], [], wait)
            except InterruptedError:
                continue
            if self.wake_r in ready:
                os.read(self.wake_r, 512)
            for w in busy:
                if w.res in ready:
                    self._read(w)
                elif time.time() >= w.deadline:
                    self._give_up(w, "killed: no result %.0fs after its %.0fs timeout"
                                  % (KILL_GRACE * SCALE, TESTS[w.test][2] * SCALE))
        # Between phases: the serial tests start with no other worker left.
        for w in list(self.workers):
            self._retire(w)
        return True

    def _spawn(self):
        w = Worker(self.binary, self.workers, (self.wake_r, self.wake_w))
        self.workers.append(w)
        return w

    def _read(self, w):
        msgs, eof = w.messages()
        for m in msgs:
            if "dir" in m:
                w.dir = m["dir"]
                continue
            i, w.test = w.test, None
            self._done(i, m)
            if m.get("timed_out"):
                self._retire(w)
                return
        if eof:
            if w.test is not None:
                self._give_up(w, "its worker process exited (%s)" % self._exit_status(w))
            else:
                self._retire(w)

    def _exit_status(self, w):
        w.exited(5)   # its pipe closed as it exited: its status follows
        self._retire(w)
        st = w.status
        if st is None or st < 0:
            return "status unknown"
        if os.WIFSIGNALED(st):
            return "signal %d" % os.WTERMSIG(st)
        return "exit status %d" % os.WEXITSTATUS(st)

    def _give_up(self, w, reason):
        i, w.test = w.test, None
        if w in self.workers:
            w.kill()
            self._retire(w)
        if w.dir:
            shutil.rmtree(w.dir, ignore_errors=True)
        self._done(i, {"reason": reason, "dt": time.time() - w.t0, "notes": [], "tail": [],
                       "tb": None, "output": []})

    def _done(self, i, res):
        self.results[i] = res
        self.say(render(TESTS[i][0], res))

    def _retire(self, w):
        """Close the worker's pipes (it exits after its test), wait for it,
        and kill whatever is left in its process group."""
        w.close_fds()
        w.exited(KILL_GRACE * SCALE if w.test is None else 0)
        w.reap()
        if w in self.workers:
            self.workers.remove(w)

    def _shutdown(self):
        """Every worker and everything they started gone, whatever happened."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for w in self.workers:
            w.kill(signal.SIGTERM)   # workers remove their test's directory
        end = time.time() + 5
        for w in self.workers:
            w.exited(max(0.0, end - time.time()))
        for w in list(self.workers):
            w.reap()
            w.close_fds()
            if w.test is not None and w.dir:
                shutil.rmtree(w.dir, ignore_errors=True)
        self.workers = []
        left = _sweep(self.marker)
        if left:
            self.say("e2e: killed %d processes the tests left behind: %s"
                     % (len(left), ", ".join(left)))


def _say(text):
    try:
        print(text, flush=True)
    except OSError:   # stdout gone (a pipe whose reader was interrupted too)
        pass


def _jobs(arg):
    v = arg if arg is not None else os.environ.get("E2E_JOBS")
    if v in (None, ""):
        return DEFAULT_JOBS
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise SystemExit("run.py: -j/E2E_JOBS wants a number of tests at a time (1 or more), "
                         "not %r" % v)
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--portico", required=True)
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("-j", dest="jobs", metavar="N",
                    help="tests at a time (default: E2E_JOBS, else %d)" % DEFAULT_JOBS)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--tests", metavar="DIR", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where the test_*.py files are (default: beside run.py)")
    ap.add_argument("-v", action="store_true",
                    help="on failure, print more of portico's stderr (30 lines per process)")
    a = ap.parse_args()
    global VERBOSE
    VERBOSE = a.v or bool(os.environ.get("E2E_VERBOSE"))
    jobs = _jobs(a.jobs)
    load_tests(os.path.abspath(a.tests))
    binary = os.path.abspath(a.portico)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sel = [i for i, t in enumerate(TESTS) if not a.k or any(k in t[0] for k in a.k)]
    if a.list:
        for i in sel:
            print(TESTS[i][0])
        return 0
    if not sel:
        print("FAIL e2e: no test matches %s" % " ".join(a.k))
        print("e2e: 0 passed, 1 failed")
        return 1
    if not os.access(binary, os.X_OK):
        print("FAIL e2e: portico binary %s not found or not executable" % binary)
        print("e2e: 0 passed, 1 failed")
        return 1
    nser = sum(1 for i in sel if TESTS[i][3])
    print("e2e: %d tests against %s%s (big streams %.2f GiB), %d at a time, %d of them alone"
          % (len(sel), binary, " [ASan]" if ASAN else "", BIG / GiB, jobs, nser), flush=True)
    t_all = time.time()
    # The longest time limits first (stable: file order otherwise): the long
    # tests then run alongside the many short ones instead of last, alone.
    order = sorted(sel, key=lambda i: -TESTS[i][2])
    r = Runner(binary, jobs, _say)
    complete = r.run(order)
    failed = [TESTS[i][0] for i in sel if i in r.results and r.results[i]["reason"] is not None]
    passed = sum(1 for i in sel if i in r.results) - len(failed)
    if not complete:
        name = signal.Signals(r.stop_signal).name
        _say("e2e: interrupted by %s: %d passed, %d failed, %d not run or unfinished"
             % (name, passed, len(failed), len(sel) - len(r.results)))
        return 128 + r.stop_signal
    _say("e2e: %.1fs total" % (time.time() - t_all))
    if failed:
        _say("e2e failed: " + " ".join(failed))
    _say("e2e: %d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
