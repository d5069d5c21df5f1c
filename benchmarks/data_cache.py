"""What the data cache's checksums cost (jax_bert/data/checksum.py).

    python scripts/benchmark_data_cache.py [--mib 1024] [--repeats 3]

Builds a real block cache (the offline corpus, WordPiece vocabulary of 8,000 trained on it, length
128) in a temporary directory, then a cache of `--mib` MiB made of those same blocks repeated (CRC-32
costs the same whatever the bytes are), and times on it, in this process, the checksums computed at
build, the full check on open (the whole array read through its memory map, page cache warm) and the
sampled check used above FULL_CHECK_BYTES. Prints MB/s and the time extrapolated to a BERT-base corpus
(Wikipedia + BookCorpus, ~3.3e9 tokens: 13.2 GB as the cache's int32) and the CPU share other
processes used while timing.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from jax_bert import data
from jax_bert.cpu_load import CpuMonitor, load_note
from jax_bert.data import checksum

BERT_BASE_TOKENS = 3.3e9


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="Size of the cache timed, MiB.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.mib < 1 or args.repeats < 1:
        parser.error("--mib and --repeats must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"source": "offline"}
        tokenizer = data.get_tokenizer(None, workdir=tmp, documents=lambda: data.load_documents(spec)[0],
                                       vocab_size=8000)
        t0 = time.perf_counter()
        real, _ = data.prepare_blocks(spec, tokenizer, 128, cache_dir=os.path.join(tmp, "cache"))
        built = time.perf_counter() - t0
        print(f"the offline corpus: {real.shape[0]:,} blocks of 128 tokens, {real.nbytes / 2**20:.1f} MiB, built "
              f"(tokenised, written, checksummed, checked) in {built:.1f} s")
        rows = args.mib * 2**20 // (128 * 4)
        path = os.path.join(tmp, "big.npy")
        big = np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(rows, 128))
        for start in range(0, rows, len(real)):
            stop = min(rows, start + len(real))
            big[start:stop] = real[:stop - start]
        big.flush()
        del big
        big = np.load(path, mmap_mode="r")
        recorded = checksum.checksums(big)  # also warms the page cache
        with CpuMonitor() as monitor:
            build = _timed(lambda: checksum.checksums(big), args.repeats)
            full = _timed(lambda: checksum.verify(big, recorded, full=True), args.repeats)
            sampled = _timed(lambda: checksum.verify(big, recorded, full=False), args.repeats)
        mb = big.nbytes / 1e6
        scale = BERT_BASE_TOKENS * 4 / big.nbytes
        print(f"cache of {big.nbytes / 2**20:.0f} MiB ({len(recorded['chunks'])} chunks of "
              f"{checksum.CHUNK_BYTES >> 20} MiB), median of {args.repeats}, page cache warm:")
        print(f"  checksums at build: {build:.3f} s ({mb / build:,.0f} MB/s)")
        print(f"  full check on open: {full:.3f} s ({mb / full:,.0f} MB/s) -> BERT-base corpus "
              f"(3.3e9 tokens, {BERT_BASE_TOKENS * 4 / 1e9:.1f} GB int32): {full * scale:.1f} s")
        print(f"  sampled check ({checksum.SAMPLED_CHUNKS} chunks + first + last): {sampled:.3f} s "
              f"(the same at any size above {checksum.FULL_CHECK_BYTES >> 30} GiB)")
    note = load_note(monitor)
    if note:
        print(note)
