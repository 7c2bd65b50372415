"""The benchmark's measuring function runs (tiny, CPU) and reports consistent numbers."""

import importlib.util
import math
from pathlib import Path

import pytest

from training.sizing import Shape


def _bench_module():
    path = Path(__file__).resolve().parents[2] / "experiments" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_measure_reports_throughput_of_a_tiny_model():
    shape = Shape(n_layers=1, d_model=32, n_heads=2, vocab_size=256, context=16)
    row = _bench_module().measure(shape, batch_size=2, steps=2, warmup=1)
    assert row["steps_timed"] == 2
    assert row["tokens_per_s"] > 0 and math.isfinite(row["final_loss"])
    assert row["tokens_per_s"] == row["steps_timed"] * 2 * 16 / row["seconds"]
    assert row["model_flops_per_s"] == row["tokens_per_s"] * shape.flops_per_token_nanogpt()
