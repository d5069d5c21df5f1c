"""Documents -> packed blocks of token ids (int32 [N, seq_len]), cached on disk as .npy.

The cache's metadata carries checksums of the array's bytes (jax_bert/data/checksum.py), written when
it is built and checked when it is opened; a cache whose bytes differ is named in a warning, moved
aside (`.damaged`) and built again, like a truncated one. `verify_caches(cache_dir)` checks every
cache of a directory in full (scripts/check_data_cache.py).
"""
from __future__ import annotations

import contextlib
import glob
import itertools
import json
import logging
import math
import os
import tempfile
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from jax_bert import files
from jax_bert.data import checksum
from jax_bert.data.documents import _hash, data_fingerprint, datasets_cache_dir, load_documents, normalize_spec
from jax_bert.data.tokenizer import tokenizer_fingerprint

log = logging.getLogger(__name__)

_TOKENIZE_CHUNK = 1000  # documents per batched tokenizer call
_COPY_BYTES = 1 << 23  # the token stream is copied into the .npy in pieces of this size
_CACHE_FORMAT = 2  # bump when the block layout changes, so old caches are not reused (2: with checksums)
DAMAGED_SUFFIX = ".damaged"


def tokenize_to_blocks(documents: Iterable[str] | Callable[[], Iterable[str]], tokenizer,
                       seq_len: int, *, cache_dir: str, cache_key_parts: Any,
                       pad_last: bool = False, return_info: bool = False):
    """Packs documents into an int32 array [N, seq_len] of token ids, cached on disk.

    Every non-empty document becomes [CLS] tokens [SEP]; the documents are concatenated in
    order and cut into blocks of `seq_len`. With pad_last=False (training) the trailing
    partial block is dropped; with pad_last=True (validation) it is kept and filled with
    [PAD], so no text is lost.

    The result is cached as `cache_dir/blocks-<key>.npy` (+ `.json` metadata: the number of
    real tokens and documents), where key hashes (cache_key_parts, the tokenizer, seq_len,
    pad_last). Put what the documents depend on in cache_key_parts, e.g.
    (data_fingerprint(spec), 'train'). A cache hit is memory-mapped and never touches
    `documents`, which may be a zero-argument callable so nothing is read on a hit.
    Returns the array, or (array, info dict) with return_info=True.
    """
    if int(seq_len) < 2:
        raise ValueError(f"seq_len must be at least 2 ([CLS] and [SEP]), got {seq_len}")
    key = _hash({"parts": cache_key_parts, "tokenizer": tokenizer_fingerprint(tokenizer),
                 "seq_len": int(seq_len), "pad_last": bool(pad_last),
                 "format": _CACHE_FORMAT})[:24]
    npy = os.path.join(cache_dir, f"blocks-{key}.npy")
    meta_file = os.path.join(cache_dir, f"blocks-{key}.json")
    cached = _read_cache(npy, meta_file, int(seq_len))
    if cached is None:
        docs = documents() if callable(documents) else documents
        _build_blocks(docs, tokenizer, int(seq_len), bool(pad_last), npy, meta_file)
        cached = _read_cache(npy, meta_file, int(seq_len), full_check=True)
        if cached is None:
            raise OSError(f"the data cache {npy} just written does not read back as written; check that disk "
                          "(or choose another data_cache_dir)")
    blocks, meta = cached
    return (blocks, meta) if return_info else blocks


def _read_cache(npy: str, meta_file: str, seq_len: int, full_check: bool | None = None):
    """(blocks memory-mapped, metadata), or None when there is no cache. A damaged one (a truncated
    .npy, unreadable metadata, a shape the metadata does not give, bytes that differ from the checksum
    written with them) is derived data: named in a warning, moved aside and built again."""
    if not (os.path.exists(npy) and os.path.exists(meta_file)):
        return None
    try:
        with open(meta_file) as f:
            meta = json.load(f)
        blocks = np.load(npy, mmap_mode="r")
        if blocks.shape != (meta["num_blocks"], seq_len) or blocks.dtype != np.int32:
            raise ValueError(f"shape {blocks.shape} {blocks.dtype}, metadata {meta}")
        # Read from the file, not through the map: pages of a map once read stay in this process's memory.
        problem = checksum.verify_file(npy, blocks.offset, blocks.nbytes, meta.get("checksum"), full=full_check)
        if problem:
            raise ValueError(problem)
    except (OSError, ValueError, KeyError, TypeError) as e:
        moved = _set_aside(npy, meta_file)
        log.warning("the data cache %s is damaged (%s); moved aside to %s, building it again", npy,
                    " ".join(str(e).split())[:300], moved)
        return None
    return blocks, meta


def _set_aside(npy: str, meta_file: str) -> str:
    """Moves a damaged cache's files to NAME.damaged (replacing an older one); returns the .npy's new name."""
    for path in (npy, meta_file):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, path + DAMAGED_SUFFIX)
    return npy + DAMAGED_SUFFIX


def verify_caches(cache_dir: str) -> list[tuple[str, str | None]]:
    """(cache file, None or what is wrong) for every block cache in `cache_dir`, each checked in full; a
    damaged one is moved aside (the next run builds it again)."""
    out = []
    for meta_file in sorted(glob.glob(os.path.join(cache_dir, "blocks-*.json"))):
        npy = meta_file[:-len(".json")] + ".npy"
        try:
            with open(meta_file) as f:
                seq_len = int(json.load(f)["seq_len"])
        except (OSError, ValueError, KeyError, TypeError):
            seq_len = -1
        problem = None
        if _read_cache(npy, meta_file, seq_len, full_check=True) is None:
            problem = f"damaged: moved aside to {npy + DAMAGED_SUFFIX}"
        out.append((npy, problem))
    return out


def _special_id(tokenizer, name: str) -> int:
    value = getattr(tokenizer, f"{name}_token_id", None)
    if value is None:
        raise ValueError(f"tokenizer has no {name} token; BERT packing needs [CLS], [SEP] "
                         "and [PAD]")
    return int(value)


def _pack_chunk(ids: list[list[int]], cls_id: int, sep_id: int) -> np.ndarray:
    """[CLS] a [SEP] [CLS] b [SEP] ... as one int32 vector, without a Python loop per token."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    total = int(lengths.sum()) + 2 * len(ids)
    out = np.empty(total, dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths + 2)[:-1]]).astype(np.int64)
    ends = starts + lengths + 1
    out[starts] = cls_id
    out[ends] = sep_id
    body = np.ones(total, dtype=bool)
    body[starts] = False
    body[ends] = False
    out[body] = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32,
                            count=int(lengths.sum()))
    return out


def document_batches(docs: Iterable[str]) -> Iterator[list[str]]:
    """The documents in lists of at most _TOKENIZE_CHUNK: a lazy corpus's own batches (read from Arrow in
    chunks), else slices of the iterator."""
    if hasattr(docs, "batches"):
        for batch in docs.batches():
            for i in range(0, len(batch), _TOKENIZE_CHUNK):
                yield batch[i:i + _TOKENIZE_CHUNK]
        return
    it = iter(docs)
    while chunk := list(itertools.islice(it, _TOKENIZE_CHUNK)):
        yield chunk


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """The token ids of each text, no special tokens. The Rust tokenizer's batch encoding runs on every core
    (its thread pool; TOKENIZERS_PARALLELISM=false makes it serial) and keeps the order, so the ids are the
    same either way. Called on the Rust tokenizer directly (without offsets: `encode_batch_fast`) unless it
    carries truncation or padding settings, which the transformers call switches off."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None)
    if fast is not None and backend.truncation is None and backend.padding is None:
        return [e.ids for e in fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]


def _copy_bytes(src, dst, num_bytes: int) -> None:
    """num_bytes from file src to file dst, in chunks (the memory of one chunk)."""
    buffer = bytearray(_COPY_BYTES)
    left = num_bytes
    while left:
        view = memoryview(buffer)[:min(left, _COPY_BYTES)]
        got = src.readinto(view)
        if not got:
            raise OSError(f"the token stream ended {left} bytes early")
        dst.write(view[:got])
        left -= got


def _build_blocks(docs: Iterable[str], tokenizer, seq_len: int, pad_last: bool, npy: str,
                  meta_file: str) -> None:
    """Tokenises batch by batch to a raw token stream on disk, then writes the .npy from it with file reads
    and writes: memory is a batch of documents and a copy buffer, whatever the size of the corpus."""
    from tqdm.auto import tqdm

    cls_id, sep_id, pad_id = (_special_id(tokenizer, n) for n in ("cls", "sep", "pad"))
    cache_dir = os.path.dirname(os.path.abspath(npy))
    os.makedirs(cache_dir, exist_ok=True)
    total = n_docs = 0
    raw_fd, raw_path = tempfile.mkstemp(prefix=".stream-", suffix=".bin", dir=cache_dir)
    tmp_npy = None
    try:
        with os.fdopen(raw_fd, "wb") as raw, tqdm(
                total=len(docs) if hasattr(docs, "__len__") else None, unit="doc",
                desc="tokenizing", disable=None) as bar:
            for chunk in document_batches(docs):
                bar.update(len(chunk))
                chunk = [d for d in chunk if d and not d.isspace()]
                if not chunk:
                    continue
                ids = encode(tokenizer, chunk)
                packed = _pack_chunk(ids, cls_id, sep_id)
                packed.tofile(raw)
                total += packed.size
                n_docs += len(chunk)
        n_blocks = math.ceil(total / seq_len) if pad_last else total // seq_len
        if n_blocks == 0:
            raise ValueError(f"the documents hold {total} tokens with [CLS]/[SEP], fewer than "
                             f"one block of seq_len={seq_len}: add documents or lower seq_len")
        kept = min(total, n_blocks * seq_len)
        fd, tmp_npy = tempfile.mkstemp(prefix=".blocks-", suffix=".npy", dir=cache_dir)
        os.close(fd)
        # open_memmap writes the .npy header (and sizes the file); its pages are never touched.
        header = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.int32, shape=(n_blocks, seq_len))
        offset, num_bytes = header.offset, header.nbytes
        del header
        with open(raw_path, "rb") as src, open(tmp_npy, "r+b") as dst:
            dst.seek(offset)
            _copy_bytes(src, dst, kept * 4)
            np.full(n_blocks * seq_len - kept, pad_id, dtype=np.int32).tofile(dst)
        # From the bytes as written (read back), so that a check on open compares with what is on disk.
        sums = checksum.file_checksums(tmp_npy, offset, num_bytes)
        meta = {"num_blocks": n_blocks, "seq_len": seq_len, "num_tokens": kept,
                "num_tokens_dropped": total - kept, "num_documents": n_docs,
                "pad_last": pad_last, "checksum": sums}
        files.atomic_write_text(meta_file, json.dumps(meta))
        files.follow_umask(tmp_npy)  # mkstemp made it private; a shared cache is read by others
        os.replace(tmp_npy, npy)  # last: the .npy existing means the cache is complete
        tmp_npy = None
    finally:
        os.unlink(raw_path)
        if tmp_npy is not None and os.path.exists(tmp_npy):
            os.unlink(tmp_npy)


class NotCached(Exception):
    """A cache that `build=False` did not find (jax_bert/data/prepare.py waits for it or names the command)."""


def prepare_blocks(spec: Any, tokenizer, seq_len: int, *, cache_dir: str, build: bool = True):
    """(train_blocks, validation_blocks) for a data spec, each int32 [N, seq_len].

    Validation keeps its padded last block (no text lost); train drops its partial one. The
    documents are loaded only if one of the two splits is not cached yet; with build=False a split that
    is not cached raises NotCached instead (nothing is read or tokenised). With no
    validation split (validation_fraction=0) the second element is None.
    """
    fingerprint = data_fingerprint(spec)
    loaded: list = []

    def split(i: int) -> Callable[[], Sequence[str]]:
        def get():
            if not build:
                raise NotCached(f"the {('train', 'validation')[i]} blocks are not in {cache_dir}")
            if not loaded:
                loaded.extend(load_documents(spec, cache_dir=datasets_cache_dir(cache_dir)))
            return loaded[i]
        return get

    train = tokenize_to_blocks(split(0), tokenizer, seq_len, cache_dir=cache_dir,
                               cache_key_parts=[fingerprint, "train"])
    if float(normalize_spec(spec)["validation_fraction"]) == 0:
        return train, None
    validation = tokenize_to_blocks(split(1), tokenizer, seq_len, cache_dir=cache_dir,
                                    cache_key_parts=[fingerprint, "validation"],
                                    pad_last=True)
    return train, validation
