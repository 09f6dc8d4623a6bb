# bench/lib.sh - helpers shared by the benchmark scripts (sourced).

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
pid $T/origin/nginx.pid;
error_log $T/origin/error.log;
events { worker_connections 4096; }
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
