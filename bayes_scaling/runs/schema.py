"""The run table's schema: the canonical columns, their defaults and plausible ranges, and ``Runs``,
one row per finished training run.

Canonical columns (``CANONICAL_COLUMNS``):

=============  ==============================================================================
``run_id``     unique id (generated from the source and row number when absent)
``N``          parameters
``D``          training tokens; derived as D = C / (6 N) when only ``C`` is given
``C``          training compute in FLOPs; derived as C = 6 N D when only ``D`` is given
``loss``       final loss (nats per token, or any consistent unit)
``group``      the run's group (dataset, architecture, ...); ``"all"`` when absent
``source``     where the row came from (file name or dataset id)
``flagged``    True for rows a curator marked as suspect; fits exclude them by default
``flag_reason`` why the row is flagged
=============  ==============================================================================

Warmup-stable-decay columns (``BRANCH_COLUMNS``; the run store keeps them as real columns since
store schema version 2, and gives rows without them the defaults of a plain run):

=================  ==========================================================================
``role``           "run" (a run of its own), "trunk" (a WSD trunk at constant learning rate: its
                   loss is not a finished run's, so fits leave it out) or "branch" (a cool-down
                   resumed from a trunk's checkpoint)
``trunk_id``       a branch's trunk (its run_id); "" otherwise
``branch_tokens``  the trunk's token count a branch resumed from; 0 otherwise
``cooldown_tokens`` tokens trained while the learning rate cooled down (0 for cosine runs, trunks)
``C_own``          the FLOPs the run spent itself, 6 N (D - branch_tokens): a branch's own cost
=================  ==========================================================================

Every other column the user gave is kept as it was. Nothing is dropped: invalid input raises an
``InputError`` naming the row and field, and flagged rows stay in the table, visible, until a fit
chooses to exclude them (and says how many it excluded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CANONICAL_COLUMNS = ("run_id", "N", "D", "C", "loss", "group", "source", "flagged", "flag_reason")
BRANCH_COLUMNS = ("role", "trunk_id", "branch_tokens", "cooldown_tokens", "C_own")
ROLES = ("run", "trunk", "branch")
DEFAULT_GROUP = "all"
MAX_PLAUSIBLE_LOSS = 20.0  # nats/token: ln(vocab) for a 400M-token vocabulary; beyond it a unit error
# What any real training run has (with slack): parameter counts from a thousand to ten trillion,
# and tokens per parameter from 1/1000 (the largest models of Porian et al. 2024's IsoFLOP sweeps
# reach 0.006) to a million (small models trained on tens of trillions of tokens reach 6e4).
PLAUSIBLE_N = (1e3, 1e13)
PLAUSIBLE_TOKENS_PER_PARAM = (1e-3, 1e6)
UNIT_CHECK_OFF = "pass check_units=False (CLI: --no-unit-check) if these are really the counts"
TABLE_EXPECTED = "expected a run table with columns N, D (or C) and loss and one row per run"


@dataclass(frozen=True)
class Runs:
    """A validated run table. ``frame`` has the canonical columns first, then the user's extras."""

    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    N = property(lambda self: self._column("N"), doc="parameter counts (float64)")
    D = property(lambda self: self._column("D"), doc="training tokens (float64)")
    C = property(lambda self: self._column("C"), doc="training FLOPs (float64)")
    loss = property(lambda self: self._column("loss"), doc="final losses (float64)")

    def _column(self, name: str) -> np.ndarray:
        return self.frame[name].to_numpy(np.float64)

    @property
    def groups(self) -> list[str]:
        return sorted(self.frame["group"].unique())

    @property
    def n_flagged(self) -> int:
        return int(self.frame["flagged"].sum())

    def _trunks(self) -> np.ndarray:
        """Rows that are WSD trunks (``role`` "trunk"): their loss is taken at a constant learning rate."""
        if "role" not in self.frame:
            return np.zeros(len(self.frame), bool)
        return (self.frame["role"].astype(str).str.strip() == "trunk").to_numpy()

    def _kept(self, include_flagged: bool) -> np.ndarray:
        kept = ~self._trunks()
        return kept if include_flagged else kept & ~self.frame["flagged"].to_numpy(bool)

    def for_fit(self, include_flagged: bool = False) -> Runs:
        """The runs a fit uses: all but WSD trunks (a trunk's loss is not a finished run's) and, by
        default, the flagged ones. A flagged row without a usable loss (NaN: a run that diverged)
        cannot be fitted, so including it is an error."""
        kept = self._kept(include_flagged)
        if include_flagged:
            no_loss = np.flatnonzero(kept & ~np.isfinite(self.loss))
            if len(no_loss):
                from bayes_scaling.errors import InputError

                ids = ", ".join(map(str, self.frame["run_id"].iloc[no_loss[:5]]))
                raise InputError(f"{len(no_loss)} flagged run(s) have no usable loss ({ids}{', ...' if len(no_loss) > 5 else ''}): "
                                 "they cannot be fitted; leave out --include-flagged / include_flagged, or give them a loss")
        return self if kept.all() else Runs(self.frame[kept].reset_index(drop=True))

    def left_out(self, include_flagged: bool = False) -> pd.DataFrame:
        """The rows ``for_fit`` leaves out (WSD trunks, and flagged rows unless ``include_flagged``)."""
        return self.frame[~self._kept(include_flagged)].reset_index(drop=True)

    def describe_selection(self, include_flagged: bool = False) -> str:
        """One line saying which runs a fit uses and what it leaves out, and why."""
        trunks = self._trunks()
        flagged = self.frame["flagged"].to_numpy(bool) & ~trunks & (not include_flagged)
        if not trunks.any() and not flagged.any():
            return f"using all {len(self)} runs"
        parts = []
        if trunks.any():
            parts.append(f"{int(trunks.sum())} WSD trunk{'s' if trunks.sum() > 1 else ''} (role 'trunk': a loss at a "
                         "constant learning rate, not a finished run's)")
        if flagged.any():
            reasons = self.frame.loc[flagged, "flag_reason"].value_counts()
            why = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
            parts.append(f"{int(flagged.sum())} flagged ({why}); pass include_flagged / --include-flagged to keep them")
        return f"using {len(self) - int(trunks.sum() + flagged.sum())} of {len(self)} runs; excluded " + "; ".join(parts)


def present_columns(columns, limit: int = 12) -> str:
    """The columns of a table as a short list (a damaged file can have thousands of odd names)."""
    names = [repr(str(c))[1:-1][:40] for c in columns]
    text = ", ".join(names[:limit])
    return text + (f", ... ({len(names)} columns)" if len(names) > limit else "")
