"""Hierarchical laws: one law per group (dataset, architecture, ...), tied by a population.

* ``models.hierarchical``: the model (``hierarchical_model``, ``HierSpec``), for any ``Law``;
* ``hierarchical.centring``: where its coordinates are centred and how far each group's are
  (``pivot_centre``, ``auto_centring``): the sampler's efficiency only;
* ``hierarchical.offsets``: budget offsets, a crossed random effect on log-loss;
* ``hierarchical.fit``: ``fit_hierarchical`` (``HierarchicalSettings``) and ``HierarchicalFit``.

docs/hierarchical.md states the model and the measurements behind its defaults.
"""

from bayes_scaling.hierarchical.centring import (
    HALFNORMAL_MEDIAN,
    SPREAD_PRIOR_MEDIAN,
    auto_centring,
    between_group_variance,
    mean_centre,
    pivot_centre,
)
from bayes_scaling.hierarchical.fit import (
    AUTO_OFFSET_COLUMN,
    CENTRES,
    CENTRINGS,
    DEFAULT_SPREADS,
    DETREND_OFFSETS,
    POPULATION,
    SAMPLER_DEFAULTS,
    HierarchicalFit,
    HierarchicalSettings,
    fit_hierarchical,
)
from bayes_scaling.hierarchical.offsets import detrending_basis
from bayes_scaling.models.hierarchical import (
    DEFAULT_SPREAD_PRIOR,
    OFFSET_SCALE,
    POOLINGS,
    SPREAD_PRIORS,
    HierSpec,
    hierarchical_model,
    spread_distribution,
)

__all__ = [
    "AUTO_OFFSET_COLUMN", "CENTRES", "CENTRINGS", "DEFAULT_SPREADS", "DEFAULT_SPREAD_PRIOR", "DETREND_OFFSETS",
    "HALFNORMAL_MEDIAN", "OFFSET_SCALE", "POOLINGS", "POPULATION", "SAMPLER_DEFAULTS", "SPREAD_PRIORS",
    "SPREAD_PRIOR_MEDIAN", "HierSpec", "HierarchicalFit", "HierarchicalSettings", "auto_centring",
    "between_group_variance", "detrending_basis", "fit_hierarchical", "hierarchical_model", "mean_centre",
    "pivot_centre", "spread_distribution",
]
