"""GLUE fine-tuning of every seed of a task at once: one compiled step, vmapped over seeds.

The train state (params, AdamW state) has a leading seed axis; `jax.vmap` runs the per-seed step
over it, so S seeds cost one dispatch per step and the matrix multiplies of all seeds are batched
together (on a single CPU device, where batching them is slower, the same step loops over the seeds
with `lax.map` instead: see `resolve_seed_loop`). Each seed is a pure function of its seed number,
whatever other seeds share the step:
  * its own classifier head (and pooler, when the checkpoint has none), drawn from key(seed) with
    Hugging Face's init (normal(initializer_range) kernel, zero bias);
  * its own dropout: key(seed) folded with the step number;
  * its own data order: a fresh permutation of the training set every epoch,
    numpy default_rng([seed, epoch]), gathered on the host into [seeds, batch, length] arrays.
So running seeds [0..9] together gives each seed the numbers it gets alone (tests check this).

Length buckets: each step's batch is padded only to the shortest of a few lengths (`bucket_lengths`:
32, 64, 96, 128 at max_length 128) that holds its longest row over all seeds, and jit compiles one
step per bucket. Padding does not change what the model computes: padded keys are masked out,
and dropout masks are laid out for max_length (BertConfig.dropout_layout_length), so a batch
draws the same masks at any bucket and trains as it would padded to max_length (tests compare
both). Packed tokens: the dense layers (embeddings, projections, feed-forward: most of
the work) of a training step compute only its real tokens, packed into [seeds, T] rows (T: the
most real tokens of any seed, rounded up to 8 per row), and attention
moves them into the bucket's padded layout and back (jax_bert/model/packing.py); the bucket is
then only attention's length, and the numbers are again those of the padded batch.
Evaluation scores the examples shortest first, each batch at its own bucket. The step takes
the learning rate as an input (computed on the host from the schedule), so its compiled code does
not depend on a task's lr, epochs or step count, and tasks with the same label count and seed
count reuse each other's compiled buckets.

Protocol (the original's, docs/original.md; HF run_glue): AdamW, linear decay to 0 over epochs * ceil(N / batch) steps,
no warm-up, gradient clipping 1.0, loss = cross-entropy, or MSE for one label (STS-B), as
BertForSequenceClassification. The original names no weight decay, so the default is run_glue's
(TrainingArguments.weight_decay = 0.0); it is configurable. No example is dropped: the last
partial batch of an epoch is padded with zero-weight rows and the loss is the mean over real rows.

Sparse checkpoints: every kernel / embedding with more than `sparse_threshold` exact zeros keeps
its zero pattern as a mask; the params are masked after every update, so masked weights stay
exactly 0 (`use_masks=False`, the GLUE setting keep_masks, lets them regrow as the original's
sparse rows did). A seed whose loss turns non-finite is marked failed; under vmap the seeds never mix,
so the others train on unaffected and the failed one is only left out at the end.

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
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import sparsity
from glue import config as glue_config
from jax_bert import model
from jax_bert.model import BertConfig, packing
from jax_bert.model.body import SPARSITY_NAME, body_sparsity  # noqa: F401 - the shared definition, used here
from jax_bert.train import optim, schedules

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
PACKING_KEYS = ("slot_token", "token_slot")  # a packed training batch's index arrays
_HEAD_KEY, _DROPOUT_KEY = 0, 1  # fold_in tags: one per-seed stream for init, one for dropout
SEED_AXIS = "seeds"
SEED_LOOPS = ("auto", "vmap", "map")


def resolve_seed_loop(seed_loop: str, sharding) -> str:
    """'vmap' or 'map' for a `seed_loop` setting ('auto' picks per backend).

    'vmap' batches the seeds' matrix multiplies: 7.3x faster than seeds one after another on an
    H100 (docs/benchmarks.md). On XLA:CPU a vmapped seed costs ~1.4x a lone one (the batched small
    matmuls are slower there), while 'map' (`lax.map` over the seed axis inside the same compiled
    step) costs what a lone seed does and keeps one dispatch per step for all seeds. So 'auto' is
    'map' on a single CPU device and 'vmap' elsewhere, and always 'vmap' when the seed axis is
    sharded over devices (a loop over a sharded axis would gather it)."""
    if seed_loop not in SEED_LOOPS:
        raise ValueError(f"seed_loop must be one of {SEED_LOOPS}, got {seed_loop!r}.")
    if seed_loop == "auto":
        return "map" if jax.default_backend() == "cpu" and sharding is None else "vmap"
    return seed_loop


def over_seeds(fn, in_axes: tuple, seed_loop: str):
    """`jax.vmap(fn, in_axes)` (seed_loop 'vmap') or the same mapping as a `lax.map` loop ('map');
    in_axes entries are 0 (the argument has a leading seed axis) or None (shared by every seed)."""
    if seed_loop == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    def looped(*args):
        per_seed = [a if axis == 0 else None for a, axis in zip(args, in_axes)]

        def one(xs):
            return fn(*(x if axis == 0 else a for x, a, axis in zip(xs, args, in_axes)))

        return jax.lax.map(one, per_seed)

    return looped


@dataclasses.dataclass(frozen=True)
class HParams:
    """Fine-tuning hyperparameters of one task; their defaults are glue/config.py's (`from_config`)."""

    learning_rate: float
    batch_size: int
    epochs: int
    weight_decay: float
    warmup_steps: int
    clip: float  # global gradient norm (HF Trainer's max_grad_norm)
    b1: float
    b2: float
    eps: float
    eval_batch_size: int
    sparse_threshold: float  # a kernel/embedding with more exact zeros than this is masked

    @classmethod
    def from_config(cls, config, task: str, **changes) -> "HParams":
        """The task's values in a glue.config ConfigDict (its own, else the global ones), then `changes`."""
        fields = dataclasses.fields(cls)
        unknown = sorted(set(changes) - {f.name for f in fields})
        if unknown:
            raise TypeError(f"HParams has no fields {unknown}.")
        values = glue_config.task_values(config, task) | changes
        cast = {"float": float, "int": int}  # the annotations are strings (postponed evaluation)
        return cls(**{f.name: cast[f.type](values[f.name]) for f in fields})

    def __post_init__(self):
        for name in ("batch_size", "epochs", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if not 0.0 <= self.sparse_threshold < 1.0:
            raise ValueError(f"sparse_threshold must be in [0, 1), got {self.sparse_threshold}.")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def total_steps(n_train: int, hp: HParams) -> int:
    return hp.epochs * steps_per_epoch(n_train, hp.batch_size)


# ------------------------------------------------------------------ params, masks, sparsity

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


def _normal(key, shape, std):
    return std * jax.random.normal(key, shape, jnp.float32)


def seed_heads(config: BertConfig, seed, with_pooler: bool) -> dict:
    """One seed's new params: classifier (and pooler) with HF's init, from key(seed)."""
    key = jax.random.fold_in(jax.random.key(seed), _HEAD_KEY)
    k_cls, k_pool = jax.random.split(key)
    H, std = config.hidden_size, config.initializer_range
    heads = {"classifier": {"kernel": _normal(k_cls, (H, config.num_labels), std),
                            "bias": jnp.zeros((config.num_labels,), jnp.float32)}}
    if with_pooler:
        heads["pooler"] = {"dense": {"kernel": _normal(k_pool, (H, H), std),
                                     "bias": jnp.zeros((H,), jnp.float32)}}
    return heads


def _one_seed_params(config, base, seed):
    heads = seed_heads(config, seed, "pooler" not in base["bert"])
    bert = dict(base["bert"])
    if "pooler" in heads:
        bert["pooler"] = heads["pooler"]
    return {"bert": bert, "classifier": heads["classifier"]}


def masks_tree(config: BertConfig, base, flat_masks: Mapping[str, np.ndarray]):
    """The masks as a pytree shaped like one seed's params (None for dense leaves)."""
    shapes = jax.eval_shape(lambda b: _one_seed_params(config, b, 0), base)
    return sparsity.map_with_path(
        lambda path, _: jnp.asarray(flat_masks[path]) if path in flat_masks else None, shapes)


def seed_sharding(n_seeds: int, devices=None) -> NamedSharding | None:
    """Seed axis split over a 1-D mesh when the device count divides the seeds; else None."""
    devices = list(devices if devices is not None else jax.devices())
    if len(devices) <= 1 or n_seeds % len(devices):
        return None
    return NamedSharding(Mesh(np.asarray(devices), (SEED_AXIS,)), P(SEED_AXIS))


def _place(tree, sharding):
    return tree if sharding is None else jax.device_put(tree, sharding)


# ------------------------------------------------------------------ the data order and length buckets

def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """This seed's permutation of the n training examples in this epoch."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batch_indices(orders: np.ndarray, step_in_epoch: int, batch_size: int):
    """(rows [S, B], weights [S, B]) of one step; past the end: row 0 with weight 0 (padding)."""
    lo, hi = step_in_epoch * batch_size, (step_in_epoch + 1) * batch_size
    rows = orders[:, lo:hi]
    weights = np.ones(rows.shape, np.float32)
    pad = batch_size - rows.shape[1]
    if pad:
        rows = np.concatenate([rows, np.zeros((len(rows), pad), rows.dtype)], axis=1)
        weights = np.concatenate([weights, np.zeros((len(weights), pad), np.float32)], axis=1)
    return rows, weights


def bucket_lengths(max_length: int, buckets: int) -> tuple[int, ...]:
    """`buckets` evenly spaced padded lengths up to max_length, rounded up to multiples of 8
    (128 and 4 buckets: 32, 64, 96, 128; 1 bucket: max_length only, every batch fully padded)."""
    if buckets < 1:
        raise ValueError(f"length_buckets must be >= 1, got {buckets}.")
    return tuple(sorted({min(max_length, 8 * math.ceil(max_length * k / buckets / 8))
                         for k in range(1, buckets + 1)}))


def real_lengths(attention_mask: np.ndarray) -> np.ndarray:
    """Positions up to and including each row's last real token (tokenize_task pads on the right)."""
    mask = np.asarray(attention_mask) != 0
    return np.where(mask.any(axis=1), mask.shape[1] - np.argmax(mask[:, ::-1], axis=1), 0)


def bucket_for(lengths: np.ndarray, buckets: Sequence[int]) -> int:
    """The shortest bucket that holds every one of `lengths` (rows of one step, all seeds)."""
    longest = int(np.max(lengths, initial=1))
    i = int(np.searchsorted(buckets, longest))
    if i == len(buckets):
        raise ValueError(f"a row has {longest} positions, more than the longest bucket {buckets[-1]}.")
    return int(buckets[i])


def gather_batch(data: Mapping[str, np.ndarray], rows: np.ndarray, weights: np.ndarray,
                 length: int | None = None) -> dict:
    """Host-side numpy gather: {input_ids, attention_mask, token_type_ids, labels, weights}, the
    inputs cut to their first `length` positions (None: all of them)."""
    cols = slice(None) if length is None else slice(0, length)
    batch = {k: np.asarray(data[k])[rows, cols] for k in INPUT_KEYS}
    batch["labels"] = np.asarray(data["labels"])[rows]
    batch["weights"] = weights
    return batch


def token_budget(tokens: int, batch_size: int, length: int) -> int:
    """The packed token count of a step: `tokens` rounded up to a multiple of 8 per row (256 at batch
    32), at most batch_size x length."""
    unit = 8 * batch_size
    return min(batch_size * length, unit * math.ceil(tokens / unit))


def _packed_lengths(lengths: np.ndarray, rows: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
    """Real tokens of each row [S, B] in a packed batch: rows of weight 0 (the last batch's filling)
    keep only their first token, since nothing reads their logits."""
    real = np.minimum(lengths[rows], length)
    real[weights == 0] = 1
    return real


def step_shape(lengths: np.ndarray, rows: np.ndarray, weights: np.ndarray, buckets: Sequence[int],
               pack_tokens: bool) -> tuple[int, int]:
    """(bucket, tokens) a step needs: the bucket of its longest real row over all seeds, and the packed
    token budget of the seed with the most real tokens (batch x bucket when not packing)."""
    length = bucket_for(lengths[rows[weights > 0]], buckets)
    if not pack_tokens:
        return length, rows.shape[1] * length
    real = _packed_lengths(lengths, rows, weights, length)
    return length, token_budget(int(real.sum(axis=1).max()), rows.shape[1], length)


def plan_shapes(needs: Sequence[tuple[int, int]], compiled=(), rare: float = 0.05, few: int = 64) -> dict:
    """{needed shape: the shape it runs at}. Every distinct (bucket, tokens) shape is one compilation
    (10-20 s for BERT-small on a 2-core CPU), so a shape that fewer than `few` steps or `rare` of the
    steps need runs at a larger one (padding more changes no result), rarest first:
      1. the cheapest shape that holds it (bucket and tokens at least as large) among the other needed
         shapes and those `compiled` before, when there is one;
      2. else the smallest shape holding it and another needed shape, when running both there wastes
         no more tokens than `few` steps of that shape hold."""
    counts = {}
    for need in needs:
        counts[need] = counts.get(need, 0) + 1
    kept, plan = set(counts) | set(compiled), {}

    def merge(partners, target):
        kept.add(target)
        for k in partners:
            kept.discard(k)
            plan[k] = target
            counts[target] = counts.get(target, 0) + counts[k]

    def rare_shapes():  # each still rare when its turn comes (merges add to their targets' counts)
        for k in sorted(counts, key=lambda k: (counts[k], k)):
            if k not in plan and counts[k] < max(few, rare * len(needs)):
                yield k

    for shape in list(rare_shapes()):
        holders = [k for k in kept if k != shape and k[0] >= shape[0] and k[1] >= shape[1]]
        if holders and counts[shape] < max(few, rare * len(needs)):
            merge([shape], min(holders, key=lambda k: (k[1], k[0])))
    for shape in list(rare_shapes()):
        if shape in plan or shape in compiled or counts[shape] >= max(few, rare * len(needs)):
            continue  # (a shape compiled before costs nothing more)
        joint = {other: (max(shape[0], other[0]), max(shape[1], other[1])) for other in kept
                 if other != shape and other in counts and other not in plan and other not in compiled}
        waste = {other: sum(counts[k] * (new[1] - k[1]) for k in (shape, other)) for other, new in joint.items()}
        fits = [other for other in joint if waste[other] <= few * joint[other][1]]
        if fits:
            other = min(fits, key=lambda k: (waste[k], joint[k]))
            merge([shape, other], joint[other])
    for shape in counts:  # follow merges of merged shapes to the end
        while plan.get(shape, shape) in plan and plan[plan[shape]] != plan[shape]:
            plan[shape] = plan[plan[shape]]
    return {need: plan.get(need, need) for need in set(needs)}


def pack_batch(data: Mapping[str, np.ndarray], lengths: np.ndarray, rows: np.ndarray, weights: np.ndarray,
               length: int, tokens: int) -> dict:
    """The step's batch as packed tokens (jax_bert/model/packing.py): input_ids and token_type_ids
    [S, tokens], their index arrays slot_token [S, B, length] and token_slot [S, tokens], labels,
    weights. lengths: real tokens of every example of `data`; tokens: one budget for all seeds."""
    real = _packed_lengths(lengths, rows, weights, length)
    out = {k: [] for k in ("input_ids", "token_type_ids", "slot_token", "token_slot")}
    for s in range(len(rows)):
        slot_token, token_slot = packing.pack_indices(real[s], length, tokens)
        out["slot_token"].append(slot_token)
        out["token_slot"].append(token_slot)
        for k in ("input_ids", "token_type_ids"):
            out[k].append(packing.packed_values(np.asarray(data[k])[rows[s], :length], token_slot))
    batch = {k: np.stack(v) for k, v in out.items()}
    batch["labels"] = np.asarray(data["labels"])[rows]
    batch["weights"] = weights
    return batch


# ------------------------------------------------------------------ the compiled steps

def weighted_loss(logits, labels, weights):
    """Mean over real rows (weight 1) of CE (num_labels > 1) or MSE (1 label), as HF computes."""
    logits = logits.astype(jnp.float32)
    if logits.shape[-1] == 1:
        per = (logits[:, 0] - labels.astype(jnp.float32)) ** 2
    else:
        logp = jax.nn.log_softmax(logits, axis=-1)
        per = -jnp.take_along_axis(logp, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    return jnp.sum(per * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def learning_rates(hp: HParams, steps: int) -> np.ndarray:
    """float32 [steps]: the learning rate of every step (linear warm-up, then linear decay to 0),
    computed on the host in float64 as torch's scheduler does, then rounded as torch rounds it."""
    schedule = schedules.warmup_linear(hp.learning_rate, hp.warmup_steps, steps)
    return np.asarray(schedule(np.arange(steps)), np.float32)


def member_learning_rates(member_hps: Sequence[HParams], steps_per_epoch: int) -> np.ndarray:
    """float32 [steps, members]: each member's own schedule (`learning_rates` over its epochs), 0 after
    its last step; steps = the most of any member."""
    lengths = [m.epochs * steps_per_epoch for m in member_hps]
    table = np.zeros((max(lengths), len(member_hps)), np.float32)
    for i, (m, n) in enumerate(zip(member_hps, lengths)):
        table[:n, i] = learning_rates(m, n)
    return table


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
def _train_step(config: BertConfig, opt_hp: HParams, seed_loop: str, gated: bool = False):
    """The jitted step over all seeds (cached; jit compiles it once per batch shape, i.e. per bucket).

    gated: the step takes `active` [S] (bool) and the previous losses [S]; a member that is not active
    (its steps are done) keeps its params and optimizer state exactly and reports its last loss. Only
    runs whose members have different step counts use it, so the plain step stays as it was."""
    optimizer = _optimizer(opt_hp)

    def one_seed(params, opt_state, batch, seed, step, masks, lr, active=None, last_loss=None):
        dropout = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _DROPOUT_KEY), step)

        # A packed batch (pack_batch) carries its index arrays; the model computes the same either way.
        packed = {k: batch[k] for k in PACKING_KEYS} if PACKING_KEYS[0] in batch else None

        def loss_fn(p):
            logits = model.apply(config, p, batch["input_ids"], batch.get("attention_mask"),
                                 batch["token_type_ids"], head="classifier", dropout_rng=dropout, packing=packed)
            return weighted_loss(logits, batch["labels"], batch["weights"])

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
def _init_fns(config: BertConfig, opt_hp: HParams):
    optimizer = _optimizer(opt_hp)
    params_fn = jax.jit(jax.vmap(functools.partial(_one_seed_params, config), in_axes=(None, 0)))
    return params_fn, jax.jit(jax.vmap(optimizer.init))


@functools.lru_cache(maxsize=16)
def _predict_step(config: BertConfig, seed_loop: str):
    def fn(params, batch):
        return over_seeds(lambda p: model.apply(config, p, *(batch[k] for k in INPUT_KEYS),
                                                head="classifier"), (0,), seed_loop)(params)

    return jax.jit(fn)


def init_seeds(config: BertConfig, base, seeds: Sequence[int], hp: HParams, sharding=None):
    """(params, opt_state) with a leading seed axis, each seed's heads drawn from its own key."""
    params_fn, opt_init = _init_fns(config, _optimizer_key(hp))
    params = _place(params_fn(base, jnp.asarray(seeds, jnp.int32)), sharding)
    return params, _place(opt_init(params), sharding)


def predict(config: BertConfig, params, data: Mapping[str, np.ndarray], batch_size: int = 128,
            sharding=None, seed_loop: str = "auto", buckets: Sequence[int] | None = None) -> np.ndarray:
    """Logits [S, N, num_labels] of every example, in the data's order.

    The examples are scored shortest first, so each batch is padded only to the bucket of its longest
    row (`buckets`; None: every batch at the data's full width); the last batch is filled with
    copies of its first row, whose logits are dropped. Every batch is dispatched before any result
    is read, so the host prepares the next batch while the device computes."""
    n, width = np.shape(data["input_ids"])
    fn = _predict_step(config, resolve_seed_loop(seed_loop, sharding))
    lengths = real_lengths(data["attention_mask"])
    order = np.argsort(lengths, kind="stable")
    buckets = (width,) if buckets is None else tuple(buckets)
    pending = []
    for lo in range(0, n, batch_size):
        rows = order[lo:lo + batch_size]
        length = bucket_for(lengths[rows], buckets)
        padded = np.concatenate([rows, np.full(batch_size - len(rows), rows[0], rows.dtype)])
        batch = {k: np.asarray(data[k])[padded, :length] for k in INPUT_KEYS}
        pending.append((rows, fn(params, batch)))
    logits = np.zeros((jax.tree.leaves(params)[0].shape[0], n, config.num_labels), np.float32)
    scored = np.zeros(n, bool)
    for rows, out in pending:
        logits[:, rows] = np.asarray(jax.device_get(out))[:, :len(rows)]
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


def _check_data(data, name, num_labels, labelled: bool):
    missing = [k for k in INPUT_KEYS + (("labels",) if labelled else ()) if k not in data]
    if missing:
        raise ValueError(f"{name}: tokenized data lacks {missing}; use glue.data.tokenize_task.")
    if len(data["input_ids"]) == 0:
        raise ValueError(f"{name}: no examples.")
    if labelled and num_labels > 1:
        y = np.asarray(data["labels"])
        if np.any(y < 0) or np.any(y >= num_labels):
            raise ValueError(f"{name}: labels must be class ids in [0, {num_labels}); got "
                             f"{sorted(set(np.unique(y).tolist()))[:10]}.")


def finetune_as_configured(glue_config, bert_config: BertConfig, params, train, evals, seeds: Sequence[int],
                           hp: HParams, *, num_labels: int, desc: str, show_progress: bool,
                           member_hps: Sequence[HParams] | None = None) -> SeedRuns:
    """`finetune` with the run's GLUE config settings (log_every, seed_loop, length_buckets, pack_tokens,
    keep_masks) and a progress bar over its steps: what a GLUE run and a search both call."""
    from tqdm.auto import tqdm

    epochs = max(m.epochs for m in member_hps) if member_hps else hp.epochs
    bar = tqdm(total=epochs * steps_per_epoch(len(train["input_ids"]), hp.batch_size), desc=desc, unit="step",
               disable=not show_progress, mininterval=1.0, dynamic_ncols=True)

    def on_progress(done_steps, loss, n_ok):
        bar.update(done_steps - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", ok=f"{n_ok}/{len(seeds)}", refresh=False)

    try:
        return finetune(bert_config, params, train, evals, seeds, hp, num_labels=num_labels, member_hps=member_hps,
                        progress=on_progress, log_every=int(glue_config.log_every),
                        seed_loop=str(glue_config.seed_loop), length_buckets=int(glue_config.length_buckets),
                        pack_tokens=bool(glue_config.pack_tokens), use_masks=bool(glue_config.keep_masks))
    finally:
        bar.close()


def finetune(config: BertConfig, params, train: Mapping[str, np.ndarray],
             evals: Mapping[str, Mapping[str, np.ndarray]], seeds: Sequence[int],
             hp: HParams, *, num_labels: int | None = None, lr_scale=None,
             use_masks: bool = True, progress=None, log_every: int = 10, sharding="auto",
             keep_params: bool = False, seed_loop: str = "auto", length_buckets: int = 4,
             pack_tokens: bool = True, shape_min_steps: int = 64,
             member_hps: Sequence[HParams] | None = None) -> SeedRuns:
    """Fine-tune one task for every seed at once; return every split's logits per seed.

    config, params: a checkpoint (jax_bert.load_hf); its MLM head / old classifier are dropped.
    train: tokenized training split (glue.data.tokenize_task); evals: {split: tokenized split},
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
    member_hps: one HParams per entry of `seeds` (a hyper-parameter search: glue/search.py): each member
    trains with its own learning rate, warm-up and epochs (its own schedule, `member_learning_rates`),
    and seeds may repeat; the optimizer's other settings and the batch size must be hp's. The run lasts
    the most steps of any member; a member whose steps are done gets no more updates (its params and
    optimizer state stay exactly as they were), so every member ends as it would alone. `errors` is
    then keyed by member index.
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
    _check_data(train, "train", int(num_labels or config.num_labels), True)
    for split, d in evals.items():
        _check_data(d, split, int(num_labels or config.num_labels), False)
    n_seeds, (n_train, width) = len(seeds), np.shape(train["input_ids"])
    wrong = {split: np.shape(d["input_ids"])[1] for split, d in evals.items() if np.shape(d["input_ids"])[1] != width}
    if wrong:
        raise ValueError(f"every split must be tokenized to the same max_length; train has {width}, {wrong}.")
    # Dropout masks are laid out for the full width, so a batch trains the same at any bucket.
    config = config.replace(num_labels=int(num_labels or config.num_labels), dropout_layout_length=width)
    buckets = bucket_lengths(width, int(length_buckets))
    spe = steps_per_epoch(n_train, hp.batch_size)
    member_steps = np.asarray([m.epochs * spe for m in member_hps])
    steps, epochs = int(member_steps.max()), max(m.epochs for m in member_hps)
    gated = bool((member_steps < steps).any())  # some member stops before the others
    base = base_params(params)
    flat_masks = find_masks(base, hp.sparse_threshold) if use_masks else {}
    masks = masks_tree(config, base, flat_masks)
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
    state_params, opt_state = init_seeds(config, base, seeds, hp, sharding)
    step_fn = _train_step(config, _optimizer_key(hp), seed_loop, gated)
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
    plan = plan_shapes(needs, compiled, few=shape_min_steps)
    compiled.update(plan.values())
    seed_arr = _place(jnp.asarray(seeds, jnp.int32), sharding)
    bad = _place(jnp.zeros(n_seeds, bool), sharding)
    first_bad, loss_log, bucket_steps, positions = {}, [], {}, 0
    loss = _place(jnp.zeros(n_seeds, jnp.float32), sharding)
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
        batch = _place(batch, sharding)
        gate = (_place(step < member_steps, sharding), loss) if gated else ()
        state_params, opt_state, bad, loss = step_fn(
            state_params, opt_state, bad, batch, seed_arr, np.int32(step), masks,
            _place(lrs[step] * scale, sharding), *gate)
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
    logits = {split: predict(config, state_params, d, hp.eval_batch_size, sharding, seed_loop, buckets)
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
        params=state_params if keep_params else None)


def predictions(logits: np.ndarray, num_labels: int) -> np.ndarray:
    """Class ids (argmax) or, for regression, the scores, from [..., N, num_labels] logits."""
    logits = np.asarray(logits)
    return logits[..., 0].astype(np.float64) if num_labels == 1 else np.argmax(logits, axis=-1)
