import numpy as np
import pytest

from training import data
from training.spec import RunSpec, SpecError


def test_stdlib_corpus_is_deterministic_and_split_by_document():
    spec = RunSpec(params=20_000, tokens=10_000)
    corpus = data.load_corpus(spec)
    again = data._load_text.__wrapped__("stdlib", spec.val_fraction, "byte", 0)  # a fresh read, not the cache
    assert corpus.corpus_id.startswith("python-stdlib-") and len(corpus.corpus_hash) == 64
    assert again.corpus_hash == corpus.corpus_hash
    np.testing.assert_array_equal(again.val[:10_000], corpus.val[:10_000])
    assert corpus.vocab_size == 256 and corpus.train.dtype == np.uint8
    assert 0.05 < len(corpus.val) / (len(corpus.train) + len(corpus.val)) < 0.2


def test_split_keeps_documents_whole_and_apart():
    docs = [(f"doc{i}.txt", f"<{i}>".encode() * 5) for i in range(200)]
    train, val = data.split_documents(docs, 0.2)
    in_val = {name for name, body in docs if body in val}
    in_train = {name for name, body in docs if body in train}
    assert in_val and in_train and not (in_val & in_train)
    assert len(in_val) + len(in_train) == 200


def test_text_folder_and_token_file_corpora(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    corpus = data.load_corpus(RunSpec(params=20_000, tokens=10_000, corpus=str(folder), context=16, eval_tokens=16))
    assert corpus.corpus_id == "text:texts" and len(corpus.train) > 0
    tokens = (np.arange(10_000) % 1000).astype(np.uint16)
    tokens.tofile(tmp_path / "tokens.bin")
    spec = RunSpec(params=20_000, tokens=10_000, corpus=str(tmp_path / "tokens.bin"), vocab_size=1000, context=16, eval_tokens=16)
    corpus = data.load_corpus(spec)
    assert isinstance(corpus.train, np.memmap) and corpus.vocab_size == 1000
    np.testing.assert_array_equal(np.concatenate([corpus.train, corpus.val]), tokens)
    with pytest.raises(SpecError, match="vocab_size"):
        data.load_corpus(RunSpec(params=20_000, tokens=10_000, corpus=str(tmp_path / "tokens.bin")))


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match=r"RunSpec.corpus='.*nowhere': no such file or folder"):
        data.load_corpus(RunSpec(params=20_000, tokens=10_000, corpus=str(tmp_path / "nowhere")))


def test_batches_depend_only_on_seed_and_step():
    tokens = np.arange(5000, dtype=np.uint16)
    a = data.train_batch(tokens, seed=3, step=7, batch_size=4, context=8)
    b = data.train_batch(tokens, seed=3, step=7, batch_size=4, context=8)
    c = data.train_batch(tokens, seed=3, step=8, batch_size=4, context=8)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 9) and a.dtype == np.int32 and not np.array_equal(a, c)
    np.testing.assert_array_equal(np.diff(a, axis=1), 1)  # contiguous windows


def test_bpe_tokenizer_or_a_clear_error_without_it(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv("TRAINING_CACHE", str(tmp_path / "cache"))
    text = tmp_path / "text.txt"
    text.write_text("def add(a, b):\n    return a + b\n\n" * 400 + "class Point:\n    x: int\n" * 300)
    spec = RunSpec(params=20_000, tokens=10_000, corpus=str(text), tokenizer="bpe", vocab_size=300, context=16, eval_tokens=16)
    if importlib.util.find_spec("tokenizers") is None:
        with pytest.raises(SpecError, match=r'RunSpec.tokenizer="bpe": needs the `tokenizers` package'):
            data.load_corpus(spec)
        return
    corpus = data.load_corpus(spec)
    assert corpus.vocab_size <= 300 and corpus.corpus_id.endswith(f"+bpe{corpus.vocab_size}")
    assert corpus.train.max() < corpus.vocab_size and corpus.bytes_per_token > 1.5  # merges shorten the text
