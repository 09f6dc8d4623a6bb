#!/usr/bin/env bash
# bench/scale.sh - many names and many connections: portico against nginx
# and HAProxy, same origin, in one run on this machine.
#
#   bench/scale.sh build/portico             print the tables
#   WRITE=FILE bench/scale.sh build/portico  also append them to FILE
#
# 1. Routing cost against the number of names: each proxy routes 64, then
#    NAMES (10,000) host names to one shared upstream pool, and wrk rotates
#    the Host header over all of them (CONNS keep-alive connections). The
#    ratio NAMES/64 of req/s and of the proxy's CPU per request is the cost
#    of a larger table; 1.00 means none.
# 2. ACTIVE (10,000) concurrent connections, every one sending requests
#    (wrk -cACTIVE over 64 names): req/s, failed requests, the client
#    connections the proxy held open mid-run, peak RSS.
# 3. Start and reload with NAMES services: time from exec to the first
#    answered request, RSS after start; portico's reload (SIGHUP to its
#    "configuration reloaded" line) and its idle CPU over IDLE_SECS.
#
# Knobs: DURATION (wrk seconds, 10), CONNS (64), NAMES (10000), ACTIVE
# (10000), IDLE_SECS (10), WRK_TIMEOUT (seconds before wrk counts a request
# as timed out, 10), ONLY_ACTIVE (1: run and print only part 2, the ACTIVE
# connections table, in the same format), ACTIVE_PROXIES (which of "direct
# portico nginx haproxy" part 2 runs; the others print -). ACTIVE connections need about
# 2 x ACTIVE open files in each proxy (a client and an upstream connection
# each): the script raises its soft limit to the hard one and says so when
# that is lower. Everything listens on 127.0.0.1 only.
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
NAMES=${NAMES:-10000}
ACTIVE=${ACTIVE:-10000}
IDLE_SECS=${IDLE_SECS:-10}
export WRK_TIMEOUT=${WRK_TIMEOUT:-10}
ONLY_ACTIVE=${ONLY_ACTIVE:-}
ACTIVE_PROXIES=${ACTIVE_PROXIES:-direct portico nginx haproxy}
ORIGIN=127.0.0.1:19200
P_PORTICO=18284
P_NGINX=18285
P_HAPROXY=18286
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init scalebench

# ---- open files: wrk, the proxies and the origin inherit this limit ----
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
FD_NOTE=""
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((2 * ACTIVE + 1000)) ]; then
    FD_NOTE="the open-file limit here is $NOFILE, below the $((2 * ACTIVE + 1000)) that $ACTIVE proxied connections may need: a proxy (nginx per worker) can run out of descriptors, which shows as failed requests"
    echo "bench: $FD_NOTE" >&2
fi
# The origin sees up to one connection per client connection from nginx,
# which pools 64 per worker and opens more under load.
export ORIGIN_CONNS=$((ACTIVE + 2048)) ORIGIN_NOFILE=$NOFILE
start_bench_origin "$ORIGIN"

# ---- the proxies: every name to one upstream pool ----
portico_config() { # n
    portico_bench_config "$T/portico.yaml" "$1" "$ORIGIN" "[{addr: 127.0.0.1:$P_PORTICO}]" ""
}

nginx_config() { # n: one upstream{} shared by n server blocks
    mkdir -p "$T/nginx/tmp"
    {
        echo "$user_line"
        echo "worker_processes 2; worker_rlimit_nofile $NOFILE; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log;"
        echo "events { worker_connections $((2 * ACTIVE + 1000)); }"
        echo "http { access_log off; $(nginx_temp_paths "$T/nginx/tmp")"
        echo "  proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_max_temp_file_size 0;"
        echo "  keepalive_requests 1000000; server_names_hash_max_size 65536; server_names_hash_bucket_size 128;"
        echo "  upstream origin { server $ORIGIN; keepalive 64; }"
        echo "  server { listen 127.0.0.1:$P_NGINX default_server backlog=4096; return 404; }"
        for i in $(seq 0 $(($1 - 1))); do
            printf '  server { listen 127.0.0.1:%s; server_name svc%02d.example.test; location / { proxy_pass http://origin; } }\n' "$P_NGINX" "$i"
        done
        echo "}"
    } >"$T/nginx/nginx.conf"
}

haproxy_config() { # n: Host -> backend through a map (a tree lookup), one backend
    for i in $(seq 0 $(($1 - 1))); do printf 'svc%02d.example.test origin\n' "$i"; done >"$T/hosts.map"
    cat >"$T/haproxy.cfg" <<CFG
global
  maxconn $((ACTIVE + 1000))
  nbthread 2
  no strict-limits
defaults
  mode http
  maxconn $((ACTIVE + 1000))
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$P_HAPROXY backlog 4096
  use_backend %[req.hdr(host),field(1,:),lower,map($T/hosts.map,notfound)]
backend notfound
  http-request return status 404
backend origin
  server s $ORIGIN
CFG
}

declare -A STARTMS RSSSTART
# Start NAME with n names; sets PID, PORT, STARTMS[NAME-n] (exec to the
# first 200 for svc00) and RSSSTART[NAME-n].
start_proxy() { # name, n
    local t0 t1
    case $1 in
    portico) portico_config "$2"; PORT=$P_PORTICO ;;
    nginx) nginx_config "$2"; PORT=$P_NGINX ;;
    haproxy) haproxy_config "$2"; PORT=$P_HAPROXY ;;
    esac
    t0=$(date +%s%N)
    case $1 in
    portico) "$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" & ;;
    nginx) "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' & ;;
    haproxy) "$HAPROXY" -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 & ;;
    esac
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 600); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: svc00.example.test' \
            "http://127.0.0.1:$PORT/small")" = 200 ]; then break; fi
        kill -0 "$PID" 2>/dev/null || { echo "bench: $1 exited at start" >&2; exit 1; }
        sleep 0.05
    done
    t1=$(date +%s%N)
    STARTMS[$1-$2]=$(((t1 - t0) / 1000000))
    sleep 1
    RSSSTART[$1-$2]=$(rss_kib "$PID")
}

peak_rss_start() { # pid: sample the tree's RSS every 0.5 s into $T/peak until stopped
    (
        peak=0
        while kill -0 "$1" 2>/dev/null; do
            r=$(rss_kib "$1")
            [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$T/peak"
            sleep 0.5
        done
    ) &
    SAMPLER=$!
}

write_rotate_lua "$T/names64.lua" 64
write_rotate_lua "$T/namesN.lua" "$NAMES"
declare -A FAILS OPEN PEAK

# ---- 1. 64 names against NAMES names ----
for name in $([ -n "$ONLY_ACTIVE" ] || echo portico nginx haproxy); do
    for n in 64 "$NAMES"; do
        echo "bench: $name, $n names, $CONNS connections" >&2
        start_proxy "$name" "$n"
        lua=$T/names64.lua
        [ "$n" = 64 ] || lua=$T/namesN.lua
        wrk -t2 -c"$CONNS" -d3s -s "$lua" "http://127.0.0.1:$PORT/small" >/dev/null
        wrk_measure "$name-$n" "$PID" "http://127.0.0.1:$PORT/small" "$lua"
        FAILS[$name-$n]=$(wrk_errors "$T/wrk-$name-$n.txt")
        stop_proxy
    done
done

r() { ratio "$1" "$2"; }
# Proxies left out of part 2 (ACTIVE_PROXIES) show as -.
active_fill() {
    local n
    for n in direct portico nginx haproxy; do
        RPS[active-$n]=${RPS[active-$n]:--} P99[active-$n]=${P99[active-$n]:--}
        FAILS[active-$n]=${FAILS[active-$n]:--} OPEN[$n]=${OPEN[$n]:--}
        USREQ[active-$n]=${USREQ[active-$n]:--} PEAK[$n]=${PEAK[$n]:-0}
    done
}
# The table of part 2, from RPS, P99, FAILS, OPEN, USREQ and PEAK.
active_table() {
    echo "| $ACTIVE active connections | direct | portico | nginx | HAProxy |"
    echo "|---|---|---|---|---|"
    echo "| req/s | ${RPS[active-direct]} | ${RPS[active-portico]} | ${RPS[active-nginx]} | ${RPS[active-haproxy]} |"
    echo "| ... ratio to nginx | $(r "${RPS[active-direct]}" "${RPS[active-nginx]}") | $(r "${RPS[active-portico]}" "${RPS[active-nginx]}") | 1.00 | $(r "${RPS[active-haproxy]}" "${RPS[active-nginx]}") |"
    echo "| p99 latency | ${P99[active-direct]} | ${P99[active-portico]} | ${P99[active-nginx]} | ${P99[active-haproxy]} |"
    echo "| failed requests (socket errors, timeouts, non-2xx) | ${FAILS[active-direct]} | ${FAILS[active-portico]} | ${FAILS[active-nginx]} | ${FAILS[active-haproxy]} |"
    echo "| client connections open mid-run | ${OPEN[direct]} | ${OPEN[portico]} | ${OPEN[nginx]} | ${OPEN[haproxy]} |"
    echo "| proxy CPU per request, µs | - | ${USREQ[active-portico]} | ${USREQ[active-nginx]} | ${USREQ[active-haproxy]} |"
    echo "| peak RSS, MiB | - | $(mib "${PEAK[portico]}") | $(mib "${PEAK[nginx]}") | $(mib "${PEAK[haproxy]}") |"
}

# ---- 2. ACTIVE busy connections ----
for name in $ACTIVE_PROXIES; do
    echo "bench: $name, $ACTIVE active connections" >&2
    if [ "$name" = direct ]; then
        PID=""
        PORT=${ORIGIN##*:}
    else
        start_proxy "$name" 64
        echo 0 >"$T/peak"
        peak_rss_start "$PID"
    fi
    (
        sleep "$((DURATION / 2))"
        ss -Htn state established "( sport = :$PORT )" | wc -l >"$T/open"
    ) &
    counter=$!
    CONNS=$ACTIVE wrk_measure "active-$name" "$PID" "http://127.0.0.1:$PORT/small" "$T/names64.lua"
    wait "$counter"
    OPEN[$name]=$(cat "$T/open")
    FAILS[active-$name]=$(wrk_errors "$T/wrk-active-$name.txt")
    if [ -n "$PID" ]; then
        kill "$SAMPLER" 2>/dev/null || true
        wait "$SAMPLER" 2>/dev/null || true
        PEAK[$name]=$(cat "$T/peak")
        stop_proxy
    else
        PEAK[$name]=-
    fi
done

active_fill
if [ -n "$ONLY_ACTIVE" ]; then
    active_table >"$T/active.md"
    cat "$T/active.md"
    if [ -n "${WRITE:-}" ]; then
        {
            echo
            echo "Produced by \`ONLY_ACTIVE=1 WRITE=BENCHMARKS.md bench/scale.sh build/portico\` on $(date -u +%Y-%m-%d): $ACTIVE connections each sending requests one after another (wrk -c$ACTIVE, 64 names, ${DURATION} s, a request unanswered after ${WRK_TIMEOUT} s counts as failed).${FD_NOTE:+ Note: $FD_NOTE.}"
            echo
            cat "$T/active.md"
        } >>"$WRITE"
        echo "bench: appended the active-connections table to $WRITE" >&2
    fi
    exit 0
fi

# ---- 3. portico: reload and idle CPU with NAMES services ----
echo "bench: portico reload and idle with $NAMES services" >&2
start_proxy portico "$NAMES"
before=$(grep -c 'configuration reloaded' "$T/portico.err" || true)
t0=$(date +%s%N)
kill -HUP "$PID"
for _ in $(seq 1 600); do
    [ "$(grep -c 'configuration reloaded' "$T/portico.err" || true)" -gt "$before" ] && break
    sleep 0.02
done
t1=$(date +%s%N)
RELOADMS=$(((t1 - t0) / 1000000))
sleep 1
RSSRELOAD=$(rss_kib "$PID")
a=$(cpu_ticks "$PID")
sleep "$IDLE_SECS"
b=$(cpu_ticks "$PID")
IDLECPU=$(awk -v t=$((b - a)) -v hz="$(getconf CLK_TCK)" -v s="$IDLE_SECS" 'BEGIN {printf "%.2f", t / hz / s * 100}')
stop_proxy

N=$NAMES
{
    echo "| | portico | nginx | HAProxy |"
    echo "|---|---|---|---|"
    echo "| req/s, 64 names | ${RPS[portico-64]} | ${RPS[nginx-64]} | ${RPS[haproxy-64]} |"
    echo "| req/s, $N names | ${RPS[portico-$N]} | ${RPS[nginx-$N]} | ${RPS[haproxy-$N]} |"
    echo "| ... ratio $N/64 | $(r "${RPS[portico-$N]}" "${RPS[portico-64]}") | $(r "${RPS[nginx-$N]}" "${RPS[nginx-64]}") | $(r "${RPS[haproxy-$N]}" "${RPS[haproxy-64]}") |"
    echo "| proxy CPU per request, µs, 64 names | ${USREQ[portico-64]} | ${USREQ[nginx-64]} | ${USREQ[haproxy-64]} |"
    echo "| proxy CPU per request, µs, $N names | ${USREQ[portico-$N]} | ${USREQ[nginx-$N]} | ${USREQ[haproxy-$N]} |"
    echo "| ... ratio $N/64 | $(r "${USREQ[portico-$N]}" "${USREQ[portico-64]}") | $(r "${USREQ[nginx-$N]}" "${USREQ[nginx-64]}") | $(r "${USREQ[haproxy-$N]}" "${USREQ[haproxy-64]}") |"
    echo "| failed requests, 64 / $N names | ${FAILS[portico-64]} / ${FAILS[portico-$N]} | ${FAILS[nginx-64]} / ${FAILS[nginx-$N]} | ${FAILS[haproxy-64]} / ${FAILS[haproxy-$N]} |"
    echo "| start to first answer, ms, 64 names | ${STARTMS[portico-64]} | ${STARTMS[nginx-64]} | ${STARTMS[haproxy-64]} |"
    echo "| start to first answer, ms, $N names | ${STARTMS[portico-$N]} | ${STARTMS[nginx-$N]} | ${STARTMS[haproxy-$N]} |"
    echo "| RSS after start, MiB, $N names | $(mib "${RSSSTART[portico-$N]}") | $(mib "${RSSSTART[nginx-$N]}") | $(mib "${RSSSTART[haproxy-$N]}") |"
} >"$T/names.md"
active_table >"$T/active.md"
{
    echo "| portico with $N services | |"
    echo "|---|---|"
    echo "| start to first answer, ms | ${STARTMS[portico-$N]} |"
    echo "| RSS after start, MiB | $(mib "${RSSSTART[portico-$N]}") |"
    echo "| reload (SIGHUP to \"configuration reloaded\"), ms | $RELOADMS |"
    echo "| RSS after the reload, MiB | $(mib "$RSSRELOAD") |"
    echo "| idle CPU over ${IDLE_SECS} s, % of a core | $IDLECPU |"
} >"$T/start.md"
cat "$T/names.md"
echo
cat "$T/active.md"
echo
cat "$T/start.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## Many names, many connections"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md bench/scale.sh build/portico\` (part of \`make bench\`) on $(date -u +%Y-%m-%d)."
        echo "Every proxy runs 2 workers/threads and sends every name to one upstream pool (nginx: one"
        echo "\`upstream{}\` with keepalive 64 behind $N \`server\` blocks; HAProxy: a map from Host to one"
        echo "backend; portico: $N services with the same upstream URL), so the first table measures the"
        echo "name lookup and not $N pools. wrk rotates the Host header over all the names with $CONNS"
        echo "keep-alive connections for ${DURATION} s; a ratio $N/64 of 1.00 means a larger table costs"
        echo "nothing. The second table holds $ACTIVE connections each sending requests one after another"
        echo "(wrk -c$ACTIVE, 64 names, a request unanswered after ${WRK_TIMEOUT} s counts as failed);"
        echo "\"open mid-run\" counts the established client connections on the proxy's port halfway"
        echo "through. Client, proxies and origin share the $(nproc) cores.${FD_NOTE:+ Note: $FD_NOTE.}"
        echo
        cat "$T/names.md"
        echo
        cat "$T/active.md"
        echo
        cat "$T/start.md"
    } >>"$WRITE"
    echo "bench: appended the scale figures to $WRITE" >&2
fi
