"""GLUE on the fine-tuning engine (jax_bert/finetune): a task's hyper-parameters from the GLUE config,
and `finetune` with the run's settings and a progress bar, what a GLUE run and a search both call."""
from __future__ import annotations

from typing import Sequence

from glue import config as glue_config
from jax_bert.finetune import HParams, SeedRuns, finetune, steps_per_epoch
from jax_bert.model import BertConfig


def task_hparams(config, task: str, **changes) -> HParams:
    """The task's values in a glue.config ConfigDict (its own, else the global ones), then `changes`."""
    return HParams.from_values(glue_config.task_values(config, task), **changes)


def finetune_as_configured(config, bert_config: BertConfig, params, train, evals, seeds: Sequence[int],
                           hp: HParams, *, num_labels: int, desc: str, show_progress: bool,
                           member_hps: Sequence[HParams] | None = None) -> SeedRuns:
    """`finetune` with the GLUE config's settings (log_every, seed_loop, length_buckets, pack_tokens,
    keep_masks) and a progress bar over its steps: what a GLUE run and a search both call."""
    from tqdm.auto import tqdm

    epochs = max(m.epochs for m in member_hps) if member_hps else hp.epochs
    steps = epochs * steps_per_epoch(len(train["input_ids"]), hp.batch_size, hp.drop_last)
    bar = tqdm(total=steps, desc=desc, unit="step",
               disable=not show_progress, mininterval=1.0, dynamic_ncols=True)

    def on_progress(done_steps, loss, n_ok):
        bar.update(done_steps - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", ok=f"{n_ok}/{len(seeds)}", refresh=False)

    try:
        return finetune(bert_config, params, train, evals, seeds, hp, num_labels=num_labels, member_hps=member_hps,
                        progress=on_progress, log_every=int(config.log_every), seed_loop=str(config.seed_loop),
                        length_buckets=int(config.length_buckets), pack_tokens=bool(config.pack_tokens),
                        use_masks=bool(config.keep_masks))
    finally:
        bar.close()
