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


def _file_chunk_crc(f, offset: int, num_bytes: int, buffer: bytearray, i: int) -> int:
    """CRC of chunk i of the num_bytes at `offset` in the open file f, read into `buffer` (no map)."""
    size = min(CHUNK_BYTES, num_bytes - i * CHUNK_BYTES)
    f.seek(offset + i * CHUNK_BYTES)
    view = memoryview(buffer)[:size]
    got = f.readinto(view)
    if got != size:
        raise OSError(f"the file ends {size - got} bytes early")
    return zlib.crc32(view) & 0xFFFFFFFF


def file_checksums(path: str, offset: int, num_bytes: int) -> dict:
    """`checksums` of the num_bytes at `offset` in a file, read in chunks: memory is one chunk whatever the
    size (a memory map's read pages would stay resident in this process)."""
    n = -(-num_bytes // CHUNK_BYTES)
    buffer = bytearray(CHUNK_BYTES)
    with open(path, "rb") as f:
        chunks = [_file_chunk_crc(f, offset, num_bytes, buffer, i) for i in range(n)]
    return {"algorithm": ALGORITHM, "chunk_bytes": CHUNK_BYTES, "num_bytes": int(num_bytes), "chunks": chunks}


def verify(array: np.ndarray, recorded, *, full: bool | None = None) -> str | None:
    """None when the array's bytes match `recorded` (what `checksums` gave at build), else what differs.

    full=None: the whole array up to FULL_CHECK_BYTES, else sampled chunks; True: every chunk."""
    flat = _bytes(array)
    return _verify(int(flat.size), lambda i: _chunk_crc(flat, i), recorded, full)


def verify_file(path: str, offset: int, num_bytes: int, recorded, *, full: bool | None = None) -> str | None:
    """`verify` of the num_bytes at `offset` in a file (a .npy's data), read in chunks rather than mapped."""
    buffer = bytearray(CHUNK_BYTES)
    with open(path, "rb") as f:
        return _verify(num_bytes, lambda i: _file_chunk_crc(f, offset, num_bytes, buffer, i), recorded, full)


def _verify(num_bytes: int, chunk_crc, recorded, full: bool | None) -> str | None:
    if not isinstance(recorded, dict) or recorded.get("algorithm") != ALGORITHM or not recorded.get("chunks"):
        return "it has no checksum of its bytes (written by an older version)"
    if num_bytes != recorded.get("num_bytes") or recorded.get("chunk_bytes") != CHUNK_BYTES:
        return f"it holds {num_bytes} bytes, its checksum was written for {recorded.get('num_bytes')}"
    chunks = recorded["chunks"]
    n = len(chunks)
    if n != -(-num_bytes // CHUNK_BYTES):
        return f"its checksum lists {n} chunks for {num_bytes} bytes"
    if full is None:
        full = num_bytes <= FULL_CHECK_BYTES
    which = range(n) if full else sorted({0, n - 1, *random.SystemRandom().sample(range(n), min(SAMPLED_CHUNKS, n))})
    bad = [i for i in which if chunk_crc(i) != chunks[i]]
    if bad:
        first = bad[0]
        return (f"its bytes differ from the checksum written with them ({len(bad)} of {len(which)} checked "
                f"chunks of {CHUNK_BYTES >> 20} MiB, the first at bytes {first * CHUNK_BYTES}-"
                f"{min((first + 1) * CHUNK_BYTES, num_bytes)})")
    return None
