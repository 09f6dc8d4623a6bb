#!/usr/bin/env bash
# bench/profile.sh - where a small keep-alive request's CPU goes, in portico
# and in nginx, and portico's user-space instructions per request.
#
#   bench/profile.sh build/portico        profile portico, then nginx
#   CALLGRIND=1 bench/profile.sh ...      also count portico's instructions
#
# The setup is bench/run.sh's (64 services, one nginx origin, 2 workers
# each, wrk with 64 keep-alive connections and the Host rotating). Each
# proxy is sampled with `perf record -g` (cpu-clock: VMs often lack cycle
# counters) over DURATION seconds (8) after a warm-up, one after the other
# in the same minute. Each sample is put in one area by its call chain:
# user space by library, and in the kernel the loopback receive that a
# send runs in the sender's context (softirq), TCP send (writev), TCP
# receive (read/recv), copies between user and kernel, epoll, sleeping and
# waking, and system call entry and exit; then the top user functions.
# CPU per request (utime+stime over the run) is printed for each; perf
# itself adds to it, so compare it between the two, not with bench/run.sh.
#
# CALLGRIND=1 runs portico (1 worker) under valgrind's callgrind for
# REQUESTS (4000) keep-alive requests over 4 connections and prints its
# user-space instructions per request and the top functions: a count that
# does not depend on the machine's load, for A/B of user-space changes.
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-8}
CONNS=64
NVHOST=64
ORIGIN=127.0.0.1:19740
PORT=19741
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init profile
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

start_bench_origin "$ORIGIN"
write_hosts_lua "$T/hosts.lua"
portico_bench_config "$T/portico.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$PORT}]" ""
nginx_bench_config "$T/nginx" "$NVHOST" "$ORIGIN" "127.0.0.1:$PORT"

# The split: one area per sample, from perf script's call chains.
cat >"$T/split.py" <<'PY'
import collections, re, subprocess, sys
out = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "ip,sym,dso"],
                     capture_output=True, text=True).stdout
samples, cur = [], []
for line in out.splitlines():
    m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
    if m:
        cur.append((m.group(1), m.group(2)))
    elif not line.strip() and cur:
        samples.append(cur)
        cur = []
if cur:
    samples.append(cur)
ENTRY = re.compile(r"^(entry_SYSCALL|do_syscall_64$|x64_sys_call$|syscall_exit|exit_to_user_mode"
                   r"|__x86_indirect_thunk|__x86_return_thunk$|srso_|syscall_return_via_sysret$"
                   r"|__rseq_handle_notify_resume$|switch_fpu_return$|restore_fpregs_from_fpstate$)")
COPY = {"_copy_to_iter", "_copy_from_iter", "copy_user_generic", "rep_movs_alternative",
        "__check_object_size", "__virt_addr_valid", "check_heap_object", "simple_copy_to_iter",
        "__skb_datagram_iter", "skb_copy_datagram_iter", "_copy_from_user", "_copy_to_user"}
SOFTIRQ = {"net_rx_action", "__napi_poll", "process_backlog", "handle_softirqs", "do_softirq",
           "__do_softirq", "ip_rcv", "tcp_v4_rcv", "ip_local_deliver"}
SCHED = {"finish_task_switch.isra.0", "__schedule", "schedule", "try_to_wake_up",
         "schedule_hrtimeout_range", "schedule_hrtimeout_range_clock", "psi_task_switch",
         "pick_next_task_fair", "dequeue_task_fair", "enqueue_task_fair", "__wake_up_common"}
def syscall(chain):
    for i, (s, _) in enumerate(chain):
        if s == "do_syscall_64":
            for s2, _ in reversed(chain[:i]):
                m = re.match(r"^(?:__x64_sys_|__do_sys_|ksys_|do_)(\w+)", s2)
                if m:
                    return m.group(1)
            return "?"
    return None
area, user = collections.Counter(), collections.Counter()
for ch in samples:
    leaf, dso = ch[0]
    if dso != "[kernel.kallsyms]":
        lib = dso.rsplit("/", 1)[-1]
        lib = "the proxy" if lib in (sys.argv[2], "portico", "nginx") else lib
        area["user: " + lib] += 1
        user[lib + " " + leaf] += 1
        continue
    syms = [s for s, d in ch if d == "[kernel.kallsyms]"]
    sc = syscall(ch) or ""
    if ENTRY.match(leaf):
        a = "kernel: system call entry and exit"
    elif SOFTIRQ & set(syms) or any(s.startswith("__netif_receive_skb") for s in syms):
        a = "kernel: loopback receive of what it sent (softirq in its context)"
    elif leaf in COPY:
        a = "kernel: copy between user and kernel"
    elif leaf in SCHED or SCHED & set(syms[:6]):
        a = "kernel: sleeping and waking (scheduler)"
    elif "epoll" in sc:
        a = "kernel: epoll"
    elif re.search(r"write|send", sc):
        a = "kernel: TCP send (writev)"
    elif re.search(r"read|recv", sc):
        a = "kernel: TCP receive (read, recv)"
    else:
        a = "kernel: other" + (" (%s)" % sc if sc else "")
    area[a] += 1
n = max(len(samples), 1)
print("%d samples" % len(samples))
for k, v in area.most_common():
    print("%6.1f %%  %s" % (100.0 * v / n, k))
print("top user-space functions:")
for k, v in user.most_common(15):
    print("%6.1f %%  %s" % (100.0 * v / n, k))
PY

profile() { # name, pid of the process tree, pids to sample
    wrk -t2 -c"$CONNS" -d2s -s "$T/hosts.lua" "http://127.0.0.1:$PORT/small" >/dev/null
    local before after n
    before=$(cpu_ticks "$2")
    perf record -q -g -F 999 -o "$T/$1.data" -p "$3" -- \
        wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$T/hosts.lua" "http://127.0.0.1:$PORT/small" \
        >"$T/wrk-$1.txt" 2>/dev/null
    after=$(cpu_ticks "$2")
    n=$(awk '/requests in/ {print $1}' "$T/wrk-$1.txt")
    echo "== $1: $n requests, $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$n" \
        'BEGIN {printf "%.1f", t / hz * 1e6 / n}') µs CPU per request (perf attached)"
    "$PY" "$T/split.py" "$T/$1.data" "$(basename "$4")"
}

"$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" &
PID=$!
PIDS+=("$PID")
wait_port "$PORT"
profile portico "$PID" "$PID" "$PORTICO"
stop_proxy

"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
PID=$!
PIDS+=("$PID")
wait_port "$PORT"
profile nginx "$PID" "$(pgrep -P "$PID" | paste -sd,)" "$NGINX"
stop_proxy

if [ -n "${CALLGRIND:-}" ]; then
    REQUESTS=${REQUESTS:-4000}
    # The client of bench/syscalls.sh: 4 connections, one request in flight on each.
    sed -n '/^cat >"\$T\/client.py"/,/^PY$/p' "$HERE/syscalls.sh" | sed '1d;$d' >"$T/client.py"
    sed 's/^workers: 2/workers: 1/' "$T/portico.yaml" >"$T/portico1.yaml"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/cg.%p" \
        "$PORTICO" run -c "$T/portico1.yaml" 2>"$T/valgrind.err" &
    PID=$!
    PIDS+=("$PID")
    wait_port "$PORT"
    "$PY" "$T/client.py" "$PORT" 4 400 # warm-up: pools and buffers
    callgrind_control -i on "$PID" >/dev/null
    "$PY" "$T/client.py" "$PORT" 4 "$REQUESTS"
    callgrind_control -i off "$PID" >/dev/null
    callgrind_control -d "$PID" >/dev/null
    stop_proxy
    cg=$(ls -S "$T"/cg.* | head -1)
    total=$(callgrind_annotate "$cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "== portico under callgrind: $(awk -v t="$total" -v n="$REQUESTS" \
        'BEGIN {printf "%.0f", t / n}') user-space instructions per request; top functions (self):"
    callgrind_annotate --inclusive=no "$cg" 2>/dev/null | sed -n '/PROGRAM TOTALS/,$p' | sed -n '5,19p'
fi
