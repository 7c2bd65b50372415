"""Several small runs packed onto one GPU (docs/scale-out.md), measured.

k runs of the same small spec (seeds 0..k-1) through the local process executor:
  sequential  one after another, JAX's default memory settings;
  packed      all k at once, each child capped at ``--memory-fraction`` of the GPU's memory
              (XLA_PYTHON_CLIENT_MEM_FRACTION, XLA_PYTHON_CLIENT_PREALLOCATE=false);
  unpacked    all k at once with JAX's default settings (each child preallocates most of the GPU).
Prints and writes JSON: wall time of each batch, each run's status, loss and tokens/s, and the
largest GPU memory nvidia-smi showed per process while the batch ran.

    python experiments/pack_gpu.py --out pack_gpu.json [--k 4] [--memory-fraction 0.2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time

from bayes_scaling.executors import Resources
from bayes_scaling.executors.process import ProcessExecutor

SPEC = {"params": 3_000_000, "tokens": 10_000_000, "context": 128, "batch_size": 16, "eval_points": 1,
        "eval_tokens": 65536, "progress": False}


def gpu_memory_mib() -> list[int]:
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split() if x.strip().isdigit()]


def batch(k: int, *, at_once: bool, fraction: float | None) -> dict:
    executor = ProcessExecutor(resources=Resources(memory_fraction=fraction))
    peak: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            used = gpu_memory_mib()
            if sum(used) > sum(peak):
                peak[:] = used
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start, runs = time.perf_counter(), []
    todo = [(f"seed{i}", {**SPEC, "seed": i}) for i in range(k)]
    while todo or executor.pending:
        while todo and (at_once or not executor.pending):
            executor.submit(*todo.pop(0))
        for f in executor.wait():
            r = f.result or {}
            runs.append({"run_id": f.run_id, "status": r.get("status", "crashed"), "loss": r.get("loss"),
                         "tokens_per_s": r.get("tokens_per_s"), "wall_time": r.get("wall_time"),
                         "error": (r.get("error") or f.error)[-300:], "device": r.get("device")})
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    return {"at_once": at_once, "memory_fraction": fraction, "wall_s": round(wall, 1), "runs": runs,
            "peak_gpu_mib_per_process": peak}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--memory-fraction", type=float, default=0.2)
    parser.add_argument("--out", default="pack_gpu.json")
    parser.add_argument("--phases", default="packed,sequential,unpacked")
    args = parser.parse_args()
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    out = {"gpu": gpu, "spec": SPEC, "k": args.k}
    phases = {"sequential": dict(at_once=False, fraction=None), "packed": dict(at_once=True, fraction=args.memory_fraction),
              "unpacked": dict(at_once=True, fraction=None)}
    for name in args.phases.split(","):
        out[name] = batch(args.k, **phases[name])
        print(name, json.dumps(out[name]), flush=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        if name != "unpacked" and not any(r["status"] == "ok" for r in out[name]["runs"]):
            print(f"no run of {name} finished: stopping", flush=True)
            break


if __name__ == "__main__":
    main()
