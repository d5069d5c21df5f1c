"""The local-file reader (datasets' text / json / parquet builders, then one map to documents) gives the
documents of the hand-written reader it replaced, kept here as the reference."""
import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jax_bert import data
from jax_bert.data import arrow_text, local_files


def reference_read(path: str, text_column: str = "text", txt_documents: str = "paragraph") -> list[str]:
    """The reader the `files` source used before it went through `datasets` (whole files in memory)."""
    if path.endswith(".txt"):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        docs = [text.strip()] if txt_documents == "file" else [p.strip() for p in re.split(r"\n\s*\n", text)]
    elif path.endswith(".jsonl"):
        docs = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    docs.append(str(json.loads(line)[text_column] or ""))
    else:
        docs = [t or "" for t in pq.read_table(path, columns=[text_column])[text_column].to_pylist()]
    return [d for d in docs if d and not d.isspace()]


_PIECES = ["word", "Ünïcödé", "x", " ", "  ", "\t", "\n", "\n\n", "\n \n", "\n\t\n\n", "\r\n", "\r\n\r\n",
           "\n\n\n", " \n", "\f", "\u2028", "end."]


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(n))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Text files with every kind of blank-line separator (CRLF, tabs, runs of blank lines, none at the end),
    one large enough to span the text builder's read chunks, and JSONL / parquet files with empty and null
    texts."""
    root = tmp_path_factory.mktemp("local_files")
    rng = random.Random(0)
    (root / "txt").mkdir()
    for i in range(4):
        with open(root / "txt" / f"{i}.txt", "w", encoding="utf-8", newline="") as f:
            f.write(_random_text(rng, 30 if i < 3 else 40_000))
    (root / "txt" / "empty.txt").write_text("")
    rows = [_random_text(rng, rng.randint(0, 12)) for _ in range(300)] + ["", "   ", "last one"]
    with open(root / "docs.jsonl", "w", encoding="utf-8") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({"id": i, "body": r}) + "\n")
            if i % 50 == 0:
                f.write("\n")  # blank lines are skipped
    pq.write_table(pa.table({"body": rows[:150] + [None] + rows[150:]}), root / "docs.parquet")
    return root


@pytest.mark.parametrize("pattern,settings", [
    ("txt/*.txt", {}),
    ("txt/*.txt", {"txt_documents": "file"}),
    ("*.jsonl", {"text_column": "body"}),
    ("*.parquet", {"text_column": "body"}),
])
def test_the_same_documents_and_split_as_the_reader_it_replaced(corpora, tmp_path, monkeypatch, pattern, settings):
    monkeypatch.setattr(local_files, "TEXT_CHUNK_BYTES", 997)  # paragraphs cut across the builder's reads
    paths = sorted(str(p) for p in corpora.glob(pattern))
    expected = [d for p in paths for d in reference_read(p, **settings)]
    assert len(expected) >= 4
    spec = {"source": "files", "files": str(corpora / pattern), **settings}
    train, validation = data.load_documents(spec, cache_dir=str(tmp_path))
    k = min(max(1, round(len(expected) * 0.05)), len(expected) - 1)
    assert list(validation) == expected[:k]
    assert list(train) == expected[k:]
    assert [train[i] for i in (0, len(train) - 1, -1)] == [expected[k], expected[-1], expected[-1]]
    # A second load reads the Arrow files datasets cached: the same documents.
    assert list(data.load_documents(spec, cache_dir=str(tmp_path))[0]) == expected[k:]


def test_documents_are_streamed_from_the_arrow_file_in_batches(corpora, tmp_path, monkeypatch):
    """The reader does not go through the dataset's memory map (whose read pages stay resident)."""
    monkeypatch.setattr(arrow_text, "READ_CHUNK", 7)
    train, _ = data.load_documents({"source": "files", "files": str(corpora / "*.jsonl"), "text_column": "body"},
                                   cache_dir=str(tmp_path))
    streamed = []
    monkeypatch.setattr(arrow_text, "_stream_file", _recording(arrow_text._stream_file, streamed))
    batches = list(train.batches())
    assert streamed and max(len(b) for b in batches) == 7
    assert [d for b in batches for d in b] == list(train)


def _recording(fn, calls):
    def wrapped(*args):
        calls.append(args)
        return fn(*args)
    return wrapped


def test_a_glob_of_mixed_formats_reads_each_file_in_sorted_order(corpora, tmp_path):
    spec = {"source": "files", "files": str(corpora / "docs.*"), "text_column": "body", "validation_fraction": 0}
    train, validation = data.load_documents(spec, cache_dir=str(tmp_path))
    expected = reference_read(str(corpora / "docs.jsonl"), "body") + reference_read(str(corpora / "docs.parquet"),
                                                                                   "body")
    assert list(train) == expected and len(validation) == 0


def test_a_jsonl_file_without_the_field_names_the_field(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"body": "x"}\n{"body": "y"}\n')
    with pytest.raises(ValueError, match=r"a\.jsonl:1 has no field 'text'"):
        data.load_documents({"source": "files", "files": str(tmp_path / "a.jsonl")}, cache_dir=str(tmp_path))
