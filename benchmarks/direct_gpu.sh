#!/usr/bin/env bash
# The direct reward objective at GPU scale (docs/learned-gain.md), three variants side by side on
# one GPU (each process is launch-bound at toy size), plus a smoke run of the CLI's GPU path.
# Ran on the lent H200 as: bash benchmarks/direct_gpu.sh MINUTES OUTDIR
set -uo pipefail
minutes=${1:-7}
out=${2:-out}
mkdir -p "$out" /tmp/direct
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
run="python3 benchmarks/learned_gain.py direct"
$run /tmp/direct/A.pt --minutes "$minutes" --widths 32,64 --no-harm 1 >"$out/A.log" 2>&1 &
$run /tmp/direct/B.pt --minutes "$minutes" --widths 48,96 --no-harm 1 >"$out/B.log" 2>&1 &
$run /tmp/direct/C.pt --minutes "$minutes" --widths 32,64 --no-harm 0 >"$out/C.log" 2>&1 &
gn() { python3 -c 'import sys; from golden_noise.cli import app; sys.argv[0] = "golden-noise"; app()' "$@"; }
{
  gn collect -p toy:train:64:0 --out /tmp/npd --teacher local-search --steps 10 --guidance 2 &&
    gn train /tmp/npd --out /tmp/run --epochs 2 --batch-size 16 &&
    gn evaluate --npnet /tmp/run/last --prompts toy:validation:16:3 --seeds 0-1 \
      --scorers toy-soft,toy-correct --out /tmp/eval
  echo "cli rc $?"
} >"$out/cli.log" 2>&1
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv >>"$out/cli.log" 2>&1
wait
(cd /tmp/direct && tar cf - ./*.pt) | split -b 15M - "$out/checkpoints.tar."
tail -n 3 "$out"/*.log
