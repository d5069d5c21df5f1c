"""Fine-tuning every seed of a task at once: one compiled step over the seed axis, task-agnostic.

`finetune(config, params, train, evals, seeds, hp)` trains a classifier head (num_labels; 1 = regression)
on a BERT checkpoint for every seed together and returns every eval split's logits per seed
(`SeedRuns`). The seeds share one compiled step (seeds.py: vmapped, or looped inside the step on a
single CPU device), each getting the numbers it gets alone; the host prepares each step's batch at
its length bucket, packed to its real tokens (batching.py), so padding and packing change no result.
The step takes the learning rate as an input (hparams.py computes the table), so its compiled code does
not depend on a task's lr, epochs or step count; the classifier of every task has SHARED_CLASSES columns
(a task's extra ones masked out; regression reads column 0, chosen by an input), so all tasks with the
same seed count reuse each other's compiled shapes, and the rare shapes of short tasks run at their
bucket's full shape, which the next task reuses (batching.plan_shapes). Evaluation scores the examples
shortest first, each batch at its own bucket, packed to its real tokens like training (a packable
head), the last batch only as large as what is left, and scores every example.

Protocol (the original's, as Hugging Face's run_glue): AdamW, linear decay to 0 over
epochs * ceil(N / batch) steps, optional warm-up, gradient clipping 1.0, loss = cross-entropy, or MSE
for one label, as BertForSequenceClassification. No example is dropped: the last partial batch of an
epoch is padded with zero-weight rows and the loss is the mean over real rows.

Sparse checkpoints: every kernel / embedding with more than `sparse_threshold` exact zeros keeps
its zero pattern as a mask; the params are masked after every update, so masked weights stay
exactly 0 (`use_masks=False` lets them regrow, as the original's sparse GLUE rows did). A seed whose
loss turns non-finite is marked failed; the seeds never mix, so the others train on unaffected and
the failed one is only left out at the end.

Heads: `head` (heads.py) says what sits on the body: its params, logits and loss. The classifier
(GLUE) is the default; the span head gives start and end logits per token (SQuAD).

A hyper-parameter search passes `member_hps`: one HParams per member, each with its own learning
rate, warm-up and epochs, in the same program; a member whose steps are done stops updating.

Memory: params and AdamW state are multiplied by the seed count. For BERT-base (110M params)
in float32 that is params + grads + Adam mu + nu = 4 x 440 MB = 1.76 GB per seed, about 18 GB
for 10 seeds, before activations (see docs/benchmarks.md).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparsity
from jax_bert.finetune.batching import (
    INPUT_KEYS,
    PACKING_KEYS,
    SHAPE_MIN_STEPS,
    batch_indices,
    bucket_for,
    bucket_lengths,
    epoch_order,
    eval_shape,
    gather_batch,
    pack_batch,
    pack_eval_batch,
    plan_shapes,
    real_lengths,
    step_shape,
)
from jax_bert.finetune.heads import (  # noqa: F401 (the classifier's loss and widths, importable here)
    CLASSIFIER,
    SHARED_CLASSES,
    ClassifierHead,
    classifier_width,
    cut_classifier,
    weighted_loss,
)
from jax_bert.finetune.hparams import HParams, member_learning_rates, steps_per_epoch
from jax_bert.finetune.seeds import (
    dropout_key,
    over_seeds,
    place,
    resolve_seed_loop,
    seed_sharding,
)
from jax_bert.model import BertConfig
from jax_bert.model.body import body_sparsity
from jax_bert.train import optim

# ------------------------------------------------------------------ params and masks of a checkpoint

def base_params(params: dict) -> dict:
    """The checkpoint's BERT body (with its pooler if it has one); MLM / old classifier heads go."""
    if "bert" not in params:
        raise ValueError(f"params have no 'bert' subtree (top-level keys {sorted(params)}); load a "
                         "BERT checkpoint with jax_bert.load_hf.")
    return {"bert": params["bert"]}


def find_masks(params, threshold: float = 0.1) -> dict[str, np.ndarray]:
    """{path: bool keep-mask} for every kernel / embedding with more than `threshold` exact zeros."""
    out = {}
    for path, x in sparsity.named_leaves(params):
        if path.rsplit("/", 1)[-1] in ("kernel", "embedding"):
            x = np.asarray(x)
            if x.size and np.mean(x == 0) > threshold:
                out[path] = x != 0
    return out


def masks_tree(config: BertConfig, base, flat_masks: Mapping[str, np.ndarray], head=CLASSIFIER):
    """The masks as a pytree shaped like one seed's params (None for dense leaves)."""
    shapes = jax.eval_shape(lambda b: head.init(config, b, 0), base)
    return sparsity.map_with_path(
        lambda path, _: jnp.asarray(flat_masks[path]) if path in flat_masks else None, shapes)


# ------------------------------------------------------------------ the compiled steps

@functools.lru_cache(maxsize=16)
def _optimizer(hp: HParams) -> optax.GradientTransformation:
    """Clip + AdamW at learning rate 1: the step scales the update by each step's learning rate (an
    input), so one compiled step serves every task and step count (AdamW's update, decoupled decay
    included, is linear in the lr). The task's lr, warm-up, epochs and batch size are not part of it."""
    return optim.make_optimizer(dict(schedule="constant", learning_rate=1.0, weight_decay=float(hp.weight_decay),
                                     clip=float(hp.clip), b1=float(hp.b1), b2=float(hp.b2), eps=float(hp.eps)))


def _optimizer_key(hp: HParams) -> HParams:
    """hp with every field the optimizer does not depend on set to a fixed value: the cache key of the
    compiled steps, so tasks that differ only in those share them."""
    return dataclasses.replace(hp, learning_rate=1.0, batch_size=1, epochs=1, warmup_steps=0,
                               eval_batch_size=1, sparse_threshold=0.0)


# The (bucket, tokens) shapes each cached train step has been planned for in this process (plan_shapes
# reuses them), keyed by (step function, seeds, batch size, packed, sharding).
_COMPILED_SHAPES: dict = {}


@functools.lru_cache(maxsize=16)
def _train_step(config: BertConfig, opt_hp: HParams, seed_loop: str, gated: bool = False, head=CLASSIFIER):
    """The jitted step over all seeds (cached; jit compiles it once per batch shape, i.e. per bucket).

    gated: the step takes `active` [S] (bool) and the previous losses [S]; a member that is not active
    (its steps are done) keeps its params and optimizer state exactly and reports its last loss. Only
    runs whose members have different step counts use it, so the plain step stays as it was."""
    optimizer = _optimizer(opt_hp)

    def one_seed(params, opt_state, batch, seed, step, masks, lr, active=None, last_loss=None):
        dropout = dropout_key(seed, step)

        # A packed batch (pack_batch) carries its index arrays; the model computes the same either way.
        packed = {k: batch[k] for k in PACKING_KEYS} if PACKING_KEYS[0] in batch else None

        def loss_fn(p):
            return head.loss(head.apply(config, p, batch, dropout, packed), batch)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        # The optimizer runs at lr 1; this seed's lr (the schedule's, times its lr_scale) scales it.
        updates = jax.tree.map(lambda u: u * lr.astype(u.dtype), updates)
        new_params = sparsity.apply_masks(optax.apply_updates(params, updates), masks)
        if active is None:
            return new_params, new_opt_state, loss
        keep = functools.partial(jnp.where, active)  # a finished member: everything as it was
        return (jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_opt_state, opt_state),
                keep(loss, last_loss))

    if gated:
        def step_fn(params, opt_state, bad, batch, seeds, step, masks, lr, active, last_loss):
            params, opt_state, loss = over_seeds(one_seed, (0, 0, 0, 0, None, None, 0, 0, 0), seed_loop)(
                params, opt_state, batch, seeds, step, masks, lr, active, last_loss)
            return params, opt_state, bad | (active & ~jnp.isfinite(loss)), loss
    else:
        def step_fn(params, opt_state, bad, batch, seeds, step, masks, lr):
            params, opt_state, loss = over_seeds(one_seed, (0, 0, 0, 0, None, None, 0), seed_loop)(
                params, opt_state, batch, seeds, step, masks, lr)
            return params, opt_state, bad | ~jnp.isfinite(loss), loss

    # CPU cannot reuse donated buffers (it would only warn); elsewhere the state is updated in place.
    donate = () if jax.default_backend() == "cpu" else (0, 1, 2)
    return jax.jit(step_fn, donate_argnums=donate)


@functools.lru_cache(maxsize=16)
def _init_fns(config: BertConfig, opt_hp: HParams, head=CLASSIFIER):
    params_fn = jax.jit(jax.vmap(functools.partial(head.init, config), in_axes=(None, 0)))
    return params_fn, _optimizer_init(opt_hp)


@functools.lru_cache(maxsize=16)
def _optimizer_init(opt_hp: HParams):
    """The optimizer state's init over the seeds: it depends on the params' shapes only, which tasks
    of different label counts share (the padded classifier), so it is cached apart from the heads' init."""
    return jax.jit(jax.vmap(_optimizer(opt_hp).init))


@functools.lru_cache(maxsize=16)
def _predict_step(config: BertConfig, seed_loop: str, head=CLASSIFIER):
    def fn(params, batch):
        # A packed batch (pack_eval_batch) has its index arrays and no attention mask; a padded one the mask.
        packed = {k: batch[k] for k in PACKING_KEYS} if PACKING_KEYS[0] in batch else None
        return over_seeds(lambda p: head.apply(config, p, batch, None, packed), (0,), seed_loop)(params)

    return jax.jit(fn)


def init_seeds(config: BertConfig, base, seeds: Sequence[int], hp: HParams, sharding=None, head=CLASSIFIER):
    """(params, opt_state) with a leading seed axis, each seed's heads drawn from its own key."""
    params_fn, opt_init = _init_fns(config, _optimizer_key(hp), head)
    params = place(params_fn(base, jnp.asarray(seeds, jnp.int32)), sharding)
    return params, place(opt_init(params), sharding)


def predict(config: BertConfig, params, data: Mapping[str, np.ndarray], batch_size: int = 128,
            sharding=None, seed_loop: str = "auto", buckets: Sequence[int] | None = None,
            head=CLASSIFIER, pack_tokens: bool = False, num_labels: int | None = None) -> np.ndarray:
    """Logits [S, N, *head.output_shape] of every example, in the data's order ([S, N, num_labels] for
    the classifier, num_labels: the first columns of its config.num_labels, default all; the span
    head's positions past a batch's bucket are 0).

    The examples are scored shortest first, so each batch is padded only to the bucket of its longest
    row (`buckets`; None: every batch at the data's full width). pack_tokens (a packable head): the dense
    layers compute each batch's real tokens only (packed as in training, rounded up to a quarter of the
    padded size), and the last batch has only as many rows as the power of two that holds what is left
    (`eval_shape`); otherwise every batch has batch_size rows, the last filled with copies of its first
    row, whose logits are dropped. Every batch is dispatched before any result is read, so the host
    prepares the next batch while the device computes."""
    n, width = np.shape(data["input_ids"])
    pack_tokens = pack_tokens and head.packable
    fn = _predict_step(config, resolve_seed_loop(seed_loop, sharding), head)
    lengths = real_lengths(data["attention_mask"])
    order = np.argsort(lengths, kind="stable")
    buckets = (width,) if buckets is None else tuple(buckets)
    pending = []
    for lo in range(0, n, batch_size):
        rows = order[lo:lo + batch_size]
        length = bucket_for(lengths[rows], buckets)
        if pack_tokens:
            n_rows, tokens = eval_shape(len(rows), int(np.minimum(lengths[rows], length).sum()), batch_size, length)
            batch = pack_eval_batch(data, lengths, rows, n_rows, length, tokens)
        else:
            padded = np.concatenate([rows, np.full(batch_size - len(rows), rows[0], rows.dtype)])
            batch = {k: np.asarray(data[k])[padded, :length] for k in INPUT_KEYS}
        pending.append((rows, fn(params, batch)))
    out_config = config if num_labels is None else config.replace(num_labels=int(num_labels))
    logits = np.zeros((jax.tree.leaves(params)[0].shape[0], n) + head.output_shape(out_config, width), np.float32)
    scored = np.zeros(n, bool)
    for rows, out in pending:
        out = np.asarray(jax.device_get(out))[:, :len(rows)]
        # a bucket's positions (span head) or the task's columns of the shared classifier
        fit = tuple(slice(0, min(a, b)) for a, b in zip(out.shape[2:], logits.shape[2:]))
        logits[(slice(None), rows) + fit] = out[(slice(None), slice(None)) + fit]
        scored[rows] = True
    if not scored.all():  # every example scored once, none dropped
        raise AssertionError(f"scored {int(scored.sum())} examples, the split has {n}.")
    return logits


# ------------------------------------------------------------------ the loop

@dataclasses.dataclass
class SeedRuns:
    """What fine-tuning every seed of a task produced (numpy, on the host)."""

    seeds: tuple[int, ...]
    failed: np.ndarray  # bool [S]: the loss became non-finite
    errors: dict[int, str]  # seed -> why it failed
    logits: dict[str, np.ndarray]  # split -> [S, N, num_labels]
    final_loss: np.ndarray  # [S] train loss of the last step
    loss_log: list[tuple[int, np.ndarray]]  # (step, losses [S]) at every logged step
    sparsity: np.ndarray  # [S] percent zeros of the fine-tuned BERT body
    steps: int
    masked_tensors: int
    train_seconds: float  # initialisation and every step, compilation included
    eval_seconds: float  # scoring every eval split
    bucket_steps: dict[int, int] = dataclasses.field(default_factory=dict)  # padded length -> steps
    positions: int = 0  # positions the dense layers computed per seed over all steps (padding included)
    real_tokens: int = 0  # real tokens among them
    params: dict | None = None  # final params with the seed axis, when keep_params=True


def _check_data(data, name, num_labels, labelled: bool, head=CLASSIFIER):
    missing = [k for k in INPUT_KEYS + (("labels",) if labelled else ()) if k not in data]
    if missing:
        raise ValueError(f"{name}: tokenized data lacks {missing}; tokenize it as its task family does "
                         f"(glue.data.tokenize_task for GLUE).")
    if len(data["input_ids"]) == 0:
        raise ValueError(f"{name}: no examples.")
    problem = labelled and head.label_problem(np.asarray(data["labels"]), num_labels, np.shape(data["input_ids"])[1])
    if problem:
        raise ValueError(f"{name}: {problem}")


def finetune(config: BertConfig, params, train: Mapping[str, np.ndarray],
             evals: Mapping[str, Mapping[str, np.ndarray]], seeds: Sequence[int],
             hp: HParams, *, num_labels: int | None = None, lr_scale=None,
             use_masks: bool = True, progress=None, log_every: int = 10, sharding="auto",
             keep_params: bool = False, seed_loop: str = "auto", length_buckets: int = 4,
             pack_tokens: bool = True, shape_min_steps: int = SHAPE_MIN_STEPS,
             member_hps: Sequence[HParams] | None = None, head=CLASSIFIER) -> SeedRuns:
    """Fine-tune one task for every seed at once; return every split's logits per seed.

    config, params: a checkpoint (jax_bert.load_hf); its MLM head / old classifier are dropped.
    train: tokenized training split (e.g. glue.data.tokenize_task); evals: {split: tokenized split},
    every example of which is scored (validation and test splits alike).
    num_labels: the task's label count (default config.num_labels); 1 = regression.
    lr_scale: optional [S] multipliers of the learning rate, one per seed.
    use_masks: keep the zeros of a sparse checkpoint (see the module docstring); False lets them regrow.
    progress: None, or a callable(steps_done, loss_mean, n_ok) called every `log_every` steps.
    sharding: 'auto' splits the seed axis over the devices when their count divides it.
    seed_loop: 'vmap', 'map' or 'auto' (see `resolve_seed_loop`); every choice gives each seed the
    numbers it gets alone.
    length_buckets: each batch is padded to the shortest of this many lengths up to the data's width
    (`bucket_lengths`) that holds its longest row over all seeds; 1 pads every batch to the full width.
    The results do not depend on it (dropout masks are laid out for the full width).
    pack_tokens: the dense layers compute only the real tokens of each training step (packed, see
    jax_bert/model/packing.py), attention each example's bucket; again the results do not change.
    shape_min_steps: a step shape (bucket, tokens) fewer steps need runs at a larger one (`plan_shapes`).
    member_hps: one HParams per entry of `seeds` (a hyper-parameter search, e.g. glue/search.py): each member
    trains with its own learning rate, warm-up and epochs (its own schedule, `member_learning_rates`),
    and seeds may repeat; the optimizer's other settings and the batch size must be hp's. The run lasts
    the most steps of any member; a member whose steps are done gets no more updates (its params and
    optimizer state stay exactly as they were), so every member ends as it would alone. `errors` is
    then keyed by member index.
    head: what sits on the body (heads.py): the classifier (default) or the span head, whose logits are
    [S, N, length, 2] and whose labels are [N, 2]; a head that is not `packable` trains on padded batches.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("finetune needs at least one seed.")
    by_member = member_hps is not None
    if not by_member:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}.")
        member_hps = [hp] * len(seeds)
    else:
        member_hps = list(member_hps)
        if len(member_hps) != len(seeds):
            raise ValueError(f"member_hps needs one HParams per seed ({len(seeds)}), got {len(member_hps)}.")
        other = [m for m in member_hps if _optimizer_key(m) != _optimizer_key(hp) or m.batch_size != hp.batch_size]
        if other:
            raise ValueError(f"members may differ in learning_rate, warmup_steps and epochs only; {other[0]} "
                             f"differs from {hp} in another field.")
    _check_data(train, "train", int(num_labels or config.num_labels), True, head)
    for split, d in evals.items():
        _check_data(d, split, int(num_labels or config.num_labels), False, head)
    pack_tokens = pack_tokens and head.packable
    n_seeds, (n_train, width) = len(seeds), np.shape(train["input_ids"])
    wrong = {split: np.shape(d["input_ids"])[1] for split, d in evals.items() if np.shape(d["input_ids"])[1] != width}
    if wrong:
        raise ValueError(f"every split must be tokenized to the same max_length; train has {width}, {wrong}.")
    # Dropout masks are laid out for the full width, so a batch trains the same at any bucket.
    config = config.replace(num_labels=int(num_labels or config.num_labels), dropout_layout_length=width)
    n_labels, shares = config.num_labels, isinstance(head, ClassifierHead)
    if shares:
        # The compiled programs see the shared classifier width; the heads are drawn for the task's labels.
        head = dataclasses.replace(head, width=classifier_width(n_labels))
        shared = config.replace(num_labels=head.width)
        task_columns = {"classes": np.arange(head.width) < n_labels, "regression": np.asarray(n_labels == 1)}
        # Class ids and regression targets alike as float32 (ids are exact): one step signature for every task.
        train = dict(train, labels=np.asarray(train["labels"], np.float32))
    else:
        shared, task_columns = config, {}
    buckets = bucket_lengths(width, int(length_buckets))
    spe = steps_per_epoch(n_train, hp.batch_size, hp.drop_last)  # a dropped last batch is never asked for
    member_steps = np.asarray([m.epochs * spe for m in member_hps])
    steps, epochs = int(member_steps.max()), max(m.epochs for m in member_hps)
    gated = bool((member_steps < steps).any())  # some member stops before the others
    base = base_params(params)
    flat_masks = find_masks(base, hp.sparse_threshold) if use_masks else {}
    masks = masks_tree(shared, base, flat_masks, head)
    if sharding == "auto":
        sharding = seed_sharding(n_seeds)
    seed_loop = resolve_seed_loop(seed_loop, sharding)
    if n_seeds == 1:
        seed_loop = "vmap"  # a vmap over one seed is the plain step; a one-trip loop only adds copies
    scale = np.ones(n_seeds, np.float32) if lr_scale is None else np.asarray(lr_scale, np.float32)
    if scale.shape != (n_seeds,):
        raise ValueError(f"lr_scale must have one value per seed ({n_seeds}), got {scale.shape}.")
    lrs = member_learning_rates(member_hps, spe)  # [steps, S], 0 after a member's end
    train_lengths = real_lengths(train["attention_mask"])

    t0 = time.perf_counter()
    state_params, opt_state = init_seeds(config, base, seeds, hp, sharding, head)
    step_fn = _train_step(shared, _optimizer_key(hp), seed_loop, gated, head)
    # The data order is known in advance, so the shapes of all steps are planned before the first.
    orders = []
    for epoch in range(epochs):  # members of one seed share its order
        by_seed = {s: epoch_order(n_train, s, epoch) for s in set(seeds)}
        orders.append(np.stack([by_seed[s] for s in seeds]))

    def step_rows(step):  # a finished member's rows get weight 0: they cost one token each
        rows, weights = batch_indices(orders[step // spe], step % spe, hp.batch_size)
        return rows, weights * (step < member_steps)[:, None].astype(np.float32)

    needs = [step_shape(train_lengths, *step_rows(step), buckets, pack_tokens) for step in range(steps)]
    compiled = _COMPILED_SHAPES.setdefault((step_fn, n_seeds, hp.batch_size, pack_tokens, sharding), set())
    plan = plan_shapes(needs, compiled, few=shape_min_steps, batch_size=hp.batch_size)
    compiled.update(plan.values())
    seed_arr = place(jnp.asarray(seeds, jnp.int32), sharding)
    bad = place(jnp.zeros(n_seeds, bool), sharding)
    first_bad, loss_log, bucket_steps, positions = {}, [], {}, 0
    loss = place(jnp.zeros(n_seeds, jnp.float32), sharding)
    for step in range(steps):
        rows, weights = step_rows(step)
        # The seeds of a step share its shape: bucket and token budget (planned above).
        length, tokens = plan[needs[step]]
        bucket_steps[length] = bucket_steps.get(length, 0) + 1
        positions += tokens
        if pack_tokens:
            batch = pack_batch(train, train_lengths, rows, weights, length, tokens)
        else:
            batch = gather_batch(train, rows, weights, length)
        batch.update({k: np.broadcast_to(v, (n_seeds,) + v.shape) for k, v in task_columns.items()})
        batch = place(batch, sharding)
        gate = (place(step < member_steps, sharding), loss) if gated else ()
        state_params, opt_state, bad, loss = step_fn(
            state_params, opt_state, bad, batch, seed_arr, np.int32(step), masks,
            place(lrs[step] * scale, sharding), *gate)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            # The only host sync of the loop: a loss for the log / progress bar.
            host_loss, host_bad = jax.device_get((loss, bad))
            loss_log.append((step + 1, host_loss))
            for i in np.flatnonzero(host_bad):
                first_bad.setdefault(i, step + 1)
            if progress is not None:
                ok = np.isfinite(host_loss)
                progress(step + 1, float(host_loss[ok].mean()) if ok.any() else math.nan,
                         int((~host_bad).sum()))
    train_seconds = time.perf_counter() - t0  # the last step's loss was read: training is done
    logits = {split: predict(shared, state_params, d, hp.eval_batch_size, sharding, seed_loop, buckets, head,
                             pack_tokens=pack_tokens, num_labels=n_labels if shares else None)
              for split, d in evals.items()}
    eval_seconds = time.perf_counter() - t0 - train_seconds
    failed = np.asarray(jax.device_get(bad)).copy()
    errors = {}
    for i, s in enumerate(seeds):
        key = i if by_member else s
        nonfinite_out = any(not np.all(np.isfinite(x[i])) for x in logits.values())
        if failed[i]:
            errors[key] = (f"training loss became non-finite (nan/inf) by step {first_bad[i]} of "
                           f"{member_steps[i]}; the run diverged")
        elif nonfinite_out:
            failed[i] = True
            errors[key] = "predictions are non-finite (nan/inf); the run diverged"
    return SeedRuns(
        seeds=seeds, failed=failed, errors=errors, logits=logits,
        final_loss=np.asarray(jax.device_get(loss)), loss_log=loss_log,
        sparsity=body_sparsity(state_params, seed_axis=True), steps=steps,
        masked_tensors=len(flat_masks), train_seconds=train_seconds, eval_seconds=eval_seconds,
        positions=positions, real_tokens=int(train_lengths.sum()) * epochs,
        bucket_steps=dict(sorted(bucket_steps.items())),
        params=(cut_classifier(state_params, n_labels) if shares else state_params) if keep_params else None)


def predictions(logits: np.ndarray, num_labels: int) -> np.ndarray:
    """Class ids (argmax) or, for regression, the scores, from [..., N, num_labels] logits."""
    logits = np.asarray(logits)
    return logits[..., 0].astype(np.float64) if num_labels == 1 else np.argmax(logits, axis=-1)
