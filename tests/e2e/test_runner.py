"""The end-to-end runner itself (run.py), on the fixture tests in
tests/fixtures/e2e_runner: tests run side by side with their blocks whole,
a serial test alone after them, a timed-out, a stuck and a dying test each
reported, and nothing they started left behind, at the end or after SIGTERM
or SIGINT."""

from common import *

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run.py")
FIXTURES = os.path.join(os.path.dirname(HERE), "fixtures", "e2e_runner")


def _runner(ctx, args, grace=15):
    """run.py on the fixtures, in a session of its own; returns (process,
    tag, log path). grace: E2E_KILL_GRACE, longer than a timed-out test
    takes to report (its time limit, then 10 s for its thread to end)."""
    tag = "runner-fixture-%d-%d" % (os.getpid(), random.randrange(1 << 30))
    log = os.path.join(ctx.dir, "fixture.log")
    env = dict(os.environ, RUNNER_FX_TAG=tag, RUNNER_FX_LOG=log, E2E_KILL_GRACE=str(grace))
    out = open(os.path.join(ctx.dir, "runner.out"), "wb")
    pr = ctx.spawn([sys.executable, RUN, "--portico", ctx.binary, "--tests", FIXTURES] + args,
                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                   start_new_session=True)
    out.close()
    return pr, tag, log


def _output(ctx):
    with open(os.path.join(ctx.dir, "runner.out"), "rb") as f:
        return f.read().decode("utf-8", "replace")


def _marks(log):
    """{(what, test name): value} from the fixtures' log."""
    out = {}
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                what, name, value = line.rstrip("\n").split(" ", 2)
                out[(what, name)] = value
    return out


def _tagged(tag):
    """Pids of the processes whose command line carries tag."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if tag.encode() in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def _blocks(text):
    """{test name: the lines of its block}, and the other lines."""
    blocks, other, cur = {}, [], None
    for line in text.splitlines():
        m = re.match(r"(ok|FAIL) (test_\w+)", line)
        if m:
            cur = blocks.setdefault(m.group(2), [])
            cur.append(line)
        elif line.startswith("    ") and cur is not None:
            cur.append(line)
        else:
            cur = None
            other.append(line)
    return blocks, other


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@test(timeout=120)
def test_runner_parallel_blocks_whole_serial_alone_nothing_left(ctx):
    pr, tag, log = _runner(ctx, ["-j", "4", "-k", "test_fx_"])
    rc = pr.wait(100 * SCALE)
    out = _output(ctx)
    eq(rc, 1, "exit status with failing tests (output %r)" % out[-2000:])
    blocks, other = _blocks(out)
    # Output of two tests running at once, each in its own block, in order.
    for name, letter in (("test_fx_print_a", "a"), ("test_fx_print_b", "b")):
        b = blocks.get(name, [])
        expect(b and b[0].startswith("ok "), "%s: %r" % (name, b))
        eq([l for l in b[1:] if l.startswith("    > ")],
           ["    > %s %d" % (letter, i) for i in range(20)], "the output in %s's block" % name)
    marks = _marks(log)
    start = {n: float(v) for (w, n), v in marks.items() if w == "start"}
    end = {n: float(v) for (w, n), v in marks.items() if w == "end"}
    expect(start["test_fx_print_a"] < end["test_fx_print_b"]
           and start["test_fx_print_b"] < end["test_fx_print_a"],
           "the two printing tests ran at the same time: %r %r" % (start, end))
    # The serial test ran once every other one had ended or been stopped.
    others = [n for n in start if n != "test_fx_serial"]
    expect(all(start["test_fx_serial"] > max(start[n], end.get(n, 0)) for n in others),
           "the serial test started while another ran: %r %r" % (start, end))
    expect(blocks.get("test_fx_serial", [""])[0].startswith("ok "), "serial: %r" % blocks)
    expect(blocks.get("test_fx_leaves_processes", [""])[0].startswith("ok "), "leaver")
    for name, want in (("test_fx_times_out", "timed out after"),
                       ("test_fx_stuck_in_cleanup", "killed: no result"),
                       ("test_fx_worker_exits", "its worker process exited (exit status 3)")):
        b = blocks.get(name, [""])
        expect(b[0].startswith("FAIL %s: %s" % (name, want)), "%s: %r" % (name, b))
    expect(any(re.match(r"e2e: killed 1 processes the tests left behind: \d+ \(python3\)$", l)
               for l in other), "the process in a session of its own, named: %r" % other)
    expect("e2e failed: test_fx_times_out test_fx_stuck_in_cleanup test_fx_worker_exits"
           in other, "the failing tests, in file order: %r" % other)
    eq(other[-1], "e2e: 4 passed, 3 failed", "summary")
    eq(_tagged(tag), [], "processes the fixtures started, after the run")
    left = [v for (w, n), v in marks.items() if w == "dir" and os.path.exists(v)]
    eq(left, [], "test directories left")


@test(timeout=120)
def test_runner_interrupted_leaves_no_process_and_no_directory(ctx):
    for sig in (signal.SIGTERM, signal.SIGINT):
        pr, tag, log = _runner(ctx, ["-k", "test_fxterm_"])
        deadline = time.time() + 30 * SCALE
        while ("start", "test_fxterm_waits") not in _marks(log):
            expect(pr.poll() is None, "the runner exited early: %r" % _output(ctx))
            expect(time.time() < deadline, "the fixture never started: %r" % _output(ctx))
            time.sleep(0.05)
        marks = _marks(log)
        portico = int(marks[("pid", "test_fxterm_waits")])
        expect(_alive(portico) and len(_tagged(tag)) == 1, "running before the signal")
        pr.send_signal(sig)
        rc = pr.wait(30 * SCALE)
        out = _output(ctx)
        eq(rc, 128 + sig, "exit status after %s (output %r)" % (sig.name, out[-1000:]))
        expect("e2e: interrupted by %s: 0 passed, 0 failed, 1 not run or unfinished" % sig.name
               in out, "what the runner says: %r" % out[-1000:])
        expect(not re.search(r"^e2e: \d+ passed, \d+ failed$", out, re.M),
               "no summary line after an interruption")
        expect(not _alive(portico), "portico still runs after %s" % sig.name)
        eq(_tagged(tag), [], "processes the fixture started, after %s" % sig.name)
        d = marks[("dir", "test_fxterm_waits")]
        expect(not os.path.exists(d), "the test's directory is left after %s" % sig.name)
        os.unlink(log)
