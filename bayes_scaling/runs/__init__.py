"""Training runs: the validated table, the bundled real datasets and the run store."""

from bayes_scaling.runs.bundled import DATASETS, load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.store import RunStore
from bayes_scaling.runs.table import CANONICAL_COLUMNS, Runs, as_runs, load_runs, validate_runs

__all__ = ["CANONICAL_COLUMNS", "DATASETS", "RunStore", "Runs", "as_runs", "load_chinchilla", "load_gadre", "load_marin", "load_porian", "load_runs", "validate_runs"]
