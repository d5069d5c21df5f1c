"""Where a warm fine-tuning step's time goes (--mode profile of scripts/benchmark_glue.py).

The GLUE suite benchmark's model (BERT-small: 4 layers, hidden 256, vocabulary 30,522, random init),
3 seeds, batch 32 at the 128 bucket, packed to a budget of `--tokens` real tokens per seed (1,280: GLUE's
mean of about 40 tokens per example). Each part is its own jitted program over the seeds, timed warm,
interleaved round by round (median):
  step         the training step the engine runs (forward, backward, clipped AdamW, masks)
  grad         forward + backward only (value_and_grad of the loss)
  optimizer    clip + AdamW + apply over every parameter, given the gradients
  embeddings   the same optimizer on the word embeddings alone (30,522 x 256 of 11.2M parameters)
  host         building the step's packed batch on the host (numpy)
The parts need not add up to the step (XLA fuses across them); their shares say what a cut can win.
"""
from __future__ import annotations

import argparse
import statistics

from benchmarks import timing


def profile_main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="where a warm fine-tuning step's time goes")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--bucket", type=int, default=128)
    p.add_argument("--tokens", type=int, default=1280, help="packed token budget per seed")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab_size", type=int, default=30522)
    args = p.parse_args(argv)
    if not 8 <= args.tokens <= args.batch_size * args.bucket or args.seeds < 1 or args.rounds < 1:
        p.error("--tokens must be in [8, batch_size x bucket]; --seeds and --rounds >= 1")

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import sparsity
    from glue import config as glue_config
    from glue import finetune
    from jax_bert import model
    from jax_bert.finetune import batching, engine
    from jax_bert.finetune.seeds import over_seeds, resolve_seed_loop

    config = model.BertConfig(vocab_size=args.vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
                              num_attention_heads=4, intermediate_size=4 * args.hidden, num_labels=3,
                              max_position_embeddings=max(512, args.bucket), dropout_layout_length=args.bucket)
    hp = finetune.task_hparams(glue_config.get_config(), "mnli", batch_size=args.batch_size)
    base = engine.base_params(model.init_params(config, jax.random.key(0), "classifier"))
    seeds = list(range(args.seeds))
    params, opt_state = engine.init_seeds(config, base, seeds, hp)
    masks = engine.masks_tree(config, base, {})
    seed_loop = resolve_seed_loop("auto", None)

    rng = np.random.default_rng(0)
    n = args.batch_size * 4
    lengths = np.full(n, max(2, args.tokens // args.batch_size))
    data = {"input_ids": rng.integers(5, args.vocab_size, (n, args.bucket)).astype(np.int32),
            "token_type_ids": np.zeros((n, args.bucket), np.int32),
            "attention_mask": (np.arange(args.bucket)[None] < lengths[:, None]).astype(np.int32),
            "labels": rng.integers(0, 3, n).astype(np.int32)}
    rows = np.stack([rng.permutation(n)[:args.batch_size] for _ in seeds])
    weights = np.ones(rows.shape, np.float32)
    tokens = batching.token_budget(int(lengths[rows].sum(axis=1).max()), args.batch_size, args.bucket)

    def host():
        batch = batching.pack_batch(data, lengths, rows, weights, args.bucket, tokens)
        # the shared classifier's task columns, as the engine adds them (a 3-label task)
        return dict(batch, classes=np.ones((args.seeds, 3), bool), regression=np.zeros(args.seeds, bool))

    batch = host()
    step_fn = engine._train_step(config, engine._optimizer_key(hp), seed_loop)
    lr = jnp.full(args.seeds, 2e-5, jnp.float32)
    bad = jnp.zeros(args.seeds, bool)
    seed_arr = jnp.asarray(seeds, jnp.int32)
    packed_keys = batching.PACKING_KEYS

    def loss_of(p, b, seed):
        logits = model.apply(config, p, b["input_ids"], None, b["token_type_ids"], head="classifier",
                             dropout_rng=jax.random.key(seed), packing={k: b[k] for k in packed_keys})
        return engine.weighted_loss(logits, b["labels"], b["weights"], b["classes"], b["regression"])

    grad_fn = jax.jit(over_seeds(jax.value_and_grad(loss_of), (0, 0, 0), seed_loop))
    optimizer = engine._optimizer(engine._optimizer_key(hp))

    def update(p, s, g):
        u, s = optimizer.update(g, s, p)
        return sparsity.apply_masks(optax.apply_updates(p, u), masks), s

    opt_fn = jax.jit(over_seeds(update, (0, 0, 0), seed_loop))
    word = lambda tree: tree["bert"]["embeddings"]["word_embeddings"]["embedding"]  # noqa: E731
    emb_opt = optax.adamw(1.0, weight_decay=0.01)
    emb_state = jax.vmap(emb_opt.init)(word(params))

    def emb_update(p, s, g):
        u, s = emb_opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    emb_fn = jax.jit(over_seeds(emb_update, (0, 0, 0), seed_loop))
    _, grads = grad_fn(params, batch, seed_arr)
    parts = {
        "step": lambda: step_fn(params, opt_state, bad, batch, seed_arr, np.int32(0), masks, lr),
        "grad": lambda: grad_fn(params, batch, seed_arr),
        "optimizer": lambda: opt_fn(params, opt_state, grads),
        "embeddings": lambda: emb_fn(word(params), emb_state, word(grads)),
        "host": host,
    }
    for call in parts.values():
        jax.block_until_ready(call())  # compile
    times = {name: [] for name in parts}
    with timing.CpuMonitor() as monitor:
        for _ in range(args.rounds):
            for name, call in parts.items():
                times[name] += timing.time_steps(lambda: jax.block_until_ready(call()), 1)
    med = {name: statistics.median(t) for name, t in times.items()}
    n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(params))
    print(f"{jax.devices()[0].platform}; BERT {args.layers} layers, hidden {args.hidden}, {args.seeds} seeds, "
          f"batch {args.batch_size} x bucket {args.bucket}, {tokens} packed tokens per seed, {n_params:,} params "
          f"per seed; median of {args.rounds}")
    rows_out = [{"part": name, "ms": 1e3 * m, "of_step": m / med["step"]} for name, m in med.items()]
    timing.print_table(rows_out, [("part", "part", ""), ("ms", "ms", "{:.1f}"),
                                  ("of_step", "share of the step", "{:.0%}")])
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    return {"rows": rows_out, "tokens": tokens, "params_per_seed": n_params, "other_cpu_share": monitor.other_share}
