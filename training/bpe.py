"""Optional byte-level BPE, trained offline on the training split with the `tokenizers` package.

Used when ``RunSpec.tokenizer == "bpe"``. The tokenizer is trained on the training split only (so
validation text never shapes the vocabulary), with ``vocab_size`` entries including the 256 byte
symbols; training and encoding are deterministic for a given text. Tokenised splits are cached under
``$TRAINING_CACHE`` (default ``~/.cache/bayes-scaling-training``), keyed by the hash of the text and the vocabulary size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.spec import SpecError

CHUNK = 1 << 16  # characters per training/encoding chunk


def cache_dir() -> Path:
    return Path(os.environ.get("TRAINING_CACHE", Path.home() / ".cache" / "bayes-scaling-training"))


def _chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def train_bpe(train_bytes: bytes, vocab_size: int) -> tuple[Callable[[bytes], np.ndarray], int]:
    """(encode: bytes -> uint16/uint32 tokens, vocabulary size) for a BPE trained on ``train_bytes``."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        raise SpecError('RunSpec.tokenizer="bpe": needs the `tokenizers` package (pip install tokenizers); '
                        'or use tokenizer="byte"') from None
    if vocab_size <= 256:
        raise SpecError(f"RunSpec.vocab_size={vocab_size}: a BPE vocabulary needs more than the 256 byte symbols")
    path = cache_dir() / f"bpe-{hashlib.sha256(train_bytes).hexdigest()[:16]}-{vocab_size}.json"
    if path.exists():
        tokenizer = Tokenizer.from_file(str(path))
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tokenizer.train_from_iterator(_chunks(train_bytes.decode("utf-8", errors="replace")), trainer=trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(path))
    vocab = tokenizer.get_vocab_size()
    dtype = np.uint16 if vocab < 2**16 else np.uint32

    def encode(data: bytes) -> np.ndarray:
        key = hashlib.sha256(data).hexdigest()[:16]
        cached = path.with_name(f"{path.stem}-{key}.npy")
        if cached.exists():
            return np.load(cached, mmap_mode="r")
        pieces = tokenizer.encode_batch(_chunks(data.decode("utf-8", errors="replace")))
        tokens = np.concatenate([np.asarray(p.ids, dtype=dtype) for p in pieces]) if pieces else np.zeros(0, dtype)
        np.save(cached, tokens)
        return tokens

    return encode, vocab
