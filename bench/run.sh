#!/usr/bin/env bash
# bench/run.sh - portico against nginx and HAProxy as 64-vhost reverse proxies
# in front of one origin, in one run, on this machine.
#
#   bench/run.sh build/portico            print the table
#   WRITE=BENCHMARKS.md bench/run.sh ...  also write it there (make bench does)
#
# Knobs: DURATION (wrk seconds, 10), CONNS (64), REPS (1GiB transfers, 3),
# IDLE_SECS (idle CPU window, 30). Everything listens on 127.0.0.1 only.
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
REPS=${REPS:-3}
IDLE_SECS=${IDLE_SECS:-30}
NVHOST=64
ORIGIN=127.0.0.1:19000
P_PORTICO=18084
P_NGINX=18085
P_HAPROXY=18086
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init bench

# ---- the origin: nginx, 2 workers, /small from memory, /1g from a sparse file ----
start_bench_origin "$ORIGIN"

# ---- portico and nginx as proxies ----
portico_config() { # $1 = number of services
    portico_bench_config "$T/portico.yaml" "$1" "$ORIGIN" "[{addr: 127.0.0.1:$P_PORTICO}]" ""
}

nginx_config() { # $1 = number of services
    nginx_bench_config "$T/nginx" "$1" "$ORIGIN" "127.0.0.1:$P_NGINX" \
        "server_names_hash_max_size 65536; server_names_hash_bucket_size 128;"
}

# ---- HAProxy ----
haproxy_config() {
    {
        echo "global"
        echo "  maxconn 16000"
        echo "  nbthread 2"
        echo "  no strict-limits"
        echo "defaults"
        echo "  mode http"
        echo "  timeout connect 5s"
        echo "  timeout client 75s"
        echo "  timeout server 60s"
        echo "  http-reuse always"
        echo "frontend f"
        echo "  bind 127.0.0.1:$P_HAPROXY"
        for i in $(seq 0 $(($1 - 1))); do
            printf '  use_backend b%02d if { hdr(host) -i svc%02d.example.test }\n' "$i" "$i"
        done
        echo "  default_backend notfound"
        echo "backend notfound"
        echo "  http-request return status 404"
        for i in $(seq 0 $(($1 - 1))); do
            printf 'backend b%02d\n  server s %s\n' "$i" "$ORIGIN"
        done
    } >"$T/haproxy.cfg"
}

start_proxy() { # $1 = name, $2 = number of services; sets PID
    case $1 in
    portico)
        portico_config "$2"
        "$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" &
        PID=$!
        PORT=$P_PORTICO ;;
    nginx)
        nginx_config "$2"
        "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
        PID=$!
        PORT=$P_NGINX ;;
    haproxy)
        haproxy_config "$2"
        "$HAPROXY" -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 &
        PID=$!
        PORT=$P_HAPROXY ;;
    direct)
        PID=""
        PORT=19000
        return ;;
    esac
    PIDS+=("$PID")
    wait_port "$PORT"
}

HZ=$(getconf CLK_TCK)
write_hosts_lua "$T/hosts.lua"
cat >"$T/direct.lua" <<'LUA'
request = function() return wrk.format("GET", "/small") end
LUA

declare -A GBS IDLE64 IDLE10K RSS64 RSS10K RSSLOAD UPCONNS

# The small-request run. A proxy gets a 3 s warm-up first, so that its
# pools are filled; during the measured run the origin counts the
# connections the proxy opens to it (its accepts, less the one that asks):
# a proxy that reuses its keep-alive connections opens next to none.
small() { # name
    local lua=$T/hosts.lua a0 a1
    [ "$1" = direct ] && lua=$T/direct.lua
    if [ -n "$PID" ]; then
        wrk -t2 -c"$CONNS" -d3s -s "$lua" "http://127.0.0.1:$PORT/small" >/dev/null
        sleep 1
    fi
    a0=$(origin_accepts "$ORIGIN")
    wrk_measure "$1" "$PID" "http://127.0.0.1:$PORT/small" "$lua"
    a1=$(origin_accepts "$ORIGIN")
    if [ -n "$PID" ]; then
        UPCONNS[$1]=$((a1 - a0 - 1))
        RSSLOAD[$1]=$(rss_kib "$PID")
    else
        UPCONNS[$1]="-"
        RSSLOAD[$1]="-"
    fi
}

big() { # name: median GB/s of REPS downloads of 1 GiB
    GBS[$1]=$(median_gbs "http://127.0.0.1:$PORT/1g" -H "Host: svc00.example.test")
}

idle() { # name -> percent of one core over IDLE_SECS
    local a b
    a=$(cpu_ticks "$PID")
    sleep "$IDLE_SECS"
    b=$(cpu_ticks "$PID")
    awk -v t=$((b - a)) -v hz="$HZ" -v s="$IDLE_SECS" 'BEGIN {printf "%.2f", t / hz / s * 100}'
}

echo "bench: origin nginx on $ORIGIN; wrk -t2 -c$CONNS -d${DURATION}s over $NVHOST host names" >&2
for name in direct portico nginx haproxy; do
    echo "bench: $name" >&2
    start_proxy "$name" "$NVHOST"
    if [ "$name" != direct ]; then
        sleep 1
        RSS64[$name]=$(rss_kib "$PID")
        IDLE64[$name]=$(idle "$name")
    fi
    small "$name"
    big "$name"
    stop_proxy
done

for name in portico nginx haproxy; do
    echo "bench: $name with 10,000 services" >&2
    NVHOST=10000
    start_proxy "$name" 10000
    NVHOST=64
    sleep 2
    RSS10K[$name]=$(rss_kib "$PID")
    IDLE10K[$name]=$(idle "$name")
    stop_proxy
done


{
    echo "| | direct | portico | nginx | HAProxy |"
    echo "|---|---|---|---|---|"
    echo "| small requests, req/s (keep-alive, $CONNS conns) | ${RPS[direct]} | ${RPS[portico]} | ${RPS[nginx]} | ${RPS[haproxy]} |"
    echo "| ... ratio to nginx | $(ratio "${RPS[direct]}" "${RPS[nginx]}") | $(ratio "${RPS[portico]}" "${RPS[nginx]}") | 1.00 | $(ratio "${RPS[haproxy]}" "${RPS[nginx]}") |"
    echo "| ... ratio to direct | 1.00 | $(ratio "${RPS[portico]}" "${RPS[direct]}") | $(ratio "${RPS[nginx]}" "${RPS[direct]}") | $(ratio "${RPS[haproxy]}" "${RPS[direct]}") |"
    echo "| small requests, p99 latency | ${P99[direct]} | ${P99[portico]} | ${P99[nginx]} | ${P99[haproxy]} |"
    echo "| proxy CPU per request, µs | - | ${USREQ[portico]} | ${USREQ[nginx]} | ${USREQ[haproxy]} |"
    echo "| new upstream connections during the small-request run (after a 3 s warm-up; counted by the origin) | - | ${UPCONNS[portico]} | ${UPCONNS[nginx]} | ${UPCONNS[haproxy]} |"
    echo "| 1 GiB download, GB/s (median of $REPS) | ${GBS[direct]} | ${GBS[portico]} | ${GBS[nginx]} | ${GBS[haproxy]} |"
    echo "| ... ratio to direct | 1.00 | $(ratio "${GBS[portico]}" "${GBS[direct]}") | $(ratio "${GBS[nginx]}" "${GBS[direct]}") | $(ratio "${GBS[haproxy]}" "${GBS[direct]}") |"
    echo "| ... ratio to nginx | $(ratio "${GBS[direct]}" "${GBS[nginx]}") | $(ratio "${GBS[portico]}" "${GBS[nginx]}") | 1.00 | $(ratio "${GBS[haproxy]}" "${GBS[nginx]}") |"
    echo "| idle CPU, % of a core over ${IDLE_SECS}s, 64 services | - | ${IDLE64[portico]} | ${IDLE64[nginx]} | ${IDLE64[haproxy]} |"
    echo "| idle CPU, % of a core over ${IDLE_SECS}s, 10,000 services | - | ${IDLE10K[portico]} | ${IDLE10K[nginx]} | ${IDLE10K[haproxy]} |"
    echo "| RSS after start, 64 services, MiB | - | $(mib "${RSS64[portico]}") | $(mib "${RSS64[nginx]}") | $(mib "${RSS64[haproxy]}") |"
    echo "| RSS after start, 10,000 services, MiB | - | $(mib "${RSS10K[portico]}") | $(mib "${RSS10K[nginx]}") | $(mib "${RSS10K[haproxy]}") |"
    echo "| ... ratio to nginx | - | $(ratio "${RSS10K[portico]}" "${RSS10K[nginx]}") | 1.00 | $(ratio "${RSS10K[haproxy]}" "${RSS10K[nginx]}") |"
    echo "| RSS after the keep-alive load, 64 services, MiB | - | $(mib "${RSSLOAD[portico]}") | $(mib "${RSSLOAD[nginx]}") | $(mib "${RSSLOAD[haproxy]}") |"
} >"$T/table.md"

for n in portico nginx haproxy; do
    if [ -n "${ERRS[$n]:-}" ]; then echo "bench: $n: ${ERRS[$n]}" >&2; fi
done
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo "# Benchmarks"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md make bench\` (\`bench/run.sh\`, then \`bench/tls.sh\` and \`bench/auth.sh\`) on $(date -u +%Y-%m-%d)."
        echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);"
        echo "$("$PORTICO" version | head -1), $("$NGINX" -v 2>&1 | sed 's/.*: //'), $("$HAPROXY" -v | head -1 | awk '{print "HAProxy " $3}'), wrk."
        echo
        echo "Every proxy runs 2 workers/threads and routes $NVHOST host names (svc00 ... svc63.example.test),"
        echo "each to its own upstream pool, to one origin (nginx, 2 workers) answering /small from"
        echo "memory and /1g from a file with sendfile. wrk rotates the Host header over the 64 names;"
        echo "\"direct\" is wrk against the origin itself. Access logs are off everywhere. The client,"
        echo "the proxy and the origin share the same 2 cores, so req/s measures the whole box and"
        echo "is comparable only within one run; \"proxy CPU per request\" is the least noisy figure."
        echo
        cat "$T/table.md"
        if [ -f "$HERE/NOTES.md" ]; then
            echo
            cat "$HERE/NOTES.md"
        fi
    } >"$WRITE"
    echo "bench: wrote $WRITE" >&2
fi
