#!/usr/bin/env bash
# bench/dns.sh - the split-DNS responder: queries per second and portico's
# CPU per query, over UDP and over TCP, measured with dnsperf (Debian's
# dnsperf package) against 64 service names.
#
#   bench/dns.sh build/portico             print the table
#   WRITE=FILE bench/dns.sh build/portico  also append it to FILE
#
# The responder runs on portico's main thread (see src/dnsserver.h), so
# one core is its ceiling whatever the workers do. The query mix is A and
# AAAA for the service names, a wildcard name, a name that does not exist
# (NXDOMAIN) and one outside the zone (REFUSED).
# Knobs: DURATION (seconds per row, 10), CLIENTS (dnsperf sockets, 8),
# PASSES (run the query list this many times instead of for DURATION: a
# quick check that the script works).
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
PASSES=${PASSES:-}
NSVC=64
ZONE=home.example.test
ADDR=127.0.53.9
P_DNS=18353
P_HTTP=18354
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init dnsbench

portico_bench_config "$T/portico.yaml" 0 127.0.0.1:9 "[{addr: 127.0.0.1:$P_HTTP}]" "" \
    "dns: {listen: [\"$ADDR:$P_DNS\"], zones: [$ZONE], answer: [100.101.102.103, \"fd7a:115c:a1e0::1\"]}"
{
    for i in $(seq 0 $((NSVC - 1))); do
        printf '  svc%02d: {hosts: [svc%02d.%s], upstream: "http://127.0.0.1:9"}\n' "$i" "$i" "$ZONE"
    done
    printf '  wild: {hosts: ["*.apps.%s"], upstream: "http://127.0.0.1:9"}\n' "$ZONE"
} >>"$T/portico.yaml"
{
    for i in $(seq 0 $((NSVC - 1))); do
        printf 'svc%02d.%s A\nsvc%02d.%s AAAA\n' "$i" "$ZONE" "$i" "$ZONE"
    done
    printf 'x.apps.%s A\nnope.%s A\nexample.org A\n' "$ZONE" "$ZONE"
} >"$T/queries"

"$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" &
pid=$!
PIDS+=("$pid")
wait_port "$P_HTTP"

declare -A QPS USQ LOST
run_dnsperf() { # name, mode (udp or tcp)
    local t0 t1 out q
    local how=(-l "$DURATION")
    if [ -n "$PASSES" ]; then how=(-n "$PASSES"); fi
    t0=$(cpu_ticks "$pid")
    out=$(dnsperf -s "$ADDR" -p "$P_DNS" -m "$2" -d "$T/queries" -c "$CLIENTS" "${how[@]}" 2>&1)
    t1=$(cpu_ticks "$pid")
    q=$(awk '/Queries completed:/ {print $3}' <<<"$out")
    QPS[$1]=$(awk '/Queries per second:/ {printf "%.0f", $4}' <<<"$out")
    LOST[$1]=$(awk '/Queries lost:/ {print $3}' <<<"$out")
    USQ[$1]=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v q="${q:-0}" \
        'BEGIN { if (q + 0 == 0) print "-"; else printf "%.2f", t * 1e6 / hz / q }')
    echo "bench: dns over $2: ${q:-0} queries, ${QPS[$1]:-?}/s, lost ${LOST[$1]:-?}" >&2
}

per_row="$DURATION s"
if [ -n "$PASSES" ]; then per_row="$PASSES passes over the query list"; fi
echo "bench: dns responder, $per_row per row, $CLIENTS clients" >&2
run_dnsperf udp udp
run_dnsperf tcp tcp
{
    echo "| DNS responder (main thread) | UDP | TCP |"
    echo "|---|---|---|"
    echo "| queries/s ($CLIENTS dnsperf clients) | ${QPS[udp]:-?} | ${QPS[tcp]:-?} |"
    echo "| portico CPU per query, µs | ${USQ[udp]} | ${USQ[tcp]} |"
    echo "| queries lost | ${LOST[udp]:-?} | ${LOST[tcp]:-?} |"
} >"$T/table.md"
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## DNS responder (split-DNS mode)"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md bench/dns.sh build/portico\` (part of \`make bench\`) on $(date -u +%Y-%m-%d)."
        echo "dnsperf against $NSVC service names (A and AAAA), a wildcard, an NXDOMAIN and a REFUSED name."
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended DNS figures to $WRITE" >&2
fi
