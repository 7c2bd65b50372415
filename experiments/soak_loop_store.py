"""Soak test: a `loop` killed again and again (SIGKILL and SIGTERM) while `runs import` processes
write to the same run store at random moments; after every cycle the store and the planner state
are checked. Issue 19's target: 0 runs lost over 20 cycles.

Each cycle starts ``bayes-scaling loop --simulate --state S --store STORE`` (resuming the same
state), starts two ``runs import`` of fresh CSV files at random moments while it runs, and kills
the loop after a random 1-20 s (``--kill-after``) with SIGKILL or SIGTERM (alternately). A kill
during the interpreter's start-up, before the loop's code runs, counts as ``killed_before_start``
(a SIGTERM then ends the process with -15 before anything is written). Then, with no process left:

* the store is append-only: every row recorded before the cycle is still there, unchanged
  (row id, run id, version, record);
* every import that reported success has all its rows in the store with the values of its file;
* every run the planner state holds as done (its own store, ``S/runs.sqlite``) is in the shared
  store with the same loss (the loop appends a result to the shared store before the planner
  records it, so a kill in between leaves the run pending: restarted next cycle, and stored again
  as a new version, never lost);
* the planner state opens; a SIGTERM-ed loop exited 143 and printed the resume command.

Writes experiments/results/soak_loop_store.json. Usage:
    .venv/bin/python experiments/soak_loop_store.py [--cycles 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
LOOP = ["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e23", "--tolerance", "0",
        "--grid-points", "30", "--draws", "100", "--n-init", "6"]  # 900 candidates: it never runs out


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bayes_scaling", *map(str, args)]


def store_rows(path: Path) -> dict[int, tuple]:
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        return {r[0]: r[1:] for r in db.execute("SELECT row_id, run_id, version, loss, record FROM runs")}


def latest(path: Path) -> dict[str, dict]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return {r["run_id"]: dict(r) for r in db.execute("SELECT * FROM latest")}


def import_file(folder: Path, k: int, rng: np.random.Generator) -> Path:
    """A fresh table of 5 plausible runs (its own folder, the same file name every time)."""
    sub = folder / f"import{k:03d}"
    sub.mkdir()
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 5))
    frame = pd.DataFrame({"N": N, "D": N * np.exp(rng.uniform(np.log(5), np.log(100), 5)),
                          "loss": rng.uniform(2.0, 4.0, 5)})
    frame.to_csv(sub / "runs.csv", index=False)
    return sub / "runs.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-after", type=float, nargs=2, default=(1.0, 20.0), metavar=("LO", "HI"),
                        help="kill the loop after a uniform random LO..HI seconds (default 1 20)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "soak_loop_store.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bayes-scaling-soak-"))
    store, state = work / "runs.sqlite", work / "state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    imported: dict[Path, pd.DataFrame] = {}
    cycles, lost, problems = [], 0, []
    started = time.time()
    for cycle in range(args.cycles):
        before = store_rows(store)
        sig = signal.SIGKILL if cycle % 2 == 0 else signal.SIGTERM
        log = open(work / f"loop{cycle:02d}.log", "w")
        loop = subprocess.Popen(cli(*LOOP, "--state", state, "--store", store), cwd=work, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        kill_at = pick.uniform(*args.kill_after)
        import_times = sorted(pick.uniform(0.0, kill_at) for _ in range(2))
        imports, t0 = [], time.monotonic()
        for when in import_times:
            time.sleep(max(0.0, when - (time.monotonic() - t0)))
            path = import_file(work, len(imported) + len(imports), rng)
            imports.append((path, subprocess.Popen(cli("runs", "import", path, "--store", store), cwd=work, env=env,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        time.sleep(max(0.0, kill_at - (time.monotonic() - t0)))
        loop.send_signal(sig)
        try:
            code = loop.wait(timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"cycle {cycle}: the loop was still running 60 s after {sig.name}")
            loop.kill()
            code = loop.wait()
        log.close()
        import_codes = []
        for path, proc in imports:
            out, err = proc.communicate(timeout=300)
            import_codes.append(proc.returncode)
            if proc.returncode == 0:
                imported[path] = pd.read_csv(path)
            else:
                problems.append(f"cycle {cycle}: import of {path} exited {proc.returncode}: {err.strip()[-300:]}")

        # -- checks ------------------------------------------------------------------------------
        after = store_rows(store)
        missing = [row for row in before if after.get(row) != before[row]]
        lost += len(missing)
        if missing:
            problems.append(f"cycle {cycle}: {len(missing)} stored rows changed or gone")
        rows_now = latest(store) if store.exists() else {}
        import_lost = 0
        for path, frame in imported.items():
            digest_rows = [r for r in rows_now.values() if json.loads(r["record"]).get("source_path") == str(path.resolve())]
            if len(digest_rows) != len(frame) or not np.allclose(sorted(r["loss"] for r in digest_rows), sorted(frame["loss"])):
                import_lost += 1
        lost += import_lost
        if import_lost:
            problems.append(f"cycle {cycle}: {import_lost} imported files not (all) in the store")
        plan = json.loads((state / "planner.json").read_text()) if (state / "planner.json").exists() else None
        planner_done = [r for r in latest(state / "runs.sqlite").values() if r["status"] == "ok"] \
            if (state / "runs.sqlite").exists() else []
        done_lost = 0
        if plan is not None:
            for r in planner_done:
                stored = rows_now.get(r["run_id"])
                if stored is None or not np.isclose(stored["loss"], r["loss"]):
                    done_lost += 1
        lost += done_lost
        if done_lost:
            problems.append(f"cycle {cycle}: {done_lost} done runs of the planner missing from the store")
        text = (work / f"loop{cycle:02d}.log").read_text()
        started_runs = "to resume after a stop" in text
        if sig == signal.SIGTERM and code != 143 and (started_runs or "SIGTERM" in text):
            problems.append(f"cycle {cycle}: SIGTERM exit {code}")
        if sig == signal.SIGTERM and started_runs and "resume with: bayes-scaling loop" not in text:
            problems.append(f"cycle {cycle}: SIGTERM without the resume command")
        if "Traceback" in text:
            problems.append(f"cycle {cycle}: traceback in the loop's output")
        loop_runs = sum(1 for r in rows_now.values() if r["source"] == "loop")
        entry = {"cycle": cycle, "signal": sig.name, "killed_after_s": round(kill_at, 2), "loop_exit": code,
                 "resumed": "resuming" in text, "started": started_runs, "imports_exit": import_codes, "store_rows": len(after),
                 "store_runs": len(rows_now), "loop_runs_in_store": loop_runs,
                 "planner_done": len(planner_done), "planner_pending": len(plan["pending"]) if plan else 0,
                 "rows_changed_or_gone": len(missing), "imports_missing": import_lost, "done_missing": done_lost}
        cycles.append(entry)
        print(json.dumps(entry), flush=True)

    result = {
        "cycles": args.cycles, "seed": args.seed, "kill_after_s": list(args.kill_after), "seconds": round(time.time() - started, 1),
        "kills": {"SIGKILL": sum(c["signal"] == "SIGKILL" for c in cycles),
                  "SIGTERM": sum(c["signal"] == "SIGTERM" for c in cycles)},
        "sigterm_exit_143": sum(c["signal"] == "SIGTERM" and c["loop_exit"] == 143 for c in cycles),
        "killed_before_start": sum(not c["started"] for c in cycles),
        "finished_before_kill": sum(c["loop_exit"] == 0 for c in cycles),
        "imports_ok": len(imported), "imported_rows": int(sum(len(f) for f in imported.values())),
        "final_store_rows": cycles[-1]["store_rows"] if cycles else 0,
        "final_store_runs": cycles[-1]["store_runs"] if cycles else 0,
        "final_planner_done": cycles[-1]["planner_done"] if cycles else 0,
        "runs_lost": lost, "problems": problems, "per_cycle": cycles,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "work_dir": str(work),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{args.cycles} cycles in {result['seconds']} s: runs lost {lost}; {len(imported)} imports "
          f"({result['imported_rows']} rows); planner done {result['final_planner_done']}; problems: {len(problems)}")
    for p in problems:
        print("  " + p)
    return 0 if lost == 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
