"""Micro-benchmark behind the GLUE speed note: the gradient of a tiny BERT classifier for 10 seeds,
computed four ways in one process: one seed at a time (10 calls of the one-seed step), vmapped over
the seeds (what glue.finetune does), and inside one step with `lax.map` over the seeds (sequential
in XLA) or `lax.map(batch_size=2)` (vmap over pairs). The ways alternate call by call.

    python scripts/benchmark_vmap_step.py 0.1    # dropout 0.1 (training)
    python scripts/benchmark_vmap_step.py 0.0    # no dropout
"""
import functools
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from jax_bert import model
from jax_bert.config import BertConfig

SEEDS, BATCH, LENGTH, ROUNDS = 10, 32, 64, 15


def main(dropout: float) -> None:
    cfg = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout, num_labels=2)
    params = model.init_params(cfg, jax.random.key(0), "classifier")
    ids = jnp.ones((BATCH, LENGTH), jnp.int32)
    grad = jax.grad(lambda p, rng: model.apply(cfg, p, ids, head="classifier", dropout_rng=rng).sum())
    stacked = jax.tree.map(lambda x: jnp.stack([x] * SEEDS), params)
    rngs = jax.random.split(jax.random.key(1), SEEDS)
    one = jax.jit(grad)

    def mapped(batch_size):
        return jax.jit(lambda ps, rs: jax.lax.map(lambda a: grad(*a), (ps, rs), batch_size=batch_size))

    ways = {
        "one seed at a time": lambda: [one(params, rngs[i]) for i in range(SEEDS)],
        "vmap": functools.partial(jax.jit(jax.vmap(grad)), stacked, rngs),
        "lax.map": functools.partial(mapped(None), stacked, rngs),
        "lax.map, batch_size 2": functools.partial(mapped(2), stacked, rngs),
    }
    for call in ways.values():
        jax.block_until_ready(call())  # compile
    times = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, call in ways.items():
            start = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["one seed at a time"])
    print(f"dropout {dropout}, {SEEDS} seeds, hidden 32 x 2 layers, batch {BATCH} x {LENGTH}, "
          f"{jax.devices()[0].platform}, median of {ROUNDS}")
    for name, t in times.items():
        m = statistics.median(t)
        print(f"  {name:24s} {m * 1e3:7.1f} ms for {SEEDS} seeds ({m / SEEDS * 1e3:5.1f} ms per seed), "
              f"speed-up vs one at a time {base / m:.2f}x")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.1)
