"""One Posterior type for every inference method (NUTS, MAP point fit, bootstrap).

A ``Posterior`` is an ArviZ DataTree of draws (groups ``posterior``, ``sample_stats``,
``log_likelihood``, ``observed_data``, ``posterior_predictive`` where the method has them) plus the
law, the model settings and the runs it was fitted to. A point fit is a posterior of one draw; a
bootstrap is one draw per resample. Everything downstream (frontier, prediction, plots, design)
reads only ``theta()`` and the law, so it works on any of them.

A fit's tree is built when something first reads ``idata`` (``Posterior.lazy``): until then the
draws are plain arrays, which is all ``theta()``, ``draws()``, ``predict()`` and ``diagnose`` read.
The extrapolation model's calibration refits are never saved, so they never build one (a default
fit built four, 0.39 s of CPU under cProfile: ``profile_chinchilla`` in
experiments/results/bench_extrapolation.json), and ``extrapolation.attach_drift`` adds the drift's
draws to the arrays (``add_draws``), so a default fit builds its tree only when it is saved or read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_scaling import extrapolation, scoring
from bayes_scaling import frontier as frontier_mod
from bayes_scaling._jax_setup import CompiledPrograms, configure
from bayes_scaling.errors import InputError
from bayes_scaling.laws import Law, get_law
from bayes_scaling.runs.table import Runs

if TYPE_CHECKING:
    import xarray as xr

POSTERIOR_FILE, META_FILE, RUNS_FILE = "posterior.nc", "meta.json", "runs.csv"
NEW_TRUNK = "(new trunk)"  # a WSD fit's name for a trunk it has not seen: its branches get a fresh trunk effect
# netCDF4/HDF5 through Unidata's netCDF-C (the netCDF4 package): on the bundled fit it writes and reads the
# file several times faster than h5netcdf, whose per-variable dimension bookkeeping cost a CLI fit about
# 0.3 s (experiments/bench_netcdf.py). A file written by either engine reads with either.
NETCDF_ENGINE = "netcdf4"
EXCLUDED_FILE = "excluded_runs.csv"


FIT_ENTRIES = (POSTERIOR_FILE, META_FILE, RUNS_FILE, EXCLUDED_FILE, "grouped_fit.json", "groups", "population")


def is_fit_directory(directory: Path) -> bool:
    """A saved fit's directory (its meta file) or a grouped fit's (its manifest, ``grouped.MANIFEST_FILE``)."""
    return (directory / META_FILE).is_file() or (directory / "grouped_fit.json").is_file()


def check_fit_directory(directory: str | Path) -> Path:
    """Where a fit may be saved: a new directory, an empty one or an earlier fit's (replaced), its path
    resolved through a symbolic link; ``InputError`` for an empty path, a file, a directory holding other files
    (a fit is saved in a directory of its own: files of the user's with a fit's names would be overwritten), or
    a place this process cannot write. Call it before the work that the save ends."""
    if not str(directory).strip():
        raise InputError("an empty path: expected a directory to save the fit in")
    directory = Path(directory)
    if directory.is_symlink():
        directory = Path(os.path.realpath(directory))
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: a file, expected a directory to save the fit in")
    if directory.is_dir() and not is_fit_directory(directory):
        others = sorted(entry.name for entry in directory.iterdir())
        if others:
            raise InputError(f"{directory}: a directory holding other files ({', '.join(others[:3])}"
                             f"{', ...' if len(others) > 3 else ''}), not a saved fit; a fit is saved in a directory "
                             "of its own: give a new or empty one")
    check_writable_place(directory, f"{directory}")
    return directory


def check_writable_place(path: Path, label: str) -> None:
    """``InputError`` (``label`` first) unless the nearest existing one of ``path`` and its parents is a
    directory this process may write in: what it takes to create ``path`` later."""
    existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise InputError(f"{label}: {existing} is a file, so nothing can be written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{label}: cannot write in {existing}; expected a place this process may write in")


def replace_directory(new: Path, directory: Path, replaced=FIT_ENTRIES) -> None:
    """Move the complete directory ``new`` to ``directory``; where one is already there, it is moved aside
    first and its entries other than ``replaced`` are moved into the new one, then the rest is removed."""
    if not directory.exists():
        os.replace(new, directory)
        return
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(directory, old)
    os.replace(new, directory)
    for entry in old.iterdir():
        if entry.name not in replaced:
            os.replace(entry, directory / entry.name)
    shutil.rmtree(old, ignore_errors=True)


def points(N, D) -> tuple[np.ndarray, np.ndarray]:
    """N and D as two 1-D float arrays of one value per point (a single N or D is used for every point);
    ``InputError`` for other shapes, or values that are not positive finite numbers."""
    try:
        N = np.atleast_1d(np.asarray(N, np.float64))
        D = np.atleast_1d(np.asarray(D, np.float64))
    except (TypeError, ValueError):
        raise InputError(f"N and D must be numbers (parameters and tokens), got N={N!r} and D={D!r}") from None
    if N.ndim != 1 or D.ndim != 1 or (N.size != D.size and 1 not in (N.size, D.size)):
        raise InputError(f"N and D must be one value each per point (or one value for all), got shapes {N.shape} "
                         f"and {D.shape}")
    N, D = np.broadcast_arrays(N, D)
    if not (np.all(np.isfinite(N)) and np.all(np.isfinite(D)) and np.all(N > 0) and np.all(D > 0)):
        bad = int(np.flatnonzero(~(np.isfinite(N) & np.isfinite(D) & (N > 0) & (D > 0)))[0])
        raise InputError(f"N and D must be positive finite numbers (parameters and tokens); point {bad + 1} has "
                         f"N={N[bad]!r}, D={D[bad]!r}")
    return np.array(N), np.array(D)


@dataclass
class Posterior:
    law: Law
    idata: xr.DataTree
    runs: Runs
    method: str
    meta: dict = field(default_factory=dict)
    excluded: pd.DataFrame | None = None  # rows of the user's table left out of the fit (flagged), kept to report

    @classmethod
    def lazy(cls, *, law: Law, groups: dict, dims: dict, coords: dict, runs: Runs, method: str,
             meta: dict) -> Posterior:
        """A posterior whose DataTree is built (``arviz_base.from_dict(groups, dims=dims,
        coords=coords)``) when ``idata`` is first read; ``groups``: group -> variable -> array
        (chain, draw, ...), except ``observed_data``'s (no chain and draw)."""
        return cls(law=law, idata=_PendingTree(groups, dims, coords), runs=runs, method=method, meta=meta)

    def group_arrays(self, group: str) -> dict[str, np.ndarray] | None:
        """The variables of one group of the tree (``posterior``, ``sample_stats``, ...) as arrays,
        or None where the fit has no such group; read without building a pending tree."""
        pending = self.__dict__.get("_pending")
        if pending is not None:
            return pending.groups.get(group)
        tree = self.idata
        if group not in tree.children:
            return None
        return {name: tree[group][name].values for name in tree[group].data_vars}

    def _posterior_group(self):
        """The posterior group: a pending tree's arrays, else the tree's Dataset (both map a name to
        something ``_values`` reads)."""
        pending = self.__dict__.get("_pending")
        return pending.groups["posterior"] if pending is not None else self.idata["posterior"]

    @property
    def draw_shape(self) -> tuple[int, int]:
        """(chains, draws per chain)."""
        post = self._posterior_group()
        if isinstance(post, dict):
            return tuple(int(k) for k in np.shape(next(iter(post.values())))[:2])
        return int(post.sizes["chain"]), int(post.sizes["draw"])

    def add_draws(self, variables: dict[str, tuple[tuple, np.ndarray]]) -> None:
        """Add posterior variables, name -> (extra dims, array (chain, draw, *extra)), to the
        pending arrays where the tree is not built yet (so adding builds nothing), else to the tree."""
        pending = self.__dict__.get("_pending")
        if pending is not None:
            for name, (extra, values) in variables.items():
                pending.groups["posterior"][name] = np.asarray(values)
                if extra:
                    pending.dims[name] = list(extra)
            return
        dims = ("chain", "draw")
        self.idata["posterior"] = self.idata["posterior"].to_dataset().assign(
            **{name: (dims + tuple(extra), values) for name, (extra, values) in variables.items()})

    def has_draws(self, name: str) -> bool:
        """Whether the posterior group holds a variable ``name`` (``sigma``, ``offset``, a drift)."""
        return name in self._posterior_group()

    # --- draws ---------------------------------------------------------------------------------
    @property
    def num_draws(self) -> int:
        post = self._posterior_group()
        if isinstance(post, dict):
            shape = np.shape(next(iter(post.values())))
            return int(shape[0] * shape[1])
        return int(post.sizes["chain"] * post.sizes["draw"])

    def theta(self) -> dict[str, np.ndarray]:
        """The law's natural parameters, flattened over chains and draws: name -> (S,)."""
        post = self._posterior_group()
        return {name: _values(post[name]).reshape(-1) for name in self.law.param_names}

    def draws(self, name: str) -> np.ndarray:
        """Any posterior variable (a law parameter, ``sigma``, ...), flattened: (S,)."""
        return _values(self._posterior_group()[name]).reshape(-1)

    def draws_table(self, name: str) -> np.ndarray:
        """A posterior variable with extra dimensions, flattened over chains and draws: (S, K)."""
        values = np.asarray(_values(self._posterior_group()[name]), np.float64)
        return values.reshape(self.num_draws, -1)

    def _drift(self):
        """``extrapolation.drift_of`` (reads the draws without building a pending tree)."""
        return extrapolation.drift_of(self)

    def thinned(self, max_draws: int | None):
        """Index of ``max_draws`` evenly spaced draws (all of them where ``max_draws`` is None or
        not smaller than the number of draws), for any (S, ...) array of this fit's draws."""
        if max_draws is not None and (isinstance(max_draws, bool) or not isinstance(max_draws, (int, np.integer))
                                      or max_draws < 1):
            raise InputError(f"max_draws must be a positive whole number or None, got {max_draws!r}")
        if max_draws is None or self.num_draws <= max_draws:
            return slice(None)
        return np.linspace(0, self.num_draws - 1, int(max_draws)).astype(int)

    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """Median and equal-tailed interval of each law parameter, sigma and (where the fit has
        them) the misfit noise's slopes ``misfit_under`` and ``misfit_over``."""
        level = frontier_mod.check_level(level)
        q = [(1 - level) / 2, 0.5, (1 + level) / 2]
        from bayes_scaling.models.likelihood import MISFIT_SITES

        names = [*self.law.param_names, *(name for name in ("sigma", *MISFIT_SITES) if self.has_draws(name))]
        rows = []
        for name in names:
            lo, med, hi = np.quantile(self.draws(name), q)
            rows.append({"parameter": name, "median": med, "lo": lo, "hi": hi, "level": level})
        return pd.DataFrame(rows)

    # --- answers ---------------------------------------------------------------------------------
    def frontier_draws(self, budgets, max_draws: int | None = None, branch_of: str | None = None,
                       seed: int = 0) -> dict[str, np.ndarray]:
        """Draws of N_opt, D_opt, L_opt and tokens per parameter at each budget: (S, K), under
        the fit's model (the law, plus the drift beyond the fitted runs where the fit carries
        one); ``max_draws`` keeps that many evenly spaced draws (figures). ``branch_of`` (a WSD fit
        only): L_opt of a WSD branch of that trunk, L_opt e^(delta + u_t) with u_t the fitted trunk's
        effect or, for any other name, a fresh one (``branch_shift``); the shift does not depend
        on N or D, so N_opt and D_opt are the cosine runs'."""
        shift = None if branch_of is None else self.branch_shift(branch_of, seed)  # refuses a fit without branches
        keep = self.thinned(max_draws)
        theta = {k: v[keep] for k, v in self.theta().items()}
        drift = self._drift()
        if drift is not None:
            drift = (drift[0][keep], drift[1])
        draws = frontier_mod.frontier_draws(self.law, theta, budgets, drift=drift)
        if shift is not None:  # one trunk: one shift per draw at every budget
            draws["L_opt"] = draws["L_opt"] * np.exp(shift[keep][:, None])
        return draws

    @property
    def model(self) -> str:
        """Which model produced this fit's answers: "extrapolating" or "plain law"."""
        return self.meta.get("model", "plain law")

    @property
    def model_label(self) -> str:
        """``model``, naming the misfit noise along tokens per parameter where the fit has it (and
        "final fit only" where the calibration's refits did not have it)."""
        misfit = self.meta.get("misfit_noise")
        if self.model == extrapolation.MODEL_NAME and self.has_draws("wsd_offset"):
            return f"{self.model} (WSD model)"  # the drifted law for cosine runs; a branch adds its shift
        return self.model + ("" if not misfit else ", misfit noise along D/N" + (" (final fit only)" if misfit == "final" else ""))

    def frontier(self, budgets, level: float = 0.9, branch_of: str | None = None) -> pd.DataFrame:
        """Per budget C: median and ``level`` interval of N_opt, D_opt, L_opt, tokens/param
        (``branch_of``: a WSD fit's L_opt for a branch of that trunk, as ``frontier_draws``), and ``range``:
        where the median optimum lies against the fitted runs ("within", "beyond", "far beyond" or
        "below": ``formatting.Reach.where``, the marks the command line prints)."""
        table = frontier_mod.summarise(self.frontier_draws(budgets, branch_of=branch_of), budgets, level)
        reach = self.reach()
        table["range"] = [reach.where(n, d, c) for n, d, c in zip(table["N_opt_median"], table["D_opt_median"],
                                                                   table["budget"])]
        return table

    def reach(self):
        """Where points lie against this fit's runs (``formatting.Reach``: beyond, far beyond, below, within)."""
        from bayes_scaling.formatting import Reach

        return Reach.of(self)

    def budget_for_loss(self, target_loss) -> np.ndarray:
        """Draws of the least training compute whose frontier reaches each ``target_loss``: (S, K), inf
        where no budget up to 1e40 FLOPs does. The plain law's closed form; under the drift, where
        L_opt(C) need not fall throughout, its first crossing of the target
        (``decisions.training_budget_for_loss``)."""
        from bayes_scaling import decisions

        configure()
        target = np.atleast_1d(np.asarray(target_loss, dtype=np.float64))[None, :]
        return decisions.training_budget_for_loss(decisions.Surface.of(self), target)

    def predict(self, N, D, *, noise: bool = True, seed: int = 0, offset_at=None,
                max_draws: int | None = None, per_point: bool = False) -> np.ndarray:
        """Predictive draws of the loss at (N, D): shape (S, n). ``noise=False`` gives the law's
        mean curve L(N, D; theta_s); ``noise=True`` adds the fitted observation noise on log-loss.
        A fit with per-level offsets (``fit_hierarchical(offset_by=...)``) adds them on log-loss
        either way: ``offset_at`` gives each point's level (e.g. its IsoFLOP budget; a scalar or
        one per point); see ``offset_draws``. A WSD fit (``wsd.fit_wsd``) predicts cosine runs, unless
        ``offset_at`` names a point's trunk: then it is that trunk's branch (``branch_shift_draws``).
        ``max_draws`` keeps that many evenly spaced
        posterior draws (S = min(max_draws, num_draws)); the default keeps them all. N and D: one
        positive finite value each per point (a single value is used for every point; ``points``).
        The random draws (noise eps, a fresh offset or trunk effect) come from ``seed`` as one block over
        the points; ``per_point=True`` seeds each point's by (seed, its N, D and level, ``point_keys``)
        alone, so they are the same whatever other points are predicted beside it (what ``predict_summary``,
        the ``predict`` command's answer, uses; the calibration and the backtest keep the block)."""
        N, D = points(N, D)
        keep = self.thinned(max_draws)
        theta = {k: v[keep][:, None] for k, v in self.theta().items()}
        log_loss = compiled_log_loss(self.law)
        drift = self._drift()
        if drift is None:
            mu = np.asarray(log_loss(theta, N[None], D[None]))
        else:
            mu = extrapolation.drifted_log_loss(log_loss, theta, drift[0][keep], drift[1], N[None], D[None])
        keys = point_keys(N, D, self.level_labels(offset_at, len(N))) if per_point else None
        if self.has_draws("offset"):
            mu = mu + self.offset_draws(offset_at, (self.num_draws, mu.shape[1]), seed, keys)[keep]
        if self.has_draws("wsd_offset"):
            mu = mu + self.branch_shift_draws(offset_at, (self.num_draws, mu.shape[1]), seed, keys)[keep]
        if not noise or not self.has_draws("sigma"):
            return np.exp(mu)
        eps = (self.noise_draws(mu.shape, np.random.default_rng(seed)) if keys is None else
               point_draws(keys, mu.shape[0], seed, 0, lambda rng, size: self.noise_draws(size, rng)))
        return np.exp(mu + self.noise_scale(N, D, keep) * eps)

    def level_labels(self, at, n: int) -> list[str]:
        """Each of n points' level as the fit reads ``offset_at``: a fitted trunk or level by name, "new"
        for any other (all new levels are alike: a fresh draw), "" for none (a cosine run, a fit without levels)."""
        at = _per_point(at, n)
        if self.has_draws("wsd_offset"):
            trunks = set(self.meta.get("trunks", []))
            return ["" if a is None or str(a) == "" else f"trunk {a}" if str(a) in trunks else "new" for a in at]
        if self.has_draws("offset"):
            levels = set(self.meta.get("offset_levels", []))
            return [f"level {offset_key(a)}" if a is not None and offset_key(a) in levels else "new" for a in at]
        return [""] * n

    def noise_scale(self, N, D, keep=slice(None)) -> np.ndarray:
        """Draws (S, n) of the observation noise's scale at (N, D): sigma, or with the misfit term
        along tokens per parameter (``meta["misfit_noise"]``, ``models.pooled``) each point's own
        scale, from its ln(D/N) beyond the fitted runs' band (``likelihood.misfit_scale``)."""
        sigma = self.draws("sigma")[keep][:, None]
        if not self.meta.get("misfit_noise"):
            return np.broadcast_to(sigma, (len(sigma), np.size(N)))
        from bayes_scaling.models.likelihood import MISFIT_SITES, misfit_scale

        k_under, k_over = (self.draws(site)[keep][:, None] for site in MISFIT_SITES)
        log_r = np.log(np.asarray(D, np.float64)) - np.log(np.asarray(N, np.float64))
        band = [float(x) for x in self.meta["misfit_band_log_tokens_per_param"]]
        return misfit_scale(sigma, k_under, k_over, log_r[None], band)

    def offset_draws(self, at, shape, seed: int = 0, keys=None) -> np.ndarray:
        """Draws (S, n) of the per-level offsets on log-loss: the fitted delta_b at a level seen in
        the fit (``meta["offset_levels"]``), a fresh delta ~ Normal(0, tau_o^2) per draw at an
        unseen level or where ``at`` is None. Detrended offsets (``meta["offset_detrended"]``)
        likewise: the fitted levels' draws sum to zero with no trend in log C, and a new level gets
        an independent Normal(0, tau_o^2) wiggle (it is outside the levels the constraint spans).
        ``keys``: each point's key for its fresh draw (``point_keys``; default: one block from ``seed``)."""
        S, n = shape
        levels = list(self.meta.get("offset_levels", []))
        at = _per_point(at, n)
        index = np.array([levels.index(offset_key(a)) if a is not None and offset_key(a) in levels else -1 for a in at])
        normal = (np.random.default_rng([seed, 1]).standard_normal((S, n)) if keys is None else point_draws(keys, S, seed, 1))
        fresh = self.draws("offset_tau")[:, None] * normal
        fitted = _values(self._posterior_group()["offset"]).reshape(S, -1)
        return np.where(index >= 0, fitted[:, np.maximum(index, 0)], fresh)

    def branch_shift(self, trunk: str, seed: int = 0) -> np.ndarray:
        """Draws (S,) of the log-loss shift of a WSD branch of ``trunk`` (one trunk effect per draw:
        the fitted one, or a fresh one for a name the fit has no trunk by, ``NEW_TRUNK``), for answers
        about one branch at many budgets (``frontier``, ``decisions.Surface``); a fit without branches
        refuses."""
        if not self.has_draws("wsd_offset"):
            raise InputError("only a WSD fit (runs with role 'branch') has branches to answer for; "
                             "leave --as-branch out")
        return self.branch_shift_draws([str(trunk)], (self.num_draws, 1), seed)[:, 0]

    def branch_label(self, trunk: str) -> str:
        """How an answer names the branch of ``trunk``: of a fitted trunk, or of a new one."""
        return f"fitted trunk {trunk}" if str(trunk) in self.meta.get("trunks", []) else "a new trunk"

    def branch_shift_draws(self, at, shape, seed: int = 0, keys=None) -> np.ndarray:
        """Draws (S, n) of a WSD fit's shift on log-loss (``wsd``): delta + u_t for a point whose ``at`` is
        a fitted trunk t (``meta["trunks"]``), delta + a fresh u ~ Normal(0, tau^2) per draw for another
        trunk's branch (any other non-empty name), and 0 for a cosine run (``at`` None or "").
        ``keys``: each point's key for its fresh draw (``point_keys``; default: one block from ``seed``)."""
        S, n = shape
        trunks = list(self.meta.get("trunks", []))
        at = _per_point(at, n)
        branch = np.array([a is not None and str(a) != "" for a in at])
        index = np.array([trunks.index(str(a)) if b and str(a) in trunks else -1 for a, b in zip(at, branch)])
        effects = _values(self._posterior_group()["trunk_effect"]).reshape(S, -1)
        normal = (np.random.default_rng([seed, 2]).standard_normal((S, n)) if keys is None else point_draws(keys, S, seed, 2))
        fresh = self.draws("trunk_tau")[:, None] * normal
        u = np.where(index >= 0, effects[:, np.maximum(index, 0)], fresh)
        return np.where(branch, self.draws("wsd_offset")[:, None] + u, 0.0)

    @property
    def likelihood(self):
        """The fit's observation model on log-loss (``models.likelihood.Likelihood``), from the
        likelihood and degrees of freedom it records."""
        from bayes_scaling.models.likelihood import Likelihood

        return Likelihood.from_meta(self.meta)

    def noise_draws(self, shape, rng: np.random.Generator) -> np.ndarray:
        """Standardised observation noise eps of the fit's likelihood (``likelihood``)."""
        return self.likelihood.standard_draws(shape, rng)

    def predict_summary(self, N, D, level: float = 0.9, seed: int = 0, offset_at=None) -> pd.DataFrame:
        """The predictive distribution of the loss at each (N, D) in one row: median and
        equal-tailed ``level`` interval of ``predict(N, D, offset_at=offset_at, per_point=True)``'s draws
        (observation noise included, each point's drawn as its own: the same whatever points are asked
        beside it; ``offset_at``: each point's level or a WSD fit's trunk, as ``predict`` takes it),
        and ``model``, the model that produced them (``model_label``: ``meta["model"]``, else the
        plain law, and the misfit noise along D/N where the fit has it), and ``range``: where each point
        lies against the fitted runs (``reach``)."""
        level = frontier_mod.check_level(level)
        N, D = points(N, D)
        lo, med, hi = scoring.quantiles(self.predict(N, D, seed=seed, offset_at=offset_at, per_point=True),
                                        [(1 - level) / 2, 0.5, (1 + level) / 2])
        reach = self.reach()
        return pd.DataFrame({"N": N, "D": D, "median": med, "lo": lo, "hi": hi, "level": level,
                             "model": self.model_label, "range": [reach.where(n, d) for n, d in zip(N, D)]})

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the fit to ``directory``: a new or empty directory, or an earlier fit's (``check_fit_directory``).
        The files are written to a hidden directory beside it and moved into place when complete, so a
        process stopped while saving leaves the earlier fit (or none), never a mix; an earlier fit's files
        (and a grouped fit's members) are replaced, any other file in its directory is kept."""
        directory = check_fit_directory(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.parent / f".{directory.name}.saving-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self.idata.to_netcdf(tmp / POSTERIOR_FILE, engine=NETCDF_ENGINE)
            self.runs.frame.to_csv(tmp / RUNS_FILE, index=False)
            if self.excluded is not None:
                self.excluded.to_csv(tmp / EXCLUDED_FILE, index=False)
            meta = {"law": self.law.name, "method": self.method, **self.meta}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_directory(tmp, directory, FIT_ENTRIES)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Posterior:
        """Read a fit saved by ``save``. A missing, empty, truncated or foreign file in it raises
        ``InputError`` naming the file and what was expected."""
        directory = Path(directory)
        if not directory.is_dir():
            what = "a file, expected a fit directory" if directory.exists() else "no such fit directory"
            raise InputError(f"{directory}: {what}; create one with 'bayes-scaling fit --out DIR'")
        if not (directory / META_FILE).exists():
            raise InputError(f"{directory} is not a saved fit (no {META_FILE}); create one with 'bayes-scaling fit'")
        rerun = "; expected the file 'bayes-scaling fit' writes (rerun the fit to recreate it)"
        meta_path = directory / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{meta_path}: not valid JSON ({_short(err)}){rerun}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("law"), str) or not isinstance(meta.get("method"), str):
            raise InputError(f"{meta_path}: expected a JSON object with text fields 'law' and 'method'{rerun}")
        if not meta["method"].startswith(("nuts", "map", "laplace")):
            raise InputError(f"{meta_path}, field 'method': unknown method {meta['method']!r} (expected nuts, map, "
                             f"map+bootstrap, laplace or nuts-hierarchical){rerun}")
        try:
            law = get_law(meta["law"].split("[")[0])  # "name[digest]": a law bound to per-run covariates
        except InputError as err:
            raise InputError(f"{meta_path}, field 'law': {err}{rerun}") from None
        import xarray as xr

        nc_path = directory / POSTERIOR_FILE
        _check_file(nc_path, rerun)
        try:
            with xr.open_datatree(nc_path, engine=NETCDF_ENGINE) as tree:
                idata = tree.load()
        except MemoryError:
            raise
        except Exception as err:  # noqa: BLE001 -- netCDF-C and xarray raise many types for a damaged file
            raise InputError(f"{nc_path}: cannot be read as netCDF4/HDF5 ({type(err).__name__}: {_short(err)}); it may "
                             f"be truncated or damaged{rerun}") from None
        if "posterior" not in idata.children:
            raise InputError(f"{nc_path}: no 'posterior' group{rerun}")
        post = idata["posterior"]
        missing = [name for name in law.param_names if name not in post.data_vars]
        if missing or "chain" not in post.sizes or "draw" not in post.sizes:
            what = f"variables {', '.join(missing)}" if missing else "dimensions chain and draw"
            raise InputError(f"{nc_path}: the posterior group lacks {what} of law {law.name}{rerun}")
        text_columns = {"run_id": str, "group": str, "flag_reason": str}
        frame = _read_fit_csv(directory / RUNS_FILE, text_columns, rerun)
        if "observed_data" in idata.children and "log_loss" in idata["observed_data"].data_vars:
            fitted = int(idata["observed_data"]["log_loss"].size)
            if fitted != len(frame):
                raise InputError(f"{directory}: its files disagree: {POSTERIOR_FILE} was fitted to {fitted} runs, "
                                 f"{RUNS_FILE} holds {len(frame)} (a save that was stopped, or files copied from "
                                 f"two fits){rerun}")
        excluded = None
        if (directory / EXCLUDED_FILE).exists():
            excluded = _read_fit_csv(directory / EXCLUDED_FILE, text_columns, rerun, allow_empty=True)
        runs, method = Runs(frame), meta.pop("method")
        meta.pop("law")
        if hasattr(law, "for_runs"):  # ... which it reads back from the saved runs
            try:
                law = type(law).for_runs(runs)
            except (KeyError, ValueError, TypeError) as err:
                raise InputError(f"{directory / RUNS_FILE}: cannot rebuild law {law.name} from it ({_short(err)}){rerun}") from None
        return cls(law=law, idata=idata, runs=runs, method=method, meta=meta, excluded=excluded)


def _short(err: BaseException, limit: int = 160) -> str:
    from bayes_scaling.errors import one_line

    return one_line(str(err), limit)


def _check_file(path: Path, rerun: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: missing from the fit directory{rerun}")
    if path.is_dir() or path.stat().st_size == 0:
        raise InputError(f"{path}: {'a folder' if path.is_dir() else 'empty (0 bytes)'}{rerun}")


def _read_fit_csv(path: Path, dtype: dict, rerun: str, allow_empty: bool = False) -> pd.DataFrame:
    """A fit directory's runs.csv (or excluded_runs.csv), checked for the columns the fit needs."""
    _check_file(path, rerun)
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype=dtype, encoding="utf-8")
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 -- a damaged CSV: any parser error
        raise InputError(f"{path}: cannot be read as CSV ({type(err).__name__}: {_short(err)}){rerun}") from None
    needed = ("run_id", "N", "D", "C", "loss", "group", "flagged")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}{rerun}")
    if frame.empty and not allow_empty:
        raise InputError(f"{path}: no runs{rerun}")
    flags = frame["flagged"].astype(str).str.strip().str.lower()
    if not flags.isin(["true", "false", "1", "0"]).all():
        i = int((~flags.isin(["true", "false", "1", "0"])).to_numpy().nonzero()[0][0])
        raise InputError(f"{path} row {i + 1}, column 'flagged': expected True or False, got {frame['flagged'].iloc[i]!r}{rerun}")
    frame["flagged"] = flags.isin(["true", "1"])
    for column in ("N", "D", "C", "loss"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~((values > 0) & np.isfinite(values))
        if column == "loss":  # a flagged run without a usable loss (one that diverged: validate_runs) is kept as such
            bad &= ~(frame["flagged"] & (frame[column].astype(str).str.strip() == ""))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(f"{path} row {i + 1}, column '{column}': expected a positive number, got "
                             f"{frame[column].iloc[i]!r}{rerun}")
        frame[column] = values.astype(np.float64)
    return frame


@dataclass
class _PendingTree:
    """What ``Posterior.lazy`` builds the DataTree from, once ``idata`` is read."""

    groups: dict
    dims: dict
    coords: dict

    def build(self) -> xr.DataTree:
        import arviz_base as azb  # the converters only: importing all of ArviZ costs ~1 s per CLI call

        return azb.from_dict(self.groups, dims=self.dims, coords=self.coords)


def _get_idata(self: Posterior) -> xr.DataTree:
    pending = self.__dict__.get("_pending")
    if pending is not None:
        # built once; from then on the tree is the only copy (a caller may change it in place)
        self.__dict__["_idata"] = pending.build()
        del self.__dict__["_pending"]
    return self.__dict__["_idata"]


def _set_idata(self: Posterior, value) -> None:
    if isinstance(value, _PendingTree):
        self.__dict__["_pending"] = value
        self.__dict__.pop("_idata", None)
    else:
        self.__dict__["_idata"] = value
        self.__dict__.pop("_pending", None)


Posterior.idata = property(_get_idata, _set_idata, doc="The fit's ArviZ DataTree (built on first read).")


def _values(variable) -> np.ndarray:
    """A variable's array: a pending tree holds arrays, a built one xarray variables."""
    return variable if isinstance(variable, np.ndarray) else variable.values


def _per_point(at, n: int) -> np.ndarray:
    """``offset_at`` as one level per point (n of them; None or a scalar: the same for every point)."""
    return np.broadcast_to(np.asarray([None] if at is None else at, dtype=object).ravel(), (n,))


def point_keys(N, D, labels) -> list[str]:
    """Each point's key for its random draws (``point_draws``): its N, D (None: left out) and level label
    (``Posterior.level_labels``), and its repeat k: the k-th copy of the same point in one call gets a key
    of its own, so the draws of any two points of a call are independent."""
    n = len(labels)
    N, D = ([None] * n if x is None else [repr(float(v)) for v in x] for x in (N, D))
    keys, seen = [], {}
    for key in (f"N={N_j} D={D_j} at={label}" for N_j, D_j, label in zip(N, D, labels)):
        seen[key] = seen.get(key, -1) + 1
        keys.append(f"{key} #{seen[key]}")
    return keys


def point_draws(keys, S: int, seed: int, stream: int, draw=None) -> np.ndarray:
    """(S, n) draws; column j is ``draw(rng_j, S)`` (default standard normals), rng_j seeded by (seed,
    stream, hash of keys[j]) alone, so a point's draws do not depend on the other points drawn with it."""
    out = np.empty((S, len(keys)))
    for j, key in enumerate(keys):
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")
        rng = np.random.default_rng([seed, stream, digest])
        out[:, j] = rng.standard_normal(S) if draw is None else draw(rng, S)
    return out


def offset_key(value) -> str:
    """How a level of an offset column is named: numbers by their float's repr (3e20, 3.0e20 and
    "3e+20" are one level), anything else as its string."""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def compiled_log_loss(law: Law):
    """The law's log-loss as one compiled program: as eager operations, each would be compiled
    separately in every new process (tens of milliseconds in all on a CLI call). Kept per law
    family, name and settings, not per instance (``get_law`` makes a new one per call, so each
    refit of the extrapolation model's calibration would trace and compile it again)."""
    configure()
    from bayes_scaling.fitting.sampler_cache import stored_jit

    return _LAW_PROGRAMS.get_or_build(_law_key(law), lambda: stored_jit(law.log_loss, law_description(law, "log_loss")))


def compiled_optimal_allocation(law: Law):
    """``law.optimal_allocation(theta, C)`` as one compiled program, kept as ``compiled_log_loss``
    keeps the log-loss (the extrapolation model's allocation bound calls it on every fit)."""
    configure()
    from bayes_scaling.fitting.sampler_cache import stored_jit

    return _LAW_PROGRAMS.get_or_build((_law_key(law), "optimal_allocation"), lambda: stored_jit(
        law.optimal_allocation, law_description(law, "optimal_allocation")))


_LAW_PROGRAMS = CompiledPrograms(limit=16)  # the laws' compiled log-loss and optimal allocation


def law_description(law: Law, method: str) -> str:
    """A law's ``method`` as the on-disk program cache names it (``sampler_cache.stored_jit``):
    its class and source and everything ``_law_key`` holds."""
    from bayes_scaling.fitting.sampler_cache import law_source_digest

    kind = type(law)
    return repr((method, f"{kind.__module__}.{kind.__qualname__}", law_source_digest(law), _law_key(law)[1:]))


def _law_key(law: Law) -> tuple:
    """What a law's log-loss depends on: its class, name and attributes (arrays by their bytes)."""
    def fingerprint(value):
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        array = np.asarray(value)
        return (array.dtype.str, array.shape, array.tobytes()) if array.dtype != object else repr(value)

    return (type(law), law.name, tuple(sorted((k, fingerprint(v)) for k, v in vars(law).items())))


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
