#!/bin/sh
# check-hardening.sh BINARY - fail unless BINARY carries the hardening the
# Makefile asks for: a position-independent executable, full RELRO
# (a GNU_RELRO segment and BIND_NOW), stack canaries, and _FORTIFY_SOURCE's
# checked calls. Prints one line per property.
set -eu
bin=${1:?usage: check-hardening.sh BINARY}
export LC_ALL=C
failed=0
check() {
    # check NAME COMMAND...: the command's status says whether NAME holds.
    name=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "hardening: $name: yes"
    else
        echo "hardening: $name: NO" >&2
        failed=1
    fi
}
check "PIE (ELF type DYN)" sh -c "readelf -h '$bin' | grep -q 'Type:[[:space:]]*DYN'"
check "RELRO segment" sh -c "readelf -lW '$bin' | grep -q GNU_RELRO"
check "BIND_NOW (full RELRO)" sh -c "readelf -d '$bin' | grep -Eq 'BIND_NOW|Flags:.* NOW'"
check "stack protector" sh -c "readelf -sW '$bin' | grep -q __stack_chk_fail"
check "_FORTIFY_SOURCE" sh -c "readelf -sW '$bin' | grep -Eq '__[a-z]+_chk@'"
exit $failed
