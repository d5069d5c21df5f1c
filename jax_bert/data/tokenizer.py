"""The tokenizer: a named one (hub or local directory), or a BERT WordPiece vocabulary trained on the
corpus and cached in the work directory.

The training is ours (`train_wordpiece_vocab`), not the `tokenizers` library's trainer: that one numbers
the word pieces in hash-map order, which changes from process to process, and breaks ties between
equally frequent merges by those numbers, so two trainings on the same corpus gave different
vocabularies (and two fresh runs of the same config different losses). Ours follows the same
algorithm (the library's WordPiece trainer is a BPE trainer with a "##" continuation prefix) with
every choice made on counts and then on the token strings themselves: the same corpus and settings
give the same vocabulary, byte for byte, in any process.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Iterable

from jax_bert import files
from jax_bert.data.documents import _hash

log = logging.getLogger(__name__)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4 when trained here


def get_tokenizer(name_or_path: str | None = None, *, workdir: str | None = None,
                  documents: Iterable[str] | Callable[[], Iterable[str]] | None = None,
                  vocab_size: int = 30522, lowercase: bool = False, cache_dir: str | None = None,
                  corpus_key: Any = None, train_documents: int = 0):
    """A `transformers.PreTrainedTokenizerFast`.

    With `name_or_path` (a hub name such as 'bert-base-cased' or a local directory): that
    tokenizer. Otherwise a BERT WordPiece vocab of at most `vocab_size` tokens (fewer when
    the corpus is small: use len(tokenizer) for the model) is trained on `documents` with
    special tokens [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, saved in
    `workdir/tokenizer/`, and loaded from there on later runs. `documents` may be a
    zero-argument callable; it is only called when a vocab has to be trained. Cased by
    default, like bert-base-cased. With `cache_dir` and `corpus_key` (what the documents depend on,
    e.g. data_fingerprint(spec)) the trained vocab is also kept in cache_dir, so a new work directory
    on the same corpus copies it instead of training again (the same bytes: training is deterministic).
    `train_documents` > 0 trains on the first that many documents only (a deterministic sample: the start of
    the train split), for corpora where counting every word would take hours.
    """
    import transformers

    if name_or_path:
        looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
        if looks_local and not os.path.isdir(os.path.expanduser(name_or_path)):
            raise ValueError(f"tokenizer {name_or_path!r} does not exist: give a directory holding tokenizer.json "
                             "or vocab.txt, a hub name, or leave tokenizer.name empty to train a WordPiece vocab")
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
                "special_tokens": list(SPECIAL_TOKENS), "trainer": TRAINER}
    if train_documents:  # only when set, so that vocabularies trained on the whole corpus keep their keys
        settings["train_documents"] = int(train_documents)
    settings_file = os.path.join(path, "training_settings.json")
    if not os.path.exists(settings_file):
        if documents is None:
            raise ValueError(f"no tokenizer in {path} and no documents to train one on")
        shared = None
        if cache_dir is not None and corpus_key is not None:
            shared = os.path.join(cache_dir, "tokenizer-" + _hash({"corpus": corpus_key, "settings": settings}))
        if shared is None or not _copy_if_intact(shared, path):
            docs = documents() if callable(documents) else documents
            if train_documents and hasattr(docs, "__getitem__") and hasattr(docs, "__len__"):
                docs = docs[:int(train_documents)] if isinstance(docs, (list, tuple)) else _First(docs, train_documents)
            elif train_documents:
                docs = itertools.islice(docs, int(train_documents))
            _train_wordpiece(docs, shared or path, settings)
            if shared is not None and not _copy_if_intact(shared, path):
                raise OSError(f"the tokenizer just trained in {shared} could not be copied to {path}")
    damaged = ("delete that folder and rerun: the vocabulary is trained again from the corpus, the same one "
               "(training is deterministic)")
    try:
        with open(settings_file) as f:
            cached = json.load(f)
        vocab_sha256 = cached.pop("vocab_sha256", None)  # written by the trainer; older caches lack it
        if vocab_sha256 is not None and _file_sha256(os.path.join(path, "tokenizer.json")) != vocab_sha256:
            raise ValueError("tokenizer.json differs from the tokenizer that was trained")
    except (OSError, ValueError) as e:
        raise ValueError(f"the tokenizer cached in {path} is damaged ({e}); {damaged}") from None
    cached.setdefault("trainer", TRAINER)  # a cache from before the trainer was named: keep using it
    if cached != settings:
        raise ValueError(f"the tokenizer cached in {path} was trained with {cached}, but "
                         f"{settings} was asked for; delete that folder or use another workdir")
    # BertTokenizer rather than AutoTokenizer: the latter resolves a model config, which
    # imports torch (seconds) for nothing.
    return transformers.BertTokenizer.from_pretrained(path)


class _First:
    """The first n documents of a sized corpus, iterated lazily (a progress bar can show its length)."""

    def __init__(self, docs, n: int):
        self._docs, self._n = docs, min(int(n), len(docs))

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        return itertools.islice(iter(self._docs), self._n)


def _copy_if_intact(source: str, path: str) -> bool:
    """Copies a trained tokenizer folder to `path` (atomically) when its tokenizer.json is the one its
    settings name; False when there is none or it is damaged (it is then trained again)."""
    try:
        with open(os.path.join(source, "training_settings.json")) as f:
            expected = json.load(f).get("vocab_sha256")
        intact = expected is not None and _file_sha256(os.path.join(source, "tokenizer.json")) == expected
    except (OSError, ValueError):
        intact = False
    if not intact:
        if os.path.exists(source):
            log.warning("the tokenizer cached in %s is damaged; training it again", source)
            aside = tempfile.mkdtemp(prefix=".damaged-", dir=os.path.dirname(os.path.abspath(source)))
            os.replace(source, os.path.join(aside, "tokenizer"))  # out of the way at once, then removed
            shutil.rmtree(aside, ignore_errors=True)
        return False
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tokenizer-", dir=parent)
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        files.follow_umask_tree(tmp)
        os.replace(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(os.path.join(path, "training_settings.json")):  # nobody else got there first
            raise
    return True


def _file_sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


TRAINER = "jax_bert-wordpiece-1"  # in the cached settings: a vocab of another trainer is not reused
MIN_FREQUENCY = 2  # a merge needs a pair seen at least this often
LIMIT_ALPHABET = 1000  # the most frequent characters kept; rarer ones become [UNK]
PREFIX = "##"  # a piece that continues a word


def _word_counts(docs: Iterable[str], lowercase: bool) -> collections.Counter:
    """Words as BERT's normalizer and pre-tokenizer give them (the library's, which are deterministic)."""
    import tokenizers

    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=lowercase)
    pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    from tqdm.auto import tqdm

    counts: collections.Counter = collections.Counter()
    total = len(docs) if hasattr(docs, "__len__") else None
    for doc in tqdm(docs, total=total, unit="doc", desc="counting words", disable=None, mininterval=2):
        if doc and not doc.isspace():
            counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(doc)))
    return counts


def train_wordpiece_vocab(docs: Iterable[str], vocab_size: int, lowercase: bool = False) -> list[str]:
    """A BERT WordPiece vocabulary: the special tokens, then every other token sorted.

    The algorithm of the `tokenizers` WordPiece trainer: the LIMIT_ALPHABET most frequent characters
    (ties: by character), each also as a "##" continuation; then, while the vocabulary is smaller than
    `vocab_size`, the most frequent adjacent pair of pieces (counted over every word occurrence, at
    least MIN_FREQUENCY times) is merged into a new piece. Ties between pairs go to the smaller pair of
    strings, so nothing depends on the order of a hash map."""
    counts = _word_counts(docs, lowercase)
    words = sorted(counts)  # a fixed order for the bookkeeping below; the result does not depend on it
    freq = [counts[w] for w in words]

    chars: collections.Counter = collections.Counter()
    for w, n in zip(words, freq):
        for c in w:
            chars[c] += n
    alphabet = {c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:LIMIT_ALPHABET]}

    vocab: dict[str, int] = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    pieces: list[str] = list(SPECIAL_TOKENS)

    def piece_id(piece: str) -> int:
        if piece not in vocab:
            vocab[piece] = len(pieces)
            pieces.append(piece)
        return vocab[piece]

    for c in sorted(alphabet):
        piece_id(c)
    # Each word as a list of piece ids; characters outside the alphabet are left out (as the library does).
    symbols: list[list[int]] = []
    for w in words:
        kept = [c for c in w if c in alphabet]
        symbols.append([piece_id(c if i == 0 else PREFIX + c) for i, c in enumerate(kept)])

    pair_count: collections.Counter = collections.Counter()
    where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
    for i, sym in enumerate(symbols):
        for pair in zip(sym, sym[1:]):
            pair_count[pair] += freq[i]
            where[pair].add(i)

    key = lambda pair: (-pair_count[pair], pieces[pair[0]], pieces[pair[1]])  # noqa: E731
    heap = [(*key(p), p) for p in pair_count]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, _, _, pair = heapq.heappop(heap)
        if -neg != pair_count.get(pair, 0):  # a stale entry: the count changed since it was pushed
            if pair_count.get(pair, 0) > 0:
                heapq.heappush(heap, (*key(pair), pair))
            continue
        if -neg < MIN_FREQUENCY:
            break
        left, right = pieces[pair[0]], pieces[pair[1]]
        new = piece_id(left + right[len(PREFIX):] if right.startswith(PREFIX) else left + right)
        changed = set()
        for i in sorted(where.pop(pair, ())):
            sym, n = symbols[i], freq[i]
            for p in zip(sym, sym[1:]):  # take the word's pairs out, merge, put them back
                pair_count[p] -= n
                where[p].discard(i)
                changed.add(p)
            merged, j = [], 0
            while j < len(sym):
                if j + 1 < len(sym) and (sym[j], sym[j + 1]) == pair:
                    merged.append(new)
                    j += 2
                else:
                    merged.append(sym[j])
                    j += 1
            symbols[i] = merged
            for p in zip(merged, merged[1:]):
                pair_count[p] += n
                where[p].add(i)
                changed.add(p)
        pair_count.pop(pair, None)
        for p in changed:
            if pair_count.get(p, 0) > 0 and p != pair:
                heapq.heappush(heap, (*key(p), p))
            elif p in pair_count and pair_count[p] <= 0:
                del pair_count[p]
    return list(SPECIAL_TOKENS) + sorted(t for t in vocab if t not in SPECIAL_TOKENS)


def wordpiece_tokenizer(docs: Iterable[str], vocab_size: int, lowercase: bool = False):
    """A BERT tokenizer (transformers, fast) around the WordPiece vocabulary `train_wordpiece_vocab`
    trains on `docs`, in memory: BERT's normalizer and pre-tokenizer, and the [CLS] A [SEP] B [SEP]
    post-processor, so sentence pairs work too."""
    import transformers

    tokens = train_wordpiece_vocab(docs, vocab_size, lowercase)
    return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=lowercase)


def _train_wordpiece(docs: Iterable[str], path: str, settings: dict) -> None:
    tok = wordpiece_tokenizer(docs, settings["vocab_size"], settings["lowercase"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tokenizer-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        tok.save_pretrained(tmp)
        files.atomic_write_json(os.path.join(tmp, "training_settings.json"),
                                {**settings, "vocab_sha256": _file_sha256(os.path.join(tmp, "tokenizer.json"))})
        files.follow_umask_tree(tmp)  # mkdtemp made it private; the tokenizer is shared like any output
        os.replace(tmp, path)  # atomic: a reader sees no tokenizer or a complete one
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process got there first, or the disk is full
        if not os.path.exists(os.path.join(path, "training_settings.json")):
            raise


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything that decides the token ids: vocab, normalizer, pre-tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("a fast tokenizer (transformers PreTrainedTokenizerFast) is needed")
    return _hash(json.loads(backend.to_str()))

