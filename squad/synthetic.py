"""Synthetic SQuAD-format data a small model can learn, and the offline example's tiny checkpoint.

Each context is filler words around one fact sentence, "the KEY is VALUE ." (VALUE: a colour, or a shade
and a colour, words found nowhere else); the question is "what is the KEY ?" and the answer is VALUE. Some contexts
are longer than a feature's window, so their questions span several features and the fact may sit at a
window's edge. SQuAD v2.0 data also has unanswerable questions: their context has no fact sentence.
The first questions carry Unicode (keys and fillers with accents, CJK, Greek).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from squad.data import file_names

KEYS = tuple("cat dog river stone market table window paper city road garden engine bridge forest island "
             "letter mountain village kitchen bottle mirror candle pocket ladder basket harbor meadow".split())
VALUES = tuple("green blue red yellow silver copper golden purple orange white black grey pink brown".split())
SHADES = ("light", "dark", "pale", "deep")
FILLER = tuple("quick slow music winter summer teacher student number cloud friend doctor train violin "
               "saddle lantern pepper thunder valley near under over with from after before".split())
UNICODE = ("café", "Zürich", "東京", "Ελλάδα", "naïve")


# SQuAD v1.1's paragraphs: about 120 words on average (log-normal spread, our estimate of the real one).
SQUAD_WORDS = (120, 0.45)


def _question(rng, i: int, answerable: bool, long_share: float, squad_shaped: bool = False) -> tuple[str, str, dict]:
    key = KEYS[rng.integers(len(KEYS))]
    colour = VALUES[rng.integers(len(VALUES))]
    value = f"{SHADES[rng.integers(len(SHADES))]} {colour}" if rng.random() < 0.5 else colour
    fillers = list(FILLER) + (list(UNICODE) if i < 8 else [])
    if squad_shaped:
        mean, cv = SQUAD_WORDS
        sigma = np.sqrt(np.log1p(cv ** 2))
        n_words = max(5, int(rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma)))
    else:
        n_words = int(rng.integers(150, 400) if rng.random() < long_share else rng.integers(10, 60))
    words = [fillers[j] for j in rng.integers(len(fillers), size=n_words)]
    at = int(rng.integers(0, n_words + 1))
    before, after = " ".join(words[:at]), " ".join(words[at:])
    fact = f"the {key} is {value} ." if answerable else ""
    context = " ".join(t for t in (before, fact, after) if t)
    answers = []
    if answerable:
        start = context.index(fact) + len(f"the {key} is ")
        answers = [{"text": value, "answer_start": start}]
    return context, f"what is the {key} ?", answers


def tokenizer():
    """A lower-casing WordPiece tokenizer that keeps every word of the synthetic data whole (Unicode
    words lose their accents, CJK splits per character), so a feature holds about a word per token."""
    from jax_bert.data.tokenizer import wordpiece_tokenizer

    words = " ".join(KEYS + VALUES + SHADES + FILLER + UNICODE + ("what", "is", "the", "?", "."))
    return wordpiece_tokenizer([words] * 20, vocab_size=400, lowercase=True)


def make_dataset(n: int, seed: int = 0, version: str = "1.1", long_share: float = 0.1,
                 unanswerable_share: float = 0.3, squad_shaped: bool = False) -> dict:
    """n questions in the official format ({"version", "data": [articles]}), one paragraph each.
    squad_shaped: paragraph lengths drawn like SQuAD's (SQUAD_WORDS) instead of short / long_share long."""
    rng = np.random.default_rng([seed, 1 if version == "2.0" else 0])
    articles = []
    for i in range(n):
        answerable = version != "2.0" or rng.random() >= unanswerable_share
        context, question, answers = _question(rng, i, answerable, long_share, squad_shaped)
        qa = {"id": f"{seed}-{i:06d}", "question": question, "answers": answers}
        if version == "2.0":
            qa["is_impossible"] = not answerable
        articles.append({"title": f"article {i}", "paragraphs": [{"context": context, "qas": [qa]}]})
    return {"version": version, "data": articles}


def write_data(out_dir, version: str = "1.1", train: int = 512, validation: int = 128, seed: int = 0,
               long_share: float = 0.1) -> Path:
    """The official files (train-vX.json, dev-vX.json) of synthetic data into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for (split, name), n, s in zip(file_names(version).items(), (train, validation), (seed, seed + 1)):
        with open(out / name, "w", encoding="utf-8") as f:
            json.dump(make_dataset(n, s, version, long_share), f, ensure_ascii=False)
    return out


def make_offline_example(root: str | os.PathLike, version: str = "1.1", train: int = 512, validation: int = 128,
                         hidden: int = 64, layers: int = 2, heads: int = 2, seed: int = 0) -> tuple[Path, Path]:
    """(data_dir, checkpoint_dir) = (root/data, root/checkpoint): synthetic SQuAD files and a tiny random
    BERT with a WordPiece tokenizer trained on their text. Nothing is downloaded."""
    import jax

    from jax_bert import model

    root = Path(root)
    data_dir = write_data(root / "data", version, train, validation, seed)
    tok = tokenizer()
    config = model.BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=512)
    params = model.init_params(config, jax.random.key(seed), head="mlm")
    ckpt = model.save_hf(config, jax.device_get(params), str(root / "checkpoint"), tokenizer=tok)
    return data_dir, Path(ckpt)
