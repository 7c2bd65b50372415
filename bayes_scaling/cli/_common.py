"""Helpers shared by sub-commands: reading runs, printing tables and JSON."""

from __future__ import annotations

import json
import sys

from bayes_scaling.errors import InputError
from bayes_scaling.formatting import (  # noqa: F401 -- re-exported for the sub-commands
    Reach,
    beyond_mark,
    beyond_notes,
    corner_optimum_notes,
    falling_optimum_notes,
    fitted_compute,
    format_ratio,
    format_si,
    frontier_json,
    frontier_text,
    observed_compute,
    runs_beat_frontier_notes,
    parameters_json,
    parameters_text,
    reach_json,
)


DATA_CONSTRAINED = ("this fit's law is data-constrained (its loss depends on each run's unique tokens U): {what} needs "
                    "one corpus size, which it does not take; answer for a corpus of U unique tokens with 'frontier', "
                    "'predict' or 'decide' and --unique-tokens U")


def check_unique_tokens(args, fits) -> None:
    """--unique-tokens is the corpus size of a data-constrained fit: given for a fit of another law it would be
    ignored, so it is refused."""
    if getattr(args, "unique_tokens", None) is not None:
        others = sorted({post.law.name for _, post in fits if not hasattr(post.law, "with_unique_tokens")})
        if others:
            raise InputError(f"--unique-tokens is the corpus size of a data-constrained fit; this fit's law is "
                             f"{', '.join(others)}, whose loss does not depend on it: drop the option")


def parse_column_mapping(items: list[str] | None) -> dict[str, str]:
    """``["N=params", "D=tokens"]`` -> ``{"N": "params", "D": "tokens"}``."""
    mapping = {}
    for item in items or []:
        field, sep, name = item.partition("=")
        if not sep or not field or not name:
            raise InputError(f"--column expects FIELD=YOUR_COLUMN (e.g. N=params), got {item!r}")
        mapping[field.strip()] = name.strip()
    return mapping


def read_runs(source: str, columns: list[str] | None = None, group_by: str | None = None, *,
              check_units: bool = True, require_loss: bool = True):
    """A run table from a path, or a bundled dataset by name (``chinchilla``, ``marin``); ``require_loss``
    False for runs to predict (their loss may be missing)."""
    from bayes_scaling.runs import DATASETS, load_runs

    if source in DATASETS:
        return DATASETS[source]()
    mapping = parse_column_mapping(columns)
    if group_by:
        mapping["group"] = group_by
    return load_runs(source, columns=mapping, check_units=check_units, require_loss=require_loss)


def check_output_path(path, *, directory: bool, option: str = "--out"):
    """Refuse, before the work whose result it is meant to hold, an output the command could not write
    at the end: an empty path, a file where a directory is meant (or the reverse), or a place under a file
    or one this process may not write in. Returns the path."""
    from pathlib import Path

    from bayes_scaling.posterior import check_writable_place

    if not str(path).strip():
        raise InputError(f"{option}: an empty path; expected a {'directory' if directory else 'file name'}")
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: a file, expected a directory to write into")
    if not directory and path.is_dir():
        raise InputError(f"{option} {path}: a directory, expected a file name")
    check_writable_place(path if directory else path.parent, f"{option} {path}")
    return path


def member_group(group, post):
    """The group a table answers for: ``group`` (a grouped fit's member, read through its directory), else the
    group a hierarchical member records when read on its own (``DIR/groups/NAME``), else None."""
    if group is None and post.method.startswith("nuts-hierarchical") and post.meta.get("group") is not None:
        return str(post.meta["group"])
    return group


def group_prefix(group, post) -> str:
    """"[comma] " before a member's lines; nothing for a plain fit."""
    group = member_group(group, post)
    return "" if group is None else f"[{group}] "


def group_json(group, post) -> dict:
    """{"group": ...} for a member's JSON answer; {} for a plain fit."""
    group = member_group(group, post)
    return {} if group is None else {"group": group}


def unseen_trunk_note(as_branch, post) -> str | None:
    """The note for ``--as-branch TRUNK`` naming a trunk the WSD fit has not seen: it is answered as a new
    trunk's branch, which a typo would otherwise pass unseen. None for a fitted trunk or a new one."""
    from bayes_scaling.posterior import NEW_TRUNK

    trunks = [str(t) for t in post.meta.get("trunks", [])]
    if as_branch in (None, NEW_TRUNK) or not trunks or str(as_branch) in trunks:
        return None
    shown = ", ".join(trunks[:8]) + (f" and {len(trunks) - 8} more" if len(trunks) > 8 else "")
    return f"{as_branch!r} is not a fitted trunk (fitted: {shown}): answered for a new trunk's branch"


def plural(count: int, noun: str) -> str:
    """``plural(1, "run")`` -> "1 run", ``plural(3, "run")`` -> "3 runs"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def info(message: str) -> None:
    """Progress and notes go to stderr so ``--json`` output stays clean (over a ticker's status
    line, which is redrawn below at its next tick)."""
    if _status_line["shown"]:
        sys.stderr.write("\r\x1b[K")
    print(message, file=sys.stderr, flush=True)


_status_line = {"shown": False}  # a ticker's line is on the terminal now


def warn_untrusted(fits) -> None:
    """A saved fit whose sampler checks failed still answers, but says so on stderr first: a table
    read days after the fit must not lose its verdict. ``fits``: ``grouped.load_fits``'s pairs."""
    from bayes_scaling.diagnostics import CHECK_NAMES, design_limits, diagnose

    for group, post in fits:
        diagnosis = diagnose(post)
        prefix = group_prefix(group, post)
        limits = design_limits(post.runs.N, post.runs.D)
        if diagnosis.applicable and not diagnosis.ok:
            failed = ", ".join(dict.fromkeys(CHECK_NAMES.get(p.check, p.check) for p in diagnosis.problems
                                             if not p.efficiency))
            first = next(p for p in diagnosis.problems if not p.efficiency)
            advice = "the runs' design is the likely cause, below" if limits else first.advice.rstrip(".")
            info(prefix + f"warning: this fit failed its sampler checks ({failed}): do not trust its intervals yet "
                 f"('bayes-scaling report' shows the checks; {advice})")
        print_design_limits(post, prefix, limits)
        print_calibration_note(post, prefix)


def checks_json(post) -> dict:
    """For JSON answers, what ``warn_untrusted`` says on stderr: the fit's sampler checks (``ok``: null where
    they do not apply), their verdict, what its runs cannot identify, and a note on the calibration's refits."""
    from bayes_scaling.diagnostics import design_limits, diagnose
    from bayes_scaling.extrapolation import missed_modes_note

    diagnosis = diagnose(post)
    return {"checks": {"ok": bool(diagnosis.ok) if diagnosis.applicable else None, "verdict": diagnosis.verdict(),
                       "design_limits": list(design_limits(post.runs.N, post.runs.D)),
                       "calibration_note": missed_modes_note(post.meta)}}


def print_calibration_note(post, prefix: str = "") -> None:
    """A line on stderr where the fit's drift was calibrated on refits that missed their mode
    (``extrapolation.missed_modes_note``)."""
    from bayes_scaling.extrapolation import missed_modes_note

    note = missed_modes_note(post.meta)
    if note:
        info(prefix + "note: " + note)


def print_design_limits(post, prefix: str = "", limits: list[str] | None = None) -> None:
    """One line on stderr per thing the fit's runs cannot identify (``diagnostics.design_limits``, unless
    ``limits`` gives them already)."""
    from bayes_scaling.diagnostics import DESIGN_ADVICE, design_limits

    limits = design_limits(post.runs.N, post.runs.D) if limits is None else limits
    for limit in limits:
        info(prefix + f"warning: these runs cannot identify the law: {limit}")
    if limits:
        info(prefix + f"  {DESIGN_ADVICE}")


def show_progress(args=None) -> bool:
    """Whether a command draws progress bars: stderr is a terminal and no ``--json`` was given."""
    return not getattr(args, "json", False) and _is_terminal(sys.stderr)


class ticker:
    """``with ticker("bootstrap: 4000 refits", quiet=args.json):`` -- for a wait that may pass
    about 2 s: after ``after`` seconds a one-line status with the elapsed time appears on stderr
    and is redrawn every half second, then cleared when the block ends. Shown only when stderr is
    a terminal and not ``quiet`` (``--json``), so logs and pipes get nothing. ``update(text)``
    changes the label while the block runs."""

    def __init__(self, label: str, *, quiet: bool = False, after: float = 2.0, stream=None):
        self.label, self.after = label, after
        self.stream = stream or sys.stderr
        self.enabled = not quiet and _is_terminal(self.stream)
        self.shown = False
        self._stop = None

    def update(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> "ticker":
        import threading
        import time

        self.start = time.monotonic()
        if self.enabled:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, daemon=True, name="bayes-scaling-ticker")
            self._thread.start()
        return self

    def _run(self) -> None:
        import shutil
        import time

        if self._stop.wait(self.after):
            return
        while True:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            text = f"{self.label} ({time.monotonic() - self.start:.0f} s)"
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self.stream.flush()
            self.shown = _status_line["shown"] = True
            if self._stop.wait(0.5):
                return

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            _status_line["shown"] = False


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
