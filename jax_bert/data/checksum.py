"""Checksums of a cached array's bytes, so that a cache proves its bytes when it is opened.

The bytes are cut into chunks of CHUNK_BYTES and each chunk gets a CRC-32 (zlib's, a few GB/s on
one core: docs/benchmarks.md has the cost at BERT-base corpus scale). The list is written with the
array (in its metadata) when the array is built. On open, an array of at most FULL_CHECK_BYTES is
checked whole; a larger one has its first and last chunk and SAMPLED_CHUNKS others checked (drawn
afresh on every open, so repeated opens cover it), and `verify(..., full=True)` checks all of it on
demand (scripts/check_data_cache.py). One CRC per chunk also names where the damage is.
"""
from __future__ import annotations

import random
import zlib

import numpy as np

ALGORITHM = "crc32"
CHUNK_BYTES = 1 << 23  # 8 MiB: a BERT-base corpus (~13 GB of int32) is ~1600 chunks in the metadata
FULL_CHECK_BYTES = 4 << 30  # whole arrays up to 4 GiB are checked on every open (~1-2 s)
SAMPLED_CHUNKS = 64


def _bytes(array: np.ndarray) -> np.ndarray:
    """The array's bytes as a flat uint8 view (no copy for a C-contiguous array or memmap)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _chunk_crc(flat: np.ndarray, i: int) -> int:
    return zlib.crc32(flat[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]) & 0xFFFFFFFF


def checksums(array: np.ndarray) -> dict:
    """{"algorithm", "chunk_bytes", "num_bytes", "chunks": [crc of each chunk]} of the array's bytes."""
    flat = _bytes(array)
    n = -(-flat.size // CHUNK_BYTES)
    return {"algorithm": ALGORITHM, "chunk_bytes": CHUNK_BYTES, "num_bytes": int(flat.size),
            "chunks": [_chunk_crc(flat, i) for i in range(n)]}


def verify(array: np.ndarray, recorded, *, full: bool | None = None) -> str | None:
    """None when the array's bytes match `recorded` (what `checksums` gave at build), else what differs.

    full=None: the whole array up to FULL_CHECK_BYTES, else sampled chunks; True: every chunk."""
    if not isinstance(recorded, dict) or recorded.get("algorithm") != ALGORITHM or not recorded.get("chunks"):
        return "it has no checksum of its bytes (written by an older version)"
    flat = _bytes(array)
    if flat.size != recorded.get("num_bytes") or recorded.get("chunk_bytes") != CHUNK_BYTES:
        return f"it holds {flat.size} bytes, its checksum was written for {recorded.get('num_bytes')}"
    chunks = recorded["chunks"]
    n = len(chunks)
    if n != -(-flat.size // CHUNK_BYTES):
        return f"its checksum lists {n} chunks for {flat.size} bytes"
    if full is None:
        full = flat.size <= FULL_CHECK_BYTES
    which = range(n) if full else sorted({0, n - 1, *random.SystemRandom().sample(range(n), min(SAMPLED_CHUNKS, n))})
    bad = [i for i in which if _chunk_crc(flat, i) != chunks[i]]
    if bad:
        first = bad[0]
        return (f"its bytes differ from the checksum written with them ({len(bad)} of {len(which)} checked "
                f"chunks of {CHUNK_BYTES >> 20} MiB, the first at bytes {first * CHUNK_BYTES}-"
                f"{min((first + 1) * CHUNK_BYTES, flat.size)})")
    return None
