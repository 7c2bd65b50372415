#!/usr/bin/env bash
# One device call: the runner end to end (one-hot byte embedding + lagged loss read-back) and the
# harness-vs-PyTorch benchmark. Usage (on the GPU machine, from the repo root):
#     OUT=/some/dir bash experiments/gpu_session.sh
# CPU smoke test of the same flags: TINY=1 OUT=/tmp/x bash experiments/gpu_session.sh
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT}
mkdir -p "$OUT"
CK=$(mktemp -d)
if [ "${TINY:-0}" = 1 ]; then
  P1="--params 2e5 --tokens 2e5"; P2="--params 2e5 --tokens 4e5"; BENCH="--tiny"
else
  P1="--params 2e7 --tokens 1e7"; P2="--params 2e7 --tokens 1e8"; BENCH="--no-variants --deadline 230 --timeout 150"
fi
(nvidia-smi -L; python3 -c 'import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())') 2>&1 | tee "$OUT/env.txt"
# 1. The runner as measured on 2026-11-28 (205,633 tokens/s then): same spec, then 10x the tokens.
for spec in "$P1" "$P2"; do
  name=train_run_$(echo "$spec" | awk '{print $4}')
  start=$EPOCHREALTIME
  timeout 150 python3 -m training $spec --batch-size 64 --context 512 --checkpoint-dir "$CK/$name" \
      --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "$name rc=$? process_s=$(python3 -c "print(round($EPOCHREALTIME - $start, 1))")" | tee -a "$OUT/env.txt"
  tail -3 "$OUT/$name.log"
  python3 -c "import json,sys; r=json.load(open('$OUT/$name.json')); print({k: r[k] for k in ('status','N','D','loss','wall_time','tokens_per_s','mfu','device')})" 2>&1 | tee -a "$OUT/env.txt"
done
# 2. The harness against the PyTorch baseline (124M, 350M, 45M; no variants this time).
PYTHONPATH=$PWD timeout 260 python3 experiments/bench_train_gpu.py $BENCH --out "$OUT/bench_train_gpu.json" 2>&1 | tail -15
