"""The planner's settings: one frozen dataclass, saved in ``planner.json`` with ``asdict``.

``strategy`` picks the utility: ``"target"`` (``design.target``: expected reduction of predictive
error over the target region, jointly with log N_opt(C*), per cost^``cost_exponent``, under the
refits' ``model``), ``"eig_per_cost"`` (EIG about ``targets`` per FLOP, ``design.eig``), ``"eig"``,
``"uncertainty"`` or ``"random"``. ``target_runs`` ([[N, D], ...]) is the user's target region;
empty: the IsoFLOP slice 6 N D = C* around the median N_opt (``target_span``, ``target_points``).
``shape_span`` (strategy ``"target"``, None: off): score only the candidates whose N lies within
that factor of the posterior median N_opt at their own compute (``target.compute_optimal_band``);
``shape_region``: that band widened to the target region's own shapes (the runs in ``target_runs``, or
the IsoFLOP slice's), where they reach beyond the span. By default (``shape_span="default"``) the target
strategy uses span 3 widened to the region (adopted by the pool benchmark's declared rule,
docs/design.md), the other strategies none; an explicit span is used as given (``shape_region`` False
unless set). States saved without these fields load with the band off.
``wsd_cooldown`` > 0 makes the planner a WSD sweep (``design.branches``) with ``trunks_per_size``
trunks per grid size N (default 1; states saved before it existed load with 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from bayes_scaling.design.eig import check_targets
from bayes_scaling.design.target import DEFAULT_COST_EXPONENT, DEFAULT_N_OPT_WEIGHT, KINDS, SHAPE_SPAN, UtilitySettings
from bayes_scaling.errors import InputError

STRATEGIES = ("eig_per_cost", "eig", "uncertainty", "random", "target")
ESTIMATORS = ("gaussian", "nested")
MODELS = ("plain", "extrapolating")


@dataclass(frozen=True)
class PlannerSettings:
    target_budget: float
    experiment_budget: float = float("inf")
    tolerance: float = 0.0
    level: float = 0.9
    targets: tuple = ("log_N_opt",)
    strategy: str = "eig_per_cost"
    estimator: str = "gaussian"
    n_init: int = 8
    law: str = "chinchilla"
    likelihood: str = "student_t"
    nu: float = 5.0
    num_chains: int = 2
    num_warmup: int = 300
    num_draws: int = 300
    discrepancy: str | float = 0.0
    discrepancy_length: float = 0.5
    discrepancy_growth: float = 0.5
    seed: int = 0
    model: str = "plain"  # the refits' model: "plain" or "extrapolating"
    utility_kind: str = "variance"  # strategy "target": "variance" or "information"
    cost_exponent: float = DEFAULT_COST_EXPONENT  # strategy "target": U / cost^gamma
    n_opt_weight: float = DEFAULT_N_OPT_WEIGHT  # strategy "target": lambda
    target_runs: tuple = ()  # strategy "target": ((N, D), ...); empty: the IsoFLOP slice at C*
    target_span: float = 3.0
    target_points: int = 9
    shape_span: float | str | None = "default"  # strategy "target": score only runs within this factor of N_opt at their
    # compute; "default": SHAPE_SPAN (3) widened to the target region for the target strategy, None for the others
    shape_region: bool | None = None  # the band widened to the target runs' shapes; None: True with the default span
    wsd_cooldown: float = 0.0  # > 0: new runs are WSD branches (design.branches), cooling down this share of D; 0: cosine runs
    trunks_per_size: int = 1  # WSD sweep: trunks per grid size N (design.branches.sweep_branches)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "targets", tuple(check_targets(self.targets)))
        set_(self, "target_runs", tuple((float(n), float(d)) for n, d in self.target_runs))
        if self.strategy not in STRATEGIES:
            raise InputError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.estimator not in ESTIMATORS:
            raise InputError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.model not in MODELS:
            raise InputError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.utility_kind not in KINDS:
            raise InputError(f"utility_kind must be one of {KINDS}, got {self.utility_kind!r}")
        if not self.target_budget > 0 or not self.experiment_budget > 0:
            raise InputError(f"need target_budget > 0 and experiment_budget > 0, got {self.target_budget!r} and "
                             f"{self.experiment_budget!r}")
        if not 0 < self.level < 1 or not self.tolerance >= 0:
            raise InputError(f"need 0 < level < 1 and tolerance >= 0, got {self.level!r} and {self.tolerance!r}")
        if not (self.discrepancy == "auto" or (isinstance(self.discrepancy, (int, float)) and self.discrepancy >= 0)) \
                or not self.discrepancy_length > 0 or not self.discrepancy_growth >= 0:
            raise InputError(f"need discrepancy 'auto' or >= 0 and discrepancy_length > 0, got {self.discrepancy!r}, "
                             f"{self.discrepancy_length!r}")
        if self.discrepancy != "auto" and isinstance(self.discrepancy, (int, float)):
            set_(self, "discrepancy", float(self.discrepancy))
        if any(not (n > 0 and d > 0) for n, d in self.target_runs):
            raise InputError("target_runs need positive N and D")
        if self.shape_span == "default":
            default = self.strategy == "target"
            set_(self, "shape_span", SHAPE_SPAN if default else None)
            set_(self, "shape_region", default if self.shape_region is None else self.shape_region)
        if self.shape_span is not None:
            if not (isinstance(self.shape_span, (int, float)) and self.shape_span >= 1):
                raise InputError(f"shape_span must be None or a factor >= 1, got {self.shape_span!r}")
            if self.strategy != "target":
                raise InputError(f"shape_span applies to strategy 'target', not {self.strategy!r}")
            set_(self, "shape_span", float(self.shape_span))
        if self.shape_region is None:
            set_(self, "shape_region", False)
        if not isinstance(self.shape_region, bool):
            raise InputError(f"shape_region must be true or false, got {self.shape_region!r}")
        if self.shape_region and self.shape_span is None:
            raise InputError("shape_region widens the compute-optimal band: it needs shape_span (e.g. 3)")
        if not 0 <= self.wsd_cooldown <= 1:
            raise InputError(f"wsd_cooldown must be in [0, 1] (0: cosine runs), got {self.wsd_cooldown!r}")
        k = self.trunks_per_size
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not float(k).is_integer() or k < 1:
            raise InputError(f"trunks_per_size must be a whole number >= 1, got {k!r}")
        set_(self, "trunks_per_size", int(k))
        if k > 1 and not self.wsd_cooldown > 0:
            raise InputError(f"trunks_per_size {k} applies to a WSD sweep (wsd_cooldown > 0), not to cosine runs")
        self.utility()  # checks cost_exponent and n_opt_weight

    def utility(self) -> UtilitySettings:
        return UtilitySettings(kind=self.utility_kind, cost_exponent=self.cost_exponent, n_opt_weight=self.n_opt_weight)

    def to_dict(self) -> dict:
        """``asdict``, JSON-ready (tuples as lists)."""
        out = asdict(self)
        out["targets"] = list(self.targets)
        out["target_runs"] = [list(r) for r in self.target_runs]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PlannerSettings:
        """From a saved state (fields it lacks, from older versions, take their defaults)."""
        names = {f.name for f in fields(cls)}
        data = {"shape_span": None, "shape_region": False, **data}  # states from before the band was the default: off
        return cls(**{k: v for k, v in data.items() if k in names})
