#!/bin/sh
# check-structure.sh [FILE...] - fail when a source file is over the size
# limit (MAX_LINES, 800), naming each such file with its line count. Without
# arguments: every .c and .h file in src/. A file that grows past the limit
# is doing more than one job: split it by job rather than raise the limit.
set -eu
cd "$(dirname "$0")/.."
max=${MAX_LINES:-800}
[ $# -gt 0 ] || set -- src/*.c src/*.h
over=0
for f in "$@"; do
    n=$(wc -l <"$f")
    if [ "$n" -gt "$max" ]; then
        echo "$f: $n lines, over the limit of $max" >&2
        over=$((over + 1))
    fi
done
if [ "$over" -gt 0 ]; then
    echo "structure: $over file(s) over $max lines" >&2
    exit 1
fi
echo "structure: every file has at most $max lines ($# checked)"
