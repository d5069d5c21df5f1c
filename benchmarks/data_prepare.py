"""What preparing a corpus costs: peak resident memory and tokens per second, against the corpus size.

    python scripts/benchmark_data_prepare.py [--mb 40 400] [--formats txt jsonl parquet] [--code DIR]
        [--vocab] [--train_documents N] [--workdir DIR] [--json PATH]

For each size S (MB of text) and format it writes a corpus (the offline corpus's documents drawn with a
fixed seed until S MB: .txt paragraphs, .jsonl records or parquet rows, in files of at most 64 MB), then
prepares its train and validation block caches (seq_len 128, a fresh cache directory: the Arrow conversion
included) in a CHILD process and reports the child's peak resident set (`ru_maxrss`: what the machine
must hold), its wall time, tokens per second and tokens per CPU-second (the rate of one core), and the
share of the CPUs other processes used meanwhile (jax_bert/cpu_load.py's measure). Every child uses the
same vocabulary (trained once on the first documents and saved), so runs differ only in the code that
prepares the blocks. `--code DIR` runs the child on another checkout (e.g. `git worktree add
/tmp/data-before main` for the code before a change): the child uses only `jax_bert.data`'s
get_tokenizer / prepare_blocks, which both have. `--vocab` measures the vocabulary trainer instead
(an 8k WordPiece vocabulary trained on the corpus, or on `--train_documents` of its documents).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

FILE_BYTES = 64 << 20
SEQ_LEN = 128
VOCAB_SIZE = 8000

# Run by the child, with only the code under test on its path: prepares, then prints one JSON line.
_CHILD = r"""
import json, os, resource, sys, time
spec, tokenizer_dir, cache_dir, mode, train_documents = json.loads(sys.argv[1])
from jax_bert import data
rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
tokens = 0
if mode == "vocab":
    kwargs = {"train_documents": train_documents} if train_documents else {}
    tok = data.get_tokenizer(None, workdir=cache_dir, documents=lambda: data.load_documents(spec)[0],
                             vocab_size=%d, **kwargs)
else:
    tok = data.get_tokenizer(tokenizer_dir)
    train, val = data.prepare_blocks(spec, tok, %d, cache_dir=cache_dir)
    import glob  # tokens from the caches' metadata: summing the arrays would map their pages in
    tokens = sum(json.load(open(m))["num_tokens"] for m in glob.glob(os.path.join(cache_dir, "blocks-*.json")))
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "tokens": tokens, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024, "rss_after_imports_mb": rss_imports / 1024,
                  "module": data.__file__}))
""" % (VOCAB_SIZE, SEQ_LEN)


def write_corpus(folder: str, megabytes: int, fmt: str, documents: list[str]) -> str:
    """S MB of documents drawn with seed 0, in files of at most FILE_BYTES; returns the glob. Kept when
    already written (a `done` marker)."""
    pattern = os.path.join(folder, f"*.{fmt}")
    if os.path.exists(os.path.join(folder, "done")):
        return pattern
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder, exist_ok=True)
    rng = random.Random(0)
    target, written, index = megabytes << 20, 0, 0
    while written < target:
        rows, size = [], 0
        while size < FILE_BYTES and written + size < target:
            doc = rng.choice(documents)
            rows.append(doc)
            size += len(doc.encode()) + 2
        path = os.path.join(folder, f"{index:05d}.{fmt}")
        if fmt == "txt":
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n\n".join(rows) + "\n")
        elif fmt == "jsonl":
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": r}) + "\n" for r in rows)
        else:
            pq.write_table(pa.table({"text": rows}), path, row_group_size=10_000)
        written, index = written + size, index + 1
    open(os.path.join(folder, "done"), "w").close()
    return pattern


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_child(spec: dict, tokenizer_dir: str, cache_dir: str, code: str, mode: str,
              train_documents: int) -> dict:
    """The child's report, with the share of the CPUs that processes other than the child used meanwhile."""
    env = {**os.environ, "PYTHONPATH": code, "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM",
                                                                                      "true"),
           "HF_DATASETS_CACHE": os.path.join(cache_dir, "datasets")}  # the vocab mode's Arrow copies, removed after
    busy, wall = _busy_seconds(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([spec, tokenizer_dir, cache_dir, mode,
                                                                     train_documents])],
                          env=env, cwd=code, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    if proc.returncode != 0:
        raise RuntimeError(f"the child failed: {proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if busy is not None:
        other = (_busy_seconds() - busy) - report["cpu_seconds"]
        report["other_cpu_share"] = round(min(1.0, max(0.0, other / (wall * (os.cpu_count() or 1)))), 3)
    report["tokens_per_s"] = report["tokens"] / report["seconds"]
    report["tokens_per_cpu_s"] = report["tokens"] / max(report["cpu_seconds"], 1e-9)
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[40, 400])
    parser.add_argument("--formats", nargs="+", default=["txt"], choices=["txt", "jsonl", "parquet"])
    parser.add_argument("--code", default=os.getcwd(), help="the checkout whose jax_bert the child runs")
    parser.add_argument("--workdir", default="/tmp/benchmark_data_prepare")
    parser.add_argument("--vocab", action="store_true", help="measure the vocabulary trainer instead")
    parser.add_argument("--train_documents", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)

    from jax_bert import data
    from jax_bert.data import corpus

    documents = corpus.offline_documents()
    tokenizer_dir = os.path.join(args.workdir, "tokenizer")
    if not os.path.exists(os.path.join(tokenizer_dir, "tokenizer.json")):
        data.tokenizer.wordpiece_tokenizer(documents[:5000], VOCAB_SIZE).save_pretrained(tokenizer_dir)
    rows = []
    print(f"code {os.path.abspath(args.code)}; {os.cpu_count()} CPUs; {'vocab' if args.vocab else 'blocks'}")
    for fmt in args.formats:
        for mb in args.mb:
            pattern = write_corpus(os.path.join(args.workdir, f"corpus-{fmt}-{mb}"), mb, fmt, documents)
            cache = os.path.join(args.workdir, f"cache-{os.getpid()}-{fmt}-{mb}")
            spec = {"source": "files", "files": pattern}
            report = run_child(spec, tokenizer_dir, cache, os.path.abspath(args.code),
                               "vocab" if args.vocab else "blocks", args.train_documents)
            subprocess.run(["rm", "-rf", cache], check=False)
            row = {"format": fmt, "mb": mb, **report}
            rows.append(row)
            rates = (f"{row['tokens_per_s'] / 1e3:7.0f}k tokens/s  {row['tokens_per_cpu_s'] / 1e3:7.0f}k tokens/CPU-s  "
                     if row["tokens"] else f"CPU {row['cpu_seconds']:.1f} s  ")
            print(f"{fmt:8s} {mb:5d} MB  peak RSS {row['peak_rss_mb']:7.0f} MB (after imports "
                  f"{row['rss_after_imports_mb']:.0f})  {row['seconds']:7.1f} s  {rates}"
                  f"others used {100 * row.get('other_cpu_share', float('nan')):.0f}% of the CPUs", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                       "code": os.path.abspath(args.code), "rows": rows}, f, indent=1)
