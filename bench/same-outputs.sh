#!/usr/bin/env bash
# Do two vmdisk binaries print the same thing? For refactors that must not change behaviour:
#   bench/same-outputs.sh OLD_VMDISK NEW_VMDISK
# Builds (once) a corpus in bench-data/outputs/corpus: every format and subformat qemu-img makes,
# an overlay, and the images of ../shared/real-images decompressed (when that folder is there),
# then runs `info --json`, `map --output=json` and `convert -O qcow2|raw` (exit code, size, MD5 of
# outputs up to 1 GiB) with each binary, companions being the other files of the image's folder,
# and diffs the two result trees. By hand, not a test.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2")
cd "$(dirname "$0")/.."
root=$PWD/bench-data/outputs corpus=$PWD/bench-data/outputs/corpus
if [ ! -d "$corpus" ]; then
    mkdir -p "$corpus/made"
    if [ -d ../shared/real-images ]; then
        (cd ../shared/real-images && find . -type f ! -name '*.md') | while read -r f; do
            d=$corpus/real/$(dirname "$f") b=$(basename "$f") src=../shared/real-images/$f
            mkdir -p "$d"
            case "$b" in
            *.bz2) bzip2 -dc "$src" >"$d/${b%.bz2}" ;;
            *.xz) xz -dc "$src" >"$d/${b%.xz}" ;;
            *.gz.uu) python3 -W ignore -c 'import uu,sys; uu.decode(sys.argv[1], sys.stdout.buffer)' "$src" | gzip -dc >"$d/${b%.gz.uu}" ;;
            *.gz) gzip -dc "$src" >"$d/${b%.gz}" ;;
            *) cp "$src" "$d/$b" ;;
            esac
        done
    fi
    cd "$corpus/made"
    qemu-img create -q -f raw base.raw 67M
    qemu-io -f raw -c 'write -P 0x5a 0 1M' -c 'write -P 0x33 20M 3M' -c 'write -P 0x11 66M 511' base.raw >/dev/null
    for spec in "qcow2 -o compat=0.10" "qcow2 -o compat=1.1" "qcow2 -o cluster_size=4096" "qcow2 -c" \
        "qcow2 -c -o compression_type=zstd" "qcow2 -o extended_l2=on" "qcow" "qed" "vdi" "vdi -o static=on" \
        "vpc" "vpc -o subformat=fixed" "vhdx" "vhdx -o subformat=fixed" "vmdk" "vmdk -o subformat=streamOptimized" \
        "vmdk -o subformat=monolithicFlat" "vmdk -o subformat=twoGbMaxExtentSparse" \
        "vmdk -o subformat=twoGbMaxExtentFlat" "parallels"; do
        read -r -a words <<<"$spec"
        name=$(echo "$spec" | tr -c 'a-zA-Z0-9\n' '_' | sed 's/__*/_/g;s/_$//')
        mkdir -p "$name"
        qemu-img convert -q -f raw -O "${words[0]}" "${words[@]:1}" base.raw "$name/img.${words[0]}"
    done
    mkdir -p overlay
    qemu-img convert -q -O qcow2 base.raw overlay/base.qcow2
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay/top.qcow2
    qemu-io -f qcow2 -c 'write -P 0x77 5M 64k' overlay/top.qcow2 >/dev/null
    cd - >/dev/null
    sync # st_blocks (actual-size) settles once delayed allocation is written out
fi
run() { # run BIN OUT
    local bin=$1 out=$2 tmp f k others o size
    rm -rf "$out" && mkdir -p "$out"
    tmp=$(mktemp -d)
    (cd "$corpus" && find . -type f | sort) | while read -r f; do
        k=$(echo "${f#./}" | tr '/' '%')
        mapfile -t others < <(cd "$corpus" && find "$(dirname "$f")" -maxdepth 1 -type f ! -path "$f" | sort)
        (cd "$corpus" && { "$bin" info --json "$f" "${others[@]}" && echo rc=0 || echo "rc=$?"; }) >"$out/$k.info" 2>&1 || true
        (cd "$corpus" && { "$bin" map --output=json "$f" "${others[@]}" && echo rc=0 || echo "rc=$?"; }) >"$out/$k.map" 2>&1 || true
        for o in qcow2 raw; do
            rm -f "$tmp/out"
            (cd "$corpus" && { "$bin" convert -O $o -o "$tmp/out" "$f" "${others[@]}" && echo rc=0 || echo "rc=$?"; }) >"$out/$k.$o" 2>&1 || true
            if [ -f "$tmp/out" ]; then
                size=$(stat -c %s "$tmp/out")
                echo "size=$size" >>"$out/$k.$o"
                if [ "$size" -le $((1 << 30)) ]; then md5sum <"$tmp/out" >>"$out/$k.$o"; fi
            fi
        done
    done
    rm -rf "$tmp"
}
run "$old" "$root/old"
run "$new" "$root/new"
if diff -r "$root/old" "$root/new"; then
    echo "same outputs: $(find "$root/new" -type f | wc -l) files"
else
    echo "outputs differ (above)"
    exit 1
fi
