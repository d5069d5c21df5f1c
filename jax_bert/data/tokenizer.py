"""The tokenizer: a named one (hub or local directory), or a BERT WordPiece vocabulary trained on the
corpus and cached in the work directory."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable, Iterable

from jax_bert.data.documents import _hash

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4 when trained here


def get_tokenizer(name_or_path: str | None = None, *, workdir: str | None = None,
                  documents: Iterable[str] | Callable[[], Iterable[str]] | None = None,
                  vocab_size: int = 30522, lowercase: bool = False):
    """A `transformers.PreTrainedTokenizerFast`.

    With `name_or_path` (a hub name such as 'bert-base-cased' or a local directory): that
    tokenizer. Otherwise a BERT WordPiece vocab of at most `vocab_size` tokens (fewer when
    the corpus is small: use len(tokenizer) for the model) is trained on `documents` with
    special tokens [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, saved in
    `workdir/tokenizer/`, and loaded from there on later runs. `documents` may be a
    zero-argument callable; it is only called when a vocab has to be trained. Cased by
    default, like bert-base-cased.
    """
    import transformers

    if name_or_path:
        try:
            tok = transformers.AutoTokenizer.from_pretrained(name_or_path)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"could not load tokenizer {name_or_path!r}: {e}. Offline, pass a local "
                "directory holding tokenizer.json / vocab.txt, or leave the name empty to "
                "train a WordPiece vocab on the data") from e
        if not tok.is_fast:
            raise ValueError(f"tokenizer {name_or_path!r} has no fast (Rust) version; "
                             "the data pipeline needs a fast tokenizer")
        return tok

    if workdir is None:
        raise ValueError("get_tokenizer needs workdir (where the trained vocab is cached) "
                         "when no tokenizer name is given")
    path = os.path.join(workdir, "tokenizer")
    settings = {"vocab_size": int(vocab_size), "lowercase": bool(lowercase),
                "special_tokens": list(SPECIAL_TOKENS)}
    settings_file = os.path.join(path, "training_settings.json")
    if not os.path.exists(settings_file):
        if documents is None:
            raise ValueError(f"no tokenizer in {path} and no documents to train one on")
        docs = documents() if callable(documents) else documents
        _train_wordpiece(docs, path, settings)
    with open(settings_file) as f:
        cached = json.load(f)
    if cached != settings:
        raise ValueError(f"the tokenizer cached in {path} was trained with {cached}, but "
                         f"{settings} was asked for; delete that folder or use another workdir")
    # BertTokenizer rather than AutoTokenizer: the latter resolves a model config, which
    # imports torch (seconds) for nothing.
    return transformers.BertTokenizer.from_pretrained(path)


def _train_wordpiece(docs: Iterable[str], path: str, settings: dict) -> None:
    import tokenizers
    import transformers

    wordpiece = tokenizers.BertWordPieceTokenizer(lowercase=settings["lowercase"])
    wordpiece.train_from_iterator(
        (d for d in docs if d and not d.isspace()), vocab_size=settings["vocab_size"],
        min_frequency=2, special_tokens=list(SPECIAL_TOKENS), limit_alphabet=1000,
        wordpieces_prefix="##", show_progress=False)
    vocab = wordpiece.get_vocab()
    if [vocab.get(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"WordPiece training gave unexpected special token ids {vocab}")
    # The trainer numbers tokens in hash-map order and breaks ties between equally frequent merges
    # arbitrarily, so two trainings can differ. Sorting fixes the ids of a given token set (WordPiece
    # matching ignores the order); the set itself can still differ at ties, which is why the vocab is
    # trained once, by process 0, and cached in the (shared) work directory.
    rest = sorted(t for t in vocab if t not in SPECIAL_TOKENS)
    vocab = {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + rest)}
    # BertTokenizer (transformers) rebuilds the BERT normalizer, pre-tokenizer and the
    # [CLS] A [SEP] B [SEP] post-processor around the vocab, so GLUE pairs work too.
    tok = transformers.BertTokenizer(vocab=vocab, do_lower_case=settings["lowercase"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tokenizer-", dir=os.path.dirname(os.path.abspath(path)))
    tok.save_pretrained(tmp)
    with open(os.path.join(tmp, "training_settings.json"), "w") as f:
        json.dump(settings, f)
    try:
        os.replace(tmp, path)  # atomic: a reader sees no tokenizer or a complete one
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process got there first
        if not os.path.exists(os.path.join(path, "training_settings.json")):
            raise


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything that decides the token ids: vocab, normalizer, pre-tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("a fast tokenizer (transformers PreTrainedTokenizerFast) is needed")
    return _hash(json.loads(backend.to_str()))

