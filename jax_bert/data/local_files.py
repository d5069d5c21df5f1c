"""Local corpus files (.txt, .jsonl, .parquet) read through Hugging Face `datasets`, as the hub's are.

`load_files(pattern, ...)` gives the documents of one glob as an `ArrowText`: the files are converted once
by `datasets.load_dataset("text" | "json" | "parquet", data_files=...)` into Arrow files in the datasets
cache (by default `<data_cache_dir>/datasets`), then one batched `map` turns the rows into documents (the
.txt paragraph rule below, empty ones dropped) in one more Arrow file, which is read in batches. Both
steps are cached by `datasets`, so a second run on the same files converts nothing; memory stays at a
batch whatever the size of the corpus.

Documents, by extension (the files of a glob in sorted order):
  .txt      one per paragraph: the text of a file split where a line holding only whitespace separates
            two lines (regex `\\n\\s*\\n`), each part stripped (txt_documents='paragraph'); or the whole
            file stripped (txt_documents='file');
  .jsonl    the field `text_column` of each line's JSON object (a non-string value as its str());
  .parquet  the column `text_column`.
Empty and whitespace-only documents are dropped. A bad file is one ValueError naming it: the reader that
finds the line (a .jsonl line that is not JSON, or lacks the field) runs only when `datasets` has failed.
"""
from __future__ import annotations

import codecs
import glob
import json
import os
import re

from jax_bert.data.arrow_text import ArrowText

EXTENSIONS = {".txt": "text", ".jsonl": "json", ".parquet": "parquet"}
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
COLUMN = "text"  # the documents' column in the Arrow file the map writes
TEXT_CHUNK_BYTES = 10 << 20  # what the text builder reads at a time (its default); the tests make it small


def expand(pattern: str) -> list[str]:
    """The files a glob matches, sorted; ValueError when none."""
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
    if not paths:
        raise ValueError(f"no files match {pattern!r} (data.files); check the path and the "
                         "pattern, or use source='offline' for the built-in corpus")
    return paths


def _builder(path: str) -> str:
    for ext, builder in EXTENSIONS.items():
        if path.endswith(ext):
            return builder
    raise ValueError(f"{path}: unsupported file type; data.files must match .txt, .jsonl or .parquet files")


def _runs(paths: list[str]) -> list[tuple[str, list[str]]]:
    """The sorted files cut into runs of one builder (a glob may mix .txt and .jsonl), order kept."""
    runs: list[tuple[str, list[str]]] = []
    for path in paths:
        builder = _builder(path)
        if runs and runs[-1][0] == builder:
            runs[-1][1].append(path)
        else:
            runs.append((builder, [path]))
    return runs


def _to_documents(batch: dict, *, source_column: str, paragraphs: bool, strip: bool) -> dict:
    """A batched `map`: rows -> documents. With `paragraphs`, the rows are the text builder's pieces (split on
    exactly "\\n\\n"), refined by the paragraph rule; every blank-line separator holds a "\\n\\n" or is
    whole inside one piece, so this gives what splitting the whole file gives."""
    out = []
    for text in batch[source_column]:
        if text is None:
            continue
        if not isinstance(text, str):
            text = str(text)
        pieces = _PARAGRAPH_BREAK.split(text) if paragraphs else [text]
        for piece in pieces:
            if strip:
                piece = piece.strip()
            if piece and not piece.isspace():
                out.append(piece)
    return {COLUMN: out}


def load_files(pattern: str, spec: dict, cache_dir: str | None = None) -> ArrowText:
    """The documents of the files one glob matches (see the module docstring)."""
    paths = expand(pattern)
    runs = _runs(paths)
    parts = [_documents(builder, files, pattern, spec, cache_dir) for builder, files in runs]
    return ArrowText(parts, COLUMN)


def _documents(builder: str, paths: list[str], pattern: str, spec: dict, cache_dir: str | None):
    import datasets

    column = spec["text_column"]
    kwargs: dict = {}
    if builder == "text":
        kwargs = {"sample_by": "paragraph" if spec["txt_documents"] == "paragraph" else "document",
                  "encoding": "utf-8", "chunksize": TEXT_CHUNK_BYTES}
        source_column = "text"
    elif builder == "parquet":
        _check_parquet(paths, column)
        kwargs = {"columns": [column]}
        source_column = column
    else:
        source_column = column
    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # tqdm lines per conversion step; the caller shows its own progress
    try:
        try:
            ds = datasets.load_dataset(builder, data_files=paths, split="train", cache_dir=cache_dir, **kwargs)
        except Exception as e:  # noqa: BLE001 - datasets wraps the cause in its own error types
            raise _named_error(builder, paths, pattern, column, e) from e
        if source_column not in ds.column_names:
            raise _named_error(builder, paths, pattern, column, None) or ValueError(
                f"files {pattern!r} have no field {column!r}; their columns are {ds.column_names}: "
                "set data.text_column")
        ds = ds.map(_to_documents, batched=True, batch_size=1000, remove_columns=ds.column_names,
                    fn_kwargs={"source_column": source_column, "paragraphs": spec["txt_documents"] == "paragraph"
                               and builder == "text", "strip": builder == "text"},
                    desc="documents")
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    return ds


def _check_parquet(paths: list[str], column: str) -> None:
    """Each file's footer (cheap): a file that is not parquet, or lacks the column, is named."""
    import pyarrow.lib
    import pyarrow.parquet as pq

    for path in paths:
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (OSError, pyarrow.lib.ArrowException) as e:
            raise ValueError(f"{path} is not a readable parquet file: {e}") from e
        if column not in names:
            raise ValueError(f"{path} has no column {column!r}; its columns are {names}: set data.text_column")


def _named_error(builder: str, paths: list[str], pattern: str, column: str, error) -> ValueError:
    """The error `datasets` met, as one line naming the file (and line): each file is read again, by hand,
    until the first that fails."""
    for path in paths:
        try:
            if builder == "json":
                _check_jsonl(path, column)
            elif builder == "text":
                _check_utf8(path)
        except (OSError, UnicodeDecodeError) as e:
            return ValueError(f"cannot read {path} (matched by {pattern!r}): {e}")
        except ValueError as e:
            return e
    if error is None:
        return None
    cause = error.__cause__ or error
    return ValueError(f"cannot read the files {pattern!r}: {type(cause).__name__}: "
                      f"{' '.join(str(cause).split())[:300]}")


def _check_utf8(path: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            decoder.decode(block)
        decoder.decode(b"", final=True)


def _check_jsonl(path: str, column: str) -> None:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno} is not valid JSON ({e}); .jsonl files "
                                 "need one JSON object per line") from e
            if not isinstance(record, dict) or column not in record:
                raise ValueError(f"{path}:{lineno} has no field {column!r}; set "
                                 "data.text_column to the field that holds the text")
