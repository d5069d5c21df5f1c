"""Registry of the nine GLUE tasks: columns, labels, splits, metrics, file layouts (the fine-tuning
protocol's epochs and seeds per task are settings: glue/config.py).

Canonical names follow the Hugging Face hub dataset `nyu-mll/glue`: config names (cola, sst2, ...),
split names (train, validation, test; MNLI: validation_matched / validation_mismatched /
test_matched / test_mismatched), text column names (sentence, sentence1/sentence2, question1/
question2, question/sentence, premise/hypothesis) and integer label ids (hub ClassLabel order).
Every other layout (the original GLUE TSV files) is mapped onto these names by `glue.data`.

TSV layouts mirror the files written by the original `download_glue_data.py` (and read by the
Hugging Face `glue` processors). Assumptions, from those files as we know them:
  * Files are UTF-8, tab separated, with no quoting (text may contain `"`); MRPC's train.tsv starts
    with a byte-order mark, so files are read as `utf-8-sig`.
  * CoLA train/dev have no header and 4 columns (source, label, original annotation, sentence);
    every other file has a header row. Columns are therefore found by header name when a header
    exists and by position otherwise.
  * MNLI train has one annotator label column (label1) before gold_label; dev has five (label1..5);
    the gold label is always the column `gold_label`.
  * A few QQP train rows in the real download are malformed (too few fields); the Hugging Face
    processor skips them, and so do we for QQP only. Elsewhere a short row is an error.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

TASK_NAMES = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
# average_bert leaves WNLI out (the BERT paper's convention); average_glue uses all nine.
BERT_AVERAGE_TASKS = tuple(t for t in TASK_NAMES if t != "wnli")
# Column order of the results table (the original's table in docs/original.md is alphabetical).
TABLE_ORDER = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb", "wnli")


@dataclasses.dataclass(frozen=True)
class TsvFile:
    """One original GLUE TSV file.

    columns: the file's full column layout (its header, or the documented positions if none).
    text: the names in `columns` holding the task's text columns, in the order of Task.text_columns.
    label: the name in `columns` holding the label, None for unlabelled (test) files.
    """

    filename: str
    columns: tuple[str, ...]
    has_header: bool
    text: tuple[str, ...]
    label: str | None


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]  # hub column names: one (single sentence) or two (pair)
    num_labels: int  # 1 = regression (STS-B)
    label_names: tuple[str, ...]  # hub ClassLabel names, index = label id; () for regression
    validation_splits: tuple[str, ...]
    test_splits: tuple[str, ...]
    metric_names: tuple[str, ...]  # first one picks the best seed
    glue_dir: str  # directory name in the GLUE TSV layout
    tsv: Mapping[str, TsvFile]  # split -> file
    tsv_label_map: Mapping[str, int] | None  # TSV label strings -> ids; None: labels are numbers
    submissions: Mapping[str, str]  # test split -> GLUE benchmark submission file name
    skip_malformed_tsv_rows: bool = False

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train",) + self.validation_splits + self.test_splits

    @property
    def metrics_per_split(self) -> tuple[str, ...]:
        """Metrics computed on one validation split (MNLI: accuracy on each of two splits)."""
        if len(self.validation_splits) > 1:
            return ("accuracy",)
        return self.metric_names


def _std_files(columns_train, text, label, columns_test, text_test=None, *, header=True,
               dev_name="dev.tsv"):
    """train/validation/test TsvFiles for tasks with one validation split."""
    trainlike = dict(columns=tuple(columns_train), has_header=header, text=tuple(text), label=label)
    return {
        "train": TsvFile("train.tsv", **trainlike),
        "validation": TsvFile(dev_name, **trainlike),
        "test": TsvFile("test.tsv", tuple(columns_test), True, tuple(text_test or text), None),
    }


_NLI_PAIR = ("index", "sentence1", "sentence2", "label")
_MNLI_COMMON = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2")
_MNLI_TRAIN = _MNLI_COMMON + ("label1", "gold_label")
_MNLI_DEV = _MNLI_COMMON + ("label1", "label2", "label3", "label4", "label5", "gold_label")
_STSB = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
         "sentence2", "score")
_MRPC = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
_MRPC_TEST = ("index", "#1 ID", "#2 ID", "#1 String", "#2 String")
_QQP = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
_NLI_MAP = {"entailment": 0, "not_entailment": 1}

_TASKS = {
    "cola": Task(
        "cola", ("sentence",), 2, ("unacceptable", "acceptable"), ("validation",), ("test",),
        ("matthews_correlation",), "CoLA",
        _std_files(("source", "label", "original_label", "sentence"), ("sentence",), "label",
                   ("index", "sentence"), header=False),
        None, {"test": "CoLA.tsv"}),
    "sst2": Task(
        "sst2", ("sentence",), 2, ("negative", "positive"), ("validation",), ("test",),
        ("accuracy",), "SST-2",
        _std_files(("sentence", "label"), ("sentence",), "label", ("index", "sentence")),
        None, {"test": "SST-2.tsv"}),
    "mrpc": Task(
        "mrpc", ("sentence1", "sentence2"), 2, ("not_equivalent", "equivalent"), ("validation",),
        ("test",), ("f1", "accuracy"), "MRPC",
        _std_files(_MRPC, ("#1 String", "#2 String"), "Quality", _MRPC_TEST),
        None, {"test": "MRPC.tsv"}),
    "stsb": Task(
        "stsb", ("sentence1", "sentence2"), 1, (), ("validation",), ("test",),
        ("pearson", "spearmanr"), "STS-B",
        _std_files(_STSB, ("sentence1", "sentence2"), "score", _STSB[:-1]),
        None, {"test": "STS-B.tsv"}),
    "qqp": Task(
        "qqp", ("question1", "question2"), 2, ("not_duplicate", "duplicate"), ("validation",),
        ("test",), ("accuracy", "f1"), "QQP",
        _std_files(_QQP, ("question1", "question2"), "is_duplicate",
                   ("id", "question1", "question2")),
        None, {"test": "QQP.tsv"}, skip_malformed_tsv_rows=True),
    "mnli": Task(
        "mnli", ("premise", "hypothesis"), 3, ("entailment", "neutral", "contradiction"),
        ("validation_matched", "validation_mismatched"), ("test_matched", "test_mismatched"),
        ("accuracy_matched", "accuracy_mismatched"), "MNLI",
        {
            "train": TsvFile("train.tsv", _MNLI_TRAIN, True, ("sentence1", "sentence2"),
                             "gold_label"),
            "validation_matched": TsvFile("dev_matched.tsv", _MNLI_DEV, True,
                                          ("sentence1", "sentence2"), "gold_label"),
            "validation_mismatched": TsvFile("dev_mismatched.tsv", _MNLI_DEV, True,
                                             ("sentence1", "sentence2"), "gold_label"),
            "test_matched": TsvFile("test_matched.tsv", _MNLI_COMMON, True,
                                    ("sentence1", "sentence2"), None),
            "test_mismatched": TsvFile("test_mismatched.tsv", _MNLI_COMMON, True,
                                       ("sentence1", "sentence2"), None),
        },
        {"entailment": 0, "neutral": 1, "contradiction": 2},
        {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"}),
    "qnli": Task(
        "qnli", ("question", "sentence"), 2, ("entailment", "not_entailment"), ("validation",),
        ("test",), ("accuracy",), "QNLI",
        _std_files(("index", "question", "sentence", "label"), ("question", "sentence"), "label",
                   ("index", "question", "sentence")),
        _NLI_MAP, {"test": "QNLI.tsv"}),
    "rte": Task(
        "rte", ("sentence1", "sentence2"), 2, ("entailment", "not_entailment"), ("validation",),
        ("test",), ("accuracy",), "RTE",
        _std_files(_NLI_PAIR, ("sentence1", "sentence2"), "label", _NLI_PAIR[:-1]),
        _NLI_MAP, {"test": "RTE.tsv"}),
    # WNLI's TSV labels are already 0/1 with 1 = entailment, matching the hub's
    # ("not_entailment", "entailment") order.
    "wnli": Task(
        "wnli", ("sentence1", "sentence2"), 2, ("not_entailment", "entailment"), ("validation",),
        ("test",), ("accuracy",), "WNLI",
        _std_files(_NLI_PAIR, ("sentence1", "sentence2"), "label", _NLI_PAIR[:-1]),
        None, {"test": "WNLI.tsv"}),
}


def get_task(name: str) -> Task:
    """The registered Task for `name` (case-insensitive; 'sst-2', 'sts-b' accepted)."""
    key = str(name).strip().lower().replace("-", "")
    if key not in _TASKS:
        raise ValueError(
            f"Unknown GLUE task {name!r}; valid tasks are: {', '.join(TASK_NAMES)}.")
    return _TASKS[key]


def parse_tasks(spec: str | None) -> tuple[str, ...]:
    """'cola,rte' -> ('cola', 'rte'); None, '' or 'all' -> all nine; duplicates removed."""
    if spec is None or str(spec).strip().lower() in ("", "all", "glue"):
        return TASK_NAMES
    names = []
    for part in str(spec).split(","):
        if part.strip():
            name = get_task(part).name
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"No task named in {spec!r}; valid tasks are: {', '.join(TASK_NAMES)}.")
    return tuple(names)
