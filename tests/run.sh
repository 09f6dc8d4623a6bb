#!/bin/sh
# run.sh BUILD_DIR - every unit test binary BUILD_DIR/unit/test_*, then the
# end-to-end suite against BUILD_DIR/portico. Ends with the line
# "N passed, N failed" (totals over both) and exits nonzero if any failed.
#
# PORTICO_ASAN=1: the binaries are an ASan+UBSan build; sanitizer reports
# count as failures (unit binaries exit nonzero, the e2e harness checks
# portico's stderr and exit status).
# Extra arguments after BUILD_DIR go to tests/e2e/run.py (e.g. -k smuggling).
# The end-to-end tests run E2E_JOBS at a time (run.py's default when unset).
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift

if [ "${PORTICO_ASAN:-0}" = 1 ]; then
    # A small quarantine: see tests/e2e/harness.py (sanitizer_env).
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99:quarantine_size_mb=8}
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export ASAN_OPTIONS UBSAN_OPTIONS
fi

passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== unit tests ($BUILD/unit)"
found=0
for t in "$BUILD"/unit/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    found=1
    "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    # cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"; then
        echo "$t: sanitizer report" >&2
        [ "$f" -eq 0 ] && f=1
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$t: exit status $rc" >&2
        f=1
    fi
    echo "-- $(basename "$t"): $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))
done
if [ "$found" != 1 ]; then
    # A stale or empty build directory must not pass as "0 failed".
    echo "FAIL: no unit test binaries in $BUILD/unit (build them with make unit)" >&2
    failed=$((failed + 1))
fi

echo "== end-to-end tests"
/usr/bin/python3 tests/e2e/run.py --portico "$BUILD/portico" "$@" 2>&1 | tee "$out"
ep=$(sed -n 's/^e2e: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p' "$out" | tail -1)
ef=$(sed -n 's/^e2e: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p' "$out" | tail -1)
if [ -z "$ep" ] || [ -z "$ef" ]; then
    echo "e2e runner ended without a summary" >&2
    ep=${ep:-0}
    ef=1
fi
passed=$((passed + ep))
failed=$((failed + ef))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
