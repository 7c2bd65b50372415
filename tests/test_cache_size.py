"""The on-disk caches stay under a size: ``sampler_cache.evict`` deletes the least recently used
files (a read renews a file's time), and ``configure`` bounds JAX's own cache."""

from __future__ import annotations

import os
import time

import pytest

from bayes_scaling import _jax_setup
from bayes_scaling.errors import InputError
from bayes_scaling.fitting import sampler_cache


def test_cache_max_bytes_reads_the_environment(monkeypatch):
    monkeypatch.delenv("BAYES_SCALING_CACHE_MAX_MB", raising=False)
    assert _jax_setup.cache_max_bytes() == _jax_setup.DEFAULT_CACHE_MAX_MB * 2**20
    monkeypatch.setenv("BAYES_SCALING_CACHE_MAX_MB", "64")
    assert _jax_setup.cache_max_bytes() == 64 * 2**20
    for bad in ("abc", "0", "-5", "inf", "nan"):
        monkeypatch.setenv("BAYES_SCALING_CACHE_MAX_MB", bad)
        with pytest.raises(InputError, match=f"BAYES_SCALING_CACHE_MAX_MB='{bad}'.*positive number of megabytes"):
            _jax_setup.cache_max_bytes()


def test_writes_evict_the_least_recently_used_files(tmp_path, monkeypatch):
    """Three 10 kB files under a 25 kB bound: writing the third deletes the oldest; a file read
    since then outlives one written after it."""
    monkeypatch.setenv("BAYES_SCALING_CACHE_MAX_MB", str(25_000 / 2**20))
    now = time.time()

    def write(name, age):
        path = tmp_path / name
        sampler_cache._write(path, [bytes(10_000)])
        os.utime(path, (now - age, now - age))
        return path

    a, b = write("a.bin", 300), write("b.bin", 200)
    c = write("c.bin", 100)  # the write itself evicts: a is the least recently used
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "c.bin"]
    assert sampler_cache._parse(b) == [bytes(10_000)]  # read: b is now the most recently used
    write("d.bin", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "d.bin"]
    assert not a.exists() and not c.exists()


def test_evict_keeps_the_file_just_written_and_clears_stale_temporaries(tmp_path):
    now = time.time()
    for name, size, age in (("old.exe", 5_000, 50), ("new.exe", 5_000, 0),
                            (".tmp-killed", 100, 2 * sampler_cache.STALE_TEMPORARY_SECONDS), (".tmp-writing", 100, 0),
                            ("notes.txt", 100, 1e6)):
        (tmp_path / name).write_bytes(bytes(size))
        os.utime(tmp_path / name, (now - age, now - age))
    left = sampler_cache.evict(tmp_path, 1_000, keep=tmp_path / "old.exe")
    assert left == 5_000  # over the bound, but the file just written stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-writing", "notes.txt", "old.exe"]
