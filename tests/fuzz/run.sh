#!/bin/sh
# run.sh - run the fuzz targets, each over its seed corpus and then for a
# while, and print how many inputs each one executed.
#   tests/fuzz/run.sh BUILD SECONDS [NAME...]
# BUILD holds fuzz_NAME binaries (make fuzz-build). Inputs the fuzzer finds
# interesting go to BUILD/corpus/NAME (the seeds in tests/fuzz/corpus/NAME
# are only read); a crashing input is saved as BUILD/crash-NAME-* and the
# script fails. FUZZ_FLAGS adds libFuzzer flags (e.g. -seed=1).
# FUZZ_JOBS targets run at a time (default: one per core). Each target is
# one process on one core for SECONDS, so running one per core gives each
# the same time it would have alone.
set -eu
cd "$(dirname "$0")/../.."
build=$1
seconds=$2
shift 2
names=${*:-$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs in
'' | *[!0-9]* | 0) echo "run.sh: FUZZ_JOBS must be a number of targets at a time, not '$jobs'" >&2; exit 2 ;;
esac

# fuzz_one NAME: run the target; its outcome goes to BUILD/fuzz-NAME.status.
fuzz_one() {
    name=$1
    # Room for the largest input each parser can meet (or for its limit
    # plus a little, so that the limit itself is exercised).
    case $name in
    request | sni) max_len=17000 ;;
    config) max_len=16384 ;;
    *) max_len=8192 ;;
    esac
    mkdir -p "$build/corpus/$name"
    log="$build/fuzz-$name.log"
    # shellcheck disable=SC2086
    if "$build/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=$max_len -dict="tests/fuzz/$name.dict" -print_final_stats=1 \
        -artifact_prefix="$build/crash-$name-" ${FUZZ_FLAGS:-} \
        "$build/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
        echo ok >"$build/fuzz-$name.status"
    else
        echo failed >"$build/fuzz-$name.status"
    fi
}

running=0
for name in $names; do
    rm -f "$build/fuzz-$name.status"
    echo "fuzz: $name for ${seconds}s" >&2
    fuzz_one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

total=0
failed=""
for name in $names; do
    log="$build/fuzz-$name.log"
    if [ "$(cat "$build/fuzz-$name.status" 2>/dev/null)" != ok ]; then
        failed="$failed $name"
        tail -n 40 "$log" >&2
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "fuzz: $name: ${runs:-?} executions" >&2
    total=$((total + ${runs:-0}))
done
echo "fuzz: $total executions in total" >&2
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (inputs in $build/crash-*; logs in $build/fuzz-*.log)" >&2
    exit 1
fi
