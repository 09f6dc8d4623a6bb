#!/usr/bin/env bash
# bench/tls.sh - TLS: portico against nginx and HAProxy, same certificate,
# same origin, in one run on this machine.
#
#   bench/tls.sh build/portico             print the table
#   WRITE=FILE bench/tls.sh build/portico  also append it to FILE
#
# Rows: new TLS connections per second (full handshake, and resumed with a
# session ticket), keep-alive requests per second over TLS, and GB/s of a
# 1 GiB body through TLS termination and through SNI passthrough.
# Knobs: DURATION (seconds per row, 10), CONNS (wrk connections, 64),
# REPS (1 GiB transfers, 3). Everything listens on 127.0.0.1 only.
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
REPS=${REPS:-3}
NVHOST=64
ORIGIN=127.0.0.1:19100
ORIGIN_TLS=127.0.0.1:19543
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init tlsbench

STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so

# ---- one ECDSA P-256 certificate for *.example.test, from a throwaway CA ----
make_cert

# ---- the origin: plain HTTP for termination, TLS for passthrough ----
start_bench_origin "$ORIGIN" "listen $ORIGIN_TLS ssl; ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;"

# Each proxy: TLS termination on one port (64 names, default certificate
# for clients without SNI) and passthrough of pt.example.test to the TLS
# origin. portico does both on one port; nginx and HAProxy need a second
# port for passthrough (their stream/TCP mode cannot share an HTTPS port).
P_PORTICO=18184
P_NGINX=18185
P_NGINX_PT=18186
P_HAPROXY=18187
P_HAPROXY_PT=18188

portico_config() {
    portico_bench_config "$T/portico.yaml" "$NVHOST" "$ORIGIN" "[{addr: 127.0.0.1:$P_PORTICO, tls: true}]" "" \
        "tls: {certs: [{cert: $T/cert.pem, key: $T/key.pem}], default_cert: svc00.example.test}"
    echo "  pt: {hosts: [pt.example.test], passthrough: \"$ORIGIN_TLS\"}" >>"$T/portico.yaml"
}

nginx_config() {
    local pre="" post=""
    if [ -f "$STREAM_MOD" ]; then
        pre="load_module $STREAM_MOD;"
        post="stream { map \$ssl_preread_server_name \$b { pt.example.test $ORIGIN_TLS; default 127.0.0.1:1; }
  server { listen 127.0.0.1:$P_NGINX_PT; ssl_preread on; proxy_pass \$b; } }"
    fi
    nginx_bench_config "$T/nginx" "$NVHOST" "$ORIGIN" "127.0.0.1:$P_NGINX ssl" "$(nginx_tls_directives)" \
        "$pre" "$post"
}

haproxy_config() {
    {
        echo "global"
        echo "  maxconn 16000"
        echo "  nbthread 2"
        echo "  no strict-limits"
        echo "  ssl-default-bind-options ssl-min-ver TLSv1.2"
        echo "defaults"
        echo "  timeout connect 5s"
        echo "  timeout client 75s"
        echo "  timeout server 60s"
        echo "frontend f"
        echo "  mode http"
        echo "  bind 127.0.0.1:$P_HAPROXY ssl crt $T/haproxy.pem"
        echo "  http-reuse always"
        for i in $(seq 0 $((NVHOST - 1))); do
            printf '  use_backend b%02d if { hdr(host) -i svc%02d.example.test }\n' "$i" "$i"
        done
        echo "  default_backend notfound"
        echo "backend notfound"
        echo "  mode http"
        echo "  http-request return status 404"
        for i in $(seq 0 $((NVHOST - 1))); do
            printf 'backend b%02d\n  mode http\n  http-reuse always\n  server s %s\n' "$i" "$ORIGIN"
        done
        echo "frontend pt"
        echo "  mode tcp"
        echo "  bind 127.0.0.1:$P_HAPROXY_PT"
        echo "  tcp-request inspect-delay 5s"
        echo "  tcp-request content accept if { req.ssl_hello_type 1 }"
        echo "  use_backend ptb if { req.ssl_sni -i pt.example.test }"
        echo "backend ptb"
        echo "  mode tcp"
        echo "  server o $ORIGIN_TLS"
    } >"$T/haproxy.cfg"
}

start_proxy() { # name; sets PID, PORT (termination) and PT (passthrough)
    case $1 in
    portico)
        portico_config
        "$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" &
        PID=$!
        PORT=$P_PORTICO
        PT=$P_PORTICO ;;
    nginx)
        nginx_config
        "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
        PID=$!
        PORT=$P_NGINX
        PT=$([ -f "$STREAM_MOD" ] && echo $P_NGINX_PT || echo "") ;;
    haproxy)
        haproxy_config
        "$HAPROXY" -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 &
        PID=$!
        PORT=$P_HAPROXY
        PT=$P_HAPROXY_PT ;;
    direct)
        PID=""
        PORT=""
        PT=${ORIGIN_TLS##*:}
        return ;;
    esac
    PIDS+=("$PID")
    wait_port "$PORT" https
}

write_hosts_lua "$T/hosts.lua"

declare -A FULL RESUMED TERM PASS

keepalive() { # name
    wrk_measure "$1" "$PID" "https://127.0.0.1:$PORT/small" "$T/hosts.lua"
}

echo "bench: TLS, $DURATION s per row, ECDSA P-256 certificate" >&2
for name in direct portico nginx haproxy; do
    echo "bench: tls $name" >&2
    start_proxy "$name"
    if [ "$name" != direct ]; then
        sleep 1
        FULL[$name]=$(conns_per_sec "$PORT" -new)
        RESUMED[$name]=$(conns_per_sec "$PORT" -reuse)
        keepalive "$name"
        TERM[$name]=$(median_gbs "https://127.0.0.1:$PORT/1g" -H "Host: svc00.example.test")
    fi
    if [ -n "$PT" ]; then
        PASS[$name]=$(median_gbs "https://pt.example.test:$PT/1g" --resolve "pt.example.test:$PT:127.0.0.1")
    else
        PASS[$name]="-"
    fi
    stop_proxy
done

{
    echo "| TLS | direct | portico | nginx | HAProxy |"
    echo "|---|---|---|---|---|"
    echo "| new connections/s, full handshake + one request | - | ${FULL[portico]} | ${FULL[nginx]} | ${FULL[haproxy]} |"
    echo "| ... ratio to nginx | - | $(ratio "${FULL[portico]}" "${FULL[nginx]}") | 1.00 | $(ratio "${FULL[haproxy]}" "${FULL[nginx]}") |"
    echo "| new connections/s, resumed + one request | - | ${RESUMED[portico]} | ${RESUMED[nginx]} | ${RESUMED[haproxy]} |"
    echo "| ... ratio to nginx | - | $(ratio "${RESUMED[portico]}" "${RESUMED[nginx]}") | 1.00 | $(ratio "${RESUMED[haproxy]}" "${RESUMED[nginx]}") |"
    echo "| keep-alive requests/s over TLS ($CONNS conns) | - | ${RPS[portico]} | ${RPS[nginx]} | ${RPS[haproxy]} |"
    echo "| ... ratio to nginx | - | $(ratio "${RPS[portico]}" "${RPS[nginx]}") | 1.00 | $(ratio "${RPS[haproxy]}" "${RPS[nginx]}") |"
    echo "| proxy CPU per keep-alive TLS request, µs | - | ${USREQ[portico]} | ${USREQ[nginx]} | ${USREQ[haproxy]} |"
    echo "| 1 GiB through TLS termination, GB/s | - | ${TERM[portico]} | ${TERM[nginx]} | ${TERM[haproxy]} |"
    echo "| ... ratio to nginx | - | $(ratio "${TERM[portico]}" "${TERM[nginx]}") | 1.00 | $(ratio "${TERM[haproxy]}" "${TERM[nginx]}") |"
    echo "| 1 GiB through SNI passthrough, GB/s | ${PASS[direct]} | ${PASS[portico]} | ${PASS[nginx]} | ${PASS[haproxy]} |"
    echo "| ... ratio to direct | 1.00 | $(ratio "${PASS[portico]}" "${PASS[direct]}") | $(ratio "${PASS[nginx]}" "${PASS[direct]}") | $(ratio "${PASS[haproxy]}" "${PASS[direct]}") |"
} >"$T/table.md"
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## TLS"
        echo
        echo "Produced by \`WRITE=BENCHMARKS.md bench/tls.sh build/portico\` (part of \`make bench\`) on $(date -u +%Y-%m-%d),"
        echo "$(openssl version | awk '{print "OpenSSL " $2}'). One ECDSA P-256 certificate for \`*.example.test\`;"
        echo "every proxy terminates TLS 1.2/1.3 with its defaults (TLS 1.3 negotiated) in front of the same plain"
        echo "HTTP origin, with 2 workers/threads. \"New connections\" are two \`openssl s_time\` clients at once,"
        echo "each connection fetching one page so that session tickets are read (\`-reuse\` resumes with them);"
        echo "the page is a 404 the proxy answers itself, as s_time sends no Host. Keep-alive requests use wrk"
        echo "over TLS with the Host rotating over 64 names. Passthrough routes pt.example.test by SNI to"
        echo "the origin's own TLS port: portico on its HTTPS port, nginx with \`stream\` + \`ssl_preread\`"
        echo "and HAProxy in TCP mode with \`req.ssl_sni\`, each on a port of its own; \"direct\" is the"
        echo "client against the origin's TLS port. Client, proxy and origin share the 2 cores."
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended TLS figures to $WRITE" >&2
fi
