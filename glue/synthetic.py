"""Small synthetic GLUE data with learnable rules, in the hub parquet or the original TSV layout.

Used by the tests, the benchmarks, the offline example of glue/run.py (`make_offline_example`: the
data and a tiny random checkpoint) and the offline tiny study. Rules (so a model can learn something):
  * single sentence (CoLA, SST-2): label 1 iff the sentence contains a cue word (CUE_WORDS).
  * pairs: the label follows word overlap between the two texts. Binary tasks: "similar" pairs
    (the second text reuses most words of the first) are equivalent / duplicate / entailment,
    disjoint pairs are not. MNLI: subset = entailment, half overlap = neutral, disjoint =
    contradiction. STS-B: score = 5 * (share of the second text's words taken from the first).
Label ids follow the hub (e.g. QNLI/RTE entailment = 0, MRPC equivalent = 1).
The first three examples of every split are edge cases: unicode text, an empty text (the second
text for pairs) and an over-long text (> 300 words, longer than any max_length).

With `length_profile=True` the examples instead have GLUE's token lengths (LENGTH_PROFILE, no edge
cases), built from words that the offline tokenizer keeps whole (one word, one token), and
`glue_sizes` scales the real tasks' split sizes: the corpus the GLUE speed benchmark runs on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from glue.tasks import TASK_NAMES, Task, get_task

CUE_WORDS = ("wonderful", "brilliant", "delightful", "superb")
WORDS = tuple(
    "the a cat dog house river stone green blue quick slow market table window paper city road "
    "music garden winter summer teacher student engine bridge forest island letter number cloud "
    "mountain friend doctor village kitchen train bottle mirror candle pocket ladder basket "
    "silver copper harbor meadow valley thunder pepper violin saddle lantern".split())
UNICODE_WORDS = ("café", "naïve", "Zürich", "東京", "🙂", "Ελλάδα", "señor", "Москва")
DEFAULT_SIZES = {"train": 64, "validation": 24, "test": 12}
LONG_WORDS = 320

# Token lengths of GLUE examples ([CLS] and [SEP] included), as (mean, coefficient of variation) of a
# log-normal distribution. The means are those measured with a cased BERT WordPiece vocabulary (CoLA 11,
# SST-2 13, QQP and STS-B 30, MNLI 39, QNLI 50, MRPC 53, RTE 70); WNLI's mean and every spread are our
# estimates of the real tasks' (e.g. MNLI: 95% of pairs under ~72 tokens, 99% under ~97).
LENGTH_PROFILE = {"cola": (11, 0.40), "sst2": (13, 0.70), "mrpc": (53, 0.25), "stsb": (30, 0.40),
                  "qqp": (30, 0.50), "mnli": (39, 0.45), "qnli": (50, 0.45), "rte": (70, 0.55),
                  "wnli": (37, 0.30)}
# The second text's share of a pair's words (MNLI's hypothesis, QNLI's answer sentence is the longer one, ...).
SECOND_SHARE = {"mrpc": 0.5, "stsb": 0.5, "qqp": 0.5, "mnli": 0.35, "qnli": 0.7, "rte": 0.2, "wnli": 0.35}
# Examples per split of the real tasks (the hub's nyu-mll/glue).
GLUE_SIZES = {
    "cola": {"train": 8551, "validation": 1043, "test": 1063},
    "sst2": {"train": 67349, "validation": 872, "test": 1821},
    "mrpc": {"train": 3668, "validation": 408, "test": 1725},
    "stsb": {"train": 5749, "validation": 1500, "test": 1379},
    "qqp": {"train": 363846, "validation": 40430, "test": 390965},
    "mnli": {"train": 392702, "validation_matched": 9815, "validation_mismatched": 9832,
             "test_matched": 9796, "test_mismatched": 9847},
    "qnli": {"train": 104743, "validation": 5463, "test": 5463},
    "rte": {"train": 2490, "validation": 277, "test": 3000},
    "wnli": {"train": 635, "validation": 71, "test": 146},
}


def glue_sizes(task: str, scale: float, min_train: int = 32, min_eval: int = 32, test: int = 8) -> dict:
    """The real task's split sizes times `scale`, at least min_train / min_eval; test splits: `test`."""
    t = get_task(task)
    out = {"train": max(min_train, round(GLUE_SIZES[t.name]["train"] * scale))}
    for split in t.validation_splits:
        out[split] = max(min_eval, round(GLUE_SIZES[t.name][split] * scale))
    out.update({split: test for split in t.test_splits})
    return out


def profile_lengths(task: Task, n: int, rng) -> np.ndarray:
    """n token lengths ([CLS]/[SEP] included) drawn from the task's LENGTH_PROFILE."""
    mean, cv = LENGTH_PROFILE[task.name]
    sigma = np.sqrt(np.log1p(cv**2))
    lengths = np.rint(rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, n)).astype(int)
    return np.maximum(lengths, 5 if task.is_pair else 3)


def _profiled(task: Task, length: int, rng) -> tuple[tuple[str, ...], float]:
    """One example of `length` tokens that follows the task's rule (module docstring)."""
    if not task.is_pair:
        label = int(rng.integers(0, 2))
        words = _words(rng, length - 2 - label, length - 2 - label)
        if label:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(CUE_WORDS)))
        return (" ".join(words),), label
    n_words = length - 3
    n2 = max(1, round(n_words * SECOND_SHARE[task.name]))
    first = _words(rng, n_words - n2, n_words - n2)
    if task.is_regression:
        share = float(rng.uniform(0, 1))
    elif task.num_labels == 3:
        label = int(rng.integers(0, 3))
        share = (1.0, 0.5, 0.0)[label]
    else:
        similar = bool(rng.integers(0, 2))
        share = 1.0 if similar else 0.0
    k = int(round(share * n2))
    taken = list(rng.choice(first, size=k, replace=True)) if k else []
    new = _words(rng, n2 - k, n2 - k, exclude=set(first) if len(set(first)) < len(WORDS) - 4 else ())
    second = taken + new
    rng.shuffle(second)
    if task.is_regression:
        label = round(5.0 * k / n2, 3)
    elif task.num_labels != 3:
        agree_id = 0 if task.label_names[0] == "entailment" else 1
        label = agree_id if similar else 1 - agree_id
    return (" ".join(first), " ".join(second)), label


def _words(rng, lo, hi, exclude=()):
    pool = [w for w in WORDS if w not in exclude]
    return list(rng.choice(pool, size=int(rng.integers(lo, hi + 1)), replace=True))


def _single(task: Task, i: int, rng) -> tuple[tuple[str], float]:
    label = int(rng.integers(0, 2))
    words = _words(rng, 4, 12)
    if i == 0:
        words += list(rng.choice(UNICODE_WORDS, size=3, replace=False))
    if i == 1:
        return ("",), 0  # no cue word -> label 0
    if i == 2:
        words = _words(rng, LONG_WORDS, LONG_WORDS)
    if label:
        for cue in rng.choice(CUE_WORDS, size=int(rng.integers(1, 3))):
            words.insert(int(rng.integers(0, len(words) + 1)), str(cue))
    return (" ".join(words),), label


def _overlap_pair(rng, share: float, i: int) -> tuple[str, str, float]:
    """Two texts; about `share` of the second's words come from the first. Returns the true share."""
    first = _words(rng, 5, 12)
    if i == 2:  # over-long: filler from a few words, so disjoint words remain available
        first += list(rng.choice(WORDS[:8], size=LONG_WORDS))
    if i == 0:
        first += list(rng.choice(UNICODE_WORDS, size=3, replace=False))
    if i == 1:
        return " ".join(first), "", 0.0
    distinct = sorted(set(first))
    n2 = int(rng.integers(4, 10))
    if share >= 1.0:
        n2 = min(n2, len(distinct))
    k = int(round(share * n2))
    taken = list(rng.choice(distinct, size=min(k, len(distinct)), replace=False))
    new = _words(rng, n2 - len(taken), n2 - len(taken), exclude=set(first))
    second = taken + new
    rng.shuffle(second)
    return " ".join(first), " ".join(second), len(taken) / max(len(second), 1)


def _pair(task: Task, i: int, rng) -> tuple[tuple[str, str], float]:
    if task.is_regression:
        a, b, share = _overlap_pair(rng, float(rng.uniform(0, 1)), i)
        return (a, b), round(5.0 * share, 3)
    if task.num_labels == 3:  # MNLI: entailment 0 / neutral 1 / contradiction 2
        label = int(rng.integers(0, 3))
        a, b, share = _overlap_pair(rng, (1.0, 0.5, 0.0)[label], i)
        return (a, b), (2 if i == 1 else label)
    similar = bool(rng.integers(0, 2))
    a, b, _ = _overlap_pair(rng, 1.0 if similar else 0.0, i)
    similar = similar and i != 1
    # Which id means "the texts agree" depends on the task's hub label order.
    agree_id = 0 if task.label_names[0] == "entailment" else 1
    return (a, b), (agree_id if similar else 1 - agree_id)


def generate_split(task: Task | str, split: str, n: int, seed: int = 0, length_profile: bool = False) -> dict:
    """A columnar split with hub columns: text columns (lists of str), label, idx (numpy).

    Test splits get label -1 (as on the hub) but are drawn from the same rule. length_profile: token
    lengths drawn from the task's LENGTH_PROFILE (and no edge cases).
    """
    task = get_task(task) if isinstance(task, str) else task
    if split not in task.splits:
        raise ValueError(f"{task.name} has no split {split!r}; splits: {task.splits}.")
    rng = np.random.default_rng([seed, TASK_NAMES.index(task.name), task.splits.index(split)])
    if length_profile:
        lengths = profile_lengths(task, n, rng)
        make = lambda task, i, rng: _profiled(task, int(lengths[i]), rng)  # noqa: E731
    else:
        make = _pair if task.is_pair else _single
    texts, labels = [[] for _ in task.text_columns], []
    for i in range(n):
        row, label = make(task, i, rng)
        for col, text in zip(texts, row):
            col.append(text)
        labels.append(label)
    out = {name: col for name, col in zip(task.text_columns, texts)}
    dtype = np.float32 if task.is_regression else np.int64
    out["label"] = np.asarray(labels, dtype=dtype)
    if split in task.test_splits:
        out["label"] = np.full(n, -1, dtype=dtype)
    out["idx"] = np.arange(n, dtype=np.int64)
    return out


def _split_size(task: Task, split: str, sizes: Mapping[str, int]) -> int:
    kind = "train" if split == "train" else (
        "validation" if split in task.validation_splits else "test")
    return int(sizes.get(split, sizes.get(kind, DEFAULT_SIZES[kind])))


def _write_parquet(path: Path, task: Task, data: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    label_type = pa.float32() if task.is_regression else pa.int64()
    cols = {c: pa.array(data[c], pa.string()) for c in task.text_columns}
    cols["label"] = pa.array(data["label"], label_type)
    cols["idx"] = pa.array(data["idx"], pa.int32())
    pq.write_table(pa.table(cols), path)


def _tsv_value(task: Task, col: str, i: int, data: dict, label_col: str | None) -> str:
    label = data["label"][i]
    if col == label_col or col.startswith("label") and task.name == "mnli":
        if task.is_regression:
            return f"{float(label):.3f}"
        if task.tsv_label_map is not None:
            return task.label_names[int(label)]
        return str(int(label))
    if col == "original_label":  # CoLA: the author's mark, '*' for unacceptable
        return "" if int(label) == 1 else "*"
    if col.endswith("_parse"):
        j = 0 if col.startswith("sentence1") else 1
        return "( " + data[task.text_columns[j]][i] + " )"
    return {"source": "gj04", "genre": "fiction", "filename": "synthetic", "year": "2024",
            "source1": "none", "source2": "none"}.get(col, str(i))


def _write_tsv(path: Path, task: Task, split: str, data: dict) -> None:
    spec = task.tsv[split]
    text_of = dict(zip(spec.text, task.text_columns))
    lines = ["\t".join(spec.columns)] if spec.has_header else []
    for i in range(len(data["idx"])):
        row = [data[text_of[c]][i] if c in text_of else _tsv_value(task, c, i, data, spec.label)
               for c in spec.columns]
        lines.append("\t".join(row))
    # MRPC's real train.tsv starts with a byte-order mark; mirror it so readers must cope.
    encoding = "utf-8-sig" if task.name == "mrpc" and split == "train" else "utf-8"
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def write_synthetic_glue(out_dir: str | os.PathLike, layout: str = "hub",
                         sizes: Mapping[str, int] | None = None,
                         tasks: Iterable[str] | None = None, seed: int = 0,
                         length_profile: bool = False) -> Path:
    """Write synthetic data for `tasks` (default all nine) into out_dir; returns out_dir.

    layout "hub": out_dir/<task>/<split>-00000-of-00001.parquet (nyu-mll/glue file names);
    layout "tsv": out_dir/<GLUE dir>/<file>.tsv in the original GLUE layout.
    sizes: examples per split, keyed by split name or kind ("train", "validation", "test"), or a
    callable(task name) -> such a mapping (e.g. `functools.partial(glue_sizes, scale=1e-3)`).
    length_profile: GLUE's token lengths (see `generate_split`).
    """
    if layout not in ("hub", "tsv"):
        raise ValueError(f"layout must be 'hub' or 'tsv', got {layout!r}.")
    root = Path(out_dir)
    for name in (tasks or TASK_NAMES):
        task = get_task(name)
        task_sizes = dict((sizes(task.name) if callable(sizes) else sizes) or {})
        folder = root / (task.name if layout == "hub" else task.glue_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for split in task.splits:
            data = generate_split(task, split, _split_size(task, split, task_sizes), seed, length_profile)
            if layout == "hub":
                _write_parquet(folder / f"{split}-00000-of-00001.parquet", task, data)
            else:
                _write_tsv(folder / task.tsv[split].filename, task, split, data)
    return root


def make_offline_example(root, tasks: Sequence[str] = ("sst2", "mrpc"), sizes=None,
                         hidden: int = 32, layers: int = 2, heads: int = 2,
                         intermediate: int | None = None, vocab_size: int = 0, seed: int = 0,
                         length_profile: bool = False):
    """Synthetic GLUE data (hub layout) and a tiny random BERT checkpoint with its tokenizer.

    Returns (data_dir, checkpoint_dir) = (root/data, root/checkpoint). Nothing is downloaded.
    sizes: as write_synthetic_glue's. vocab_size: the model's vocabulary (0: the tokenizer's ~300
    words; 28996 for BERT-base's size). length_profile: GLUE's token lengths (generate_split).
    """
    import jax

    from glue import data as glue_data
    from jax_bert import model
    from jax_bert.data.tokenizer import wordpiece_tokenizer

    root = Path(root)
    sizes = sizes or {"train": 256, "validation": 64, "test": 16}
    data_dir = write_synthetic_glue(root / "data", "hub", sizes, tasks=tasks, seed=seed,
                                    length_profile=length_profile)
    texts = []
    for name in tasks:
        split = glue_data.load_task(name, data_dir)["train"]
        for col in get_task(name).text_columns:
            texts += split[col]
    tokenizer = wordpiece_tokenizer(texts, vocab_size=300, lowercase=True)
    config = model.BertConfig(vocab_size=max(len(tokenizer), vocab_size), hidden_size=hidden,
                              num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=intermediate or 2 * hidden, max_position_embeddings=512)
    params = model.init_params(config, jax.random.key(seed), head="mlm")
    ckpt = model.save_hf(config, jax.device_get(params), str(root / "checkpoint"), tokenizer=tokenizer)
    return data_dir, Path(ckpt)
