"""Offline corpora, tokenisation, a deterministic train/validation split and batches.

Corpora (``RunSpec.corpus``):
  "stdlib"        the running Python's standard library source: every .py file under
                  ``sysconfig.get_paths()['stdlib']`` (site-packages excluded), in sorted path order.
                  Present on any machine that runs this package; no download.
  a text file or folder (all regular files below it, sorted), read as UTF-8-ish bytes.
  a .bin file     pre-tokenised tokens, nanoGPT style (flat uint16/uint32 array, memory-mapped);
                  a folder holding train.bin and val.bin uses those two as the split.

Split: for documents, a document goes to validation when the first byte of sha256(its relative path)
is below 256 * val_fraction (stable under adding or removing other files); a single document or a
single token file is split at its last val_fraction. Every corpus records an id and a content hash.

Batches: the window starts for step k are drawn by numpy's PCG64 seeded with (seed, k), so a batch
depends only on the seed and the step: a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.spec import RunSpec, SpecError

BYTE_VOCAB = 256


@dataclass(frozen=True)
class Corpus:
    """Token arrays for training and validation, plus what identifies them."""

    train: np.ndarray  # 1-D integer tokens
    val: np.ndarray
    vocab_size: int
    corpus_id: str
    corpus_hash: str  # sha256 of the raw content (documents with their names, or the token file)
    bytes_per_token: float  # on the validation split; 1.0 for bytes


def _stdlib_documents() -> tuple[str, list[tuple[str, bytes]]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())
    docs = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in paths]
    return f"python-stdlib-{platform.python_version()}", docs


def _user_documents(path: Path) -> tuple[str, list[tuple[str, bytes]]]:
    if path.is_file():
        return f"text:{path.name}", [(path.name, path.read_bytes())]
    paths = sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts))
    if not paths:
        raise SpecError(f"RunSpec.corpus={str(path)!r}: the folder holds no files")
    return f"text:{path.name}", [(p.relative_to(path).as_posix(), p.read_bytes()) for p in paths]


def _hash_documents(docs: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in docs:
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def split_documents(docs: list[tuple[str, bytes]], val_fraction: float) -> tuple[bytes, bytes]:
    """(train bytes, val bytes); documents are joined with a NUL byte between them."""
    if len(docs) == 1:
        data = docs[0][1]
        cut = int(len(data) * (1 - val_fraction))
        return data[:cut], data[cut:]
    threshold = 256 * val_fraction
    is_val = [hashlib.sha256(name.encode()).digest()[0] < threshold for name, _ in docs]
    train = b"\0".join(d for (_, d), v in zip(docs, is_val) if not v)
    val = b"\0".join(d for (_, d), v in zip(docs, is_val) if v)
    return train, val


@functools.lru_cache(maxsize=4)
def _load_text(corpus: str, val_fraction: float, tokenizer: str, vocab_size: int) -> Corpus:
    if corpus == "stdlib":
        corpus_id, docs = _stdlib_documents()
    else:
        corpus_id, docs = _user_documents(Path(corpus))
    content_hash = _hash_documents(docs)
    train_bytes, val_bytes = split_documents(docs, val_fraction)
    if tokenizer == "byte":
        train = np.frombuffer(train_bytes, dtype=np.uint8)
        val = np.frombuffer(val_bytes, dtype=np.uint8)
        return Corpus(train, val, BYTE_VOCAB, corpus_id, content_hash, 1.0)
    from training.bpe import train_bpe  # optional dependency: `tokenizers`

    encode, vocab = train_bpe(train_bytes, vocab_size)
    train, val = encode(train_bytes), encode(val_bytes)
    return Corpus(train, val, vocab, f"{corpus_id}+bpe{vocab}", content_hash, len(val_bytes) / max(1, len(val)))


def _load_tokens(path: Path, spec: RunSpec) -> Corpus:
    if spec.vocab_size <= 0:
        raise SpecError(f"RunSpec.vocab_size={spec.vocab_size}: a token file needs its vocabulary size (> 0)")
    if path.is_dir():
        train = np.memmap(path / "train.bin", dtype=spec.token_dtype, mode="r")
        val = np.memmap(path / "val.bin", dtype=spec.token_dtype, mode="r")
        content_hash = hashlib.sha256((_hash_file(path / "train.bin") + _hash_file(path / "val.bin")).encode()).hexdigest()
    else:
        tokens = np.memmap(path, dtype=spec.token_dtype, mode="r")
        cut = int(len(tokens) * (1 - spec.val_fraction))
        train, val = tokens[:cut], tokens[cut:]
        content_hash = _hash_file(path)
    return Corpus(train, val, spec.vocab_size, f"tokens:{path.name}", content_hash, float("nan"))


def load_corpus(spec: RunSpec) -> Corpus:
    """The spec's corpus, split and tokenised; raises ``SpecError`` naming ``corpus`` when it is unusable."""
    if spec.corpus != "stdlib":
        path = Path(spec.corpus).expanduser()
        if not path.exists():
            raise SpecError(f"RunSpec.corpus={spec.corpus!r}: no such file or folder (expected \"stdlib\", a text file or folder, or a .bin token file)")
        if path.suffix == ".bin" or (path.is_dir() and (path / "train.bin").exists()):
            corpus = _load_tokens(path, spec)
        else:
            corpus = _load_text(str(path.resolve()), spec.val_fraction, spec.tokenizer, spec.vocab_size)
    else:
        corpus = _load_text("stdlib", spec.val_fraction, spec.tokenizer, spec.vocab_size)
    for name, arr in (("training", corpus.train), ("validation", corpus.val)):
        if len(arr) < spec.context + 1:
            raise SpecError(
                f"RunSpec.corpus={spec.corpus!r}: the {name} split has {len(arr)} tokens, fewer than "
                f"context + 1 = {spec.context + 1}"
            )
    return corpus


def train_batch(tokens: np.ndarray, *, seed: int, step: int, batch_size: int, context: int) -> np.ndarray:
    """(batch_size, context + 1) int32 windows; the starts depend only on (seed, step)."""
    rng = np.random.Generator(np.random.PCG64([seed, step]))
    starts = rng.integers(0, len(tokens) - context, size=batch_size)
    return np.stack([np.asarray(tokens[s : s + context + 1], dtype=np.int32) for s in starts])


def eval_batches(tokens: np.ndarray, *, n_tokens: int, batch_size: int, context: int) -> list[np.ndarray]:
    """Fixed validation windows, evenly spaced over the split, about ``n_tokens`` scored tokens in all."""
    n_windows = -(-max(1, n_tokens // context) // batch_size) * batch_size  # whole batches: one compiled shape
    starts = np.linspace(0, len(tokens) - context - 1, n_windows).astype(np.int64)
    windows = np.stack([np.asarray(tokens[s : s + context + 1], dtype=np.int32) for s in starts])
    return [windows[i : i + batch_size] for i in range(0, n_windows, batch_size)]
