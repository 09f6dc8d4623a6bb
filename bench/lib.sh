# bench/lib.sh - helpers shared by the benchmark scripts (sourced).

wait_port() { # $1 = port; $2 = scheme (http or https, default http)
    for _ in $(seq 1 100); do
        if curl -sk -o /dev/null "${2:-http}://127.0.0.1:$1/" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

tree_pids() { # the process and its children
    echo "$1"
    pgrep -P "$1" 2>/dev/null || true
}

cpu_ticks() { # utime+stime of the process tree, in clock ticks
    local t=0 p
    for p in $(tree_pids "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}

rss_kib() {
    local t=0 p
    for p in $(tree_pids "$1"); do
        [ -r "/proc/$p/status" ] || continue
        t=$((t + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
    done
    echo "$t"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
