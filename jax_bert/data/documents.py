"""Pretraining data: documents -> tokenizer -> packed blocks of token ids, all numpy on the host.

Data spec
---------
A plain dict or an `ml_collections.ConfigDict` with these fields (unknown fields are an error):

  source               'offline' | 'hub' | 'files'.
                         offline: the standard library's docstrings (`jax_bert.corpus`),
                           a few MB of English that needs no download (tests, quick start).
                         hub: Hugging Face datasets, listed in `datasets`.
                         files: local files matched by `files`.
  datasets             (hub) a list of {name, config=None, split='train', text_column='text',
                         revision=None}, or of "name" / "name:config" strings. The real runs use
                           {name: 'wikimedia/wikipedia', config: '20231101.en'} and
                           {name: 'bookcorpus/bookcorpus'} (the former 'bookcorpus'; the hub
                           serves it as a loading script, which recent `datasets` releases no
                           longer run: pass revision='refs/convert/parquet' for the hub's
                           parquet conversion). See WIKIPEDIA and BOOKCORPUS below.
                         BookCorpus rows are single sentences, so each sentence is a
                         document with its own [CLS]/[SEP].
                         Loading downloads and caches the whole dataset (memory-mapped Arrow);
                         nothing is read into memory until tokenisation.
  files                (files) a glob or a list of globs ('~' and '**' work). Each glob is
                         one dataset: its files are read in sorted order, through `datasets`
                         (jax_bert/data/local_files.py: converted once to memory-mapped Arrow in
                         `<data_cache_dir>/datasets`, as the hub's are). By extension:
                           .txt      one document per blank-line separated paragraph
                                     (txt_documents='paragraph', the default) or one per
                                     file (txt_documents='file');
                           .jsonl    one JSON object per line, the text in `text_column`;
                           .parquet  the text in column `text_column`.
  text_column          (files) the JSON field / parquet column holding the text ('text').
  txt_documents        (files) 'paragraph' or 'file', see above.
  validation_fraction  0.05: the FIRST 5% of each dataset's documents (at least one, at most
                         all but one) are the validation split, as the original project did;
                         0 means no validation split.
  max_documents        None or 0 (all), or a cap applied to EACH dataset before the split,
                         for tiny runs.

Empty or whitespace-only documents are dropped everywhere.

Pipeline
--------
  load_documents(spec)           -> (train_docs, validation_docs)
  get_tokenizer(...)             -> a fast tokenizer: a hub/local name, or a WordPiece vocab
                                    trained on the documents and cached in workdir/tokenizer/
  tokenize_to_blocks(...)        -> int32 [N, seq_len]: every document as [CLS] ... [SEP],
                                    concatenated and cut into blocks; cached on disk as .npy
  prepare_blocks(spec, ...)      -> (train_blocks, validation_blocks), reading the documents
                                    only when a split is not cached yet
"""
from __future__ import annotations

import collections.abc
import hashlib
import json
import os
import platform
from typing import Any, Sequence

from jax_bert.data import corpus, local_files
from jax_bert.data.arrow_text import ArrowText, Concat

WIKIPEDIA = {"name": "wikimedia/wikipedia", "config": "20231101.en"}
BOOKCORPUS = {"name": "bookcorpus/bookcorpus", "revision": "refs/convert/parquet"}

_SPEC_DEFAULTS = {
    "source": "offline",
    "datasets": [],
    "files": [],
    "text_column": "text",
    "txt_documents": "paragraph",
    "validation_fraction": 0.05,
    "max_documents": None,
}
NOT_CORPUS = ("build_on_process0_wait_s",)  # how the caches are waited for (jax_bert/data/prepare.py)
_HUB_DEFAULTS = {"name": None, "config": None, "split": "train", "text_column": "text",
                 "revision": None}



# ----------------------------------------------------------------------------- spec


def normalize_spec(spec: Any) -> dict:
    """The spec as a plain dict with defaults filled in; raises ValueError on bad fields."""
    if hasattr(spec, "to_dict"):  # ml_collections.ConfigDict
        spec = spec.to_dict()
    if not isinstance(spec, collections.abc.Mapping):
        raise ValueError(f"data spec must be a dict or ConfigDict, got {type(spec).__name__}")
    # Settings of the data group that are not about the corpus: dropped, so that no cache key depends on them.
    spec = {k: v for k, v in spec.items() if k not in NOT_CORPUS}
    unknown = set(spec) - set(_SPEC_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown data spec field(s) {sorted(unknown)}; "
                         f"known fields are {sorted(_SPEC_DEFAULTS)}")
    out = {**_SPEC_DEFAULTS, **spec}
    if out["source"] not in ("offline", "hub", "files"):
        raise ValueError(f"data.source must be 'offline', 'hub' or 'files', got {out['source']!r}")
    fraction = out["validation_fraction"]
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"data.validation_fraction must be in [0, 1), got {fraction}")
    if out["max_documents"] is not None and int(out["max_documents"]) < 0:
        raise ValueError(f"data.max_documents must be None, 0 (no cap) or positive, "
                         f"got {out['max_documents']}")
    if out["txt_documents"] not in ("paragraph", "file"):
        raise ValueError(f"data.txt_documents must be 'paragraph' or 'file', "
                         f"got {out['txt_documents']!r}")
    if isinstance(out["files"], str):
        out["files"] = [out["files"]]
    out["files"] = list(out["files"])
    hub = []
    for entry in out["datasets"]:
        if isinstance(entry, str):  # "name" or "name:config" (the command-line form)
            name, _, config = entry.partition(":")
            entry = {"name": name, "config": config or None}
        else:
            entry = dict(entry)
        bad = set(entry) - set(_HUB_DEFAULTS)
        if bad:
            raise ValueError(f"unknown field(s) {sorted(bad)} in hub dataset {entry}; "
                             f"known fields are {sorted(_HUB_DEFAULTS)}")
        entry = {**_HUB_DEFAULTS, **entry}
        if not entry["name"]:
            raise ValueError(f"hub dataset {entry} has no name")
        hub.append(entry)
    out["datasets"] = hub
    if out["source"] == "hub" and not hub:
        raise ValueError("data.source='hub' needs data.datasets, e.g. "
                         f"[{WIKIPEDIA}, {BOOKCORPUS}]")
    if out["source"] == "files" and not out["files"]:
        raise ValueError("data.source='files' needs data.files: a glob or a list of globs "
                         "of .txt / .jsonl / .parquet files")
    return out


def datasets_cache_dir(data_cache_dir: str) -> str:
    """Where the Arrow copies of local corpus files are kept: beside the block caches made from them."""
    return os.path.join(data_cache_dir, "datasets")


def data_fingerprint(spec: Any) -> dict:
    """What the documents depend on, for cache keys: the spec, plus the size and mtime of
    every matched file (source='files') or the Python version (source='offline')."""
    spec = normalize_spec(spec)
    out: dict[str, Any] = {"spec": spec}
    if spec["source"] == "files":
        out["files"] = [[(p, os.path.getsize(p), os.stat(p).st_mtime_ns) for p in local_files.expand(g)]
                        for g in spec["files"]]
    elif spec["source"] == "offline":
        out["python"] = platform.python_version()
    return out


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


# ----------------------------------------------------------------------------- documents


def _split_point(n: int, fraction: float, what: str) -> int:
    """How many leading documents of a dataset of n go to validation."""
    if fraction == 0:
        return 0
    if n < 2:
        raise ValueError(f"{what} has {n} document(s): at least 2 are needed for a train/"
                         "validation split; add data or set data.validation_fraction=0")
    return min(max(1, round(n * fraction)), n - 1)


def _cap(n: int, max_documents) -> int:
    return min(n, int(max_documents)) if max_documents else n


def load_documents(spec: Any, cache_dir: str | None = None) -> tuple[Sequence[str], Sequence[str]]:
    """(train_docs, validation_docs) for a data spec (see the module docstring).

    Both are sized sequences of str. The first `validation_fraction` of EACH dataset is its
    validation part; the train part is the rest; the parts of several datasets are
    concatenated in the order given. Raises ValueError for missing or unreadable files, an
    empty corpus, or a hub dataset that cannot be loaded (e.g. offline). Local files are converted to
    Arrow in `cache_dir` (None: the datasets library's own cache, ~/.cache/huggingface/datasets).
    """
    spec = normalize_spec(spec)
    fraction = float(spec["validation_fraction"])
    if spec["source"] == "hub":
        named = [(f"hub dataset {d['name']!r}", _load_hub(d)) for d in spec["datasets"]]
    elif spec["source"] == "files":
        named = [(f"files {g!r}", local_files.load_files(g, spec, cache_dir)) for g in spec["files"]]
    else:
        named = [("the offline corpus", corpus.offline_documents())]

    train_parts, val_parts = [], []
    for what, docs in named:
        n = _cap(len(docs), spec["max_documents"])
        if n == 0:
            raise ValueError(f"{what} holds no documents (after dropping empty ones); "
                             "check that the data has text in it")
        k = _split_point(n, fraction, what)
        if isinstance(docs, ArrowText):
            val_parts.append(docs.view(0, k))
            train_parts.append(docs.view(k, n))
        else:
            val_parts.append(docs[:k])
            train_parts.append(docs[k:n])
    if all(isinstance(p, list) for p in train_parts + val_parts):
        return [d for p in train_parts for d in p], [d for p in val_parts for d in p]
    return Concat(train_parts), Concat(val_parts)


def _load_hub(entry: dict) -> ArrowText:
    import datasets  # heavy import: only when the hub is used

    what = f"hub dataset {entry['name']!r}" + (f" (config {entry['config']!r})"
                                              if entry["config"] else "")
    try:
        ds = datasets.load_dataset(entry["name"], entry["config"], split=entry["split"],
                                   revision=entry["revision"])
    except (OSError, ValueError, RuntimeError, datasets.exceptions.DatasetsError) as e:
        # OSError covers ConnectionError/OfflineModeIsEnabled, HTTP errors, missing files;
        # RuntimeError is what datasets>=4 raises for a repo that is a loading script.
        hint = (" The repo is a loading script: pass revision='refs/convert/parquet' for "
                "the hub's parquet conversion." if "scripts are no longer" in str(e) else "")
        raise ValueError(
            f"could not load {what}, split {entry['split']!r}: {type(e).__name__}: {e}.{hint} "
            "Without network access (or with HF_DATASETS_OFFLINE=1 and no cached copy) use "
            "source='files' with local .txt/.jsonl/.parquet files, or source='offline'."
        ) from e
    column = entry["text_column"]
    if column not in ds.column_names:
        raise ValueError(f"{what} has no column {column!r}; its columns are "
                         f"{ds.column_names}: set text_column")
    return ArrowText([ds], column)
