#!/usr/bin/env bash
# bench/syscalls.sh - system calls per keep-alive request, by call, for
# portico and nginx as reverse proxies to the same origin.
#
#   bench/syscalls.sh build/portico              print the table
#   bench/syscalls.sh build/portico OLD-portico  a column for an older build too
#   WRITE=BENCHMARKS.md bench/syscalls.sh ...    also append the table there
#
# A fixed number of GET /small requests (REQUESTS, 2000) goes over CONNS (4)
# keep-alive connections, one request in flight per connection, with the Host
# rotating over 64 services, after a warm-up that fills the upstream pools.
# The proxy's system calls over those requests are counted with perf's
# syscall tracepoints when the kernel allows it (they do not slow the
# process), otherwise with strace -c -f; the tool used is printed. A call
# that failed with EAGAIN (it would block: a wasted call) is counted in a row
# of its own (perf only). Counts depend on how requests and answers meet in
# time, so they move a little from run to run; they are not timings.
# PROFILE=N also samples portico with perf over N more requests and prints
# its top symbols (where the CPU time goes).
set -euo pipefail

ARGS="${*:-build/portico}"
PORTICO=$(readlink -f "${1:-build/portico}")
OLD=${2:+$(readlink -f "$2")}
REQUESTS=${REQUESTS:-2000}
CONNS=${CONNS:-4}
NVHOST=64
ORIGIN=127.0.0.1:19500
P_PORTICO=19501
P_NGINX=19502
P_OLD=19503
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init syscalls
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

start_bench_origin "$ORIGIN"

# The client: CONNS threads, each with one connection and REQUESTS/CONNS
# requests in turn; any answer but a 200 fails the run.
cat >"$T/client.py" <<'PY'
import socket, sys, threading
port, conns, total = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
bad = []
def run(k, n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for i in range(n):
        s.sendall(b"GET /small HTTP/1.1\r\nHost: svc%02d.example.test\r\n\r\n" % ((k + i * conns) % 64))
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].decode("latin-1")
                cl = [int(l.split(":", 1)[1]) for l in head.split("\r\n")
                      if l.lower().startswith("content-length:")]
                size = end + 4 + (cl[0] if cl else 0)
                if len(buf) >= size:
                    if not head.startswith("HTTP/1.1 200"):
                        bad.append(head.split("\r\n")[0])
                    buf = buf[size:]
                    break
            d = s.recv(65536)
            if not d:
                bad.append("connection closed")
                return
            buf += d
    s.close()
ts = [threading.Thread(target=run, args=(k, total // conns + (k < total % conns)))
      for k in range(conns)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if bad:
    sys.exit("client: %d bad answers, e.g. %s" % (len(bad), bad[:3]))
PY

if perf stat -e 'syscalls:sys_enter_read' true >/dev/null 2>&1; then
    TOOL=perf
elif command -v strace >/dev/null; then
    TOOL=strace
else
    echo "bench: neither perf's syscall tracepoints nor strace is available" >&2
    exit 1
fi

# Count the system calls of the processes (comma-separated pids) while the
# client sends REQUESTS requests to port; "name count" lines in $T/count-NAME.
count() { # name, pids, port
    local out=$T/count-$1
    "$PY" "$T/client.py" "$3" "$CONNS" $((CONNS * 50)) # warm-up: pools and buffers
    if [ "$TOOL" = perf ]; then
        perf stat -x, -o "$T/perf-$1" -e 'syscalls:sys_enter_*' -e 'syscalls:sys_exit_*' \
            --filter 'ret == -11' -p "$2" -- "$PY" "$T/client.py" "$3" "$CONNS" "$REQUESTS"
        awk -F, '$1 + 0 > 0 {
            n = $3
            if (sub(/^syscalls:sys_enter_/, "", n)) print n, $1
            else if (sub(/^syscalls:sys_exit_/, "", n)) print n "_EAGAIN", $1
        }' "$T/perf-$1" >"$out"
    else
        local args=() p
        for p in ${2//,/ }; do args+=(-p "$p"); done
        strace -c -f -o "$T/strace-$1" "${args[@]}" &
        local st=$!
        sleep 1
        "$PY" "$T/client.py" "$3" "$CONNS" "$REQUESTS"
        kill -INT "$st"
        wait "$st" || true
        awk '$NF != "total" && $(NF - 1) ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {print $NF, $4}' \
            "$T/strace-$1" >"$out"
    fi
}

start_portico() { # binary, port
    portico_bench_config "$T/portico-$2.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$2}]" ""
    "$1" run -c "$T/portico-$2.yaml" 2>"$T/portico-$2.err" &
    PID=$!
    PIDS+=("$PID")
    wait_port "$2"
}

# Where portico's CPU time goes over PROFILE requests: perf's cpu-clock
# samples (hardware cycle counters are often missing on a VM), the top
# symbols by self time, into $T/profile and printed on stderr.
profile() { # pid, port
    perf record -q -F 999 -o "$T/perf.data" -p "$1" -- \
        "$PY" "$T/client.py" "$2" "$CONNS" "$PROFILE" 2>/dev/null
    {
        perf report -i "$T/perf.data" --sort dso --stdio 2>/dev/null | awk '/^ +[0-9.]+%/'
        echo
        perf report -i "$T/perf.data" --sort dso,sym --stdio 2>/dev/null |
            awk '/^ +[0-9.]+%/ && n++ < 25'
    } | sed "s/ *$//" >"$T/profile"
    echo "bench: where portico's CPU time goes over $PROFILE requests (perf, cpu-clock):" >&2
    cat "$T/profile" >&2
}

NAMES=(portico)
echo "bench: $REQUESTS keep-alive requests on $CONNS connections, counted with $TOOL" >&2
start_portico "$PORTICO" "$P_PORTICO"
count portico "$PID" "$P_PORTICO"
if [ -n "${PROFILE:-}" ]; then profile "$PID" "$P_PORTICO"; fi
stop_proxy
if [ -n "$OLD" ]; then
    NAMES+=(old)
    start_portico "$OLD" "$P_OLD"
    count old "$PID" "$P_OLD"
    stop_proxy
fi

NAMES+=(nginx)
nginx_bench_config "$T/nginx" "$NVHOST" "$ORIGIN" "127.0.0.1:$P_NGINX" \
    "server_names_hash_max_size 65536; server_names_hash_bucket_size 128;"
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
PID=$!
PIDS+=("$PID")
wait_port "$P_NGINX"
count nginx "$(pgrep -P "$PID" | paste -sd,)" "$P_NGINX" # the workers
stop_proxy

# One row per call, the calls most made first; a call that failed with
# EAGAIN follows its call; then the total. Calls made fewer than 0.005
# times per request in every column (per connection: accept4, close,
# setsockopt, ...) have no row but count in the total.
table() {
    local head="| system calls per request |" rule="|---|" n files=()
    for n in "${NAMES[@]}"; do
        case $n in
        old) head+=" portico (older build) |" ;;
        *) head+=" $n |" ;;
        esac
        rule+="---|"
        files+=("$T/count-$n")
    done
    echo "$head"
    echo "$rule"
    awk -v req="$REQUESTS" -v ncol="${#NAMES[@]}" '
        { col = FILENAME; if (!(col in ci)) ci[col] = ++nc
          c[$1, ci[col]] = $2; calls[$1] = 1
          if ($1 !~ /_EAGAIN$/) { sum[$1] += $2; tot[ci[col]] += $2 } }
        END {
            n = 0
            for (k in calls) if (k !~ /_EAGAIN$/) names[++n] = k
            for (i = 2; i <= n; i++) {           # most made first (sum over columns)
                v = names[i]; j = i - 1
                while (j > 0 && sum[names[j]] < sum[v]) { names[j + 1] = names[j]; j-- }
                names[j + 1] = v
            }
            for (i = 1; i <= n; i++) {
                row(names[i], names[i])
                if ((names[i] "_EAGAIN") in calls) row(names[i] "_EAGAIN", "... of which failed with EAGAIN")
            }
            line = "| total |"
            for (j = 1; j <= ncol; j++) line = line sprintf(" %.2f |", tot[j] / req)
            print line
        }
        function row(key, label,   j, line, seen) {
            line = "| " label " |"
            for (j = 1; j <= ncol; j++) {
                line = line sprintf(" %.2f |", c[key, j] / req)
                if (c[key, j] / req >= 0.005) seen = 1
            }
            if (seen) print line
        }' "${files[@]}"
}

TABLE=$(table)
echo "$TABLE"
if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## System calls per request"
        echo
        echo "Produced by \`WRITE=$WRITE ${PROFILE:+PROFILE=$PROFILE }bench/syscalls.sh $ARGS\` (part of \`make bench\`) on $(date -u +%Y-%m-%d)."
        echo "$REQUESTS GET /small requests over $CONNS keep-alive connections (one in flight on each), Host"
        echo "rotating over $NVHOST services, after a warm-up; the proxy's calls counted with $TOOL,"
        echo "divided by the number of requests; nginx/$("$NGINX" -v 2>&1 | sed 's|.*nginx/||'), 2 workers each."
        echo
        echo "$TABLE"
        if [ -n "${PROFILE:-}" ]; then
            echo
            echo "Where portico's CPU time went over $PROFILE more such requests (\`PROFILE=$PROFILE\`;"
            echo "perf's cpu-clock samples, by shared object, then the top symbols by self time):"
            echo
            echo '```'
            cat "$T/profile"
            echo '```'
        fi
    } >>"$WRITE"
fi
