"""The pretraining loop: data -> sharded train state -> steps, evaluation, checkpoints, logs.

`run(config, workdir)` is the whole job behind `scripts/pretrain.py`. A work directory that already
holds a checkpoint is resumed: the batch of step s is a pure function of (seed, s, process index) and
dropout is a pure function of (seed, s), so a resumed run continues exactly where it stopped.
The step itself (dense, sparse, RigL, distillation) is built by train/step.py.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

import sparsity
from jax_bert import files, model
from jax_bert.data import mlm_batches
from jax_bert.data import prepare as data_prepare
from jax_bert.errors import PeerLost, TrainingDiverged, peer_lost_message
from jax_bert.model import BertConfig, body, hf_io
from jax_bert.train import checkpoint, optim, recipe, sharding, sources, sparse_config, teachers
from jax_bert.train import step as train_step
from jax_bert.train.config import validate
from jax_bert.train.logs import MetricsWriter

__all__ = ["TrainingDiverged", "PeerLost", "run", "evaluate"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------- set-up


def prepare_data(config, workdir: str):
    """(tokenizer, train_blocks, validation_blocks). One process builds what is not cached; on several, each
    opens the caches that `scripts/prepare_data.py` built, or stops in one line naming it (or, with
    data.build_on_process0_wait_s, waits for process 0 to build them): jax_bert/data/prepare.py. No process
    waits in a device collective while another tokenises."""
    return data_prepare.prepare(config, workdir, tokenizer_name(config), process_index=jax.process_index(),
                                process_count=jax.process_count(),
                                check=lambda tok: teachers.check_vocabularies(config.distill, tok))


def tokenizer_name(config) -> str | None:
    """The configured tokenizer; when distilling without one, the (first) teacher's: distillation
    needs the teacher's vocabulary, and a vocabulary trained here would differ from it."""
    if config.tokenizer.name:
        return config.tokenizer.name
    if config.distill.teachers:
        source = teachers.tokenizer_source(teachers.teacher_path(config.distill.teachers[0]))
        log.info("distilling: the student uses the tokenizer of its teacher, %s", source)
        return source
    return None


def model_config_for(config, tokenizer) -> tuple[BertConfig, dict | None]:
    """The model config (and params when starting from a Hugging Face checkpoint)."""
    overrides = {k: config.model[k] for k in ("dtype", "remat", "scan_layers")}
    if config.init_from_hf:
        model_config, params = hf_io.load_hf(config.init_from_hf, **overrides)
        params = model.mlm_params(params, f"init_from_hf {config.init_from_hf}")
        params = model.match_layout(params, model_config.scan_layers, model_config.num_hidden_layers)
    else:
        fields = config.model.to_dict()
        if not fields.get("vocab_size"):
            fields["vocab_size"] = len(tokenizer)
        model_config, params = BertConfig(**fields), None
    if len(tokenizer) > model_config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
                         f"{model_config.vocab_size}; set model.vocab_size=0 to size it from the tokenizer.")
    return model_config, params


def masking_kwargs(config, tokenizer) -> dict:
    return mlm_batches.masking_kwargs(tokenizer, config.train.seq_len,
                                      mlm_probability=config.masking.mlm_probability,
                                      whole_word=config.masking.whole_word)


def local_batch(blocks, step: int, config, mask_kw) -> dict[str, np.ndarray]:
    """This process's rows of the global batch of `step`, shaped [accum, rows, ...]."""
    t = config.train
    local = mlm_batches.batch_for_step(blocks, step, seed=t.seed, global_batch_size=t.global_batch_size,
                                       process_index=jax.process_index(), process_count=jax.process_count(),
                                       **mask_kw)
    return {k: v.reshape(t.grad_accum_steps, -1, *v.shape[1:]) for k, v in local.items()
            if k in train_step.BATCH_KEYS}


# --------------------------------------------------------------------------------------- eval


def evaluate(eval_step, params, blocks: np.ndarray, config, mask_kw, mesh) -> dict[str, float]:
    """Mean MLM cross-entropy (nats) over every masked token of the whole validation set."""
    totals = None
    for batch, _ in mlm_batches.eval_batches(blocks, config.train.eval_batch_size, seed=config.train.seed,
                                             process_index=jax.process_index(),
                                             process_count=jax.process_count(), **mask_kw):
        local = {k: v for k, v in batch.items() if k in train_step.BATCH_KEYS}
        sums = eval_step(params, sharding.place_batch(local, mesh))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    scored = int(totals["blocks"])
    if scored != len(blocks):  # every validation block counted once, none dropped
        raise AssertionError(f"evaluation scored {scored} blocks but the validation set has {len(blocks)}")
    loss = float(totals["loss_sum"] / totals["weight_sum"])
    return {"eval_loss": loss, "perplexity": math.exp(loss) if loss < 700 else float("inf"),
            "eval_mlm_accuracy": float(totals["correct_sum"] / totals["weight_sum"]),
            "eval_blocks": scored, "eval_masked_tokens": int(totals["weight_sum"])}


# --------------------------------------------------------------------------------------- the loop


class _StopSignal:
    """SIGTERM / SIGINT: finish the current step, save, exit cleanly."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _to_host(tree):
    """Whole arrays on the host, also when they are sharded over other processes' devices
    (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return jax.tree.map(lambda x: None if x is None else multihost_utils.process_allgather(x, tiled=True),
                        tree, is_leaf=lambda x: x is None)


def _check_finite(step: int, metrics: dict, last_checkpoint: int | None) -> None:
    bad = [k for k in ("loss", "grad_norm") if not np.isfinite(metrics[k])]
    if bad:
        kept = (f"The last checkpoint, step {last_checkpoint}, is intact; lower the learning rate or check "
                f"the data, then rerun to resume from it" if last_checkpoint is not None else
                "No checkpoint was saved yet; lower the learning rate or check the data, then rerun")
        raise TrainingDiverged(f"step {step + 1}: {', '.join(f'{k}={metrics[k]}' for k in bad)}; training "
                               f"stopped. {kept}.")


@contextlib.contextmanager
def _workdir_lock(workdir: str, enabled: bool):
    """One run per work directory at a time: two runs would write over each other's checkpoints and
    logs. The lock (flock on workdir/.lock) goes with the process, also when it is killed."""
    if not enabled:
        yield
        return
    lock = files.lock_folder(workdir, lambda holder: (
        f"{workdir} is in use by a run that is still going ({holder}); wait for it to finish, stop it, or "
        "choose another --workdir."))
    with lock:
        yield


def _prepare_workdir(workdir: str) -> None:
    """Creates the work directory; a directory we cannot write fails here, before any work."""
    os.makedirs(workdir, exist_ok=True)
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied", workdir)


_PEER_FAILURE = ("gloo", "connection", "heartbeat", "unavailable", "coordination", "barrier", "broken pipe")


def _peer_lost(error: BaseException) -> PeerLost | None:
    """A PeerLost for an error of a collective (or of the coordination service) that another process
    caused by going away; None for any other error (a bug: it keeps its traceback)."""
    text = " ".join(str(error).split())
    if jax.process_count() == 1 or not any(marker in text.lower() for marker in _PEER_FAILURE):
        return None
    return PeerLost(peer_lost_message(text, jax.process_index(), jax.process_count()))


def _sparsity_report(writer, step: int, params_host, masks_host, is_main: bool, when: str) -> None:
    """For a sparse run: the per-tensor table (the masks' layout) and the model's sparsity as pretraining
    and GLUE both report it (body.SPARSITY_NAME)."""
    if not is_main or masks_host is None:
        return
    stats = sparsity.sparsity_stats(params_host, masks_host)
    log.info("sparsity %s (kept weights per sparse tensor, from the masks; 'overall' counts all params):\n%s",
             when, sparsity.format_stats(stats, only_sparse=True))
    writer.scalars(step, {"mask_sparsity_all_params": stats.overall.sparsity}, prefix="sparsity/")
    writer.image(step, "sparsity/density_per_tensor", sparsity.density_chart(stats))
    value = float(body.body_sparsity(params_host))
    log.info("%s %s: %.2f%%", body.SPARSITY_NAME, when, value)
    writer.scalars(step, {"body_sparsity_percent": value}, prefix="sparsity/")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Pretrains as the config says; returns the final evaluation (and writes everything to workdir).

    Sparse training (config.sparsity) and distillation (config.distill) are part of the same step.
    Every config value is checked before any data or compilation work; a checkpoint that a finished
    step started is committed whatever fails after it.
    """
    validate(config)
    sources.check_sources(config)  # teachers, tokenizer, datasets: everything missing named at once
    sharding.maybe_initialize_distributed(config.distributed)
    is_main = jax.process_index() == 0
    _prepare_workdir(workdir)
    with _workdir_lock(workdir, enabled=is_main):
        recipe.check_resume(workdir, config.to_dict())  # before any data work on a changed recipe
        return _run(config, workdir, is_main)


class Setup(NamedTuple):
    """What a pretraining job (the loop, the LR range test) works with before its first step: the
    mesh, the data, the model, the compiled program and the teachers' params."""

    mesh: Any
    tokenizer: Any
    train_blocks: np.ndarray
    val_blocks: np.ndarray | None
    model_config: BertConfig
    init_params: dict | None  # a Hugging Face checkpoint's params, or None: random init
    mask_kw: dict
    program: train_step.Program
    teacher_params: list


def setup(config, workdir: str, optimizer=None) -> Setup:
    """The mesh, data, model, optimizer (`optimizer(model_config)`, default the config's own), teachers
    and program of a pretraining config. Every configuration error (the batch against the mesh,
    sparsity rules, RigL settings, teachers) surfaces here, before anything compiles."""
    mesh = sharding.make_mesh(config.mesh)
    t = config.train
    rows_per_step = t.global_batch_size // t.grad_accum_steps
    if rows_per_step % sharding.batch_shards(mesh):
        raise ValueError(f"the micro-batch of {rows_per_step} rows (global_batch_size / grad_accum_steps) "
                         f"does not split over the mesh's data x fsdp = {sharding.batch_shards(mesh)} shards.")
    tokenizer, train_blocks, val_blocks = prepare_data(config, workdir)
    model_config, init_params = model_config_for(config, tokenizer)
    abstract_params = model.abstract_params(model_config)
    tx = optim.make_train_optimizer(config, abstract_params) if optimizer is None else optimizer(abstract_params)
    loaded_teachers = teachers.load_teachers(config.distill, model_config, mesh)
    program = train_step.build(model_config, tx, mesh, seed=t.seed, teachers=loaded_teachers,
                               distill=train_step.Distillation.from_config(config.distill, t.steps))
    return Setup(mesh, tokenizer, train_blocks, val_blocks, model_config, init_params,
                 masking_kwargs(config, tokenizer), program, [teacher.params for teacher in loaded_teachers])


def _run(config, workdir: str, is_main: bool) -> dict[str, Any]:
    t = config.train
    prepared = setup(config, workdir)
    tokenizer, model_config, program = prepared.tokenizer, prepared.model_config, prepared.program

    with contextlib.ExitStack() as cleanup:
        manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), save_every=t.checkpoint_every,
                                          keep=t.keep_checkpoints)
        # Whatever fails from here on: the save in flight (the final one, say) is committed, or its tmp
        # folder removed, and orbax's threads end before the interpreter does. When something else
        # failed first, that error stays the one reported (a failed save is then only logged).
        # After a lost peer nothing waits: a save in flight cannot commit without it (its tmp folder is
        # removed when the run restarts), and the checkpoints before it are complete.
        cleanup.push(lambda kind, error, tb: None if isinstance(error, PeerLost) else
                     checkpoint.finish(manager, primary=is_main, quiet=kind is not None))
        target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                              program.abstract_state, program.shardings)
        try:
            restored = checkpoint.restore_latest(manager, target, primary=is_main,
                                                 sync=multihost_utils.sync_global_devices)
        except checkpoint.CheckpointMismatch as e:
            raise ValueError(f"{e}; resume with the config it was written with ({workdir}/config.json) or use a "
                             f"new work directory.") from None
        if restored is not None:
            state, position, _ = restored
            start = int(position["step"])
            log.info("resumed from %s at step %d", workdir, start)
        else:
            state, start = program.init_state(prepared.init_params), 0
        if is_main:
            recipe.record_start(workdir, config.to_dict(), start)  # config.json, and one line of its history
            model_config.save(workdir)
            if config.tokenizer.name or config.distill.teachers:  # a trained vocab is already cached there
                tokenizer.save_pretrained(os.path.join(workdir, "tokenizer"))
                files.follow_umask_tree(os.path.join(workdir, "tokenizer"))
        writer = cleanup.enter_context(contextlib.closing(MetricsWriter(workdir, enabled=is_main, resume_step=start)))
        return _loop(config, workdir, is_main, prepared, manager, writer, state, start,
                     last_checkpoint=start if restored is not None else None)


def _loop(config, workdir: str, is_main: bool, prepared: Setup, manager, writer: MetricsWriter, state, start: int,
          last_checkpoint: int | None) -> dict[str, Any]:
    """The steps from `start`, the evaluations, the saves, the final report and export."""
    mesh, tokenizer, train_blocks, val_blocks, model_config, _, mask_kw, program, teacher_params = prepared
    t = config.train
    n_params = train_step.count_params(program.abstract_state["params"])
    masks = sparsity.get_masks(state["opt_state"])
    if is_main:
        log.info("model: %s parameters; %d train blocks, %d validation blocks of %d tokens; mesh %s",
                 f"{n_params:,}", len(train_blocks), 0 if val_blocks is None else len(val_blocks), t.seq_len,
                 dict(mesh.shape))
    if start == 0 and masks is not None:  # every process takes part in the gather; process 0 reports
        _sparsity_report(writer, 0, _to_host(state["params"]), _to_host(masks), is_main, "at step 0")

    tokens_per_step = t.global_batch_size * t.seq_len
    rigl_logged = sparse_config.rigl_logged_steps(config.sparsity, t.steps) if config.sparsity.enabled else frozenset()
    from tqdm.auto import tqdm

    bar = tqdm(total=t.steps, initial=start, disable=not is_main or not t.progress_bar, unit="step",
               dynamic_ncols=True, mininterval=2.0)
    pending = None  # (step, metrics) of the step in flight: checked one step late, keeping dispatch async
    compile_started = time.time()
    interval_start, interval_steps = time.time(), 0
    result: dict[str, Any] = {"status": "finished"}

    def settle(pending):
        nonlocal interval_start, interval_steps
        step, metrics = pending
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        _check_finite(step, metrics, last_checkpoint)
        # The first step too, so the loss at the start is seen (and a resumed run logs as it would have); and
        # the steps around each RigL update, so its cost is seen.
        if (step + 1) % t.log_every == 0 or step + 1 == t.steps or step == 0 or step + 1 in rigl_logged:
            elapsed = time.time() - interval_start
            metrics["step_time"] = elapsed / max(interval_steps, 1)
            metrics["tokens_per_second"] = tokens_per_step / metrics["step_time"]
            writer.scalars(step + 1, metrics, prefix="train/")
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", tok_s=f"{metrics['tokens_per_second']:.0f}")
            # (the first interval includes the compilation: no throughput for it)
            speed = f", {metrics['tokens_per_second']:.0f} tokens/s" if step > start else ""
            if is_main and not bar.disable:
                bar.write(f"step {step + 1}: loss {metrics['loss']:.4f}{speed}")
            elif is_main:
                log.info("step %d: loss %.4f%s", step + 1, metrics["loss"], speed)
            interval_start, interval_steps = time.time(), 0
        return metrics

    def save(step: int, force: bool = False):
        nonlocal last_checkpoint
        if checkpoint.save(manager, step, state, data_position={"step": step}, config=config.to_dict(), force=force):
            last_checkpoint = step

    def run_eval(step: int) -> dict:
        results = evaluate(program.eval_step, state["params"], val_blocks, config, mask_kw, mesh)
        writer.scalars(step, results, prefix="eval/")
        if is_main:
            log.info("eval at step %d: loss %.4f, perplexity %.2f, MLM accuracy %.4f (%d blocks)", step,
                     results["eval_loss"], results["perplexity"], results["eval_mlm_accuracy"], results["eval_blocks"])
        return results

    try:
        with _StopSignal() as stop:
            step = start
            while step < t.steps:
                batch = sharding.place_batch(local_batch(train_blocks, step, config, mask_kw), mesh, leading_axes=1)
                state, metrics = program.train_step(state, batch, teacher_params)
                if step == start:
                    result["compile_seconds"] = time.time() - compile_started
                if pending is not None:
                    settle(pending)
                pending = (step, metrics)
                step += 1
                interval_steps += 1
                bar.update(1)
                stop_now = stop.received is not None
                if step % t.checkpoint_every == 0 or stop_now:
                    settle(pending)  # never save a state whose step diverged
                    pending = None
                    save(step, force=stop_now)
                if val_blocks is not None and t.eval_every and step % t.eval_every == 0 and step < t.steps:
                    run_eval(step)
                if stop_now:
                    result["status"] = f"stopped by {stop.received} at step {step}"
                    break
            if pending is not None:
                result["last_train"] = settle(pending)
            bar.close()
            if result["status"] == "finished":
                save(step, force=True)  # committed by checkpoint.finish whatever fails below
                masks = sparsity.get_masks(state["opt_state"])
                # Whole arrays on the host (a collective), for the report and the export; masked-off weights
                # are exact zeros.
                params = _to_host(state["params"]) if masks is not None or t.export_hf else None
                if masks is not None:
                    _sparsity_report(writer, step, params, _to_host(masks), is_main, f"at the end (step {step})")
                if val_blocks is not None:
                    final_eval = run_eval(step)
                    result.update(final_eval)
                    if is_main:
                        files.atomic_write_json(os.path.join(workdir, "eval_results.json"),
                                                {"step": step, **final_eval})
                if t.export_hf and is_main:
                    hf_io.save_hf(model_config, params, os.path.join(workdir, "hf"), tokenizer=tokenizer)
    except Exception as e:  # noqa: BLE001 - a collective's error, or orbax's when a save's barrier fails
        lost = _peer_lost(e)
        if lost is not None:
            raise lost from None
        raise
    finally:
        bar.close()
    result["step"] = step
    log.debug("%s", result)  # the summary is printed by scripts/pretrain.py; the numbers are in eval_results.json
    return result
