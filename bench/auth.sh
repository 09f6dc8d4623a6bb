#!/usr/bin/env bash
# bench/auth.sh - the cost of forward auth: portico with an auth provider
# against nginx's auth_request with the same provider, in one run.
#
#   bench/auth.sh build/portico             print the table
#   WRITE=FILE bench/auth.sh build/portico  also append it to FILE
#
# The provider is an nginx location that answers 200 with Remote-User at
# once, so what is measured is the proxy's own cost of asking: one more
# request and response per request on a pooled connection. HAProxy 2.6 has
# no forward auth without Lua or SPOE and is left out.
# Knobs: DURATION (wrk seconds, 10), CONNS (64).
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
NVHOST=64
ORIGIN=127.0.0.1:19400
PROVIDER=127.0.0.1:19401
P_PORTICO=18284
P_PORTICO_NOAUTH=18285
P_NGINX=18286
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init authbench


# ---- origin and provider: one nginx, two ports ----
start_origin "${ORIGIN##*:}" "  server { listen $ORIGIN; location = /small { return 200 \"hello from the origin\\n\"; } }
  server {
    listen $PROVIDER;
    location = /api/authz/forward-auth { add_header Remote-User alice; return 200 \"OK\"; }
  }"

portico_config() { # port, with auth (1/0)
    local auth=""
    [ "$2" = 1 ] && auth=", auth: authelia"
    portico_bench_config "$T/portico-$1.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$1, scheme: https}]" \
        "$auth" "auth: {authelia: {url: \"http://$PROVIDER/api/authz/forward-auth\"}}"
}

nginx_config() {
    mkdir -p "$T/nginx/tmp"
    {
        echo "$user_line"
        echo "worker_processes 2; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log;"
        echo "events { worker_connections 16000; }"
        echo "http { access_log off; $(nginx_temp_paths "$T/nginx/tmp")"
        echo "  proxy_http_version 1.1; keepalive_requests 1000000;"
        echo "  upstream authelia { server $PROVIDER; keepalive 64; }"
        echo "  server { listen 127.0.0.1:$P_NGINX default_server; return 404; }"
        for i in $(seq 0 $((NVHOST - 1))); do
            printf '  upstream u%02d { server %s; keepalive 64; }\n' "$i" "$ORIGIN"
            printf '  server { listen 127.0.0.1:%s; server_name svc%02d.example.test;\n' "$P_NGINX" "$i"
            # proxy_set_header in a location replaces every outer one: each
            # location restates "Connection" so that keep-alive stays on.
            printf '    location = /internal/authz { internal; proxy_pass http://authelia/api/authz/forward-auth;\n'
            printf '      proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_set_header Host $host;\n'
            printf '      proxy_set_header X-Forwarded-Method $request_method; proxy_set_header X-Forwarded-Proto https;\n'
            printf '      proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Forwarded-Uri $request_uri;\n'
            printf '      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header Connection ""; }\n'
            printf '    location / { auth_request /internal/authz; auth_request_set $user $upstream_http_remote_user;\n'
            printf '      proxy_set_header Remote-User $user; proxy_set_header Connection ""; proxy_pass http://u%02d; } }\n' "$i"
        done
        echo "}"
    } >"$T/nginx/nginx.conf"
}

write_hosts_lua "$T/hosts.lua" '["Cookie"] = "authelia_session=bench"'

run_wrk() { # name, port, pid
    wrk_measure "$1" "$3" "http://127.0.0.1:$2/small" "$T/hosts.lua"
    if [ -n "${ERRS[$1]}" ]; then echo "bench: $1: ${ERRS[$1]}" >&2; fi
}

echo "bench: forward auth, $DURATION s per row" >&2
for mode in noauth auth; do
    port=$P_PORTICO
    [ $mode = noauth ] && port=$P_PORTICO_NOAUTH
    portico_config "$port" "$([ $mode = auth ] && echo 1 || echo 0)"
    "$PORTICO" run -c "$T/portico-$port.yaml" 2>"$T/portico-$port.err" &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port"
    sleep 1
    echo "bench: portico ($mode)" >&2
    run_wrk "portico-$mode" "$port" "$pid"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done
nginx_config
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
pid=$!
PIDS+=("$pid")
wait_port "$P_NGINX"
sleep 1
echo "bench: nginx auth_request" >&2
run_wrk nginx "$P_NGINX" "$pid"

{
    echo "| forward auth | portico, no auth | portico + auth | nginx + auth_request |"
    echo "|---|---|---|---|"
    echo "| requests/s (keep-alive, $CONNS conns) | ${RPS[portico-noauth]} | ${RPS[portico-auth]} | ${RPS[nginx]} |"
    echo "| ... ratio to nginx + auth_request | - | $(ratio "${RPS[portico-auth]}" "${RPS[nginx]}") | 1.00 |"
    echo "| p99 latency | ${P99[portico-noauth]} | ${P99[portico-auth]} | ${P99[nginx]} |"
    echo "| proxy CPU per request, µs | ${USREQ[portico-noauth]} | ${USREQ[portico-auth]} | ${USREQ[nginx]} |"
} >"$T/table.md"
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## Forward auth"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md bench/auth.sh build/portico\` (part of \`make bench\`) on $(date -u +%Y-%m-%d)."
        echo "64 services, each behind an auth provider that is an nginx location answering 200 with"
        echo "\`Remote-User\` at once (so the figures are the proxy's own cost of asking), over pooled"
        echo "keep-alive connections in both proxies. nginx uses \`auth_request\` with an internal location"
        echo "set up as Authelia's nginx guide does. HAProxy 2.6 has no forward auth without Lua or SPOE."
        echo "The provider's CPU is not in \"proxy CPU per request\"."
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended forward-auth figures to $WRITE" >&2
fi
