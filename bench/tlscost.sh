#!/usr/bin/env bash
# bench/tlscost.sh - what a 1 GiB download through portico's TLS termination
# costs, in figures a loaded machine moves little: portico's CPU time per
# GiB, its system calls per GiB, the CPU time per GiB of curl and of the
# origin (on loopback one side's sends run the other side's receive work,
# so cost moves between them) and the proxy's peak RSS (summed over its
# processes); for two builds (OLD and NEW) in turn, ROUNDS rounds, so that
# drift falls on both alike. GB/s is printed too, but it is only worth
# reading on an idle machine.
#
#   bench/tlscost.sh OLD NEW          A/B, ROUNDS rounds (4)
#   bench/tlscost.sh build/portico    one build
#   PEERS=1 bench/tlscost.sh ...      nginx and HAProxy terminating TLS in
#                                     each round too (their worker processes
#                                     counted as portico's are)
#
# The setup is bench/tls.sh's: one nginx origin serving a 1 GiB file with
# sendfile, portico with 2 workers terminating TLS 1.3 (ECDSA P-256), curl
# as the client. System calls are counted with perf's syscall tracepoints
# (reads: read, readv, recvfrom; writes: write, writev, sendto); "-" when
# perf cannot count them here. Everything listens on 127.0.0.1 only.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 PORTICO [PORTICO...]" >&2
    exit 2
fi
BINS=()
for b in "$@"; do
    BINS+=("$(readlink -f "$b")")
done
if [ "${PEERS:-0}" = 1 ]; then BINS+=(nginx haproxy); fi
ROUNDS=${ROUNDS:-4}
ORIGIN=127.0.0.1:19800
P=19801
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init tlscost

make_cert
start_bench_origin "$ORIGIN"
ORIGIN_PID=${PIDS[-1]}
portico_bench_config "$T/tls.yaml" 4 "$ORIGIN" "[{addr: 127.0.0.1:$P, tls: true}]" "" \
    "tls: {certs: [{cert: $T/cert.pem, key: $T/key.pem}], default_cert: svc00.example.test}"
nginx_bench_config "$T/nginx" 4 "$ORIGIN" "127.0.0.1:$P ssl" "$(nginx_tls_directives)"
printf '%s\n' global "  nbthread 2" "  ssl-default-bind-options ssl-min-ver TLSv1.2" defaults \
    "  timeout connect 5s" "  timeout client 75s" "  timeout server 60s" "frontend f" "  mode http" \
    "  bind 127.0.0.1:$P ssl crt $T/haproxy.pem" "  default_backend b" "backend b" "  mode http" \
    "  http-reuse always" "  server s $ORIGIN" >"$T/haproxy.cfg"

EVENTS=syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto
PERF=1
perf stat -e "$EVENTS" true >/dev/null 2>&1 || PERF=0

echo "| round | build | GB/s | portico CPU s/GiB | read calls/GiB | write calls/GiB | curl CPU s/GiB | origin CPU s/GiB | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
    for b in "${BINS[@]}"; do
        case $b in
        nginx) "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' & ;;
        haproxy) "$HAPROXY" -f "$T/haproxy.cfg" -db >/dev/null 2>&1 & ;;
        *) "$b" run -c "$T/tls.yaml" 2>>"$T/portico.err" & ;;
        esac
        PID=$!
        PIDS+=("$PID")
        wait_port "$P" https
        sleep 0.5
        c0=$(cpu_ticks "$PID")
        o0=$(cpu_ticks "$ORIGIN_PID")
        cmd=(/usr/bin/time -o "$T/time" -f "%U %S" curl -sk -o /dev/null -H "Host: svc00.example.test"
            -w '%{speed_download} %{size_download}\n' "https://127.0.0.1:$P/1g")
        if [ "$PERF" = 1 ]; then
            perf stat -x, -o "$T/perf" -e "$EVENTS" -p "$(tree_pids "$PID" | paste -sd,)" -- "${cmd[@]}" >"$T/curl"
        else
            "${cmd[@]}" >"$T/curl"
            : >"$T/perf"
        fi
        c1=$(cpu_ticks "$PID")
        o1=$(cpu_ticks "$ORIGIN_PID")
        hwm=0
        for p in $(tree_pids "$PID"); do
            hwm=$((hwm + $(awk '/^VmHWM:/ {print $2}' "/proc/$p/status")))
        done
        stop_proxy
        read -r speed size <"$T/curl"
        read -r cu cs <"$T/time"
        awk -F, -v r="$r" -v b="$(basename "$b")" -v speed="$speed" -v size="$size" \
            -v ticks=$((c1 - c0)) -v oticks=$((o1 - o0)) -v hz="$(getconf CLK_TCK)" -v cu="$cu" -v cs="$cs" -v hwm="$hwm" \
            -v perf="$PERF" '
            { v[$3] = $1 }
            END {
                g = size / 1073741824
                if (g == 0) { print "| " r " | " b " | failed | | | | | | |"; exit }
                rd = perf ? sprintf("%.0f", (v["syscalls:sys_enter_read"] + v["syscalls:sys_enter_readv"] + v["syscalls:sys_enter_recvfrom"]) / g) : "-"
                wr = perf ? sprintf("%.0f", (v["syscalls:sys_enter_write"] + v["syscalls:sys_enter_writev"] + v["syscalls:sys_enter_sendto"]) / g) : "-"
                printf "| %s | %s | %.2f | %.3f | %s | %s | %.3f | %.3f | %.1f |\n", r, b, speed / 1e9,
                    ticks / hz / g, rd, wr, (cu + cs) / g, oticks / hz / g, hwm / 1024
            }' "$T/perf"
    done
done
