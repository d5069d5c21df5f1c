"""GLUE data loading (hub parquet, original TSV, or the Hugging Face hub) and tokenisation.

Every loader returns the same columnar form, keyed by hub split names (glue.tasks):
    {split: {"idx": int64[N], <text column>: list[str], ..., "label": int64[N] | float32[N]}}
Text columns carry hub names (e.g. MNLI premise/hypothesis, whatever the TSV headers say), label
ids follow the hub's ClassLabel order (MNLI entailment=0, neutral=1, contradiction=2; QNLI/RTE
entailment=0, not_entailment=1), and unlabelled test splits have label -1, as on the hub.
For TSV files idx is the row position (0..N-1), which is also what the hub's idx is.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from glue.tasks import Task, get_task

HUB_DATASET = "nyu-mll/glue"


class GlueDataError(ValueError):
    """Data missing, malformed or unreachable; the message says what was expected."""


def _task(task) -> Task:
    return get_task(task) if isinstance(task, str) else task


def _required_and_optional(task: Task, splits):
    """Without explicit splits: train and validation are required, test splits optional."""
    if splits is None:
        return ("train",) + task.validation_splits, task.test_splits
    splits = tuple(splits)
    bad = [s for s in splits if s not in task.splits]
    if bad:
        raise ValueError(f"{task.name} has no split(s) {bad}; its splits are {task.splits}.")
    return splits, ()


def _hub_files(task_dir: Path, split: str) -> list[Path]:
    # '-' after the split name keeps 'validation' from matching 'validation_matched'.
    return sorted(task_dir.glob(f"{split}-*.parquet"))


def expected_files(task, data_dir, layout: str, splits=None) -> list[str]:
    """The files `load_task` looks for, for error messages and documentation."""
    task = _task(task)
    required, optional = _required_and_optional(task, splits)
    root = Path(data_dir)
    if layout == "hub":
        return [str(root / task.name / f"{s}-00000-of-00001.parquet") for s in required]
    return [str(root / task.glue_dir / task.tsv[s].filename) for s in required]


def detect_layout(task, data_dir) -> str | None:
    """'hub' if data_dir/<task>/ holds parquet files, 'tsv' if data_dir/<GLUE dir>/ holds TSVs."""
    task = _task(task)
    root = Path(data_dir)
    if any((root / task.name).glob("*.parquet")):
        return "hub"
    if any((root / task.glue_dir).glob("*.tsv")):
        return "tsv"
    return None


def _load_parquet_split(task: Task, files: list[Path]) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f) for f in files])
    need = list(task.text_columns) + ["label", "idx"]
    missing = [c for c in need if c not in table.column_names]
    if missing:
        raise GlueDataError(
            f"{files[0]}: missing columns {missing}; the nyu-mll/glue {task.name} files have "
            f"columns {need} (found {table.column_names}).")
    out = {"idx": np.asarray(table.column("idx").to_numpy(), dtype=np.int64)}
    for c in task.text_columns:
        out[c] = ["" if t is None else t for t in table.column(c).to_pylist()]
    out["label"] = _label_array(task, table.column("label").to_numpy())
    return out


def _load_parquet_checked(task: Task, split: str, files: list[Path]) -> dict:
    out = _load_parquet_split(task, files)
    where = str(files[0]) if len(files) == 1 else f"{files[0].parent}/{split}-*.parquet"
    check_labels(task, split, out["label"], where, idx=out["idx"])
    return out


def _label_array(task: Task, labels) -> np.ndarray:
    return np.asarray(labels, dtype=np.float32 if task.is_regression else np.int64)


def label_set(task: Task) -> str:
    """The labels a task's data may hold, for messages."""
    if task.is_regression:
        return "a finite number (a similarity score)"
    return "the class ids " + ", ".join(f"{i} ({n})" if n else str(i) for i, n in enumerate(
        task.label_names or [""] * task.num_labels))


def _labels_ok(task: Task, labels, unlabelled_allowed: bool) -> np.ndarray:
    y = np.asarray(labels)
    ok = np.isfinite(y) if task.is_regression else (y >= 0) & (y < task.num_labels)
    return ok | (y == -1) if unlabelled_allowed else ok


def check_labels(task: Task, split: str, labels: np.ndarray, where: str, idx=None) -> None:
    """Every label of a split is in the task's label set (-1, unlabelled, only in test splits): fine-tuning
    on an out-of-range class id fails far from the file, or silently learns nonsense. `where`: the file
    (or dataset) for the message; `idx`: the rows' GLUE idx, named with the row's position."""
    bad = np.flatnonzero(~_labels_ok(task, labels, split in task.test_splits))
    if len(bad):
        i = bad[0]
        row = f"row {i}" if idx is None else f"row {i} (idx {int(idx[i])})"
        more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
        raise GlueDataError(f"{where}, {row}: {task.name} label {np.asarray(labels)[i].item()!r} is outside its "
                            f"label set{more}; expected {label_set(task)}.")


def _parse_label(task: Task, value: str, where: str):
    value = value.strip()
    try:
        if task.tsv_label_map is not None:
            return task.tsv_label_map[value]
        label = float(value) if task.is_regression else int(value)
    except (KeyError, ValueError):
        valid = list(task.tsv_label_map) if task.tsv_label_map else label_set(task)
        raise GlueDataError(f"{where}: bad {task.name} label {value!r}; expected {valid}.")
    if not _labels_ok(task, label, False):
        raise GlueDataError(f"{where}: {task.name} label {value!r} is outside its label set; expected "
                            f"{label_set(task)}.")
    return label


def _read_text(path: Path) -> str:
    """The file as text: UTF-8 (a byte-order mark allowed: MRPC's train.tsv has one); invalid bytes are
    named by line and column instead of a raw UnicodeDecodeError."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise GlueDataError(f"{path}:{line}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {column}); "
                            "GLUE files are UTF-8: re-save the file as UTF-8 or fix that row.") from None


def _read_tsv_split(task: Task, split: str, path: Path) -> dict:
    spec = task.tsv[split]
    # utf-8-sig: MRPC's train.tsv starts with a byte-order mark. Split on '\n' only (not
    # str.splitlines) because text may contain other unicode line separators; no quoting.
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in _read_text(path).split("\n")]
    start = 0
    if spec.has_header:
        header = lines[0].split("\t") if lines else []
        wanted = list(spec.text) + ([spec.label] if spec.label else [])
        missing = [c for c in wanted if c not in header]
        if missing:
            raise GlueDataError(
                f"{path}: header lacks columns {missing}; expected the GLUE {task.glue_dir} "
                f"layout {list(spec.columns)} (found {header}).")
        position = {c: header.index(c) for c in wanted}
        start = 1
    else:
        position = {c: spec.columns.index(c) for c in spec.columns}
    text_pos = [position[c] for c in spec.text]
    label_pos = position[spec.label] if spec.label else None
    needed = max(text_pos + ([label_pos] if label_pos is not None else [])) + 1
    n_columns = len(header) if spec.has_header else len(spec.columns)
    if label_pos == n_columns - 1:
        # A label in the last column is read as the row's last field (what the Hugging Face
        # processors do for STS-B/MNLI), so a row with a stray extra field still parses.
        label_pos = -1
    texts, labels, skipped = [[] for _ in text_pos], [], 0
    for lineno, line in enumerate(lines[start:], start=start + 1):
        if line == "":
            continue
        fields = line.split("\t")
        try:
            if len(fields) < needed:
                raise GlueDataError(
                    f"{path}:{lineno}: expected at least {needed} tab-separated fields of the "
                    f"layout {list(spec.columns)}, got {len(fields)}.")
            label = -1 if label_pos is None else _parse_label(
                task, fields[label_pos], f"{path}:{lineno}")
        except GlueDataError:
            if task.skip_malformed_tsv_rows:  # QQP: a few broken rows in the real download
                skipped += 1
                continue
            raise
        for col, pos in zip(texts, text_pos):
            col.append(fields[pos])
        labels.append(label)
    out = {"idx": np.arange(len(labels), dtype=np.int64)}
    out.update(zip(task.text_columns, texts))
    out["label"] = _label_array(task, labels)
    return out


def _load_local(task: Task, data_dir: Path, required, optional) -> dict:
    layout = detect_layout(task, data_dir)
    if layout is None:
        raise GlueDataError(
            f"No {task.name} data in {data_dir}: expected either the nyu-mll/glue parquet "
            f"layout ({', '.join(expected_files(task, data_dir, 'hub'))}) or the GLUE TSV "
            f"layout ({', '.join(expected_files(task, data_dir, 'tsv'))}).")
    result, missing = {}, []
    for split in list(required) + list(optional):
        if layout == "hub":
            files = _hub_files(data_dir / task.name, split)
            if files:
                result[split] = _load_parquet_checked(task, split, files)
            elif split in required:
                missing.append(str(data_dir / task.name / f"{split}-00000-of-00001.parquet"))
        else:
            path = data_dir / task.glue_dir / task.tsv[split].filename
            if path.is_file():
                result[split] = _read_tsv_split(task, split, path)
            elif split in required:
                missing.append(str(path))
    if missing:
        raise GlueDataError(
            f"{task.name} ({layout} layout) in {data_dir} is missing files: {', '.join(missing)}.")
    return result


def _load_hub(task: Task, required, optional, cache_dir) -> dict:
    try:
        import datasets

        ds = datasets.load_dataset(HUB_DATASET, task.name, cache_dir=cache_dir)
    except Exception as e:  # offline, no cache, network error: all end the same way
        raise GlueDataError(
            f"Could not load {HUB_DATASET} ({task.name}) from the Hugging Face hub "
            f"({type(e).__name__}: {e}). Offline? Pass --data_dir DIR holding either the hub "
            f"parquet files (DIR/{task.name}/train-00000-of-00001.parquet, ...) or the original "
            f"GLUE TSV files (DIR/{task.glue_dir}/{task.tsv['train'].filename}, ...).") from e
    result = {}
    for split in list(required) + list(optional):
        if split not in ds:
            if split in required:
                raise GlueDataError(f"{HUB_DATASET} {task.name} has no split {split!r}.")
            continue
        d = ds[split]
        out = {"idx": np.asarray(d["idx"], dtype=np.int64)}
        for c in task.text_columns:
            out[c] = ["" if t is None else t for t in d[c]]
        out["label"] = _label_array(task, d["label"])
        check_labels(task, split, out["label"], f"{HUB_DATASET} {task.name} {split}",
                     idx=out["idx"])
        result[split] = out
    return result


def load_task(task, data_dir: str | os.PathLike | None = None,
              splits: Iterable[str] | None = None, cache_dir: str | None = None) -> dict:
    """Load one GLUE task as {split: columnar dict} (see the module docstring).

    data_dir: a directory with the hub parquet layout (DIR/cola/train-00000-of-00001.parquet) or
    the original TSV layout (DIR/CoLA/train.tsv); None: `datasets.load_dataset("nyu-mll/glue")`.
    splits: None loads train and validation (required) and test splits when present; an explicit
    list makes every named split required.
    """
    task = _task(task)
    required, optional = _required_and_optional(task, splits)
    if data_dir is None:
        return _load_hub(task, required, optional, cache_dir)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise GlueDataError(f"--data_dir {data_dir} is not a directory.")
    return _load_local(task, data_dir, required, optional)


def tokenize_task(dataset: dict, task, tokenizer, max_length: int = 128,
                  batch_size: int = 4096) -> dict:
    """Tokenise one split: int32 input_ids / attention_mask / token_type_ids [N, max_length],
    labels (float32 for STS-B, int32 otherwise; -1 for test splits) and idx (int64).

    Uses a Hugging Face fast tokenizer; pairs are truncated 'longest_first' and everything is
    padded to max_length, so every batch has a static shape under jit.
    """
    task = _task(task)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("tokenize_task needs a Hugging Face fast tokenizer (is_fast=True).")
    missing = [c for c in task.text_columns if c not in dataset]
    if missing:
        raise ValueError(f"{task.name} dataset lacks text columns {missing}; it has "
                         f"{sorted(dataset)}.")
    texts = [["" if t is None else str(t) for t in dataset[c]] for c in task.text_columns]
    n = len(texts[0])
    out = {k: np.zeros((n, max_length), np.int32)
           for k in ("input_ids", "attention_mask", "token_type_ids")}
    for lo in range(0, n, batch_size):
        enc = tokenizer(*[t[lo:lo + batch_size] for t in texts], truncation="longest_first",
                        max_length=max_length, padding="max_length", return_attention_mask=True,
                        return_token_type_ids=True, return_tensors="np")
        for k in out:
            out[k][lo:lo + batch_size] = enc[k]
    label_dtype = np.float32 if task.is_regression else np.int32
    labels = dataset.get("label")
    out["labels"] = (np.full(n, -1, label_dtype) if labels is None
                     else np.asarray(labels).astype(label_dtype))
    out["idx"] = np.asarray(dataset.get("idx", np.arange(n)), dtype=np.int64)
    return out


def tokenize_splits(dataset: dict, task, tokenizer, max_length: int, eval_splits) -> tuple[dict, dict]:
    """(train, {split: tokenized split}) of a loaded task, as fine-tuning takes them."""
    return (tokenize_task(dataset["train"], task, tokenizer, max_length),
            {s: tokenize_task(dataset[s], task, tokenizer, max_length) for s in eval_splits})
