#!/usr/bin/env bash
# bench/tailnet.sh - the cost of tailnet identity: requests through the
# tailscale backend listener (as tailscaled's serve proxy sends them) with and
# without the whois lookup, against the same services on a plain listener.
#
#   bench/tailnet.sh build/portico             print the table
#   WRITE=FILE bench/tailnet.sh build/portico  also append it to FILE
#
# tailscaled cannot run here: the LocalAPI portico asks whois is the emulator
# the tests use (tests/tailscale_emu.py). It is a Python server, so the rows
# measure portico's whois cache, not the emulator: after the first request
# from each caller every lookup is a cache hit until the entry's 60 s TTL,
# which is longer than a row. The backend listener is on loopback TCP here
# (insecure_loopback_backend) because wrk cannot speak to a Unix socket.
# Knobs: DURATION (wrk seconds, 10), CONNS (64).
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
NVHOST=64
NCALLERS=256
SUFFIX=tail1234.ts.net
ORIGIN=127.0.0.1:19410
P_PLAIN=18290
P_BACKEND=18291
P_METRICS=18292
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init tailnetbench

start_origin "${ORIGIN##*:}" "  server { listen $ORIGIN; location = /small { return 200 \"hello from the origin\\n\"; } }"

# The emulated tailscaled: one user node per caller address.
/usr/bin/python3 - "$T/tailscaled.sock" "$NCALLERS" "$HERE/../tests" <<'PY' &
import sys, time
sys.path.insert(0, sys.argv[3])
from tailscale_emu import LocalAPI
ts = LocalAPI(sys.argv[1])
for i in range(int(sys.argv[2])):
    ts.add_user_node("100.64.1.%d" % i, "user%d@example.com" % i, "User %d" % i)
while True:
    time.sleep(3600)
PY
PIDS+=("$!")
for _ in $(seq 1 100); do [ -S "$T/tailscaled.sock" ] && break; sleep 0.1; done

portico_config() { # identity headers (true/false)
    portico_bench_config "$T/portico-$1.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$P_PLAIN}]" "" \
        "metrics: {listen: \"127.0.0.1:$P_METRICS\"}" \
        "tailscale: {services: true, publish: false, socket: \"$T/tailscaled.sock\", state_dir: \"$T\"," \
        "  backend: \"http://127.0.0.1:$P_BACKEND\", insecure_loopback_backend: true, identity_headers: $1}"
}

# What tailscaled's serve proxy sends for a unix: backend: Host replaced,
# X-Forwarded-Host the caller's name, X-Forwarded-For the caller's address,
# Tailscale-User-* for a user node. Callers rotate over NCALLERS addresses.
backend_lua() { # file, callers
    cat >"$1" <<LUA
local i = 0
request = function()
  i = i + 1
  local c = i % $2
  return wrk.format("GET", "/small", {
    ["Host"] = "tailnet.sock",
    ["X-Forwarded-Host"] = string.format("svc%02d.$SUFFIX", i % 64),
    ["X-Forwarded-For"] = "100.64.1." .. c,
    ["X-Forwarded-Proto"] = "https",
    ["Tailscale-User-Login"] = "user" .. c .. "@example.com",
    ["Tailscale-User-Name"] = "User " .. c })
end
LUA
}
write_hosts_lua "$T/hosts.lua"
backend_lua "$T/one.lua" 1
backend_lua "$T/many.lua" "$NCALLERS"

run_wrk() { # name, url, pid, lua
    wrk_measure "$1" "$3" "$2" "$4"
    if [ -n "${ERRS[$1]}" ]; then echo "bench: $1: ${ERRS[$1]}" >&2; fi
}

echo "bench: tailnet identity, $DURATION s per row" >&2
for ident in false true; do
    portico_config "$ident"
    "$PORTICO" run -c "$T/portico-$ident.yaml" 2>"$T/portico-$ident.err" &
    pid=$!
    PIDS+=("$pid")
    wait_port "$P_PLAIN"
    sleep 1
    if [ "$ident" = false ]; then
        echo "bench: portico, plain listener" >&2
        run_wrk plain "http://127.0.0.1:$P_PLAIN/small" "$pid" "$T/hosts.lua"
        echo "bench: portico, backend listener, no whois" >&2
        run_wrk nowhois "http://127.0.0.1:$P_BACKEND/small" "$pid" "$T/one.lua"
    else
        echo "bench: portico, backend listener, whois, 1 caller" >&2
        run_wrk whois1 "http://127.0.0.1:$P_BACKEND/small" "$pid" "$T/one.lua"
        echo "bench: portico, backend listener, whois, $NCALLERS callers" >&2
        run_wrk whoisN "http://127.0.0.1:$P_BACKEND/small" "$pid" "$T/many.lua"
        calls=$(curl -s "http://127.0.0.1:$P_METRICS/metrics" 2>/dev/null |
            awk '/^portico_localapi_calls_total\{endpoint="whois"/ {s += $2} END {print s + 0}')
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done

{
    echo "| tailnet identity | plain listener | backend, no whois | backend + whois, 1 caller | backend + whois, $NCALLERS callers |"
    echo "|---|---|---|---|---|"
    echo "| requests/s (keep-alive, $CONNS conns) | ${RPS[plain]} | ${RPS[nowhois]} | ${RPS[whois1]} | ${RPS[whoisN]} |"
    echo "| ... ratio to backend, no whois | - | 1.00 | $(ratio "${RPS[whois1]}" "${RPS[nowhois]}") | $(ratio "${RPS[whoisN]}" "${RPS[nowhois]}") |"
    echo "| p99 latency | ${P99[plain]} | ${P99[nowhois]} | ${P99[whois1]} | ${P99[whoisN]} |"
    echo "| proxy CPU per request, µs | ${USREQ[plain]} | ${USREQ[nowhois]} | ${USREQ[whois1]} | ${USREQ[whoisN]} |"
} >"$T/table.md"
cat "$T/table.md"
echo "bench: whois calls to the LocalAPI over both whois rows: ${calls:-?}" >&2

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## Tailnet identity (whois)"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md bench/tailnet.sh build/portico\` (part of \`make bench\`) on $(date -u +%Y-%m-%d)."
        echo "64 services. The backend rows send what tailscaled's serve proxy sends (X-Forwarded-Host,"
        echo "X-Forwarded-For, Tailscale-User-*), to a loopback backend listener because wrk has no Unix"
        echo "sockets. \"whois\" is \`identity_headers: true\`: tsnsrv's identity headers, built from a whois"
        echo "answer cached per worker; the LocalAPI is the test suite's emulated tailscaled, asked"
        echo "${calls:-?} times over both whois rows (once per caller and worker, then cache hits)."
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended tailnet identity figures to $WRITE" >&2
fi
