"""SQuAD fine-tuning speed: ours (every seed in one compiled step, length buckets, packed tokens, the span head)
against Hugging Face transformers' BertForQuestionAnswering in PyTorch fine-tuning the same seeds one after
another.

    python scripts/benchmark_squad.py [--seeds 3] [--train 96] [--eval 32] [--epochs 1] [--preset small]
        [--max_length 384] [--doc_stride 128] [--batch_size 12]

The data is synthetic SQuAD v1.1 with SQuAD's paragraph lengths (squad.synthetic, squad_shaped), the
features run_qa's (squad.features: 384 tokens, stride 128), the model a random BERT of --preset
(benchmarks/presets.py; BERT-small by default) with the synthetic data's WordPiece tokenizer, the settings
the original's (batch 12, lr 3e-5, no warm-up, clip 1.0). Hugging Face trains on the same features padded
to max_length (run_qa pads so by default), AdamW (fused, decay groups as the Trainer), linear decay,
clip_grad_norm_, loss from start / end positions, each seed in our data order. Ours runs cold (compilation
included), then warm, then warm at the step shapes a full-size run would use (the rare-shape threshold
scaled by --train's share of SQuAD's 87,599 training questions: with a few steps every shape is rare and
runs at its bucket's full, unpacked size). Printed: training examples (features) per second of each, the ratios, and the
CPU share other processes used meanwhile (jax_bert/cpu_load.py; above 10% the ratio is not a quiet-machine
number).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from benchmarks import presets, timing
from jax_bert.finetune import HParams, batching, finetune, hparams
from jax_bert.finetune.heads import SPAN
from squad import data, features, synthetic

SQUAD_V11_TRAIN_QUESTIONS = 87_599  # rajpurkar/squad's train split


def hf_squad(hf_dir: str, train: dict, seeds, hp) -> float:
    """Seconds Hugging Face's BertForQuestionAnswering takes to fine-tune every seed, one after another."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    columns = batching.INPUT_KEYS
    tensors = {k: torch.from_numpy(np.asarray(train[k], np.int64)) for k in columns}
    labels = torch.from_numpy(np.asarray(train["labels"], np.int64))
    n = len(labels)
    spe = hparams.steps_per_epoch(n, hp.batch_size)
    t0 = time.perf_counter()
    for seed in seeds:
        torch.manual_seed(seed)
        model = transformers.BertForQuestionAnswering.from_pretrained(hf_dir)
        named = list(model.named_parameters())
        opt = torch.optim.AdamW([{"params": [p for k, p in named if not ("bias" in k or "LayerNorm" in k)],
                                  "weight_decay": hp.weight_decay},
                                 {"params": [p for k, p in named if "bias" in k or "LayerNorm" in k],
                                  "weight_decay": 0.0}], lr=hp.learning_rate, betas=(hp.b1, hp.b2), eps=hp.eps,
                                fused=True)
        sched = transformers.get_linear_schedule_with_warmup(opt, hp.warmup_steps, hp.epochs * spe)
        model.train()
        for epoch in range(hp.epochs):
            order = torch.from_numpy(batching.epoch_order(n, seed, epoch))
            for i in range(spe):
                rows = order[i * hp.batch_size:(i + 1) * hp.batch_size]
                out = model(**{k: tensors[k][rows] for k in columns}, start_positions=labels[rows, 0],
                            end_positions=labels[rows, 1])
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip)
                opt.step()
                sched.step()
                opt.zero_grad()
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    import jax

    from jax_bert import model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train", type=int, default=96, help="questions")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--preset", default="small", choices=sorted(presets.ARCHITECTURES))
    p.add_argument("--max_length", type=int, default=384)
    p.add_argument("--doc_stride", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=12)
    p.add_argument("--no_hf", action="store_true")
    args = p.parse_args(argv)
    tok = synthetic.tokenizer()
    rows = data.flatten(synthetic.make_dataset(args.train, 0, "1.1", squad_shaped=True), "synthetic")
    try:
        feats = features.prepare(tok, rows, args.max_length, args.doc_stride)
    except ValueError as e:  # a window setting the features refuse: one line, exit status 2
        p.error(str(e))
    train = {k: feats[k] for k in features.INPUT_KEYS + ("labels",)}
    n = len(train["input_ids"])
    lengths = batching.real_lengths(train["attention_mask"])
    config = presets.bert_config(args.preset, max_position_embeddings=512)  # every preset's vocabulary holds tok's
    params = jax.device_get(model.init_params(config, jax.random.key(0), head="mlm"))
    hp = HParams(learning_rate=3e-5, batch_size=args.batch_size, epochs=args.epochs, weight_decay=0.0,
                 warmup_steps=0, clip=1.0, b1=0.9, b2=0.999, eps=1e-8, eval_batch_size=64, sparse_threshold=0.1)
    seeds = tuple(range(args.seeds))
    examples = n * args.epochs * args.seeds
    full = np.mean(lengths == args.max_length)
    print(f"{args.train} questions -> {n} features (mean {lengths.mean():.0f} tokens, "
          f"{full:.0%} at {args.max_length}); {args.preset} BERT; {args.seeds} seeds x {args.epochs} epoch(s), "
          f"batch {args.batch_size}")
    out = {"features": n, "mean_tokens": float(lengths.mean()), "args": vars(args)}
    with timing.CpuMonitor() as monitor:
        times = {}
        for label in ("ours cold", "ours warm"):
            t0 = time.perf_counter()
            finetune(config, params, train, {}, seeds, hp, head=SPAN)
            times[label] = time.perf_counter() - t0
        # At the step shapes a full-size run would use: with a few steps every shape is rare and runs at its
        # bucket's full, unpacked size to save a compilation; SQuAD's thousands of steps keep theirs packed.
        full_size = {"shape_min_steps": round(batching.SHAPE_MIN_STEPS * args.train / SQUAD_V11_TRAIN_QUESTIONS)}
        finetune(config, params, train, {}, seeds, hp, head=SPAN, **full_size)  # untimed: compiles those shapes
        t0 = time.perf_counter()
        finetune(config, params, train, {}, seeds, hp, head=SPAN, **full_size)
        times["ours warm, a full-size run's shapes"] = time.perf_counter() - t0
        if not args.no_hf:
            with tempfile.TemporaryDirectory() as hf_dir:
                model.save_hf(config, params, hf_dir, tokenizer=tok)
                times["hf seeds one after another"] = hf_squad(hf_dir, train, seeds, hp)
    for label, seconds in times.items():
        print(f"{label:28s} {seconds:8.1f} s  {examples / seconds:8.2f} training examples/s")
    out.update(seconds=times, examples_per_second={k: examples / v for k, v in times.items()})
    if "hf seeds one after another" in times:
        hf = times["hf seeds one after another"]
        out["ratio_warm"], out["ratio_cold"] = hf / times["ours warm"], hf / times["ours cold"]
        out["ratio_full_size_shapes"] = hf / times["ours warm, a full-size run's shapes"]
        print(f"ours / hf examples per second: warm {out['ratio_warm']:.2f}x, cold {out['ratio_cold']:.2f}x, "
              f"warm at a full-size run's step shapes {out['ratio_full_size_shapes']:.2f}x")
    out["other_cpu_share"] = monitor.other_share
    if timing.load_note(monitor):
        print(timing.load_note(monitor))
    print(timing.environment(with_torch=True))
    return out
