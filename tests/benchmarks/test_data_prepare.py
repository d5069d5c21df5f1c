"""The corpus-preparation benchmark (benchmarks/data_prepare.py): its corpora and one child run, tiny."""
import json
import os

import pytest

from benchmarks import data_prepare
from jax_bert.data import corpus


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "parquet"])
def test_the_generated_corpus_has_the_size_asked_and_is_the_same_every_time(tmp_path, fmt):
    docs = [f"Document {i} with some words in it." for i in range(50)]
    sizes = []
    for name in ("a", "b"):
        data_prepare.write_corpus(str(tmp_path / name), 1, fmt, docs)
        paths = sorted(p for p in os.listdir(tmp_path / name) if p.endswith(fmt))
        sizes.append([(tmp_path / name / p).read_bytes() for p in paths])
    assert sizes[0] == sizes[1]
    total = sum(map(len, sizes[0]))
    if fmt == "txt":  # S MB of text; a JSONL record adds its keys and quotes, parquet compresses
        assert 1 << 20 <= total <= (1 << 20) + 4096
    elif fmt == "jsonl":
        assert total >= 1 << 20


@pytest.mark.slow
def test_one_run_reports_the_childs_memory_and_tokens(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "offline_documents", lambda: [f"Paragraph {i} is about {i % 17} things." for i in
                                                              range(3000)])
    out = tmp_path / "out.json"
    data_prepare.main(["--mb", "1", "--workdir", str(tmp_path / "w"), "--json", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["tokens"] > 200_000
    # ru_maxrss is a high-water mark: preparing 1 MB may never pass the peak the imports (jax, datasets)
    # already set, so the peak is at least the imports' and, for 1 MB of text, not much more.
    assert row["peak_rss_mb"] >= row["rss_after_imports_mb"] > 50
    assert row["peak_rss_mb"] - row["rss_after_imports_mb"] < 1024
    assert row["module"].endswith(os.path.join("jax_bert", "data", "__init__.py"))
