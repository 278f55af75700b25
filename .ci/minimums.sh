#!/usr/bin/env bash
# The declared minimums must work (issue 11, item 15): install every minimum of pyproject.toml exactly, in a venv of
# their own, and run the smoke test (.ci/smoke.py) on them. The pins are generated from pyproject
# (.ci/minimums.py: each `>=X` becomes `==X`), so they cannot drift from what the package declares.
#
# Two runs in one venv:
#   1. the core dependencies, every one at its minimum — torch 2.4 and torchvision 0.19 included (from PyPI, with
#      their CUDA libraries: ~2.8 GB to download, about a minute here) — and the smoke test of the core;
#   2. the app extra added (gradio 6.20, its minimum) with the same pins, except huggingface_hub: gradio 6.20 itself
#      needs huggingface_hub >= 1.2, so the app run has the newest 1.x pip allows; then the smoke test again, with
#      the Gradio demo built.
# What this does not cover: the smoke test runs on CPU, so the GPU-only paths (CUDA graphs, torch.compile) are not
# exercised at torch 2.4; transitive dependencies are the newest each pin allows; one Python (CI's python3).
#
# Usage: .ci/minimums.sh (MINIMUMS_VENV=DIR to place the venv; KEEP_MINIMUMS_VENV=1 to keep it afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MINIMUMS_VENV:-/tmp/hrnet-explorer-minimums}
started=$SECONDS

rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" .ci/minimums.py >"$VENV/core.txt"
"$PY" .ci/minimums.py --extra app --keep huggingface_hub >"$VENV/app.txt"

echo "minimums: core ($(paste -sd' ' "$VENV/core.txt"))"
"$PY" -m pip install -q --progress-bar off -r "$VENV/core.txt"
"$PY" -m pip check
"$PY" .ci/smoke.py

echo "minimums: app ($(paste -sd' ' "$VENV/app.txt"))"
"$PY" -m pip install -q --progress-bar off -r "$VENV/app.txt"
"$PY" -m pip check
"$PY" .ci/smoke.py --app

[ -n "${KEEP_MINIMUMS_VENV:-}" ] || rm -rf "$VENV"
echo "minimums: passed in $((SECONDS - started)) s"
