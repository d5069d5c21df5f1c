"""A text column of Hugging Face `datasets` tables as a lazy, sized sequence of documents.

Both the hub and the local-file sources give their documents as an `ArrowText`: nothing is read until a
document is asked for, and iterating reads the column in batches. A dataset held in ONE Arrow file (what
the local-file reader writes) is streamed from that file with ordinary reads, batch by batch, instead of
through its memory map: the pages of a map that has been read stay resident (and are counted in the
process's memory) until it is closed, so streaming a 20 GB corpus through the map would grow the resident
set to 20 GB; read this way the memory used is one batch, whatever the size of the corpus.
"""
from __future__ import annotations

import collections.abc
from typing import Iterator

import numpy as np

READ_CHUNK = 1000  # documents per batch read from a dataset


def _checked_index(i: int, n: int) -> int:
    """A sequence index made non-negative; IndexError outside [-n, n)."""
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(i)
    return i


def _stream_file(path: str, column: str, start: int, stop: int) -> Iterator[list]:
    """Rows [start, stop) of `column` from an Arrow stream file, in record batches, without a memory map."""
    import pyarrow as pa

    seen = 0
    with pa.OSFile(path, "rb") as f:
        for batch in pa.ipc.open_stream(f):
            lo, hi = seen, seen + batch.num_rows
            seen = hi
            if hi <= start:
                continue
            if lo >= stop:
                break
            piece = batch.column(0 if column is None else batch.schema.get_field_index(column))
            piece = piece.slice(max(start - lo, 0), min(stop, hi) - max(start, lo))
            for i in range(0, len(piece), READ_CHUNK):
                yield piece.slice(i, READ_CHUNK).to_pylist()


def stream_files(paths: list[str], column: str) -> Iterator[list]:
    """Every row of `column` in several Arrow stream files, in order, in lists of at most READ_CHUNK."""
    for path in paths:
        yield from _stream_file(path, column, 0, float("inf"))


class ArrowFile:
    """One column of an Arrow stream file of known length, opened by nobody until read: iterating streams it
    (`_stream_file`); indexing one row reads up to it, for the rare lookup."""

    def __init__(self, path: str, num_rows: int):
        self.path, self.num_rows = path, int(num_rows)

    def __len__(self) -> int:
        return self.num_rows

    def rows(self, column: str, start: int, stop: int) -> Iterator[list]:
        return _stream_file(self.path, column, start, stop)

    def __getitem__(self, i: int) -> dict:
        return {"__row__": next(iter(_stream_file(self.path, None, i, i + 1)))[0]}


class ArrowText(collections.abc.Sequence):
    """Rows [start, stop) of the text column of several datasets read one after another. A None in the
    column reads as ''."""

    def __init__(self, parts: list, column: str, start: int = 0, stop: int | None = None):
        self._parts, self._column = list(parts), column
        self._ends = np.cumsum([len(p) for p in self._parts]).tolist()
        total = self._ends[-1] if self._ends else 0
        self._start, self._stop = start, total if stop is None else stop

    def __len__(self) -> int:
        return self._stop - self._start

    def view(self, start: int, stop: int) -> ArrowText:
        """Documents [start, stop) of this sequence, lazily."""
        return ArrowText(self._parts, self._column, self._start + start, self._start + stop)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = self._start + _checked_index(i, len(self))
        k = int(np.searchsorted(self._ends, i, side="right"))
        part = self._parts[k]
        row = part[i - (self._ends[k - 1] if k else 0)]
        text = row["__row__"] if isinstance(part, ArrowFile) else row[self._column]
        return text if text is not None else ""

    def __iter__(self) -> Iterator[str]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[str]]:
        """The documents in lists of at most READ_CHUNK."""
        offset = 0
        for ds, end in zip(self._parts, self._ends):
            lo, hi = max(self._start - offset, 0), min(self._stop, end) - offset
            offset = end
            if hi <= lo:
                continue
            files = getattr(ds, "cache_files", None) or []
            if isinstance(ds, ArrowFile):
                chunks = ds.rows(self._column, lo, hi)
            elif len(files) == 1 and getattr(ds, "_indices", None) is None:
                chunks = _stream_file(files[0]["filename"], self._column, lo, hi)
            else:
                chunks = (b[self._column] for b in ds.select(range(lo, hi)).iter(batch_size=READ_CHUNK))
            for chunk in chunks:
                yield [t if t is not None else "" for t in chunk]


class Concat(collections.abc.Sequence):
    """Several sized sequences of documents read one after another, without copying."""

    def __init__(self, parts):
        self._parts = list(parts)
        self._ends = np.cumsum([len(p) for p in self._parts]).tolist()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = _checked_index(i, len(self))
        k = int(np.searchsorted(self._ends, i, side="right"))
        return self._parts[k][i - (self._ends[k - 1] if k else 0)]

    def __iter__(self) -> Iterator[str]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[str]]:
        """The documents in lists of at most READ_CHUNK."""
        for part in self._parts:
            if hasattr(part, "batches"):
                yield from part.batches()
            else:
                for i in range(0, len(part), READ_CHUNK):
                    yield list(part[i:i + READ_CHUNK])
