# bench/lib.sh - helpers shared by the benchmark scripts (sourced).
# shellcheck shell=bash disable=SC2034 # sourced: the arrays and names it sets are read by the scripts

wait_port() { # $1 = port; $2 = scheme (http or https, default http)
    for _ in $(seq 1 100); do
        if curl -sk -o /dev/null "${2:-http}://127.0.0.1:$1/" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

tree_pids() { # the process and its children
    echo "$1"
    pgrep -P "$1" 2>/dev/null || true
}

cpu_ticks() { # utime+stime of the process tree, in clock ticks
    local t=0 p
    for p in $(tree_pids "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}

rss_kib() {
    local t=0 p
    for p in $(tree_pids "$1"); do
        [ -r "/proc/$p/status" ] || continue
        t=$((t + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
    done
    echo "$t"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# Set up a run: T (a temporary directory, removed at exit), PIDS (processes
# killed at exit), NGINX, HAPROXY, and user_line (nginx's "user" when root).
bench_init() { # name
    T=$(mktemp -d "/tmp/portico-$1.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT INT TERM
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
    user_line=""
    if [ "$(id -u)" = 0 ]; then user_line="user root;"; fi
}

bench_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$T"
}

# nginx's temporary-file paths, all under one directory, on one line.
nginx_temp_paths() { # dir
    echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"
}

# Start the origin: nginx with 2 workers in $T/origin whose http block holds
# the given server blocks ($T/origin/www exists for their roots); wait for port.
start_origin() { # port, server blocks
    mkdir -p "$T/origin/www" "$T/origin/tmp"
    cat >"$T/origin/nginx.conf" <<CONF
$user_line
worker_processes 2;
worker_rlimit_nofile ${ORIGIN_NOFILE:-8192};
pid $T/origin/nginx.pid;
error_log $T/origin/error.log;
events { worker_connections ${ORIGIN_CONNS:-4096}; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  $(nginx_temp_paths "$T/origin/tmp")
$2
}
CONF
    "$NGINX" -p "$T/origin" -c "$T/origin/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    wait_port "$1"
}

stop_proxy() { # the process in PID, if any
    [ -n "$PID" ] || return 0
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}

# The Lua script that rotates wrk's Host header over svc00 ... svc63.example.test
# for GET /small; more request headers as Lua table fields, e.g.
# '["Cookie"] = "a=b"'.
write_hosts_lua() { # file, [extra header fields]
    cat >"$1" <<LUA
local i = 0
request = function()
  i = (i + 1) % 64
  return wrk.format("GET", "/small", { ["Host"] = string.format("svc%02d.example.test", i)${2:+,
                                        $2} })
end
LUA
}

# A Lua script for wrk rotating the Host header over svc00 ... svc(N-1).example.test
# (the names portico_bench_config gives), each request formatted once per
# thread so that the client's cost per request is the same for any N.
write_rotate_lua() { # file, n
    cat >"$1" <<LUA
local reqs = {}
local i = 0
init = function(args)
  for k = 0, $2 - 1 do
    reqs[#reqs + 1] = wrk.format("GET", wrk.path, { ["Host"] = string.format("svc%02d.example.test", k) })
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
LUA
}

# wrk's failed requests in its output file: socket errors (connect, read,
# write, timeout) plus responses other than 2xx/3xx.
wrk_errors() { # file
    awk '/Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} /Non-2xx/ {n += $NF}
         END {print n + 0}' "$1"
}

# One ECDSA P-256 certificate for *.example.test from a throwaway CA:
# $T/ca.pem, $T/cert.pem, $T/key.pem, and both in $T/haproxy.pem.
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=bench CA" -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=*.example.test" \
        -keyout "$T/key.pem" -out "$T/csr.pem" 2>/dev/null
    printf 'subjectAltName=DNS:*.example.test\n' >"$T/ext"
    openssl x509 -req -in "$T/csr.pem" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
        -days 2 -extfile "$T/ext" -out "$T/cert.pem" 2>/dev/null
    cat "$T/cert.pem" "$T/key.pem" >"$T/haproxy.pem"
}

# portico with 2 workers, no access log, and N services svcNN.example.test,
# each to ORIGIN. LISTEN is the YAML list of listeners; SUFFIX is added to
# every service's mapping (e.g. ", auth: authelia"); more top-level YAML
# lines may follow. services: comes last, so a caller may append services.
portico_bench_config() { # file, n, origin, listen, suffix, [top-level lines...]
    local file=$1 n=$2 origin=$3 listen=$4 suffix=$5
    shift 5
    {
        echo "workers: 2"
        echo "access_log: false"
        echo "listen: $listen"
        echo "limits: {max_connections: 16000}"
        if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
        echo "services:"
        for i in $(seq 0 $((n - 1))); do
            printf '  svc%02d: {hosts: [svc%02d.example.test], upstream: "http://%s"%s}\n' \
                "$i" "$i" "$origin" "$suffix"
        done
    } >"$file"
}

# nginx as a proxy in DIR (2 workers, keep-alive pools of 64 to ORIGIN), N
# server blocks svcNN.example.test listening on LISTEN ("ADDR:PORT" or
# "ADDR:PORT ssl"), plus HTTP (directives for the http block), PRE (before
# it: load_module) and POST (after it: a stream block).
nginx_bench_config() { # dir, n, origin, listen, [http], [pre], [post]
    local dir=$1 n=$2 origin=$3 listen=$4
    mkdir -p "$dir/tmp"
    {
        if [ -n "${6:-}" ]; then echo "$6"; fi
        echo "$user_line"
        echo "worker_processes 2; pid $dir/nginx.pid; error_log $dir/error.log;"
        echo "events { worker_connections 16000; }"
        echo "http { access_log off; $(nginx_temp_paths "$dir/tmp")"
        echo "  proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_max_temp_file_size 0;"
        echo "  keepalive_requests 1000000;"
        if [ -n "${5:-}" ]; then echo "  $5"; fi
        echo "  server { listen $listen default_server; return 404; }"
        for i in $(seq 0 $((n - 1))); do
            printf '  upstream u%02d { server %s; keepalive 64; }\n' "$i" "$origin"
            printf '  server { listen %s; server_name svc%02d.example.test; location / { proxy_pass http://u%02d; } }\n' "$listen" "$i" "$i"
        done
        echo "}"
        if [ -n "${7:-}" ]; then echo "$7"; fi
    } >"$dir/nginx.conf"
}

# nginx's TLS settings for the proxies, with the certificate of make_cert.
nginx_tls_directives() {
    echo "ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;" \
        "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on; ssl_session_timeout 2h;"
}

declare -A RPS P99 USREQ ERRS
# wrk with 2 threads and CONNS connections for DURATION seconds (a request
# unanswered after WRK_TIMEOUT seconds, 2 by default, is a timeout) against
# URL with a Lua script; sets RPS[NAME], P99[NAME], ERRS[NAME] (non-2xx and
# socket errors) and USREQ[NAME], the CPU time of PID's process tree per
# request in µs ("-" without a PID). wrk's output stays in $T/wrk-NAME.txt.
wrk_measure() { # name, pid (or ""), url, lua
    local before=0 after=0 total
    if [ -n "$2" ]; then before=$(cpu_ticks "$2"); fi
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout "${WRK_TIMEOUT:-2}s" --latency -s "$4" "$3" \
        >"$T/wrk-$1.txt"
    if [ -n "$2" ]; then after=$(cpu_ticks "$2"); fi
    RPS[$1]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$T/wrk-$1.txt")
    P99[$1]=$(awk '$1 == "99%" {print $2}' "$T/wrk-$1.txt")
    ERRS[$1]=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$T/wrk-$1.txt")
    total=$(awk '/requests in/ {print $1}' "$T/wrk-$1.txt")
    if [ -n "$2" ] && [ "$total" -gt 0 ]; then
        USREQ[$1]=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$total" \
            'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    else
        USREQ[$1]="-"
    fi
}

# Connections the benchmarks' origin (start_bench_origin) has accepted so
# far, from nginx's stub_status; the count includes the one asking.
origin_accepts() { # addr
    curl -s "http://$1/origin_status" | awk 'NR == 3 {print $1}'
}

# Median GB/s of REPS curl transfers of URL, by curl's write-out variable
# SPEED (speed_download or speed_upload; more curl arguments after the url).
median_speed_gbs() { # speed, url, [curl args...]
    local speed=$1 url=$2 v=()
    shift 2
    for _ in $(seq 1 "$REPS"); do
        v+=("$(curl -sk -o /dev/null "$@" -w "%{$speed}" "$url")")
    done
    printf '%s\n' "${v[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] / 1e9}'
}

# Median GB/s of REPS downloads of URL with curl (more curl arguments after it).
median_gbs() { # url, [curl args...]
    median_speed_gbs speed_download "$@"
}

# New TLS connections per second for DURATION seconds: two openssl s_time
# clients at once (one per core), each fetching a page per connection so
# that TLS 1.3 tickets are read; -reuse resumes with the ticket of the
# first connection.
conns_per_sec() { # port, -new|-reuse
    local t0 t1 n a
    t0=$(date +%s.%N)
    openssl s_time -connect "127.0.0.1:$1" "$2" -time "$DURATION" -www /small >"$T/st1" 2>&1 &
    a=$!
    openssl s_time -connect "127.0.0.1:$1" "$2" -time "$DURATION" -www /small >"$T/st2" 2>&1
    wait "$a" || true
    t1=$(date +%s.%N)
    n=$(cat "$T/st1" "$T/st2" | awk '/connections in .* real seconds/ {s += $1} END {print s + 0}')
    awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}'
}

# The benchmarks' origin on ADDR: /small answered from memory, /1g a sparse
# 1 GiB file sent with sendfile and paged in before anything is measured.
# More directives for its server block (a TLS listener) may follow.
start_bench_origin() { # addr, [directives]
    start_origin "${1##*:}" "  server {
    listen $1;
    ${2:-}
    root $T/origin/www;
    location = /small { return 200 \"hello from the origin\\n\"; }
    location = /origin_status { stub_status; }
  }"
    truncate -s 1G "$T/origin/www/1g"
    curl -s -o /dev/null "http://$1/1g"
}
