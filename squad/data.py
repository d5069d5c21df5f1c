"""SQuAD data: local JSON files in the official format, or the Hugging Face hub.

Both give the same flat form, one dict per question, as the hub's `rajpurkar/squad(_v2)` rows:
    {"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}
and the gold answers per question id that squad.metrics scores against.

Local files (--data_dir DIR): DIR/train-v1.1.json and DIR/dev-v1.1.json (v2.0: train-v2.0.json and
dev-v2.0.json), the files the official site distributes, each {"version", "data": [articles]}.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

HUB_DATASETS = {"1.1": "rajpurkar/squad", "2.0": "rajpurkar/squad_v2"}
SPLITS = ("train", "validation")


class SquadDataError(ValueError):
    """Data missing or malformed; the message says what was expected."""


def file_names(version: str) -> dict[str, str]:
    """{split: the official file name} of a SQuAD version."""
    return {"train": f"train-v{version}.json", "validation": f"dev-v{version}.json"}


def flatten(dataset: dict, where: str) -> list[dict]:
    """The questions of an official-format data set ({"data": [articles]}) as flat rows."""
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise SquadDataError(f"{where}: not a SQuAD file (expected a JSON object with a 'data' list of articles).")
    rows = []
    try:
        for article in dataset["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    answers = [] if qa.get("is_impossible") else qa["answers"]
                    rows.append({"id": str(qa["id"]), "title": article.get("title", ""), "context": context,
                                 "question": qa["question"],
                                 "answers": {"text": [a["text"] for a in answers],
                                             "answer_start": [int(a["answer_start"]) for a in answers]}})
    except (KeyError, TypeError) as e:
        raise SquadDataError(f"{where}: malformed SQuAD article ({type(e).__name__}: {e}); each article needs "
                             "'paragraphs', each paragraph 'context' and 'qas', each question 'id', 'question' "
                             "and 'answers' (a list of {'text', 'answer_start'}).") from e
    check_rows(rows, where)
    return rows


def check_rows(rows: list[dict], where: str) -> None:
    """Every answer is where its answer_start says in the context; ids are unique."""
    seen = set()
    for row in rows:
        if row["id"] in seen:
            raise SquadDataError(f"{where}: question id {row['id']!r} occurs twice.")
        seen.add(row["id"])
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            if row["context"][start:start + len(text)] != text:
                raise SquadDataError(f"{where}: question {row['id']!r}: answer {text!r} is not at character "
                                     f"{start} of its context.")


def golds(rows: list[dict]) -> dict[str, list[str]]:
    """{question id: gold answer texts}, as squad.metrics takes them."""
    return {row["id"]: list(row["answers"]["text"]) for row in rows}


def load(version: str, data_dir: str | os.PathLike | None = None, cache_dir: str | None = None) -> dict:
    """{split: rows} for train and validation of SQuAD `version` ('1.1' or '2.0'), from data_dir or the hub."""
    if version not in HUB_DATASETS:
        raise ValueError(f"SQuAD version must be '1.1' or '2.0', got {version!r}.")
    if data_dir is None:
        return _load_hub(version, cache_dir)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SquadDataError(f"--data_dir {data_dir} is not a directory.")
    paths = {split: data_dir / name for split, name in file_names(version).items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise SquadDataError(f"SQuAD v{version} in {data_dir} is missing {', '.join(missing)} (the official "
                             f"files {', '.join(file_names(version).values())}).")
    out = {}
    for split, path in paths.items():
        try:
            with open(path, encoding="utf-8") as f:
                dataset = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SquadDataError(f"{path}: not valid JSON ({e}).") from e
        out[split] = flatten(dataset, str(path))
        if not out[split]:
            raise SquadDataError(f"{path}: no questions.")
    return out


def _load_hub(version: str, cache_dir) -> dict:
    name = HUB_DATASETS[version]
    try:
        import datasets

        ds = datasets.load_dataset(name, cache_dir=cache_dir)
    except Exception as e:  # offline, no cache, network error: all end the same way
        raise SquadDataError(
            f"Could not load {name} from the Hugging Face hub ({type(e).__name__}: {e}). Offline? Pass "
            f"--data_dir DIR holding {' and '.join(file_names(version).values())} (the official files).") from e
    out = {}
    for split in SPLITS:
        rows = [{"id": str(r["id"]), "title": r["title"], "context": r["context"], "question": r["question"],
                 "answers": {"text": list(r["answers"]["text"]),
                             "answer_start": [int(s) for s in r["answers"]["answer_start"]]}}
                for r in ds[split]]
        check_rows(rows, f"{name} {split}")
        out[split] = rows
    return out
