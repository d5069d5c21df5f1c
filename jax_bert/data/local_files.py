"""Local corpus files (.txt, .jsonl, .parquet) read through Hugging Face `datasets`, as the hub's are.

`load_files(pattern, ...)` gives the documents of one glob as an `ArrowText`: the files are converted once
by `datasets.load_dataset("text" | "json" | "parquet", data_files=...)` into Arrow files in the datasets
cache (by default `<data_cache_dir>/datasets`), then the rows become documents (the .txt paragraph rule
below, empty ones dropped) in one more Arrow file beside them, which is read in batches. Both steps are
cached, so a second run on the same files converts nothing; memory stays at a batch (and the text
builder's read chunk) whatever the size of the corpus.

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
import hashlib
import json
import os
import re
import tempfile

from jax_bert import files
from jax_bert.data.arrow_text import ArrowFile, ArrowText, stream_files

EXTENSIONS = {".txt": "text", ".jsonl": "json", ".parquet": "parquet"}
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
COLUMN = "text"  # the documents' column in the Arrow file the map writes
# What the text builder reads at a time: its memory is many times this (the chunk split into Python strings),
# so 1 MiB rather than its default 10 MiB; the tests make it small.
TEXT_CHUNK_BYTES = 1 << 20
DOCUMENTS_FORMAT = 1  # bump when the rows -> documents rule changes, so that old document files are not reused


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
    """A batch of rows -> its documents. With `paragraphs`, the rows are the text builder's pieces (split on
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
    parts = [_documents(builder, group, pattern, spec, cache_dir) for builder, group in runs]
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
            # The builder writes the Arrow files; they are not opened as a Dataset: its memory map, once
            # read, would hold the pages of the whole corpus in this process (see _documents_file).
            prepared = datasets.load_dataset_builder(builder, data_files=paths, cache_dir=cache_dir, **kwargs)
            prepared.download_and_prepare()
        except Exception as e:  # noqa: BLE001 - datasets wraps the cause in its own error types
            raise _named_error(builder, paths, pattern, column, e) from e
        columns = list(prepared.info.features or {})
        if source_column not in columns:
            raise _named_error(builder, paths, pattern, column, None) or ValueError(
                f"files {pattern!r} have no field {column!r}; their columns are {columns}: set data.text_column")
        settings = {"source_column": source_column, "strip": builder == "text",
                    "paragraphs": spec["txt_documents"] == "paragraph" and builder == "text"}
        return _documents_file(prepared, settings)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _documents_file(prepared, settings: dict) -> ArrowFile:
    """The documents of the Arrow files a builder wrote, as one Arrow file beside them (written once, with its
    row count in a .json beside it, then reused).

    Every file is read by streaming it with ordinary reads (arrow_text), never through a memory map: the
    pages of a map that pyarrow has read (it asks the kernel for the whole range it reads) stay resident in
    this process, so reading a 20 GB corpus that way grows the process to 20 GB."""
    import pyarrow as pa

    folder = prepared.cache_dir
    sources = sorted(glob.glob(os.path.join(folder, f"{prepared.name}-train*.arrow")))
    expected = prepared.info.splits["train"].num_examples
    key = hashlib.sha256(json.dumps([os.path.basename(folder), settings, DOCUMENTS_FORMAT], sort_keys=True).encode())
    path = os.path.join(folder, f"jax_bert-documents-{key.hexdigest()[:24]}.arrow")
    count_file = path[:-len(".arrow")] + ".json"
    try:
        with open(count_file) as f:
            return ArrowFile(path, json.load(f)["num_rows"])
    except (OSError, ValueError, KeyError):
        pass
    schema = pa.schema([(COLUMN, pa.string())])
    fd, tmp = tempfile.mkstemp(prefix=".documents-", suffix=".arrow", dir=folder)
    os.close(fd)
    rows = documents = 0
    try:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in stream_files(sources, settings["source_column"]):
                rows += len(batch)
                docs = _to_documents({settings["source_column"]: batch}, **settings)[COLUMN]
                documents += len(docs)
                if docs:
                    writer.write_batch(pa.record_batch([pa.array(docs, pa.string())], schema=schema))
        if rows != expected:
            raise OSError(f"the Arrow files {sources} hold {rows} rows; the builder wrote {expected}")
        os.replace(tmp, path)
        files.atomic_write_json(count_file, {"num_rows": documents})  # last: its presence means complete
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ArrowFile(path, documents)


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
