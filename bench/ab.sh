#!/usr/bin/env bash
# bench/ab.sh - A/B: two portico binaries, the build before a change (OLD)
# and the one after it (NEW), measured in one run on the same origin, with
# nginx measured in the same rounds as the reference.
#
#   bench/ab.sh OLD NEW             print the table
#   WRITE=FILE bench/ab.sh OLD NEW  also append it to FILE
#   make bench-ab BASE=OLD          the same, NEW being this checkout's build
#
# Each round measures OLD, then NEW, then nginx (so the binaries alternate,
# A B A B ..., with the reference in between); ROUNDS rounds show how much
# the same binary moves from round to round. Per server and round: small
# keep-alive requests over plain HTTP (req/s and the server's CPU per
# request) and one 1 GiB download; then, with TLS termination, new
# connections per second (full handshake), keep-alive requests (req/s, CPU
# per request) and one 1 GiB download. The setup (64 services, one nginx
# origin, 2 workers each) is that of bench/run.sh and bench/tls.sh.
# Knobs: DURATION (seconds per wrk or s_time row, 10), CONNS (64),
# ROUNDS (3). Everything listens on 127.0.0.1 only.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 OLD-PORTICO NEW-PORTICO" >&2
    exit 2
fi
OLD=$(readlink -f "$1")
NEW=$(readlink -f "$2")
for b in "$OLD" "$NEW"; do
    if [ ! -x "$b" ]; then
        echo "bench: $b is not an executable portico binary" >&2
        exit 2
    fi
done
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
REPS=1 # one 1 GiB transfer per server and round: the rounds give the spread
NVHOST=64
ORIGIN=127.0.0.1:19600
P_PLAIN=18484
P_TLS=18485
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init abbench

make_cert
start_bench_origin "$ORIGIN"
write_hosts_lua "$T/hosts.lua"

# The same configurations for every server; OLD and NEW read the same files.
portico_bench_config "$T/plain.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$P_PLAIN}]" ""
portico_bench_config "$T/tls.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$P_TLS, tls: true}]" "" \
    "tls: {certs: [{cert: $T/cert.pem, key: $T/key.pem}], default_cert: svc00.example.test}"
nginx_bench_config "$T/nginx-plain" "$NVHOST" "$ORIGIN" "127.0.0.1:$P_PLAIN"
nginx_bench_config "$T/nginx-tls" "$NVHOST" "$ORIGIN" "127.0.0.1:$P_TLS ssl" "$(nginx_tls_directives)"

start_server() { # who (old, new, nginx), mode (plain, tls); sets PID
    local port=$P_PLAIN scheme=http
    [ "$2" = tls ] && port=$P_TLS scheme=https
    case $1 in
    old) "$OLD" run -c "$T/$2.yaml" 2>>"$T/portico-old.err" & ;;
    new) "$NEW" run -c "$T/$2.yaml" 2>>"$T/portico-new.err" & ;;
    nginx) "$NGINX" -p "$T/nginx-$2" -c "$T/nginx-$2/nginx.conf" -g 'daemon off;' & ;;
    esac
    PID=$!
    PIDS+=("$PID")
    wait_port "$port" "$scheme"
    sleep 1
}

mkdir -p "$T/res"
record() { # metric, who, value: one line per round in $T/res/METRIC.WHO
    echo "$3" >>"$T/res/$1.$2"
}

warn_errors() { # name
    if [ -n "${ERRS[$1]}" ]; then echo "bench: $1: ${ERRS[$1]}" >&2; fi
}

echo "bench: A/B, $ROUNDS rounds of old, new, nginx; $DURATION s per row" >&2
for round in $(seq 1 "$ROUNDS"); do
    for who in old new nginx; do
        echo "bench: round $round: $who" >&2
        start_server "$who" plain
        wrk_measure "$who" "$PID" "http://127.0.0.1:$P_PLAIN/small" "$T/hosts.lua"
        warn_errors "$who"
        record small_rps "$who" "${RPS[$who]}"
        record small_us "$who" "${USREQ[$who]}"
        record plain_gbs "$who" "$(median_gbs "http://127.0.0.1:$P_PLAIN/1g" -H "Host: svc00.example.test")"
        stop_proxy

        start_server "$who" tls
        record tls_new "$who" "$(conns_per_sec "$P_TLS" -new)"
        wrk_measure "$who-tls" "$PID" "https://127.0.0.1:$P_TLS/small" "$T/hosts.lua"
        warn_errors "$who-tls"
        record tls_rps "$who" "${RPS[$who-tls]}"
        record tls_us "$who" "${USREQ[$who-tls]}"
        record tls_gbs "$who" "$(median_gbs "https://127.0.0.1:$P_TLS/1g" -H "Host: svc00.example.test")"
        stop_proxy
    done
done

stats() { # file of numbers -> "median min max"
    sort -g "$1" | awk '{a[NR] = $1}
        END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m, a[1], a[NR]}'
}

per_round() { # metric, a, b -> file of the per-round ratios b/a
    paste "$T/res/$1.$2" "$T/res/$1.$3" | awk '{if ($1 + 0 == 0) print "0"; else print $2 / $1}' \
        >"$T/res/$1.$3-per-$2"
    echo "$T/res/$1.$3-per-$2"
}

# One row: the medians of OLD and NEW with their range over the rounds,
# NEW/OLD (median of the per-round ratios), the spread (the larger of the
# two binaries' own ranges, relative to their medians), the verdict, nginx,
# and each binary against nginx (median of the per-round ratios).
row() { # metric, label, printf format, "up" when more is better
    local m=$1 fmt=$3 o n x r ro rn spread verdict
    read -r -a o <<<"$(stats "$T/res/$m.old")"
    read -r -a n <<<"$(stats "$T/res/$m.new")"
    read -r -a x <<<"$(stats "$T/res/$m.nginx")"
    read -r -a r <<<"$(stats "$(per_round "$m" old new)")"
    read -r -a ro <<<"$(stats "$(per_round "$m" nginx old)")"
    read -r -a rn <<<"$(stats "$(per_round "$m" nginx new)")"
    spread=$(awk -v a="${o[1]}" -v b="${o[2]}" -v am="${o[0]}" -v c="${n[1]}" -v d="${n[2]}" -v cm="${n[0]}" \
        'BEGIN {s = am > 0 ? (b - a) / am : 0; t = cm > 0 ? (d - c) / cm : 0; printf "%.3f", (s > t ? s : t)}')
    verdict=$(awk -v r="${r[0]}" -v s="$spread" -v rounds="$ROUNDS" -v up="$4" 'BEGIN {
        if (rounds < 2) { print "one round: no spread"; exit }
        d = r - 1
        if (d <= s && -d <= s) print "within noise"
        else if ((d > 0) == (up == "up")) print "NEW better"
        else print "NEW worse" }')
    # shellcheck disable=SC2059
    printf "| %s | $fmt ($fmt-$fmt) | $fmt ($fmt-$fmt) | %.3f (%.3f-%.3f) | %.1f %% | %s | $fmt | %.2f | %.2f |\n" \
        "$2" "${o[0]}" "${o[1]}" "${o[2]}" "${n[0]}" "${n[1]}" "${n[2]}" "${r[0]}" "${r[1]}" "${r[2]}" \
        "$(awk -v s="$spread" 'BEGIN {print s * 100}')" "$verdict" "${x[0]}" "${ro[0]}" "${rn[0]}"
}

binary_line() { # label, path
    printf '%s: %s, sha256 %s\n' "$1" "$("$2" version 2>/dev/null | head -1)" "$(sha256sum "$2" | cut -c1-12)"
}

{
    echo "| A/B, median (min-max) over $ROUNDS rounds | OLD | NEW | NEW/OLD | spread | verdict | nginx | OLD/nginx | NEW/nginx |"
    echo "|---|---|---|---|---|---|---|---|---|"
    row small_rps "small requests, req/s (keep-alive, $CONNS conns)" "%.0f" up
    row small_us "proxy CPU per small request, µs" "%.1f" down
    row plain_gbs "1 GiB download, GB/s" "%.2f" up
    row tls_new "TLS new connections/s, full handshake + one request" "%.0f" up
    row tls_rps "TLS keep-alive requests/s ($CONNS conns)" "%.0f" up
    row tls_us "proxy CPU per TLS keep-alive request, µs" "%.1f" down
    row tls_gbs "1 GiB through TLS termination, GB/s" "%.2f" up
} >"$T/table.md"

binary_line OLD "$OLD" >&2
binary_line NEW "$NEW" >&2
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## A/B: NEW against OLD ($(date -u +%Y-%m-%d))"
        echo
        echo "Produced by \`bench/ab.sh OLD NEW\` (\`make bench-ab BASE=OLD\`), $ROUNDS rounds of OLD, NEW and nginx in turn,"
        echo "$DURATION s per row, $CONNS connections, on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))."
        echo "$(binary_line OLD "$OLD"); $(binary_line NEW "$NEW"); $("$NGINX" -v 2>&1 | sed 's/.*: //')."
        echo "NEW/OLD and the ratios to nginx are medians of the per-round ratios; \"spread\" is the larger"
        echo "of OLD's and NEW's own range over the rounds (max - min, relative to the median);"
        echo "\"within noise\" means NEW/OLD differs from 1 by no more than that spread."
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended the A/B table to $WRITE" >&2
fi
