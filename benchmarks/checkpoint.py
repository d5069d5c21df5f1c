"""What the checkpoint checksums cost.

    python scripts/benchmark_checkpoint.py [--preset base|small|tiny|tiny_run] [--repeats 3]

Builds a pretraining train state of the preset's BERT (params, AdamW moments) and times, interleaved in
the same process, a full save (async save + wait for the commit) with the checksums that every save
now computes (train/checksums.py) against the checksums alone, and a verified restore against the
checksums alone; prints the medians, the checksums' share of a save and of a restore, and the CPU share
other processes used while timing.
"""
import argparse
import statistics
import tempfile
import time

import jax
import numpy as np
import optax

from benchmarks import presets
from jax_bert import model
from jax_bert.cpu_load import CpuMonitor, load_note
from jax_bert.train import checkpoint, checksums


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(presets.ARCHITECTURES), default="base")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    config = presets.bert_config(args.preset)
    params = model.init_params(config, jax.random.key(0))
    tx = optax.adamw(1e-4)
    state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params)}
    state = jax.device_put(state)
    n = sum(x.size for x in jax.tree.leaves(state["params"]))
    size = sum(x.nbytes for x in jax.tree.leaves(state))
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    checksums.checksums(state)  # compile

    times = {"save": [], "restore": [], "checksums": []}
    with tempfile.TemporaryDirectory() as tmp, CpuMonitor() as monitor:
        manager = checkpoint.make_manager(tmp, save_every=1, keep=2)
        for step in range(1, args.repeats + 1):
            t0 = time.perf_counter()
            checkpoint.save(manager, step, state, data_position={"step": step}, config={})
            checkpoint.wait(manager)
            times["save"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            checkpoint.restore(manager, target, step)
            times["restore"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            checksums.checksums(state)
            times["checksums"].append(time.perf_counter() - t0)
        manager.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.preset}: {n / 1e6:.1f}M params, state {size / 2**20:.0f} MiB, {args.repeats} repeats, "
          f"{jax.device_count()} {jax.default_backend()} device(s)")
    print(f"save + commit (with checksums): {med['save']:.3f} s; verified restore: {med['restore']:.3f} s; "
          f"checksums alone: {med['checksums']:.3f} s")
    print(f"checksums / save: {med['checksums'] / med['save']:.1%}; checksums / restore: "
          f"{med['checksums'] / med['restore']:.1%}")
    note = load_note(monitor)
    if note:
        print(note)
