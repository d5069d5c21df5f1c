"""Tokenising on every core gives the serial result byte for byte; the vocabulary trained on a sample
(tokenizer.train_documents) is the one trained on those documents, the same in every process."""
import pytest

from jax_bert import data
from jax_bert.data import blocks, corpus


@pytest.fixture(scope="module")
def docs():
    return corpus.offline_documents()[:800]


@pytest.fixture(scope="module")
def tokenizer(docs, tmp_path_factory):
    return data.get_tokenizer(None, workdir=str(tmp_path_factory.mktemp("work")), documents=docs[:300],
                              vocab_size=700)


def test_the_block_cache_is_the_same_bytes_with_the_rust_thread_pool_as_serially(docs, tokenizer, tmp_path,
                                                                                 monkeypatch):
    caches = {}
    for parallel in ("false", "true"):
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", parallel)
        array = data.tokenize_to_blocks(docs, tokenizer, 64, cache_dir=str(tmp_path / parallel),
                                        cache_key_parts=["same"])
        with open(array.filename, "rb") as f:
            caches[parallel] = f.read()
    assert len(caches["true"]) > 64 * 4 * 100 and caches["true"] == caches["false"]


def test_the_direct_batch_encoder_gives_the_transformers_ids(docs, tokenizer):
    texts = list(docs[:200]) + ["", "  x  ", "Ünïcödé [MASK] text"]
    assert blocks.encode(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    tokenizer.backend_tokenizer.enable_truncation(8)  # settings of the Rust tokenizer that transformers undoes
    try:
        assert blocks.encode(tokenizer, texts) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    finally:
        tokenizer.backend_tokenizer.no_truncation()


def test_a_vocabulary_trained_on_the_first_documents_is_deterministic_and_recorded(docs, tmp_path):
    kwargs = dict(vocab_size=600, train_documents=250)
    first = data.get_tokenizer(None, workdir=str(tmp_path / "a"), documents=lambda: iter(docs), **kwargs)
    second = data.get_tokenizer(None, workdir=str(tmp_path / "b"), documents=lambda: iter(docs), **kwargs)
    on_sample = data.get_tokenizer(None, workdir=str(tmp_path / "c"), documents=docs[:250], vocab_size=600)
    data.get_tokenizer(None, workdir=str(tmp_path / "d"), documents=docs, vocab_size=600)
    read = lambda w: (tmp_path / w / "tokenizer" / "tokenizer.json").read_bytes()  # noqa: E731
    assert read("a") == read("b") == read("c") != read("d")
    assert first.get_vocab() == second.get_vocab() == on_sample.get_vocab()
    assert '"train_documents": 250' in (tmp_path / "a" / "tokenizer" / "training_settings.json").read_text()
    with pytest.raises(ValueError, match="trained with"):  # another sample is another vocabulary
        data.get_tokenizer(None, workdir=str(tmp_path / "a"), documents=docs, vocab_size=600)
