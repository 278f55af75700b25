#!/usr/bin/env bash
# Speed III's table rows, one process per pass: for each variant a cold pass (the frozen plain baseline beside the
# trace, artifacts saved) and then a warm one (a fresh process loading them), each with a fresh Inductor cache, so
# only the saved artifacts can make the second warm. Rows are appended to $OUT/speed3_{cold,warm}.jsonl, logs beside.
#     OUT=/tmp/rows bash benchmarks/speed3_rows.sh hrnet_w32 hrnet_w48
# SPEED3_ARGS adds options to every pass: SPEED3_ARGS=--thawed-trace OUT=/tmp/rows bash benchmarks/speed3_rows.sh hrnet_w32
set -u
out=${OUT:?set OUT to a folder for the rows and logs}
mkdir -p "$out"
scratch=$(mktemp -d)  # the passes' artifacts and Inductor caches, removed at the end
trap 'rm -rf "$scratch"' EXIT
cd "$(dirname "$0")/.."
for variant in "$@"; do
    for pass in cold warm; do
        start=$(date +%s)
        flag=()
        [ "$pass" = warm ] && flag=(--warm)
        TORCHINDUCTOR_CACHE_DIR="$scratch/inductor-$variant-$pass" python3 benchmarks/speed3.py --variants "$variant" \
            --no-unfrozen ${SPEED3_ARGS:-} --cache-dir "$scratch/artifacts-$variant" "${flag[@]}" \
            --out "$out/speed3_$pass.jsonl" \
            >"$out/log_${variant}_$pass.txt" 2>&1
        echo "$variant $pass: rc $? in $(($(date +%s) - start)) s"
    done
done
