#!/usr/bin/env bash
# bench/uring_echo.sh - bench/uring_echo.c's three modes in turn, ROUNDS (5)
# rounds of DURATION (3) seconds each, then the median server CPU per request of each
# mode. Needs liburing-dev (scripts/deps.sh bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3}
T=$(mktemp -d /tmp/portico-uring.XXXXXX)
trap 'rm -rf "$T"' EXIT
cc -O2 -Wall -o "$T/uring_echo" "$HERE/uring_echo.c" -luring
for r in $(seq "$ROUNDS"); do
    for m in epoll uring uring-dt; do
        "$T/uring_echo" "$m" "$DURATION" | tee -a "$T/out"
    done
done
echo "| server CPU per request, µs (median of $ROUNDS rounds) | epoll | io_uring | io_uring, DEFER_TASKRUN |"
echo "|---|---|---|---|"
for m in epoll uring uring-dt; do
    awk -v m="$m" '$1 == m {print $6}' "$T/out" | sort -g |
        awk '{a[NR] = $1} END {printf "%s ", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'
done | awk '{printf "| echo of 50 bytes with 150, 64 connections | %.2f | %.2f (%.2f×) | %.2f (%.2f×) |\n", $1, $2, $2 / $1, $3, $3 / $1}'
