"""A grouped fit's directory: one saved fit per group and the population's, read as one fit.

``bayes-scaling fit --group-by COLUMN --out DIR`` (``save_grouped``) writes

    DIR/grouped_fit.json     the manifest: {"kind": "grouped fit", "members": [{"group", "path"}, ...], ...}
    DIR/groups/NAME/         each group's saved fit (``Posterior.save``)
    DIR/population/          a new group's law (absent under pooling "none")

``load_fits(DIR)`` reads a single saved fit as ``[(None, posterior)]`` and a grouped directory as
``[(label, posterior), ...]``, groups first, then the population; ``frontier``, ``predict`` and
``report`` take either. A grouped directory written before the manifest (``groups/*/meta.json``
and ``population/``) reads the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Mapping

from bayes_scaling.errors import InputError
from bayes_scaling.posterior import META_FILE, Posterior, check_fit_directory, replace_directory

MANIFEST_FILE = "grouped_fit.json"
GROUPS_DIR, POPULATION_DIR = "groups", "population"
KIND = "grouped fit"


def save_grouped(directory: str | Path, groups: Mapping[str, Posterior], population: Posterior | None,
                 info: Mapping | None = None) -> dict[str, Posterior]:
    """Save each group's fit under DIR/groups/NAME, the population's under DIR/population, and the
    manifest listing them (``info``: extra fields such as the pooling). Returns the members by
    their path under DIR ("groups/NAME", "population")."""
    directory = check_fit_directory(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.saving-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    members, labels, used = {}, {}, set()
    for name, post in groups.items():
        rel = f"{GROUPS_DIR}/{group_folder(name, used)}"
        members[rel], labels[rel] = post, str(post.meta.get("group", name))  # the manifest names the group
    if population is not None:
        members[POPULATION_DIR] = population
    try:  # written aside and moved into place whole, as Posterior.save does (a plain fit there is replaced)
        for rel, post in members.items():
            post.save(tmp / rel)
        manifest = {"kind": KIND, **(info or {}),
                    "members": [{"group": labels.get(rel) or _label(post, rel), "path": rel} for rel, post in members.items()]}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, directory)
    return members


def group_folder(name, used: set[str]) -> str:
    """A group's folder name: the name with characters other than letters, digits and ``._+-`` as ``_``
    (no path separators, never "." or ".."), made unique among ``used`` (which it joins)."""
    import re

    base = re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)).strip(".") or "group"
    folder, k = base, 1
    while folder.lower() in used:
        k += 1
        folder = f"{base}-{k}"
    used.add(folder.lower())
    return folder


def group_column(directory: str | Path) -> str | None:
    """The column of the fitted table that named each run's group (``fit --group-by COLUMN``), as the manifest
    records it; None for a single fit, or a grouped fit saved before it was recorded."""
    manifest = Path(directory) / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        value = json.loads(manifest.read_text(encoding="utf-8")).get("group_column")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def is_grouped(directory: str | Path) -> bool:
    """Whether DIR is a grouped fit's directory (a manifest, or the older layout without one)."""
    directory = Path(directory)
    return (directory / MANIFEST_FILE).is_file() or bool(_old_layout(directory))


def member_paths(directory: str | Path) -> list[str]:
    """A grouped fit's members, as paths relative to its directory (its manifest's, or the older layout's)."""
    directory = Path(directory)
    manifest = directory / MANIFEST_FILE
    return _manifest_paths(manifest) if manifest.is_file() else _old_layout(directory)


def load_fits(directory: str | Path) -> list[tuple[str | None, Posterior]]:
    """A saved fit as ``[(None, posterior)]``; a grouped fit as ``[(label, posterior), ...]`` (each
    group by its name, then the population). Anything else raises ``InputError`` saying what was expected."""
    directory = Path(directory)
    if not directory.is_dir() or (directory / META_FILE).exists():
        return [(None, Posterior.load(directory))]  # Posterior.load says what is wrong with it
    manifest = directory / MANIFEST_FILE
    if manifest.is_file():
        paths = _manifest_paths(manifest)
    else:
        paths = _old_layout(directory)
        if not paths:
            raise InputError(f"{directory} is not a saved fit (no {META_FILE}) nor a grouped fit (no {MANIFEST_FILE}); "
                             "create one with 'bayes-scaling fit --out DIR' (add --group-by COLUMN for a grouped fit)")
    return [(_label(post, rel), post) for rel in paths for post in [Posterior.load(directory / rel)]]


def _manifest_paths(manifest: Path) -> list[str]:
    expected = (f"; expected the JSON object 'bayes-scaling fit --group-by' writes, with a 'members' list of "
                "{'group', 'path'} (rerun the fit to recreate it)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{manifest}: not valid JSON ({err.__class__.__name__}){expected}") from None
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and isinstance(m.get("path"), str) for m in members):
        raise InputError(f"{manifest}: no members listed{expected}")
    return [m["path"] for m in members]


def _old_layout(directory: Path) -> list[str]:
    groups = directory / GROUPS_DIR
    paths = sorted(f"{GROUPS_DIR}/{d.name}" for d in groups.iterdir() if (d / META_FILE).is_file()) \
        if groups.is_dir() else []
    if paths and (directory / POPULATION_DIR / META_FILE).is_file():
        paths.append(POPULATION_DIR)
    return paths


def _label(post: Posterior, rel: str) -> str:
    """The member's group as its fit recorded it (the population's: "population (new group)")."""
    return str(post.meta.get("group", rel.removeprefix(f"{GROUPS_DIR}/")))
