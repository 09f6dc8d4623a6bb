#!/usr/bin/env bash
# bench/idle.sh - memory per idle keep-alive connection: portico against
# nginx and HAProxy, plain and TLS, in one run on this machine.
#
#   bench/idle.sh build/portico             print the table
#   WRITE=FILE bench/idle.sh build/portico  also append it to FILE
#
# Each proxy (2 workers/threads, 64 services to one origin) gets IDLE_CONNS
# connections (10,000), each sends one GET /small and reads the answer, and
# all of them then sit idle. The figure is the growth of the proxy's RSS
# (its whole process tree) from before the connections to while they idle,
# divided by their number. Knobs: IDLE_CONNS (10000), SETTLE (seconds idle
# before sampling, 3). Everything listens on 127.0.0.1 only.
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
IDLE_CONNS=${IDLE_CONNS:-10000}
SETTLE=${SETTLE:-3}
NVHOST=64
ORIGIN=127.0.0.1:19200
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init idlebench

P_PORTICO=18284
P_PORTICO_TLS=18294
P_NGINX=18285
P_NGINX_TLS=18295
P_HAPROXY=18286
P_HAPROXY_TLS=18296

make_cert
start_bench_origin "$ORIGIN"

portico_config() {
    portico_bench_config "$T/portico.yaml" "$NVHOST" "$ORIGIN" \
        "[{addr: 127.0.0.1:$P_PORTICO}, {addr: 127.0.0.1:$P_PORTICO_TLS, tls: true}]" "" \
        "tls: {certs: [{cert: $T/cert.pem, key: $T/key.pem}], default_cert: svc00.example.test}"
}

nginx_config() {
    # Both listeners in every server block: plain and TLS on their own ports.
    nginx_bench_config "$T/nginx" "$NVHOST" "$ORIGIN" "127.0.0.1:$P_NGINX; listen 127.0.0.1:$P_NGINX_TLS ssl" \
        "$(nginx_tls_directives) keepalive_timeout 75s;"
}

haproxy_config() {
    {
        echo "global"
        echo "  maxconn 30000"
        echo "  nbthread 2"
        echo "  no strict-limits"
        echo "  ssl-default-bind-options ssl-min-ver TLSv1.2"
        echo "defaults"
        echo "  mode http"
        echo "  timeout connect 5s"
        echo "  timeout client 75s"
        echo "  timeout server 60s"
        echo "  timeout http-keep-alive 75s"
        echo "  http-reuse always"
        echo "frontend f"
        echo "  bind 127.0.0.1:$P_HAPROXY"
        echo "  bind 127.0.0.1:$P_HAPROXY_TLS ssl crt $T/haproxy.pem"
        for i in $(seq 0 $((NVHOST - 1))); do
            printf '  use_backend b%02d if { hdr(host) -i svc%02d.example.test }\n' "$i" "$i"
        done
        echo "  default_backend notfound"
        echo "backend notfound"
        echo "  http-request return status 404"
        for i in $(seq 0 $((NVHOST - 1))); do
            printf 'backend b%02d\n  server s %s\n' "$i" "$ORIGIN"
        done
    } >"$T/haproxy.cfg"
}

start_proxy() { # name; sets PID, PORT and TPORT
    case $1 in
    portico)
        portico_config
        "$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" &
        PID=$!
        PORT=$P_PORTICO TPORT=$P_PORTICO_TLS ;;
    nginx)
        nginx_config
        "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
        PID=$!
        PORT=$P_NGINX TPORT=$P_NGINX_TLS ;;
    haproxy)
        haproxy_config
        "$HAPROXY" -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 &
        PID=$!
        PORT=$P_HAPROXY TPORT=$P_HAPROXY_TLS ;;
    esac
    PIDS+=("$PID")
    wait_port "$PORT"
    wait_port "$TPORT" https
}

# KiB per idle connection on PORT of the running proxy (two decimals), over
# the connections that were answered and held; "-" when fewer than 99 % of
# them were.
per_conn() { # port, [--tls]
    local rss0 rss1 ok cpid
    rm -f "$T/ready" "$T/release"
    sleep 1
    rss0=$(rss_kib "$PID")
    timeout 300 python3 "$HERE/idle_conns.py" --port "$1" --n "$IDLE_CONNS" ${2:+"$2"} \
        --ready "$T/ready" --release "$T/release" --hold 120 --deadline 240 >"$T/idle.out" &
    cpid=$!
    for _ in $(seq 1 2400); do
        [ -e "$T/ready" ] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -e "$T/ready" ]; then
        wait "$cpid" || true
        echo "-"
        return
    fi
    sleep "$SETTLE"
    rss1=$(rss_kib "$PID")
    touch "$T/release"
    wait "$cpid" || true
    ok=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$T/ready")
    echo "bench: idle $1${2:+ tls}: $(cat "$T/ready") rss ${rss0} -> ${rss1} KiB" >&2
    if [ "${ok:-0}" -lt $((IDLE_CONNS * 99 / 100)) ]; then
        echo "-"
        return
    fi
    awk -v a="$rss0" -v b="$rss1" -v n="$ok" 'BEGIN {printf "%.2f", (b - a) / n}'
}

# ratio, but "-" when either figure is missing.
ratio_of() { # a, b
    if [ -z "$1" ] || [ -z "$2" ] || [ "$1" = - ] || [ "$2" = - ]; then echo "-"; else ratio "$1" "$2"; fi
}

declare -A PLAIN TLS
echo "bench: $IDLE_CONNS idle keep-alive connections after one request each" >&2
for name in ${PROXIES:-portico nginx haproxy}; do
    echo "bench: idle $name" >&2
    start_proxy "$name"
    PLAIN[$name]=$(per_conn "$PORT")
    stop_proxy
    # A fresh process for TLS, so the plain run's heap does not count.
    start_proxy "$name"
    TLS[$name]=$(per_conn "$TPORT" --tls)
    stop_proxy
done

{
    echo "| idle keep-alive connections, $IDLE_CONNS after one request | portico | nginx | HAProxy |"
    echo "|---|---|---|---|"
    echo "| KiB per idle connection, plain | ${PLAIN[portico]:--} | ${PLAIN[nginx]:--} | ${PLAIN[haproxy]:--} |"
    echo "| ... ratio to nginx | $(ratio_of "${PLAIN[portico]:-}" "${PLAIN[nginx]:-}") | 1.00 | $(ratio_of "${PLAIN[haproxy]:-}" "${PLAIN[nginx]:-}") |"
    echo "| ... ratio to HAProxy | $(ratio_of "${PLAIN[portico]:-}" "${PLAIN[haproxy]:-}") | $(ratio_of "${PLAIN[nginx]:-}" "${PLAIN[haproxy]:-}") | 1.00 |"
    echo "| KiB per idle connection, TLS | ${TLS[portico]:--} | ${TLS[nginx]:--} | ${TLS[haproxy]:--} |"
    echo "| ... ratio to nginx | $(ratio_of "${TLS[portico]:-}" "${TLS[nginx]:-}") | 1.00 | $(ratio_of "${TLS[haproxy]:-}" "${TLS[nginx]:-}") |"
    echo "| ... ratio to HAProxy | $(ratio_of "${TLS[portico]:-}" "${TLS[haproxy]:-}") | $(ratio_of "${TLS[nginx]:-}" "${TLS[haproxy]:-}") | 1.00 |"
} >"$T/table.md"
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## Idle keep-alive connections"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md bench/idle.sh build/portico\` (part of \`make bench\`) on $(date -u +%Y-%m-%d)."
        echo "Each proxy (2 workers/threads, the 64 services above, a fresh process per row) gets $IDLE_CONNS"
        echo "connections; each sends one \`GET /small\`, reads the answer and stays open, idle. The figure is"
        echo "the growth of the proxy's resident memory (RSS of its process tree) from before the connections"
        echo "to ${SETTLE} s after the last answer, divided by the number of connections held. Kernel socket memory"
        echo "is not in it (it is the same for every proxy). TLS: TLS 1.3, ECDSA P-256, no session reuse."
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended idle-connection figures to $WRITE" >&2
fi
