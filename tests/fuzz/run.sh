#!/bin/sh
# run.sh - run the fuzz targets, each over its seed corpus and then for a
# while, and print how many inputs each one executed.
#   tests/fuzz/run.sh BUILD SECONDS [NAME...]
# BUILD holds fuzz_NAME binaries (make fuzz-build). Inputs the fuzzer finds
# interesting go to BUILD/corpus/NAME (the seeds in tests/fuzz/corpus/NAME
# are only read); a crashing input is saved as BUILD/crash-NAME-* and the
# script fails. FUZZ_FLAGS adds libFuzzer flags (e.g. -seed=1).
set -eu
cd "$(dirname "$0")/../.."
build=$1
seconds=$2
shift 2
names=${*:-$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)}

total=0
failed=""
for name in $names; do
    # Room for the largest input each parser can meet (or for its limit
    # plus a little, so that the limit itself is exercised).
    case $name in
    request | sni) max_len=17000 ;;
    config) max_len=16384 ;;
    *) max_len=8192 ;;
    esac
    mkdir -p "$build/corpus/$name"
    log="$build/fuzz-$name.log"
    echo "fuzz: $name for ${seconds}s" >&2
    # shellcheck disable=SC2086
    if "$build/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=$max_len -dict="tests/fuzz/$name.dict" -print_final_stats=1 \
        -artifact_prefix="$build/crash-$name-" ${FUZZ_FLAGS:-} \
        "$build/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
        :
    else
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
