"""systemd: the notify protocol against a datagram socket standing in for
systemd's, and the unit file in dist/ through systemd-analyze."""

import ctypes
import ctypes.util

from common import *

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(REPO, "dist", "portico.service")


def _notified_portico(ctx, n, services=None, env=None, workers=2, start=True):
    o = None
    if services is None:
        o = ctx.origin("o")
        services = {"v": svc(o)}
    p = ctx.portico(services, start=False, workers=workers)
    p.env["NOTIFY_SOCKET"] = n.env
    p.env.update(env or {})
    if start:
        p.start()
    return p


@test()
def test_notify_ready_only_once_serving_then_reloads_and_stopping(ctx):
    n = NotifySocket(ctx)
    p = _notified_portico(ctx, n, start=False)
    p.start(wait=False)
    i, ready = n.wait("READY", 10 * SCALE)
    # READY=1 is sent after the serving line: by then every listener accepts.
    # The line is in the pipe when READY=1 arrives, but the harness's reader
    # thread may not have taken it yet on a loaded machine: wait for it.
    expect(p.wait_line(" serving ", 5 * SCALE) is not None, "no serving line after READY=1")
    p.wait_ready()
    eq(get_json(p.port, "/first")["origin"], "o", "served after READY=1")
    eq(i, 0, "READY=1 is the first message; before it: %r" % [m[2] for m in n.all()[:i]])
    eq(ready["READY"], "1", "READY value")
    eq(ready.get("STATUS"), "1 service, 1 listener, 2 workers, 0 connections", "STATUS at start")
    expect("MAINPID" not in ready, "MAINPID only after an upgrade: %r" % ready)

    # A good reload: RELOADING=1 with the monotonic time, then READY=1.
    # The client has closed the connection of /first, but its worker may not
    # have read that end yet (on a busy machine): until then a reload's
    # STATUS counts it, so reload again until it is gone.
    end = time.time() + 5 * SCALE
    while True:
        k = n.count()
        t0 = time.monotonic()
        expect("configuration reloaded" in p.reload(), "reload done")
        t1 = time.monotonic()
        j, _ = n.wait("READY", 5 * SCALE, start=k)
        got = n.states(k)
        eq([sorted(kv) for kv in got],
           [["MONOTONIC_USEC", "RELOADING", "STATUS"], ["READY", "STATUS"]],
           "messages around a reload: %r" % got)
        eq(got[0]["RELOADING"], "1", "RELOADING value")
        usec = int(got[0]["MONOTONIC_USEC"])
        expect(t0 * 1e6 - 1e6 <= usec <= t1 * 1e6 + 1e6,
               "MONOTONIC_USEC=%d is not CLOCK_MONOTONIC between %.0f and %.0f"
               % (usec, t0 * 1e6, t1 * 1e6))
        eq(got[0]["STATUS"], "reloading the configuration", "STATUS while reloading")
        if " 1 connection;" not in got[1]["STATUS"] or time.time() > end:
            break
        time.sleep(0.05)
    eq(got[1]["STATUS"], "1 service, 1 listener, 2 workers, 0 connections; last reload done",
       "STATUS after a reload")

    # A refused reload: the same pair, and STATUS says why.
    good = p.config_text
    p.write_config(good + "bogus_top_key: 1\n")
    k = n.count()
    expect("reload refused" in p.reload(), "reload refused")
    n.wait("READY", 5 * SCALE, start=k)
    got = n.states(k)
    eq([sorted(kv) for kv in got], [["MONOTONIC_USEC", "RELOADING", "STATUS"], ["READY", "STATUS"]],
       "messages around a refused reload: %r" % got)
    status = got[1]["STATUS"]
    expect(status.startswith("1 service, 1 listener, 2 workers, 0 connections; last reload "
                             "refused: ") and "bogus_top_key" in status,
           "STATUS after a refused reload: %r" % status)
    eq(get_json(p.port, "/still")["origin"], "o", "the old configuration serves")

    # SIGTERM: STOPPING=1, and nothing after it.
    p.write_config(good)
    k = n.count()
    p.term()
    eq(p.wait_exit(10 * SCALE), 0, "exit status")
    got = n.states(k)
    eq(got, [{"STOPPING": "1", "STATUS": "draining connections"}], "messages on SIGTERM")


@test()
def test_notify_status_counts_open_connections(ctx):
    n = NotifySocket(ctx)
    p = _notified_portico(ctx, n, env={"WATCHDOG_USEC": "200000"})
    with RawConn(p.port, timeout=5 * SCALE) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        eq(c.read_response().status, 200, "status")
        k = n.count()
        _, kv = n.wait("WATCHDOG", 5 * SCALE, start=k)
        # A ping is sent at most 100 ms after the count changed: wait for one after it.
        _, kv = n.wait("WATCHDOG", 5 * SCALE, start=n.count())
        eq(kv.get("STATUS"), "1 service, 1 listener, 2 workers, 1 connection",
           "STATUS with a ping while one connection is open")


@test(timeout=60, serial=True)
def test_notify_watchdog_pings_at_half_interval(ctx):
    n = NotifySocket(ctx)
    p = _notified_portico(ctx, n, env={"WATCHDOG_USEC": "400000"})   # a ping every 200 ms
    n.wait("WATCHDOG", 5 * SCALE)
    t0 = time.monotonic()
    time.sleep(3)
    t1 = time.monotonic()
    pings = [m[0] for m in n.all() if "WATCHDOG" in m[1] and t0 <= m[0] < t1]
    expect(6 <= len(pings) <= 20,
           "%d pings in 3 s with WATCHDOG_USEC=400000 (every 200 ms: about 15)" % len(pings))
    for m in n.all():
        if "WATCHDOG" in m[1]:
            eq(m[1]["WATCHDOG"], "1", "WATCHDOG value")
            eq(m[3], p.proc.pid, "sender of the ping")
    # Stopped, the process sends nothing: the pings come from its loop.
    p.signal(signal.SIGSTOP)
    try:
        time.sleep(0.3)
        k = n.count()
        time.sleep(1)
        eq(n.count(), k, "messages while stopped")
    finally:
        p.signal(signal.SIGCONT)
    n.wait("WATCHDOG", 5 * SCALE, start=k)


@test()
def test_notify_watchdog_pid_of_another_process_means_no_pings(ctx):
    n = NotifySocket(ctx)
    _notified_portico(ctx, n, env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    n.wait("READY", 5 * SCALE)
    time.sleep(1)
    pings = [m for m in n.all() if "WATCHDOG" in m[1]]
    eq(pings, [], "pings with WATCHDOG_PID naming another process")


@test()
def test_notify_bad_watchdog_usec_logged_and_still_ready(ctx):
    n = NotifySocket(ctx)
    p = _notified_portico(ctx, n, env={"WATCHDOG_USEC": "30s"})
    n.wait("READY", 5 * SCALE)
    expect(p.wait_line("WATCHDOG_USEC=30s is not a positive number of microseconds", 2),
           "no warning about WATCHDOG_USEC; stderr: %s" % p.stderr()[-4:])
    time.sleep(0.5)
    eq([m for m in n.all() if "WATCHDOG" in m[1]], [], "pings with a bad WATCHDOG_USEC")


PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207


def _thread_of(pid, comm):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() == comm:
                return int(tid)
    raise AssertionError("no thread named %r in process %d" % (comm, pid))


@test(timeout=60, serial=True)
def test_watchdog_withheld_while_a_worker_loop_is_stuck(ctx):
    """One worker thread stopped (ptrace stops a single thread, unlike
    SIGSTOP): the main loop still runs, but the pings stop until the worker
    runs again."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    n = NotifySocket(ctx)
    p = _notified_portico(ctx, n, env={"WATCHDOG_USEC": "400000"})
    n.wait("WATCHDOG", 5 * SCALE)
    # A ping after a whole round: every worker answered the round before it,
    # so none is late already (worker 0 starting slowly on a loaded machine
    # would be the one the line below names, and pings stay withheld without
    # a new line when worker 1 stops).
    n.wait("WATCHDOG", 5 * SCALE, start=n.count())
    tid = _thread_of(p.proc.pid, "worker 1")
    if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
        raise AssertionError("ptrace(PTRACE_SEIZE) of worker 1: %s"
                             % os.strerror(ctypes.get_errno()))
    try:
        expect(libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0, "PTRACE_INTERRUPT")
        os.waitpid(tid, 0x40000000)  # __WALL: the thread is stopped
        line = p.wait_line("worker 1 has not answered for 200 ms: watchdog pings withheld",
                           5 * SCALE)
        expect(line, "no line about the stuck worker; stderr: %s" % p.stderr()[-4:])
        time.sleep(0.3)
        k = n.count()
        time.sleep(1.2)
        eq([m[2] for m in n.all()[k:]], [], "messages while worker 1 is stuck")
        # The main loop itself still runs: it serves /metrics-free work such as reloads.
        expect("configuration reloaded" in p.reload(), "the main loop reloads meanwhile")
    finally:
        libc.ptrace(PTRACE_DETACH, tid, None, None)
    k = n.count()
    n.wait("WATCHDOG", 5 * SCALE, start=k)
    expect(p.wait_line("every worker answers again: watchdog pings resumed", 5 * SCALE),
           "no line saying the pings resumed")
    eq(get_json(p.port, "/after")["origin"], "o", "served after the worker ran again")


@test()
def test_notify_abstract_socket(ctx):
    n = NotifySocket(ctx, abstract=True)
    expect(n.env.startswith("@"), "abstract name")
    p = _notified_portico(ctx, n)
    _, kv = n.wait("READY", 5 * SCALE)
    eq(kv["READY"], "1", "READY over an abstract socket")
    k = n.count()
    p.reload()
    n.wait("READY", 5 * SCALE, start=k)
    eq(n.states(k)[0].get("RELOADING"), "1", "RELOADING over an abstract socket")


@test()
def test_notify_unreachable_socket_does_not_stop_portico(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, start=False)
    p.env["NOTIFY_SOCKET"] = os.path.join(ctx.dir, "nobody-listens.sock")
    p.env["WATCHDOG_USEC"] = "100000"
    p.start()
    eq(get_json(p.port, "/a")["origin"], "o", "serves without systemd listening")
    expect("configuration reloaded" in p.reload(), "reloads")
    time.sleep(0.5)  # a few watchdog pings fail too
    lines = [l for l in p.stderr() if "cannot notify systemd" in l]
    eq(len(lines), 1, "lines about the failed notification (once): %r" % lines)
    expect("nobody-listens.sock" in lines[0] and "No such file or directory" in lines[0],
           "the socket and the error in %r" % lines[0])
    eq(get_json(p.port, "/b")["origin"], "o", "still serves")


@test()
def test_notify_socket_that_is_not_a_unix_address_is_logged(ctx):
    o = ctx.origin("o")
    p = ctx.portico({"v": svc(o)}, start=False)
    p.env["NOTIFY_SOCKET"] = "relative/notify.sock"
    p.start()
    expect(p.wait_line("systemd will not hear from this process: NOTIFY_SOCKET="
                       "relative/notify.sock is neither a path", 2),
           "no warning; stderr: %s" % p.stderr()[-4:])
    eq(get_json(p.port, "/a")["origin"], "o", "serves")


@test(timeout=60)
def test_notify_upgrade_new_process_sends_mainpid_and_takes_the_watchdog(ctx):
    n = NotifySocket(ctx)
    p = _notified_portico(ctx, n, env={"WATCHDOG_USEC": "400000"}, start=False)
    # WATCHDOG_PID is the pid systemd started: a shell that execs portico.
    p.wrap = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"]
    p.start()
    n.wait("WATCHDOG", 5 * SCALE, pid=p.proc.pid)
    k = n.count()
    n0 = p.nlines()
    p.signal(signal.SIGUSR2)
    line = p.wait_line(lambda l: " serving " in l and "pid=" in l, 10 * SCALE, start=n0)
    expect(line, "no new process serving; stderr: %s" % p.stderr()[n0:][-6:])
    pid = int(logfmt_parse(line)["pid"])
    ctx.cleanups.append(lambda: stop_pid(pid, 10 * SCALE))
    i, kv = n.wait("READY", 5 * SCALE, start=k)
    eq((kv, n.all()[i][3]), ({"MAINPID": str(pid), "READY": "1",
                              "STATUS": "1 service, 1 listener, 2 workers, 0 connections"}, pid),
       "the first READY after SIGUSR2 (and its sender)")
    eq(p.wait_exit(15 * SCALE), 0, "exit status of the old process")
    eq([m[2] for m in n.all()[k:] if m[3] == p.proc.pid and "WATCHDOG" not in m[1]], [],
       "messages from the old process after SIGUSR2 (no STOPPING=1: it is not the main one)")
    # The watchdog was the old process's (WATCHDOG_PID): the new one takes it over.
    n.wait("WATCHDOG", 5 * SCALE, start=n.count(), pid=pid)


@test(timeout=60)
def test_unit_file_passes_systemd_analyze_verify(ctx):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        ctx.notes.append("SKIPPED: systemd-analyze is not installed (Debian package systemd)")
        return
    # verify resolves ExecStart= binaries: point them at this build.
    text = open(UNIT).read().replace("/usr/local/bin/portico", os.path.abspath(ctx.binary))
    path = os.path.join(ctx.dir, "portico.service")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60)
    # Lines about units of the host (this machine runs no systemd) are not the unit's.
    own = [l for l in (r.stdout + r.stderr).splitlines() if "portico.service" in l]
    eq(own, [], "systemd-analyze verify on the unit")
    eq(r.returncode, 0, "systemd-analyze verify exit status; output: %s" % (r.stdout + r.stderr))
