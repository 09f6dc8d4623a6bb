#!/usr/bin/env bash
# bench/dlcost.sh - what a large download costs per GiB through portico, in
# figures that a busy machine moves little: CPU-seconds of portico, of the
# client and of the origin (and of the kernel's softirq threads), portico's
# system calls, and the segments the client's socket received. Two builds
# are alternated download by download, so drift falls on both alike; GB/s
# is printed too, but it moves with whatever else runs.
#
#   bench/dlcost.sh build/portico              one build
#   bench/dlcost.sh OLD-portico build/portico  two builds, and NEW/OLD
#   WRITE=FILE bench/dlcost.sh ...             also append the table to FILE
#
# Rows per framing: Content-Length (nginx origin, sendfile), chunked in 1 MiB
# chunks and close-delimited (bench/pyorigin.py, sendfile between the
# framing); the client (bench/dlclient.py) reads over HTTP/1.1, so chunked
# and close-delimited bodies reach it chunked by portico. Each figure is the
# median over ROUNDS downloads. CPU time is each process's run time
# (schedstat of every thread; the Python origin, whose threads come and go,
# from /proc/PID/stat in clock ticks). The system calls are counted with
# perf's syscall tracepoints when the kernel allows it, else left out.
# Knobs: ROUNDS (5), SIZE (bytes per download, 1 GiB), KINDS ("cl chunked
# close"). Everything listens on 127.0.0.1 only.
set -euo pipefail

OLD=$(readlink -f "${1:-build/portico}")
NEW=${2:+$(readlink -f "$2")}
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-1073741824}
KINDS=${KINDS:-cl chunked close}
ORIGIN=127.0.0.1:19600
PYORIGIN=127.0.0.1:19601
P_OLD=19602
P_NEW=19603
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init dlcost
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

start_origin "${ORIGIN##*:}" "  server {
    listen $ORIGIN;
    root $T/origin/www;
  }"
truncate -s "$SIZE" "$T/origin/www/body"
curl -s -o /dev/null "http://$ORIGIN/body"
NGINX_PID=${PIDS[-1]}
"$PY" "$HERE/pyorigin.py" "$T/origin/www/body" "${PYORIGIN##*:}" &
PIDS+=($!)
PY_PID=$!
for _ in $(seq 1 50); do curl -s -o /dev/null -r 0-0 "http://$PYORIGIN/close" && break; sleep 0.1; done

start_portico() { # binary, port; sets PID
    cat >"$T/portico-$2.yaml" <<YAML
workers: 2
access_log: false
listen: [{addr: 127.0.0.1:$2}]
services:
  dl: {hosts: [dl.example.test], upstream: "http://$ORIGIN"}
  py: {hosts: [py.example.test], upstream: "http://$PYORIGIN"}
YAML
    "$1" run -c "$T/portico-$2.yaml" 2>"$T/portico-$2.err" &
    PID=$!
    PIDS+=("$PID")
    wait_port "$2"
}
start_portico "$OLD" "$P_OLD"
OLD_PID=$PID
BUILDS=(OLD)
if [ -n "$NEW" ]; then
    start_portico "$NEW" "$P_NEW"
    NEW_PID=$PID
    BUILDS+=(NEW)
fi

sched_ns() { # run time of every thread of the processes, ns
    local t=0 p f
    for p in "$@"; do
        for f in /proc/"$p"/task/*/schedstat; do
            [ -r "$f" ] && t=$((t + $(cut -d' ' -f1 "$f")))
        done
    done
    echo "$t"
}
ticks_ns() { # utime+stime of the processes (dead threads too), ns
    local p
    for p in "$@"; do awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f\n", ($14 + $15) * 1e9 / hz}' "/proc/$p/stat"; done |
        awk '{s += $1} END {printf "%.0f", s}'
}
origin_ns() { # kind
    local pids
    if [ "$1" = cl ]; then
        mapfile -t pids < <(tree_pids "$NGINX_PID")
        sched_ns "${pids[@]}"
    else
        ticks_ns "$PY_PID"
    fi
}

mapfile -t SOFTIRQ < <(pgrep ksoftirqd || true)
SYSCALLS=splice,sendto,epoll_wait,epoll_ctl,read
PERF=""
if perf stat -e 'syscalls:sys_enter_splice' true >/dev/null 2>&1; then
    PERF=1
fi

# One download; appends "build kind GBps portico client origin softirq
# segs splice sendto epoll_wait epoll_ctl read" (per GiB) to $T/rows.
one() { # build, pid, port, kind
    local host=dl.example.test path=/body perf_pid="" o0 o1 p0 p1 k0 k1 out
    case $4 in
    chunked) host=py.example.test path=/x ;;
    close) host=py.example.test path=/close ;;
    esac
    if [ -n "$PERF" ]; then
        local ev=""
        for c in ${SYSCALLS//,/ }; do ev+="${ev:+,}syscalls:sys_enter_$c"; done
        perf stat -x, -o "$T/perf" -e "$ev" -p "$2" &
        perf_pid=$!
        sleep 0.2
    fi
    o0=$(origin_ns "$4")
    p0=$(sched_ns "$2")
    k0=$(sched_ns "${SOFTIRQ[@]}")
    out=$("$PY" "$HERE/dlclient.py" "$3" "$host" "$path")
    k1=$(sched_ns "${SOFTIRQ[@]}")
    p1=$(sched_ns "$2")
    o1=$(origin_ns "$4")
    local calls="- - - - -"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        calls=$(for c in ${SYSCALLS//,/ }; do
            awk -F, -v e="syscalls:sys_enter_$c" '$3 == e {print $1}' "$T/perf"
        done | tr '\n' ' ')
    fi
    echo "$1 $4 $out $p0 $p1 $o0 $o1 $k0 $k1 $calls" | awk '{
        g = $3 / 1073741824
        printf "%s %s %.2f %.3f %.3f %.3f %.3f %.0f", $1, $2, $3 / $4 / 1e9,
            ($8 - $7) / 1e9 / g, $5 / g, ($10 - $9) / 1e9 / g, ($12 - $11) / 1e9 / g, $6 / g
        for (i = 13; i <= NF; i++) printf " %s", ($i == "-" ? "-" : sprintf("%.0f", $i / g))
        printf "\n"
    }' >>"$T/rows"
}

: >"$T/rows"
for kind in $KINDS; do
    for _ in $(seq 1 "$ROUNDS"); do
        one OLD "$OLD_PID" "$P_OLD" "$kind"
        if [ -n "$NEW" ]; then one NEW "$NEW_PID" "$P_NEW" "$kind"; fi
    done
done

# ---- the table: medians per framing and build ----
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0 || a[1] == "-") print "-"; else print a[int((NR + 1) / 2)]}'; }
cell() { # build, kind, column (3 = GB/s, ...)
    awk -v b="$1" -v k="$2" -v c="$3" '$1 == b && $2 == k {print $c}' "$T/rows" | median
}
NAMES=("" "" "GB/s (moves with the load)" "portico CPU-s" "client CPU-s" "origin CPU-s"
    "softirq threads CPU-s" "client segments received" "portico splice calls" "portico sendto calls"
    "portico epoll_wait calls" "portico epoll_ctl calls" "portico read calls")
{
    echo
    echo "Download cost per GiB (\`bench/dlcost.sh\`, median of $ROUNDS downloads of $(awk -v s="$SIZE" 'BEGIN {printf "%.2f", s / 1073741824}') GiB each):"
    echo
    if [ -n "$NEW" ]; then
        echo "| per GiB | framing | OLD | NEW | NEW/OLD |"
        echo "|---|---|---|---|---|"
    else
        echo "| per GiB | framing | portico |"
        echo "|---|---|---|"
    fi
    for kind in $KINDS; do
        for col in 4 5 6 7 8 9 10 11 12 13 3; do
            a=$(cell OLD "$kind" "$col")
            if [ -n "$NEW" ]; then
                b=$(cell NEW "$kind" "$col")
                echo "| ${NAMES[$((col - 1))]} | $kind | $a | $b | $(ratio "$b" "$a") |"
            else
                echo "| ${NAMES[$((col - 1))]} | $kind | $a |"
            fi
        done
        if [ -n "$NEW" ]; then
            a=$(awk -v k="$kind" '$1 == "OLD" && $2 == k {print $4 + $5 + $6 + $7}' "$T/rows" | median)
            b=$(awk -v k="$kind" '$1 == "NEW" && $2 == k {print $4 + $5 + $6 + $7}' "$T/rows" | median)
            echo "| CPU-s of the four together | $kind | $a | $b | $(ratio "$b" "$a") |"
        fi
    done
    [ -n "$PERF" ] || echo "(system calls not counted: perf's syscall tracepoints are not available)"
} | tee -a "${WRITE:-/dev/null}"
