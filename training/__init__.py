"""The Flax training harness: ``run(RunSpec) -> RunResult`` for a decoder-only LM in bf16.

It knows nothing of the Bayesian core and never imports ``bayes_scaling``; it runs as its own
process (``python -m training``) so its JAX settings never meet float64 inference.
"""

from training.spec import RunResult, RunSpec, SpecError


def run(spec: RunSpec, **kwargs) -> RunResult:
    """Train one run; see ``training.train.run`` (imported lazily: JAX starts only when training)."""
    from training.train import run as _run

    return _run(spec, **kwargs)


__all__ = ["RunResult", "RunSpec", "SpecError", "run"]
