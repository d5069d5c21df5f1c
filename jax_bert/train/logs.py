"""Where training metrics go: tensorboardX event files and a metrics.jsonl in the work directory.

Only process 0 writes; every other process gets a writer that does nothing. Both are flushed at every
call, so a killed run keeps what it logged. A run resumed at step s first drops the rows logged after s
(the steps it will redo) and a last line cut short by a kill, so metrics.jsonl has each step once, as an
uninterrupted run would; tensorboard is told the same with `purge_step`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import Any

import numpy as np

from jax_bert import files


@contextlib.contextmanager
def _naming(path: str):
    """An OSError of a write (a full disk) names the file it was writing."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, path) from None
        raise


class _EventFile:
    """A tensorboard event file written synchronously: tensorboardX's SummaryWriter queues events for a
    background thread, and its flush() does not wait for that queue, so a killed run lost what it had
    logged. Same file format, same summaries (tensorboardX's), no queue."""

    def __init__(self, logdir: str, purge_step: int | None):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto import event_pb2

        self._pb = event_pb2
        self.directory = logdir
        os.makedirs(logdir, exist_ok=True)
        # The library names the file by the second it was opened; a resume within that second would
        # overwrite it, so the name also says which process and when exactly.
        self._writer = EventsWriter(os.path.join(logdir, "events"), f".{os.getpid()}.{time.time_ns()}")
        if purge_step is not None:  # tensorboard hides the events of steps >= purge_step written before
            self._write(purge_step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))

    def _write(self, step: int, **fields) -> None:
        self._writer.write_event(self._pb.Event(wall_time=time.time(), step=int(step), **fields))

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboardX import summary

        self._write(step, summary=summary.scalar(tag, value))

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        from tensorboardX import summary

        self._write(step, summary=summary.image(tag, image_hwc, dataformats="HWC"))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class MetricsWriter:
    def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            path = os.path.join(workdir, "metrics.jsonl")
            keep_until(path, resume_step if resume_step else -1)  # a fresh start (0) logs step 0 anew
            tb_dir = os.path.join(workdir, "tensorboard")
            purge = resume_step + 1 if resume_step else (0 if os.path.isdir(tb_dir) else None)
            self._tb = _EventFile(tb_dir, purge_step=purge)
            self._jsonl = open(path, "a")

    def scalars(self, step: int, values: dict[str, Any], prefix: str = "") -> None:
        if not self.enabled:
            return
        row = {"step": int(step)}
        for k, v in values.items():
            v = float(np.asarray(v))
            row[prefix + k] = v if math.isfinite(v) else str(v)
            self._tb.scalar(prefix + k, v, int(step))
        with _naming(self._jsonl.name):
            self._jsonl.write(json.dumps(row) + "\n")
            self._jsonl.flush()
        with _naming(self._tb.directory):
            self._tb.flush()

    def image(self, step: int, tag: str, image_hwc: np.ndarray) -> None:
        if self.enabled:
            self._tb.image(tag, image_hwc, int(step))
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()


def read_jsonl(path: str) -> list[dict]:
    """The rows of a metrics.jsonl; a last line cut short (a killed writer) is skipped."""
    rows = []
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1:]):
                raise ValueError(f"{path}, line {i + 1}: not JSON ({line[:80]!r})") from None
    return rows


def keep_until(path: str, step: int) -> None:
    """Rewrites metrics.jsonl (atomically) with only the rows of steps <= `step`; nothing to do when
    every row is."""
    if not os.path.exists(path):
        return
    rows = read_jsonl(path)
    kept = [r for r in rows if int(r.get("step", 0)) <= step]
    with open(path) as f:
        complete = f.read().endswith("\n") or os.path.getsize(path) == 0
    if len(kept) != len(rows) or not complete:
        files.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
