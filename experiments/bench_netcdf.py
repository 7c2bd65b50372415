"""Saving and loading a fit's posterior.nc: netCDF4 (Unidata's netCDF-C) against h5netcdf, side by side.

The file ``bayes-scaling fit chinchilla`` saves (the default fit of the bundled Chinchilla data: 240 runs,
4 chains x 1000 draws, the extrapolating model; five groups, 32 data variables, about 17 MB) is written and read
back by each engine in turn, interleaved, ``--repeats`` times; every file is read by both engines and checked
identical to the saved fit. Wall and CPU seconds (median) per engine and their ratios go to
experiments/results/bench_netcdf.json (``--out``). Needs h5netcdf (the ``bench``
extra). Usage:
    .venv/bin/python experiments/bench_netcdf.py [--repeats 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from bayes_scaling.cli import main as cli
from bayes_scaling.posterior import NETCDF_ENGINE

ENGINES = ("netcdf4", "h5netcdf")


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def read(path: Path, engine: str) -> xr.DataTree:
    with xr.open_datatree(path, engine=engine) as tree:
        return tree.load()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_netcdf.json"))
    args = parser.parse_args(argv)
    times = {e: {"write_wall": [], "write_cpu": [], "read_wall": [], "read_cpu": []} for e in ENGINES}
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        if cli(["fit", "chinchilla", "--out", f"{tmp}/fit"]) != 0:
            raise SystemExit("the fit failed")
        tree = read(Path(tmp) / "fit" / "posterior.nc", NETCDF_ENGINE)
        for r in range(args.repeats):
            for engine in ENGINES if r % 2 == 0 else ENGINES[::-1]:
                path = Path(tmp) / f"{engine}.nc"
                w, c = timed(lambda: tree.to_netcdf(path, engine=engine))
                times[engine]["write_wall"].append(w)
                times[engine]["write_cpu"].append(c)
                w, c = timed(lambda: read(path, engine))
                times[engine]["read_wall"].append(w)
                times[engine]["read_cpu"].append(c)
        identical = {f"written by {a}, read by {b}": bool(read(Path(tmp) / f"{a}.nc", b).identical(tree))
                     for a in ENGINES for b in ENGINES}
        size = {e: (Path(tmp) / f"{e}.nc").stat().st_size for e in ENGINES}
    load.append(os.getloadavg())
    medians = {e: {k: float(np.median(v)) for k, v in t.items()} for e, t in times.items()}
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_1_5_15min_before_and_after": load,
        "file": "posterior.nc of the default fit of the bundled Chinchilla data",
        "groups": list(tree.children), "data_variables": sum(len(tree[g].data_vars) for g in tree.children),
        "bytes": size, "default_engine": NETCDF_ENGINE, "repeats": args.repeats,
        "seconds": times, "median_seconds": medians,
        "ratio_h5netcdf_to_netcdf4": {k: medians["h5netcdf"][k] / medians["netcdf4"][k] for k in medians["netcdf4"]},
        "identical_round_trips": identical,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for e in ENGINES:
        print(f"{e:9s} " + "  ".join(f"{k} {v:.3f} s" for k, v in medians[e].items()))
    print("h5netcdf / netcdf4: " + "  ".join(f"{k} {v:.2f}x" for k, v in out["ratio_h5netcdf_to_netcdf4"].items()))
    print(f"round trips identical: {all(identical.values())}; wrote {args.out}")


if __name__ == "__main__":
    main()
