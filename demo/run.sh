#!/bin/sh
# run.sh - start portico on the demo configuration with two demo origins.
#   demo/run.sh build/portico
# The origins are Python's http.server on 127.0.0.1:18081 and :18082; portico
# listens on 127.0.0.1:8080 and serves /metrics on 127.0.0.1:9100. Ctrl-C
# stops everything.
set -eu
portico=${1:-build/portico}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3

pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$py" -m http.server --bind 127.0.0.1 --directory "$here/www/hello" 18081 >/dev/null 2>&1 &
pids="$pids $!"
"$py" -m http.server --bind 127.0.0.1 --directory "$here/www/files" 18082 >/dev/null 2>&1 &
pids="$pids $!"

sleep 0.5
for p in $pids; do
    if ! kill -0 "$p" 2>/dev/null; then
        echo "demo: a demo origin could not start (is port 18081 or 18082 in use?)" >&2
        exit 1
    fi
done

"$portico" check -c "$here/portico.yaml"
cat <<MSG

portico demo: three services on http://127.0.0.1:8080, metrics on :9100.
Try, from another terminal:

  curl -H 'Host: hello.demo.test' http://127.0.0.1:8080/
  curl --resolve files.demo.test:8080:127.0.0.1 http://files.demo.test:8080/readme.txt
  curl -H 'Host: any.files.demo.test' http://127.0.0.1:8080/hello/
  curl -i -H 'Host: broken.demo.test' http://127.0.0.1:8080/      # 502: nothing listens there
  curl -i -H 'Host: nobody.demo.test' http://127.0.0.1:8080/      # 404: no such service
  curl http://127.0.0.1:9100/metrics

Access log lines appear below. Ctrl-C stops portico and the demo origins.

MSG
"$portico" run -c "$here/portico.yaml" &
pids="$pids $!"
wait "$!" || true
