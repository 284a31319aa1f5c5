#!/usr/bin/env bash
# Time `vmdisk info --hash` (MD5 + SHA-512 in one read) against md5sum and sha512sum on the
# same 2 GiB file (random bytes, so nothing is sparse), and print MiB/s for each. The file
# lives in /tmp and is deleted on exit. Usage: bench/hash.sh [path/to/vmdisk]
set -euo pipefail
vmdisk=${1:-target/release/vmdisk}
file=$(mktemp /tmp/vmdisk-hash-bench.XXXXXX.raw)
trap 'rm -f "$file"' EXIT
mib=2048
head -c $((mib << 20)) /dev/urandom >"$file"
cat "$file" >/dev/null # warm the page cache so every run reads from memory
rate() { # command...: run it, print its MiB/s
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$mib / ($t1 - $t0)" | bc -l | xargs printf '%.0f'
}
printf '%-22s %6s MiB/s\n' "vmdisk info --hash" "$(rate "$vmdisk" info --json --hash "$file")"
printf '%-22s %6s MiB/s\n' "md5sum" "$(rate md5sum "$file")"
printf '%-22s %6s MiB/s\n' "sha512sum" "$(rate sha512sum "$file")"
