"""Benchmark the pretraining step: against Hugging Face PyTorch, sparse overheads, and GPU MFU.

    python scripts/benchmark.py --mode torch --preset small     # ours vs HF BertForMaskedLM + AdamW
    python scripts/benchmark.py --mode torch --preset base
    python scripts/benchmark.py --mode sparse --preset small    # dense vs static 80% vs RigL vs KD
    python scripts/benchmark.py --mode gpu                      # BERT-base bf16 tokens/s and MFU
    python scripts/benchmark.py --mode gpu --preset tiny        # the same code path, tiny shapes (CPU check)

Every mode builds the step with the pretraining loop's own builder (`jax_bert.train.step.build`, the
optimizer from `optim.make_train_optimizer`, teachers as `teachers.Teacher` records) on a synthetic
batch: random token ids, a fixed number of masked slots per row (mlm_batches.max_predictions), no
padding. Timings are taken after warm-up; the variants of one run are interleaved (by default step
by step) so that a change in machine load hits them alike, and the share of the CPUs that other
processes used meanwhile is measured and printed: numbers taken while other processes were busy
are not comparable with quiet-machine numbers.

--mode torch  runs Hugging Face `BertForMaskedLM` + `torch.optim.AdamW` (+ clip_grad_norm_ 1.0, the
              Trainer's no-decay groups and linear warm-up schedule) on the same config, batch and
              masked positions (labels -100 elsewhere), float32, dropout on, in this process; prints
              both tokens/s, the ratio and our compile time.
--mode sparse times dense, static 80% masks, RigL (a non-update step and an update step, by setting
              the step counters to update_freq / 2 and update_freq - 1) and distillation from a
              same-size teacher; prints each relative to the dense step and RigL's amortised overhead.
--mode gpu    dense and rigl80 (static 80% masks + RigL + a same-size bf16 teacher) BERT-base in
              bf16 compute (f32 params) at lengths 128 and 512: tokens/s and MFU. Needs jax, flax,
              optax, orbax, numpy and ml_collections (carry its wheel to a bare GPU machine); no torch.

--out FILE writes the results as JSON.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import sparsity
from benchmarks import presets, timing
from jax_bert import files, model
from jax_bert.data import mlm_batches
from jax_bert.model import BertConfig
from jax_bert.train import optim, sharding
from jax_bert.train import step as train_step
from jax_bert.train.config import base_config
from jax_bert.train.teachers import Teacher

# Each preset's (benchmarks/presets.py) defaults for the torch and sparse modes: length, batch and timed
# steps; the gpu mode uses GPU_SHAPES.
RUN_DEFAULTS = {"tiny": dict(length=32, batch=4, steps=3), "small": dict(length=128, batch=16, steps=20),
                "tiny_run": dict(length=128, batch=32, steps=10), "base": dict(length=128, batch=8, steps=5)}
GPU_SHAPES = {"tiny": ((32, 4), (64, 2)), "tiny_run": ((128, 32),), "small": ((128, 64), (512, 32)),
              "base": ((128, 64), (512, 32))}
TARGETS = {"torch": {"small": 2.5, "base": 1.2}, "static_max": 1.05, "rigl_update_max": 3.0,
           "rigl_amortised_max": 0.02}
MLM_PROBABILITY = 0.15
MASK_ID = 103  # [MASK] in BERT's vocabularies; ids below 1000 (special / unused tokens) are not drawn


# ----------------------------------------------------------------------------- the engine's step


def synthetic_batch(batch: int, length: int, vocab: int, seed: int):
    """(ours, hf_labels): numpy arrays of step.BATCH_KEYS [B, ...] and HF's labels [B, L] (-100
    except at the masked slots). Every row has the same number of masked slots, no padding."""
    slots = mlm_batches.max_predictions(length, MLM_PROBABILITY)
    if slots > length - 1:
        raise ValueError(f"length {length} is too short for {slots} masked slots; use a length >= 8.")
    rng = np.random.default_rng(seed)
    low = 1000 if vocab > 2000 else 5
    labels_full = rng.integers(low, vocab, size=(batch, length)).astype(np.int32)
    labels_full[:, 0] = min(101, vocab - 1)  # [CLS]
    positions = np.sort(np.stack([rng.choice(np.arange(1, length), slots, replace=False) for _ in range(batch)]),
                        axis=1).astype(np.int32)
    input_ids = labels_full.copy()
    rows = np.arange(batch)[:, None]
    input_ids[rows, positions] = MASK_ID if vocab > MASK_ID else 3
    hf_labels = np.full((batch, length), -100, np.int64)
    hf_labels[rows, positions] = labels_full[rows, positions]
    ours = {"input_ids": input_ids, "attention_mask": np.ones((batch, length), np.int32),
            "token_type_ids": np.zeros((batch, length), np.int32), "masked_positions": positions,
            "masked_labels": labels_full[rows, positions], "masked_weights": np.ones((batch, slots), np.float32)}
    return ours, hf_labels


def model_config(preset: str, *, dtype: str = "float32", attention_dropout: float = 0.1) -> BertConfig:
    return presets.bert_config(preset, dtype=dtype, attention_probs_dropout_prob=attention_dropout)


def run_config(total_steps: int, *, sparse: bool = False, rigl: bool = False, update_freq: int = 100,
               level: float = 0.8):
    """A pretraining config: bert_100k's AdamW and warm-up/linear schedule over `total_steps`, with the
    original sparse layout at `level` (RigL from update_freq, every update_freq steps) when asked."""
    c = base_config()
    c.train.steps = total_steps
    c.sparsity.update(enabled=sparse, level=level)
    c.sparsity.rigl.update(enabled=rigl, update_freq=update_freq, start=update_freq)
    return c


def make_teacher(student: BertConfig, mesh, dtype: str, seed: int = 1) -> Teacher:
    """One in-memory, randomly initialised teacher the size of the student (what the loop loads from a
    checkpoint on disk: f32 params, `dtype` compute)."""
    t_cfg = student.replace(dtype=dtype)
    init = lambda: model.init_params(t_cfg, jax.random.key(seed))  # noqa: E731
    shardings = sharding.param_shardings(model.logical_axes(t_cfg), jax.eval_shape(init), mesh)
    return Teacher(t_cfg, jax.jit(init, out_shardings=shardings)(), shardings, 1.0, "(in memory, random init)")


def _with_step(state: dict, step: int) -> dict:
    """The state positioned at `step`: the step counter and the sparse optimizer's update count."""
    def set_count(x):
        return x._replace(count=jnp.asarray(step, jnp.int32)) if isinstance(x, sparsity.SparseState) else x

    opt_state = jax.tree.map(set_count, state["opt_state"], is_leaf=lambda x: isinstance(x, sparsity.SparseState))
    return {**state, "step": jnp.asarray(step, jnp.int32), "opt_state": opt_state}


class Engine:
    """Our jitted train step on its state, built as the pretraining loop builds it."""

    def __init__(self, cfg: BertConfig, mesh, batch_np, *, config=None, teacher_dtype=None, seed=0):
        config = config if config is not None else run_config(100_000)
        abstract_params = model.abstract_params(cfg)
        tx = optim.make_train_optimizer(config, abstract_params)
        teachers = [make_teacher(cfg, mesh, teacher_dtype)] if teacher_dtype else []
        self.program = train_step.build(cfg, tx, mesh, seed=seed, teachers=teachers,
                                        distill=train_step.Distillation(total_steps=int(config.train.steps)))
        self.teacher_params = [t.params for t in teachers]
        self.state = self.program.init_state()
        self.batch = sharding.place_batch({k: v[None] for k, v in batch_np.items() if k in train_step.BATCH_KEYS},
                                          mesh, leading_axes=1)  # [accum=1, B, ...]
        self.n_params = train_step.count_params(self.program.abstract_state["params"])
        self.compiled = None
        self.metrics = None

    def compile(self) -> float:
        start = time.perf_counter()
        self.compiled = self.program.train_step.lower(self.state, self.batch, self.teacher_params).compile()
        return time.perf_counter() - start

    def set_step(self, step: int) -> None:
        """Positions the state at `step` (RigL updates when step + 1 is an update step)."""
        self.state = jax.device_put(_with_step(self.state, step), self.program.shardings)

    def step(self, block: bool = True) -> None:
        self.state, self.metrics = self.compiled(self.state, self.batch, self.teacher_params)
        if block:
            jax.block_until_ready((self.state, self.metrics))

    def masks(self):
        return jax.device_get(sparsity.get_masks(self.state["opt_state"]))

    def loss(self) -> float:
        return float(self.metrics["loss"])


# ----------------------------------------------------------------------------- --mode torch


class TorchRunner:
    """Hugging Face BertForMaskedLM trained the Trainer's way: AdamW (no decay on biases and LayerNorm),
    clip_grad_norm_ 1.0, linear warm-up schedule; float32, dropout on."""

    def __init__(self, cfg, batch_np, hf_labels, seed: int = 0):
        import torch
        import transformers

        torch.set_num_threads(timing.usable_cpus())
        torch.manual_seed(seed)
        self.torch = torch
        hf_cfg = transformers.BertConfig(**cfg.to_hf_dict())
        self.model = transformers.BertForMaskedLM(hf_cfg).train()
        self.attn_implementation = getattr(self.model.config, "_attn_implementation", "eager")
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                      {"params": no_decay, "weight_decay": 0.0}],
                                     lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
        self.sched = transformers.get_linear_schedule_with_warmup(self.opt, 2000, 100_000)
        self.inputs = {k: torch.from_numpy(batch_np[k].astype("int64"))
                       for k in ("input_ids", "attention_mask", "token_type_ids")}
        self.inputs["labels"] = torch.from_numpy(hf_labels)
        self.last_loss = float("nan")

    def step(self) -> None:
        out = self.model(**self.inputs)
        out.loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.last_loss = float(out.loss.detach())  # also a sync point (CPU torch is synchronous anyway)


def run_torch(args) -> dict:
    cfg = model_config(args.preset, attention_dropout=args.attention_dropout)
    mesh = sharding.make_mesh(args.mesh)
    batch_np, hf_labels = synthetic_batch(args.batch, args.length, cfg.vocab_size, args.seed)
    tokens = args.batch * args.length

    ours = Engine(cfg, mesh, batch_np, seed=args.seed)
    compile_s = ours.compile()
    theirs = TorchRunner(cfg, batch_np, hf_labels, args.seed)
    for _ in range(args.warmup):
        ours.step()
        theirs.step()
    first_losses = {"ours": ours.loss(), "torch": theirs.last_loss}
    times = {"ours": [], "torch": []}
    with timing.CpuMonitor() as monitor:
        for n in timing.split_rounds(args.steps, args.rounds):  # interleaved: load changes hit both alike
            times["ours"] += timing.time_steps(ours.step, n)
            times["torch"] += timing.time_steps(theirs.step, n)

    rows = []
    for name, label in (("ours", "jax_bert (jit)"), ("torch", f"HF BertForMaskedLM ({theirs.attn_implementation})")):
        mean = statistics.fmean(times[name])
        rows.append({"impl": label, "step_s": mean, "median_s": statistics.median(times[name]),
                     "min_s": min(times[name]), "tokens_per_s": tokens / mean, "loss": first_losses[name]})
    ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    ratio_median = rows[1]["median_s"] / rows[0]["median_s"]
    target = TARGETS["torch"].get(args.preset)
    print(f"\n--mode torch --preset {args.preset}: batch {args.batch} x length {args.length}, float32, "
          f"{args.steps} timed steps after {args.warmup} warm-up, interleaved in {min(args.rounds, args.steps)} rounds")
    timing.print_table(rows, [("impl", "implementation", ""), ("step_s", "mean step s", "{:.4f}"),
                        ("median_s", "median step s", "{:.4f}"), ("min_s", "min step s", "{:.4f}"),
                        ("tokens_per_s", "tokens/s (mean)", "{:,.0f}"),
                        ("loss", "loss after warm-up", "{:.3f}")])
    verdict = "" if target is None or not timing.is_quiet(monitor) else \
        f" (target >= {target}x: {'met' if ratio >= target else 'MISSED'})"
    print(f"ratio ours / torch (tokens/s): {timing.ratio_text(ratio, monitor)}{verdict} (by median step: "
          f"{timing.ratio_text(ratio_median, monitor)}); "
          f"our compile time {compile_s:.1f} s; {ours.n_params:,} params")
    print(timing.load_note(monitor))
    return {"rows": rows, "ratio": ratio, "ratio_median": ratio_median, "target": target, "compile_s": compile_s,
            "n_params": ours.n_params, "times_s": times, "tokens_per_step": tokens,
            "other_processes_cpu_share": monitor.other_share, "ratio_valid": timing.is_quiet(monitor)}


# ----------------------------------------------------------------------------- --mode sparse


def rigl_updates(engine: Engine, at: int) -> bool:
    """Whether one step from `at` changes the masks (a RigL update step), checked on the host."""
    engine.set_step(at)
    before = engine.masks()
    engine.step()
    return any(bool(np.any(a != b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(engine.masks())))


def run_sparse(args) -> dict:
    cfg = model_config(args.preset, attention_dropout=args.attention_dropout)
    mesh = sharding.make_mesh(args.mesh)
    batch_np, _ = synthetic_batch(args.batch, args.length, cfg.vocab_size, args.seed)
    freq = args.update_freq
    total = 1000 * freq  # RigL's end far away: every multiple of freq from freq on is an update step
    plain_at, update_at = freq // 2, freq - 1  # step + 1 = freq is the first update
    engines = {
        "dense": Engine(cfg, mesh, batch_np, config=run_config(total), seed=args.seed),
        "static80": Engine(cfg, mesh, batch_np, config=run_config(total, sparse=True, update_freq=freq),
                           seed=args.seed),
        "rigl80": Engine(cfg, mesh, batch_np, config=run_config(total, sparse=True, rigl=True, update_freq=freq),
                         seed=args.seed),
        f"kd_{args.teacher_dtype}": Engine(cfg, mesh, batch_np, config=run_config(total),
                                           teacher_dtype=args.teacher_dtype, seed=args.seed),
    }
    compile_s = {name: e.compile() for name, e in engines.items()}
    rigl = engines["rigl80"]
    # (label, engine, step position before each call or None)
    variants = [("dense", engines["dense"], None), ("static80", engines["static80"], None),
                ("rigl80 plain step", rigl, plain_at), ("rigl80 update step", rigl, update_at),
                (f"kd_{args.teacher_dtype}", engines[f"kd_{args.teacher_dtype}"], None)]

    def runner(engine, at):
        return (lambda: engine.step()), (None if at is None else (lambda: engine.set_step(at)))

    for label, engine, at in variants:
        step, before = runner(engine, at)
        timing.time_steps(step, args.warmup, before)
        if at is not None and rigl_updates(engine, at) != (at == update_at):  # the premise holds
            raise AssertionError(f"{label}: the masks {'did not change' if at == update_at else 'changed'} "
                                 f"at step {at}; the benchmark's premise is wrong")
    times = {label: [] for label, _, _ in variants}
    with timing.CpuMonitor() as monitor:
        for n in timing.split_rounds(args.steps, args.rounds):
            for label, engine, at in variants:
                step, before = runner(engine, at)
                times[label] += timing.time_steps(step, n, before)

    med = {k: statistics.median(v) for k, v in times.items()}
    dense = med["dense"]
    t_plain, t_update = med["rigl80 plain step"], med["rigl80 update step"]
    # RigL's extra cost spread over the steps between updates: every 100 steps (the original's
    # schedule, what the target is about), whatever --update_freq timed the plain step.
    amortised = (t_update - t_plain) / 100 / t_plain
    tokens = args.batch * args.length
    rows = [{"variant": k, "median_s": v, "mean_s": statistics.fmean(times[k]), "min_s": min(times[k]),
             "vs_dense": v / dense,
             "tokens_per_s": tokens / v} for k, v in med.items()]
    print(f"\n--mode sparse --preset {args.preset}: mesh {dict(mesh.shape)}, batch {args.batch} x length "
          f"{args.length}, {args.steps} timed steps per variant after {args.warmup} warm-up, interleaved in "
          f"{min(args.rounds, args.steps)} rounds")
    timing.print_table(rows, [("variant", "variant", ""), ("median_s", "median step s", "{:.4f}"),
                        ("mean_s", "mean step s", "{:.4f}"), ("min_s", "min step s", "{:.4f}"),
                        ("vs_dense", "x dense (median)", "{:.3f}"),
                        ("tokens_per_s", "tokens/s", "{:,.0f}")])
    static = med["static80"] / dense
    print(f"static 80% / dense: {static:.3f}x (target <= {TARGETS['static_max']}x: "
          f"{'met' if static <= TARGETS['static_max'] else 'MISSED'})")
    ratio = t_update / t_plain
    print(f"RigL update step / plain step: {ratio:.2f}x (target <= {TARGETS['rigl_update_max']}x: "
          f"{'met' if ratio <= TARGETS['rigl_update_max'] else 'MISSED'}); amortised over an update every 100 steps: "
          f"{100 * amortised:.2f}% of a step (target <= {100 * TARGETS['rigl_amortised_max']:.0f}%: "
          f"{'met' if amortised <= TARGETS['rigl_amortised_max'] else 'MISSED'})")
    print(f"distillation ({args.teacher_dtype} teacher, same size) / dense: {med[variants[-1][0]] / dense:.3f}x")
    print("compile s: " + ", ".join(f"{k} {v:.1f}" for k, v in compile_s.items()))
    print(timing.load_note(monitor))
    return {"other_processes_cpu_share": monitor.other_share, "rows": rows, "static_vs_dense": static,
            "rigl_update_vs_plain": t_update / t_plain, "rigl_amortised_overhead": amortised,
            "kd_vs_dense": med[variants[-1][0]] / dense,
            "compile_s": compile_s, "times_s": times, "update_freq": freq}


# ----------------------------------------------------------------------------- --mode gpu


def model_flops_per_token(cfg, length: int, slots: int, n_nonembedding: int) -> dict:
    """Training FLOPs per token (forward + backward = 3x forward): 6 N_nonembedding + attention
    (QK^T and PV: 12 * layers * hidden * length) + the tied MLM decoder at the gathered slots only
    (6 * hidden * vocab * slots / length). A frozen teacher runs forward only: a third of that."""
    train = (6 * n_nonembedding + 12 * cfg.num_hidden_layers * cfg.hidden_size * length
             + 6 * cfg.hidden_size * cfg.vocab_size * slots / length)
    return {"train": train, "teacher_forward": train / 3}


def count_nonembedding(params) -> int:
    """Params outside the embedding tables and the MLM output bias (the decoder is the tied embedding,
    counted by the head term instead)."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        names = sparsity.path_str(path).split("/")
        if "embeddings" in names or names[-2:] == ["mlm", "bias"]:
            continue
        total += int(leaf.size)
    return total


def _throughput_step_time(engine: Engine, n: int, before=None) -> float:
    """Seconds per step of n steps dispatched asynchronously with one sync at the end (throughput,
    not latency); `before` runs ahead of each step."""
    start = time.perf_counter()
    for _ in range(n):
        if before is not None:
            before()
        engine.step(block=False)
    jax.block_until_ready((engine.state, engine.metrics))
    return (time.perf_counter() - start) / n


def run_gpu(args) -> dict:
    print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()} ({jax.default_backend()})")
    cfg = model_config(args.preset, dtype="bfloat16", attention_dropout=args.attention_dropout)
    mesh = sharding.make_mesh(args.mesh)
    shapes = list(GPU_SHAPES[args.preset])
    if args.lengths:
        batches = args.batch_list or [b for _, b in shapes][: len(args.lengths)]
        if len(batches) != len(args.lengths):
            raise ValueError(f"--lengths {args.lengths} needs as many --batch values, got {batches}.")
        shapes = list(zip(args.lengths, batches))
    elif args.batch_list:
        if len(args.batch_list) != len(shapes):
            raise ValueError(f"--batch needs {len(shapes)} values (one per length {[l for l, _ in shapes]}).")
        shapes = [(l, b) for (l, _), b in zip(shapes, args.batch_list)]
    for length, _ in shapes:
        if length > cfg.max_position_embeddings:
            raise ValueError(f"length {length} exceeds max_position_embeddings {cfg.max_position_embeddings}.")
    freq = args.update_freq
    rows = []
    for length, batch in shapes:
        batch_np, _ = synthetic_batch(batch, length, cfg.vocab_size, args.seed)
        slots = mlm_batches.max_predictions(length, MLM_PROBABILITY)
        for variant in args.variants:
            if variant == "dense":
                engine = Engine(cfg, mesh, batch_np, config=run_config(1000 * freq), seed=args.seed)
            else:
                engine = Engine(cfg, mesh, batch_np,
                                config=run_config(1000 * freq, sparse=True, rigl=True, update_freq=freq),
                                teacher_dtype=args.teacher_dtype, seed=args.seed)
            compile_s = engine.compile()
            nonemb = count_nonembedding(engine.state["params"])
            plain = (lambda e=engine: e.set_step(freq // 2)) if variant == "rigl80" else None
            timing.time_steps(engine.step, args.warmup, plain)
            t_step = _throughput_step_time(engine, args.steps, plain)
            t_update = None
            if variant == "rigl80":
                if not rigl_updates(engine, freq - 1):
                    raise AssertionError("rigl80: the update step did not change the masks; the premise is wrong")
                t_update = _throughput_step_time(engine, max(1, args.steps // 4),
                                                 functools.partial(engine.set_step, freq - 1))
                t_step = t_step + (t_update - t_step) / freq  # RigL amortised over update_freq
            flops = model_flops_per_token(cfg, length, slots, nonemb)
            per_token = flops["train"] + (flops["teacher_forward"] if variant == "rigl80" else 0.0)
            tokens_per_s = batch * length / t_step
            row = {"variant": variant, "length": length, "batch": batch, "step_s": t_step,
                   "update_step_s": t_update, "tokens_per_s": tokens_per_s,
                   "model_tflops_per_s": per_token * tokens_per_s / 1e12,
                   "mfu": per_token * tokens_per_s / (args.peak_tflops * 1e12),
                   "gflops_per_token": per_token / 1e9, "compile_s": compile_s, "loss": engine.loss()}
            rows.append(row)
            # each row as soon as it is measured: on a short GPU lease a run cut off still leaves its figures
            print(f"{variant} length {length} batch {batch}: {t_step:.4f} s/step, {tokens_per_s:,.0f} tokens/s, "
                  f"MFU {row['mfu']:.2%} (compiled in {compile_s:.1f} s)", flush=True)
            del engine, plain  # free this state before the next one is built
    print(f"\n--mode gpu --preset {args.preset}: model dtype bfloat16 (f32 params), {args.steps} timed steps "
          f"after {args.warmup} warm-up; MFU against {args.peak_tflops} TFLOP/s; rigl80 = static 80% masks + "
          f"RigL (update amortised over {freq}) + same-size {args.teacher_dtype} teacher (its forward counted)")
    timing.print_table(rows, [("variant", "variant", ""), ("length", "length", "{}"), ("batch", "batch", "{}"),
                        ("step_s", "step s", "{:.4f}"), ("update_step_s", "RigL update step s", "{:.4f}"),
                        ("tokens_per_s", "tokens/s", "{:,.0f}"), ("gflops_per_token", "GFLOP/token", "{:.3g}"),
                        ("model_tflops_per_s", "TFLOP/s", "{:.3g}"), ("mfu", "MFU", "{:.2%}"),
                        ("compile_s", "compile s", "{:.1f}"), ("loss", "loss", "{:.3f}")])
    return {"rows": rows, "peak_tflops": args.peak_tflops}


# ----------------------------------------------------------------------------- CLI


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("torch", "sparse", "gpu"), default="torch")
    p.add_argument("--preset", choices=tuple(RUN_DEFAULTS), default=None,
                   help="model size (default: small for torch/sparse, base for gpu)")
    p.add_argument("--batch", type=str, default=None,
                   help="batch size (gpu mode: comma-separated, one per length)")
    p.add_argument("--length", type=int, default=None, help="sequence length (torch/sparse modes)")
    p.add_argument("--lengths", type=str, default=None, help="gpu mode: comma-separated lengths (default 128,512)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: preset's; gpu 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    p.add_argument("--rounds", type=int, default=None,
                   help="torch/sparse modes: interleave the variants in this many rounds (default: every step)")
    p.add_argument("--update_freq", type=int, default=100, help="RigL update frequency")
    p.add_argument("--teacher_dtype", choices=("float32", "bfloat16"), default=None,
                   help="distillation teacher compute dtype (default float32; gpu mode bfloat16)")
    p.add_argument("--attention_dropout", type=float, default=0.1,
                   help="attention-probability dropout (0 takes the fused dot_product_attention path)")
    p.add_argument("--variants", default="dense,rigl80",
                   help="gpu mode: comma-separated subset of dense,rigl80 (to split a run)")
    p.add_argument("--peak_tflops", type=float, default=989.0, help="gpu mode: peak bf16 dense TFLOP/s")
    p.add_argument("--mesh", default="-1,1,1",
                   help="device mesh sizes data,fsdp,tensor (-1 fills the devices), e.g. 1,8,1 or 2,2,2; "
                        "CPU devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = p.parse_args(argv)

    args.preset = args.preset or ("base" if args.mode == "gpu" else "small")
    preset = RUN_DEFAULTS[args.preset]
    args.teacher_dtype = args.teacher_dtype or ("bfloat16" if args.mode == "gpu" else "float32")
    args.steps = args.steps or (20 if args.mode == "gpu" and args.preset != "tiny" else preset["steps"])
    args.length = args.length or preset["length"]
    args.rounds = args.rounds or args.steps
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    try:
        sizes = [int(x) for x in args.mesh.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) != 3:
        p.error(f"--mesh takes three comma-separated sizes data,fsdp,tensor, got {args.mesh!r}")
    args.mesh = dict(zip(sharding.MESH_AXES, sizes))
    if not args.variants or set(args.variants) - {"dense", "rigl80"}:
        p.error(f"--variants takes a comma-separated subset of dense,rigl80, got {args.variants}")
    try:
        batches = [int(b) for b in args.batch.split(",")] if args.batch else []
        args.lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else []
    except ValueError:
        p.error(f"--batch and --lengths take integers separated by commas, got {args.batch!r}, {args.lengths!r}")
    if args.mode != "gpu" and len(batches) > 1:
        p.error(f"--batch takes one value in --mode {args.mode}, got {args.batch!r}")
    args.batch_list = batches if args.mode == "gpu" else []
    args.batch = batches[0] if batches and args.mode != "gpu" else preset["batch"]
    for name, values in (("--batch", batches or [args.batch]), ("--lengths", args.lengths or [args.length]),
                         ("--steps", [args.steps]), ("--rounds", [args.rounds]),
                         ("--update_freq", [args.update_freq])):
        if min(values) < 1:
            p.error(f"{name} must be >= 1, got {values}")
    if args.update_freq < 2:
        p.error("--update_freq must be >= 2 so that a non-update step exists")
    if args.warmup < 1:
        p.error("--warmup must be >= 1 (the first call after compilation is not representative)")
    if not 0.0 <= args.attention_dropout < 1.0:
        p.error(f"--attention_dropout must be in [0, 1), got {args.attention_dropout}")
    if not 8 <= args.length <= 512:
        p.error(f"--length must be in [8, 512] (max_position_embeddings 512), got {args.length}")
    if args.peak_tflops <= 0:
        p.error(f"--peak_tflops must be > 0, got {args.peak_tflops}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    runner = {"torch": run_torch, "sparse": run_sparse, "gpu": run_gpu}[args.mode]
    env = timing.environment(args.mode == "torch")
    print(f"{env['date']}  jax {env['jax']} on {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs"
          + (f", torch {env['torch']} ({env['torch_threads']} threads)" if "torch" in env else ""))
    results = runner(args)
    env["load_average_at_end"] = os.getloadavg()[0]
    command = " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:]))
    out = {"mode": args.mode, "preset": args.preset, "command": command,
           "args": {k: v for k, v in vars(args).items()}, "environment": env, **results}
    if args.out:
        files.atomic_write_json(args.out, out)
        print(f"wrote {args.out}")
    return out

