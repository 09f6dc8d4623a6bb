#!/bin/sh
# deps.sh - install the Debian packages portico needs to build, test or
# benchmark, when they are missing.
#   scripts/deps.sh build|test|bench|lint|fuzz|realapps
# As root, missing packages are installed with apt-get (daemons in them are
# not started). As another user, the missing packages are listed and the
# script fails.
set -eu

build="gcc make libc6-dev pkg-config libhttp-parser-dev libyaml-dev libssl-dev libjansson-dev"
# groff-base, man-db and mandoc check that the manual pages render without a warning.
# chromium, chromium-driver, python3-selenium and python3-cryptography: the
# status page's browser test (tests/e2e/test_status_page.py).
# nix-bin: nix-instantiate parses the NixOS module and the flake
# (tests/e2e/test_nix.py; about 15 s to install, no daemon is started).
test="$build libcmocka-dev python3 python3-websockets curl openssl nginx procps iproute2 groff-base man-db mandoc chromium chromium-driver python3-selenium python3-cryptography strace nix-bin"
# dnsutils (dig) and knot-dnsutils (kdig): the DNS responder's tests.
test="$test dnsutils knot-dnsutils"
bench="$test wrk haproxy hyperfine libnginx-mod-stream linux-perf"
bench="$bench dnsperf" # bench/dns.sh
bench="$bench valgrind liburing-dev" # bench/profile.sh (CALLGRIND=1), bench/uring_echo.sh
lint="clang-format cppcheck"
# libFuzzer ships in libclang-rt-dev; llvm brings llvm-symbolizer for readable reports.
fuzz="$build clang libclang-rt-dev llvm"
# The real-app check (tests/realapps): headless Chromium driven by Selenium,
# Jupyter Notebook and Syncthing from Debian; Node-RED comes from npm;
# certutil (libnss3-tools) puts the test CA into Chromium's certificate store.
realapps="$build python3 openssl chromium chromium-driver python3-selenium libnss3-tools jupyter-notebook syncthing nodejs"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
bench) want=$bench ;;
lint) want="$build $lint" ;;
fuzz) want=$fuzz ;;
realapps)
    want=$realapps
    # NodeSource's nodejs package carries npm itself and conflicts with
    # Debian's npm package: ask for npm only when no npm is on the PATH.
    command -v npm >/dev/null 2>&1 || want="$want npm"
    ;;
*) echo "usage: $0 build|test|bench|lint|fuzz|realapps" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "portico: missing Debian packages:$missing" >&2
    echo "portico: install them with: sudo apt-get install$missing" >&2
    exit 1
fi

echo "portico: installing Debian packages:$missing" >&2
# Never start the daemons that come with nginx or haproxy: the tests and
# benchmarks run their own instances on loopback.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Wait (up to 5 minutes) for another apt or dpkg, such as unattended-upgrades
# on a fresh machine, instead of failing at once on its lock. apt-get install
# waits by itself with DPkg::Lock::Timeout; apt-get update (apt 2.6) ignores
# it for the package lists' lock, so it is retried.
lock_wait=300
waited=0
while ! out=$(apt-get -o DPkg::Lock::Timeout=$lock_wait update -qq 2>&1); do
    case $out in
    *"Could not get lock"*) ;;
    *) printf '%s\n' "$out" >&2; exit 1 ;;
    esac
    if [ "$waited" -ge "$lock_wait" ]; then
        printf '%s\n' "$out" >&2
        exit 1
    fi
    [ "$waited" = 0 ] && echo "portico: another apt holds the lock; waiting for it" >&2
    sleep 5
    waited=$((waited + 5))
done
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=$lock_wait install -y -qq --no-install-recommends $missing >/dev/null
