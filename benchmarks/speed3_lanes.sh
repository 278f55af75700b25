#!/usr/bin/env bash
# Speed III's table on one GPU in parallel lanes: each argument is a lane, a space-separated list of variants run one
# after another; lanes run at once. Per variant: a cold process (fresh Inductor cache, the tracer's artifacts saved),
# then a warm one (another fresh Inductor cache, the artifacts loaded). Timed sections take turns (speed3.py --lock),
# so only compiles overlap. Rows: OUT/speed3_cold.jsonl and OUT/speed3_warm.jsonl; logs: OUT/speed3_<variant>.log.
#   bash benchmarks/speed3_lanes.sh /tmp/out hrnet_w30 "hrnet_w18_small hrnet_w18_small_v2"
set -u
out=$1
shift
mkdir -p "$out"
work=$(mktemp -d)
cd "$(dirname "$0")" || exit 1
lane() {
  for v in $1; do
    TORCHINDUCTOR_CACHE_DIR=$work/inductor-cold-$v python speed3.py --variants "$v" --no-unfrozen \
      --cache-dir "$work/artifacts-$v" --lock "$work/gpu.lock" --out "$out/speed3_cold.jsonl" >"$out/speed3_$v.log" 2>&1
    TORCHINDUCTOR_CACHE_DIR=$work/inductor-warm-$v python speed3.py --variants "$v" --warm \
      --cache-dir "$work/artifacts-$v" --lock "$work/gpu.lock" --out "$out/speed3_warm.jsonl" >>"$out/speed3_$v.log" 2>&1
  done
}
for variants in "$@"; do
  lane "$variants" &
done
wait
