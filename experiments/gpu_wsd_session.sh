#!/usr/bin/env bash
# One device call: bench_wsd's long-schedule grid (--long: D = 6.4M-51.2M tokens, 3,125-25,000
# updates, sizes 2e4/5e4/1e5, cosine seeds 0-2, WSD trunks seeds 0-1), K children at once on one GPU,
# priority order (seed 0 of both sweeps first), every finished run in the store at once. No fit here
# (the device has no arviz): fit afterwards on the workstation with
#     python experiments/bench_wsd.py --long --summary-only
# Usage (on the GPU machine, from the repo root; the whole call stays under 540 s):
#     OUT=/some/dir bash experiments/gpu_wsd_session.sh          [WORKERS=8 MAX_MIN=7.2 KILL_MIN=8.0]
# Then, on the workstation (the files under $OUT are read-only copies):
#     cp $OUT/bench_wsd_gpu.sqlite $OUT/bench_wsd_gpu.json experiments/results/ && chmod u+w experiments/results/bench_wsd_gpu.*
#     nice -n 5 .venv/bin/python experiments/bench_wsd.py --long --summary-only
# CPU smoke test of the same path (3 tiny sizes x 3 D, 30 runs, 2 workers, cut at 3 minutes; on the
# loaded 2-core workstation a child takes 25-60 s, so call it again until "0 runs to train": each
# call continues the store in /tmp/bench_wsd_tiny, retraining a trunk whose checkpoints are gone):
#     TINY=1 PYTHON=.venv/bin/python OUT=/tmp/x bash experiments/gpu_wsd_session.sh
#     .venv/bin/python experiments/bench_wsd.py --tiny --cosine-seeds 0,1 --wsd-seeds 0 --summary-only \
#         --store /tmp/bench_wsd_tiny/bench_wsd_tiny.sqlite --summary /tmp/bench_wsd_tiny/bench_wsd_tiny.json
set -u
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=$PWD
OUT=${OUT:?set OUT}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
CK=$(mktemp -d)
if [ "${TINY:-0}" = 1 ]; then
  NAME=bench_wsd_tiny
  RESULTS=${RESULTS:-/tmp/bench_wsd_tiny}  # kept out of the repo; a second TINY call continues it
  ARGS="--tiny --cosine-seeds 0,1 --wsd-seeds 0 --workers ${WORKERS:-2} --max-minutes ${MAX_MIN:-2.5} --kill-minutes ${KILL_MIN:-3} --nice 10"
  LIMIT=${LIMIT:-240}
else
  NAME=bench_wsd_gpu
  RESULTS=experiments/results
  ARGS="--long --workers ${WORKERS:-8} --max-minutes ${MAX_MIN:-7.2} --kill-minutes ${KILL_MIN:-8.0} --nice 0"
  LIMIT=${LIMIT:-505}
fi
mkdir -p "$RESULTS"
STORE=$RESULTS/$NAME.sqlite
SUMMARY=$RESULTS/$NAME.json
(date -u; nproc; nvidia-smi -L 2>&1 | head -2) > "$OUT/env.txt"
GPU_LOG=""
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > "$OUT/gpu_util.csv" 2>&1 &
  GPU_LOG=$!
fi
timeout "$LIMIT" "$PY" experiments/bench_wsd.py $ARGS --no-fit --store "$STORE" --summary "$SUMMARY" \
    --checkpoints "$CK" > "$OUT/$NAME.log" 2>&1
echo "bench_wsd rc=$?" | tee -a "$OUT/env.txt"
[ -n "$GPU_LOG" ] && kill "$GPU_LOG"
# A cut invocation (timeout) leaves its finished runs in the store; fold the WAL in before copying.
"$PY" -c "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')" "$STORE"
cp "$STORE" "$OUT/"
[ -f "$SUMMARY" ] && cp "$SUMMARY" "$OUT/"
rm -rf "$CK"
grep -v '^ ' "$OUT/$NAME.log" | tail -25
