"""Loaders for the real datasets bundled with the package (provenance in ``data/PROVENANCE.md``)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from bayes_scaling.runs.table import Runs, validate_runs

CHINCHILLA_FILE = "chinchilla_epoch_svg_extracted.csv"
MARIN_FILE = "marin_isoflops.csv"
PORIAN_FILE = "porian2024_isoflops.csv.gz"
GADRE_FILE = "gadre2024_c4val.csv"
EPOCH_EXCLUDED = 5  # Epoch AI (2024) drop the 5 highest-loss rows before fitting


def _read(name: str) -> pd.DataFrame:
    with resources.files("bayes_scaling.runs").joinpath("data", name).open("rb") as handle:
        return pd.read_csv(handle, compression="gzip" if name.endswith(".gz") else None)


def load_chinchilla() -> Runs:
    """Hoffmann et al. (2022) Figure 4 runs, digitised by Epoch AI: 245 rows, D = C / 6N.

    The 5 highest-loss rows, which Epoch AI's replication excludes, are kept but flagged
    (``flag_reason = "epoch2024_excluded"``), so a default fit uses Epoch's 240 rows.
    """
    raw = _read(CHINCHILLA_FILE)
    worst = raw["loss"].nlargest(EPOCH_EXCLUDED).index
    raw["flagged"] = raw.index.isin(worst)
    raw["flag_reason"] = ["epoch2024_excluded" if f else "" for f in raw["flagged"]]
    raw["run_id"] = [f"chinchilla:{i}" for i in raw.index]
    return validate_runs(
        raw,
        columns={"N": "Model Size", "C": "Training FLOP"},
        source_name="chinchilla (Hoffmann 2022 via Epoch 2024)",
    )


def load_marin() -> Runs:
    """Marin (2026) IsoFLOP sweeps on three datasets (the groups): 258 rows, 19 flagged by Open-Athena."""
    raw = _read(MARIN_FILE)
    raw["run_id"] = [f"marin:{i}" for i in raw.index]
    raw["reason"] = raw["reason"].where(raw["outlier"], "")
    return validate_runs(
        raw,
        columns={"N": "params", "D": "tokens", "group": "dataset", "flagged": "outlier", "flag_reason": "reason"},
        source_name="marin (2026 via Open-Athena)",
    )


def load_porian() -> Runs:
    """Porian et al. (2024) IsoFLOP sweeps: 1,745 rows in 15 groups (settings from Kaplan's recipe
    to Chinchilla's, on RefinedWeb and OpenWebText2), with a ``budget`` column. All rows kept,
    none flagged: 117 have a loss above 7 (large models given very few tokens, in or just past
    warm-up), real points far from the frontier."""
    raw = _read(PORIAN_FILE)
    raw["run_id"] = [f"porian:{i}" for i in raw.index]
    return validate_runs(raw, source_name="porian (Porian 2024)")  # D/N down to 0.006, inside the unit check


def load_gadre() -> Runs:
    """Gadre et al. (2024) runs scored on C4 validation: 104 rows, 11M to 6.9B parameters at 5 to
    640 tokens per parameter, grouped by training set (``c4_original``, ``rpj``, ``rw_original``).
    No budget column: a backtest splits it at the compute quantile."""
    raw = _read(GADRE_FILE)
    raw["run_id"] = [f"gadre:{i}" for i in raw.index]
    return validate_runs(raw, columns={"group": "dataset"}, source_name="gadre (Gadre 2024)")


DATASETS = {"chinchilla": load_chinchilla, "marin": load_marin, "porian": load_porian, "gadre": load_gadre}
