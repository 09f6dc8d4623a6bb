#!/usr/bin/env bash
# bench/bodies.sh - large bodies through portico, nginx and HAProxy, and
# from the origins directly, in one run on this machine, with the path
# portico's bytes took (spliced or copied, from portico_body_bytes_total;
# kTLS on or off, from the TLS listener's "listening" line).
#
#   bench/bodies.sh build/portico            print the table
#   WRITE=FILE bench/bodies.sh build/portico also append it to FILE
#
# Rows: download with Content-Length (nginx origin, sendfile), chunked in
# 1 MiB chunks and close-delimited (a small Python origin, sendfile between
# the framing); upload with Content-Length and chunked (curl's chunks) to
# the Python origin, which reads all of it before it answers (nginx's
# `return` answers at once, and a proxy then ends the exchange); download with Content-Length through TLS
# termination (portico only here: bench/tls.sh compares TLS with the peers).
# Knobs: SIZE (bytes per transfer, 1 GiB), REPS (transfers per cell, 3).
# Everything listens on 127.0.0.1 only.
set -euo pipefail

PORTICO=$(readlink -f "${1:-build/portico}")
SIZE=${SIZE:-1073741824}
REPS=${REPS:-3}
ORIGIN=127.0.0.1:19200
PYORIGIN=127.0.0.1:19201
P_PORTICO=18284
P_PORTICO_TLS=18287
P_METRICS=18288
P_NGINX=18285
P_HAPROXY=18286
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_init bodies
make_cert

# ---- origins: nginx (Content-Length downloads) and Python (chunked and
# close-delimited downloads, uploads) ----
start_origin "${ORIGIN##*:}" "  server {
    listen $ORIGIN;
    root $T/origin/www;
  }"
truncate -s "$SIZE" "$T/origin/www/body"
curl -s -o /dev/null "http://$ORIGIN/body"

/usr/bin/python3 "$HERE/pyorigin.py" "$T/origin/www/body" "${PYORIGIN##*:}" &
PIDS+=($!)
for _ in $(seq 1 50); do curl -s -o /dev/null "http://$PYORIGIN/x" && break; sleep 0.1; done

# ---- the proxies: dl.example.test to nginx, py.example.test to Python ----
portico_config() {
    cat >"$T/portico.yaml" <<YAML
workers: 2
access_log: false
listen: [{addr: 127.0.0.1:$P_PORTICO}, {addr: 127.0.0.1:$P_PORTICO_TLS, tls: true}]
metrics: {listen: 127.0.0.1:$P_METRICS}
tls: {certs: [{cert: $T/cert.pem, key: $T/key.pem}]}
services:
  dl: {hosts: [dl.example.test], upstream: "http://$ORIGIN"}
  py: {hosts: [py.example.test], upstream: "http://$PYORIGIN"}
YAML
}

nginx_config() {
    mkdir -p "$T/nginx/tmp"
    cat >"$T/nginx/nginx.conf" <<CONF
$user_line
worker_processes 2; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log;
events { worker_connections 4096; }
http { access_log off; $(nginx_temp_paths "$T/nginx/tmp")
  proxy_http_version 1.1; proxy_set_header Connection ""; proxy_max_temp_file_size 0;
  proxy_request_buffering off; client_max_body_size 0;
  upstream dl { server $ORIGIN; keepalive 16; }
  upstream py { server $PYORIGIN; }
  server { listen 127.0.0.1:$P_NGINX; server_name dl.example.test; location / { proxy_pass http://dl; } }
  server { listen 127.0.0.1:$P_NGINX; server_name py.example.test; location / { proxy_pass http://py; } }
}
CONF
}

haproxy_config() {
    cat >"$T/haproxy.cfg" <<CONF
global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend f
  bind 127.0.0.1:$P_HAPROXY
  use_backend py if { hdr(host) -i py.example.test }
  default_backend dl
backend dl
  server s $ORIGIN
backend py
  server s $PYORIGIN
CONF
}

start() { # name; sets PID and PORT
    case $1 in
    portico)
        portico_config
        "$PORTICO" run -c "$T/portico.yaml" 2>"$T/portico.err" &
        PID=$!
        PORT=$P_PORTICO ;;
    nginx)
        nginx_config
        "$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
        PID=$!
        PORT=$P_NGINX ;;
    haproxy)
        haproxy_config
        "$HAPROXY" -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 &
        PID=$!
        PORT=$P_HAPROXY ;;
    esac
    PIDS+=("$PID")
    wait_port "$PORT"
}

# portico's body bytes so far: "request-copied request-spliced response-copied response-spliced".
body_bytes() {
    curl -s "http://127.0.0.1:$P_METRICS/metrics" |
        awk '/^portico_body_bytes_total/ {split($0, a, " "); v[$1] = a[2]}
             END {printf "%s %s %s %s", v["portico_body_bytes_total{direction=\"request\",path=\"copied\"}"] + 0,
                  v["portico_body_bytes_total{direction=\"request\",path=\"spliced\"}"] + 0,
                  v["portico_body_bytes_total{direction=\"response\",path=\"copied\"}"] + 0,
                  v["portico_body_bytes_total{direction=\"response\",path=\"spliced\"}"] + 0}'
}

# Median GB/s of REPS uploads of the body file (more curl arguments after the url).
median_up_gbs() { # url, [curl args...]
    local url=$1
    shift
    median_speed_gbs speed_upload "$url" -X POST "$@"
}

ROWS=(dl_cl dl_chunked dl_close up_cl up_chunked tls_cl)
declare -A LABEL=(
    [dl_cl]="download, Content-Length"
    [dl_chunked]="download, chunked (1 MiB chunks)"
    [dl_close]="download, close-delimited"
    [up_cl]="upload, Content-Length"
    [up_chunked]="upload, chunked (curl's chunks)"
    [tls_cl]="download through TLS, Content-Length"
)
declare -A GB PATHS

# One cell: GB/s for row on PORT (scheme, host); for portico also the path.
cell() { # name, row
    local name=$1 row=$2 port=${PORT:-} scheme=http host url before after
    case $row in
    dl_cl | tls_cl) host=dl.example.test ;;
    *) host=py.example.test ;;
    esac
    if [ "$row" = tls_cl ]; then
        [ "$name" = portico ] || { GB[$name,$row]="-"; return; }
        port=$P_PORTICO_TLS
        scheme=https
    fi
    if [ "$name" = direct ]; then
        [ "$host" = dl.example.test ] && port=${ORIGIN##*:} || port=${PYORIGIN##*:}
        [ "$row" = tls_cl ] && { GB[$name,$row]="-"; return; }
    fi
    case $row in
    dl_cl) url="http://127.0.0.1:$port/body" ;;
    tls_cl) url="$scheme://dl.example.test:$port/body" ;;
    dl_chunked) url="http://127.0.0.1:$port/chunked" ;;
    dl_close) url="http://127.0.0.1:$port/close" ;;
    up_cl | up_chunked) url="http://127.0.0.1:$port/up" ;;
    esac
    [ "$name" = portico ] && before=$(body_bytes)
    case $row in
    up_cl) GB[$name,$row]=$(median_up_gbs "$url" -H "Host: $host" -T "$T/origin/www/body") ;;
    up_chunked) GB[$name,$row]=$(median_up_gbs "$url" -H "Host: $host" -H "Transfer-Encoding: chunked" -T "$T/origin/www/body") ;;
    tls_cl) GB[$name,$row]=$(median_gbs "$url" --resolve "dl.example.test:$port:127.0.0.1") ;;
    *) GB[$name,$row]=$(median_gbs "$url" -H "Host: $host") ;;
    esac
    if [ "$name" = portico ]; then
        after=$(body_bytes)
        PATHS[$row]=$(awk -v b="$before" -v a="$after" -v up="${row%%_*}" 'BEGIN {
            split(b, x, " "); split(a, y, " "); i = up == "up" ? 1 : 3
            c = y[i] - x[i]; s = y[i + 1] - x[i + 1]
            if (c + s == 0) print "-"; else printf "%.0f %% spliced", 100 * s / (c + s) }')
    fi
}

echo "bench: bodies of $SIZE bytes, median of $REPS" >&2
for name in direct portico nginx haproxy; do
    echo "bench: $name" >&2
    PID=""
    [ "$name" = direct ] || start "$name"
    for row in "${ROWS[@]}"; do cell "$name" "$row"; done
    stop_proxy
done
KTLS=$(grep -o 'tls=true ktls=[a-z]*.*' "$T/portico.err" | head -1 | sed 's/^tls=true //')

{
    echo "| $(awk -v s="$SIZE" 'BEGIN {printf "%.2f GiB", s / 1073741824}'), GB/s | direct | portico | nginx | HAProxy | portico's path |"
    echo "|---|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do
        p=${PATHS[$row]:-"-"}
        [ "$row" = tls_cl ] && p="$p; $KTLS"
        echo "| ${LABEL[$row]} | ${GB[direct,$row]} | ${GB[portico,$row]} | ${GB[nginx,$row]} | ${GB[haproxy,$row]} | $p |"
        echo "| ... ratio to direct | 1.00 | $(ratio "${GB[portico,$row]}" "${GB[direct,$row]}") | $(ratio "${GB[nginx,$row]}" "${GB[direct,$row]}") | $(ratio "${GB[haproxy,$row]}" "${GB[direct,$row]}") | |"
    done
} >"$T/table.md"
cat "$T/table.md"

if [ -n "${WRITE:-}" ]; then
    {
        echo
        echo "## Bodies (\`bench/bodies.sh\`)"
        echo
        cat "$T/table.md"
    } >>"$WRITE"
    echo "bench: appended to $WRITE" >&2
fi
