"""Checkpointing of the train state with orbax (stable `orbax.checkpoint` API).

One checkpoint step holds three items, written together by one
`ocp.CheckpointManager` save:

    <directory>/<step>/state          the train state pytree (StandardSave: arrays in
                                      OCDBT/zarr, each with its shape, dtype and sharding)
    <directory>/<step>/data_position  JSON, where the input pipeline stands ({"step": s, ...})
    <directory>/<step>/config         JSON, the resolved run config

We use `orbax.checkpoint.CheckpointManager` with `ocp.args.Composite` of
`StandardSave`/`JsonSave` and save/preservation *policies*
(`FixedIntervalPolicy`, `LatestN`), which orbax 0.12 recommends over the
deprecated `save_interval_steps`/`max_to_keep` options. The newer API,
`orbax.checkpoint.experimental.v1`, is still marked experimental ("subject to
change without notice"), so it is not used here.

What orbax gives us, and the tests check:
- Atomic steps: a step is written under `<step>.orbax-checkpoint-tmp*` and
  renamed when complete; unfinished tmp directories are never listed as steps,
  and `make_manager` deletes leftovers of a crashed run.
- Async saves: `save` returns once arrays are copied off the device, so the
  caller may donate or overwrite the state right after; `wait` blocks until
  the files are committed.
- Resharding on restore: arrays are restored onto whatever shardings the
  abstract state names, independent of the mesh they were saved from.
- Multi-process: every process calls `save`/`restore`; orbax lets only the
  primary process write metadata and finalise the step.

The train state may contain optax states (namedtuples), typed PRNG keys,
python ints and None leaves (e.g. mask trees where a param is dense): all of
these round-trip because restoration follows the structure of the abstract
state.

What we add:
- Integrity: `save` stores a checksum of every array of the state (train/checksums.py) in the
  data_position item, committed with the arrays; `restore` verifies it. A checkpoint that cannot be
  read or whose arrays differ from their checksums raises `CheckpointDamaged` naming the step and
  why; a checkpoint of another model (other paths, shapes or dtypes) raises `CheckpointMismatch`.
  `restore_latest` falls back from a damaged checkpoint to the newest intact one, moving the damaged
  one aside (`<step>.damaged`), so a rerun never meets it again and its step can be saved anew.
- `discard_unfinished`: removes the tmp folders of saves that failed (a full disk), so that a failed
  save leaves the checkpoints folder as it was.
"""
from __future__ import annotations

import errno
import glob
import json
import logging
import os
import re
import shutil
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

import sparsity
from jax_bert.train import checksums

_STATE, _DATA, _CONFIG = "state", "data_position", "config"
_ITEMS = (_STATE, _DATA, _CONFIG)

PyTree = Any
_CHECKSUMS = "state_checksums"  # key of the data_position item that holds the state's checksums
DAMAGED_SUFFIX = ".damaged"
TMP_MARKER = ".orbax-checkpoint-tmp"

log = logging.getLogger(__name__)


class CheckpointDamaged(ValueError):
    """A checkpoint's files cannot be read back as they were written; the message says which and why."""

    def __init__(self, directory: str, step: int, reason: str):
        self.directory, self.step, self.reason = directory, step, reason
        super().__init__(f"checkpoint {step} in {directory} is damaged: {reason}")


class CheckpointMismatch(ValueError):
    """A readable checkpoint of another model or optimizer than the one asked for."""


def _item_handlers(state_handler: ocp.CheckpointHandler) -> dict:
    # Naming the handlers up front (instead of letting orbax infer them from the
    # first save/restore call) lets a fresh manager read metadata and restore
    # single items of a directory it has never written.
    return {
        _STATE: state_handler,
        _DATA: ocp.JsonCheckpointHandler(),
        _CONFIG: ocp.JsonCheckpointHandler(),
    }


def _absolute(directory: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(directory))


def make_manager(
    directory: str | os.PathLike,
    *,
    save_every: int,
    keep: int,
    async_save: bool = True,
) -> ocp.CheckpointManager:
    """Returns a CheckpointManager that saves every `save_every` steps and keeps the `keep` latest.

    The directory is created if missing. Temporary directories left by a save
    that was interrupted (process killed) are removed; finished steps are never
    touched by that cleanup.
    """
    if not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"save_every must be a positive int, got {save_every!r}.")
    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be a positive int (number of checkpoints kept), got {keep!r}.")
    policies = ocp.checkpoint_managers
    options = ocp.CheckpointManagerOptions(
        # No InitialSavePolicy (orbax's default adds one): a save happens exactly
        # on multiples of save_every, plus on a preemption notice under
        # jax.distributed, plus whenever `save(..., force=True)` asks.
        save_decision_policy=policies.AnySavePolicy(
            [policies.FixedIntervalPolicy(save_every), policies.PreemptionCheckpointingPolicy()]
        ),
        preservation_policy=policies.LatestN(keep),
        enable_async_checkpointing=async_save,
        create=True,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(
        _absolute(directory),
        options=options,
        item_names=_ITEMS,
        item_handlers=_item_handlers(ocp.StandardCheckpointHandler()),
    )


def _reader(directory: str | os.PathLike, state_handler=None) -> ocp.CheckpointManager:
    """A read-only manager over `directory` (never creates, writes or deletes)."""
    if not os.path.isdir(_absolute(directory)):
        raise ValueError(
            f"No checkpoint found in {_absolute(directory)!r}: the directory does not exist. "
            "Check the path, or start training without restoring."
        )
    # A read-only manager warns that it will not save; that is the point, so keep it quiet.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        return ocp.CheckpointManager(
            _absolute(directory),
            options=ocp.CheckpointManagerOptions(read_only=True),
            item_names=_ITEMS,
            item_handlers=_item_handlers(state_handler or ocp.StandardCheckpointHandler()),
        )
    finally:
        absl_logger.setLevel(level)


def _to_json(name: str, value: Mapping[str, Any]) -> dict:
    """Plain JSON-able dict, checked now: an async save would only fail later, in a thread."""
    if hasattr(value, "to_dict"):  # ml_collections.ConfigDict
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__}.")
    try:
        # Round-trip so the saved object is exactly what will be read back
        # (tuples become lists, numpy scalars are rejected here, not mid-save).
        return json.loads(json.dumps(dict(value)))
    except TypeError as e:
        raise ValueError(
            f"{name} is not JSON-serialisable ({e}); convert its values to plain "
            "python types (int, float, str, bool, list, dict, None)."
        ) from e


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: PyTree,
    *,
    data_position: Mapping[str, Any],
    config: Mapping[str, Any],
    force: bool = False,
) -> bool:
    """Saves state, data position and config as checkpoint `step` if the policy (or `force`) says so.

    Returns whether a save was started. With an async manager, the arrays are
    copied to host before returning, so `state` may be donated afterwards;
    call `wait(manager)` before relying on the files. Saving a step that already
    exists is a no-op returning False.
    """
    step = int(step)
    data_position = _to_json("data_position", data_position)
    config = _to_json("config", config)
    if _CHECKSUMS in data_position:
        raise ValueError(f"data_position may not use the key {_CHECKSUMS!r}: checkpoints keep the state's "
                         "checksums there.")
    if step in manager.all_steps():
        return False
    if not manager.should_save(step) and not force:
        return False
    _check_free_space(manager.directory, state, step)
    # Computed now, on the devices, from the state being saved (the async save copies the same arrays).
    data_position[_CHECKSUMS] = checksums.checksums(state)
    items = {
        _STATE: ocp.args.StandardSave(state),
        _DATA: ocp.args.JsonSave(data_position),
        _CONFIG: ocp.args.JsonSave(config),
    }
    return manager.save(step, args=ocp.args.Composite(**items), force=force)


def _check_free_space(directory, state: PyTree, step: int) -> None:
    """Refuses a save that cannot fit (uncompressed size plus a margin): a save that fills the disk
    half-way fails in orbax's background threads, noisily; this one fails here, cleanly, with the
    checkpoints left as they were."""
    need = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state)) + (1 << 20)
    stat = os.statvfs(_absolute(directory))
    free = stat.f_bavail * stat.f_frsize
    if free < need:
        raise OSError(errno.ENOSPC, f"No space left on device: saving checkpoint {step} needs about "
                      f"{need / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free", _absolute(directory))


def wait(manager: ocp.CheckpointManager) -> None:
    """Blocks until every async save of `manager` is committed to disk."""
    manager.wait_until_finished()


def discard_unfinished(directory: str | os.PathLike) -> list[str]:
    """Removes the tmp folders of saves that did not commit (a save that failed, e.g. on a full disk);
    committed steps are never touched. Returns what was removed. Call it after the save has stopped
    (`wait` raised), on the primary process."""
    removed = sorted(glob.glob(os.path.join(_absolute(directory), f"*{TMP_MARKER}*")))
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def finish(manager: ocp.CheckpointManager, *, primary: bool = True, quiet: bool = False) -> None:
    """Waits for the save in flight and closes the manager (its threads end), whatever happens:
    a save that fails leaves no tmp folder behind and its error is raised, once (only logged with
    `quiet`, for when another error is already on its way)."""
    try:
        manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - a save fails for reasons outside the program: the disk
        if primary:
            discard_unfinished(manager.directory)
        if quiet:
            log.warning("the last checkpoint save failed too: %s", _first_line(e))
        else:
            cause = e
            while (cause.__cause__ or cause.__context__) is not None:
                cause = cause.__cause__ or cause.__context__
            # tensorstore reports the OS error as text: "... [os_error_code='28']"
            code_in_text = re.search(r"os_error_code='(\d+)'", str(cause))
            code = (cause.errno if isinstance(cause, OSError) and cause.errno else
                    int(code_in_text.group(1)) if code_in_text else errno.EIO)
            raise OSError(code, f"{os.strerror(code)} (saving a checkpoint failed: {_first_line(e)}); the "
                          f"checkpoints before it are intact", str(manager.directory)) from e
    finally:
        try:
            manager.close()
        except Exception:  # noqa: BLE001 - the save's own error (raised above) is the one that matters
            log.debug("closing the checkpoint manager failed", exc_info=True)


def _steps(directory: str | os.PathLike) -> list[int]:
    if not os.path.isdir(_absolute(directory)):
        return []
    reader = _reader(directory)
    try:
        return sorted(reader.all_steps())
    finally:
        reader.close()


def all_steps(directory: str | os.PathLike) -> list[int]:
    """The complete checkpoint steps in `directory`, oldest first."""
    return _steps(directory)


def latest_step(directory: str | os.PathLike) -> int | None:
    """The latest complete checkpoint step in `directory`, or None if there is none."""
    steps = _steps(directory)
    return steps[-1] if steps else None


def _resolve_step(directory: str | os.PathLike, step: int | None, steps: list[int]) -> int:
    if not steps:
        raise ValueError(
            f"No checkpoint found in {_absolute(directory)!r}: it holds no complete "
            "checkpoint step. Check the path, or start training without restoring."
        )
    if step is None:
        return steps[-1]
    if int(step) not in steps:
        raise ValueError(
            f"Checkpoint step {step} not found in {_absolute(directory)!r}; "
            f"available steps: {steps}."
        )
    return int(step)


def _signature(tree) -> dict[str, tuple]:
    """{path: (shape, dtype)} of a state or of orbax's metadata of one (the structure to compare)."""
    out = {}
    for path, leaf in sparsity.named_leaves(tree):
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            dtype = leaf.dtype
            if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
                dtype = "key"
            out[path] = (tuple(leaf.shape), str(dtype))
        else:  # a python scalar: its kind only (orbax stores ints as int64 scalars)
            out[path] = ((), "scalar")
    return out


def _compare(saved, target) -> str | None:
    """None when `saved` (orbax metadata) has the paths, shapes and dtypes of `target`; else what differs."""
    a, b = _signature(saved), _signature(target)
    only_saved, only_target = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_saved or only_target:
        return (f"entries only in the checkpoint: {only_saved[:3]}{' ...' if len(only_saved) > 3 else ''}; "
                f"only in this run: {only_target[:3]}{' ...' if len(only_target) > 3 else ''}")
    for path in sorted(a, key=lambda p: (not p.startswith("params/"), p)):  # a param names it best
        sa, sb = a[path], b[path]
        if "scalar" in (sa[1], sb[1]) or "key" in (sa[1], sb[1]):
            continue  # scalars and PRNG keys are stored in another form than they are held
        if sa != sb:
            return f"{path} is {sa[0]} {sa[1]} in the checkpoint but {sb[0]} {sb[1]} in this run"
    return None


def _first_line(error: BaseException) -> str:
    """The root cause of a read error, on one line (orbax wraps tensorstore's error in a message that
    prints the whole tensorstore spec)."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:240]}"


def _drop_abandoned_reads() -> None:
    """After a failed restore, orbax's other array reads of that checkpoint are coroutines nobody
    awaits any more; collected later they would print 'Exception ignored in: <coroutine ...>' with a
    TensorStore spec, long after the one-line report. Collect them now, quietly."""
    import gc
    import sys

    previous = sys.unraisablehook

    def hook(unraisable):
        if not (hasattr(unraisable.object, "cr_code") and "orbax" in unraisable.object.cr_code.co_filename):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous


def restore(
    manager_or_dir: ocp.CheckpointManager | str | os.PathLike,
    abstract_state: PyTree,
    step: int | None = None,
) -> tuple[PyTree, dict, dict]:
    """Restores (state, data_position, config) from `step` (default: the latest), verified.

    `abstract_state` gives the structure and target placement: a pytree whose
    array leaves are `jax.ShapeDtypeStruct`s with a `.sharding` (e.g.
    `jax.eval_shape(init)` with the run's shardings attached). The arrays are
    resharded onto those shardings, whatever mesh wrote them. Leaves without a
    sharding come back as numpy arrays; None leaves stay None.

    Raises CheckpointMismatch for a checkpoint of another model or optimizer, CheckpointDamaged
    when its files cannot be read or its arrays differ from the checksums saved with them.
    """
    if isinstance(manager_or_dir, ocp.CheckpointManager):
        manager, owned = manager_or_dir, False
    else:
        manager, owned = _reader(manager_or_dir), True
    directory = str(manager.directory)
    try:
        step = _resolve_step(directory, step, sorted(manager.all_steps()))
        damaged = lambda reason: CheckpointDamaged(directory, step, reason)  # noqa: E731
        difference = _compare(_saved_state_tree(manager, step, damaged), abstract_state)
        if difference:
            raise CheckpointMismatch(f"checkpoint {step} in {directory} holds another model or optimizer "
                                     f"({difference})")
        items = {
            _STATE: ocp.args.StandardRestore(abstract_state),
            _DATA: ocp.args.JsonRestore(),
            _CONFIG: ocp.args.JsonRestore(),
        }
        try:
            restored = manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # noqa: BLE001
            _drop_abandoned_reads()
            raise damaged(f"reading it failed ({_first_line(e)})") from e
        state, position, config = restored[_STATE], restored[_DATA], restored[_CONFIG]
        position = _checked_position(position, step, damaged)
        expected = position.pop(_CHECKSUMS, None)
        if expected is None:
            log.warning("checkpoint %d in %s has no checksums (written before they were added); "
                        "it is restored unverified", step, directory)
        else:
            bad = checksums.mismatches(expected, state)
            if bad:
                raise damaged(f"{len(bad)} arrays differ from the checksums saved with them "
                              f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})")
    finally:
        if owned:
            manager.close()
    return state, position, config


def _checked_position(position, step: int, damaged) -> dict:
    if not isinstance(position, Mapping):
        raise damaged(f"its data_position is {type(position).__name__}, not the saved dict")
    position = dict(position)
    if position.get("step", step) != step:
        raise damaged(f"its data_position says step {position.get('step')!r} but it is checkpoint {step}")
    return position


def set_aside(directory: str | os.PathLike, step: int) -> str:
    """Renames checkpoint `step` to `<step>.damaged` (or .damaged-2, ...): orbax no longer lists it,
    the step can be saved anew, and the files stay for a post-mortem. Returns the new path."""
    source = os.path.join(_absolute(directory), str(step))
    target, n = source + DAMAGED_SUFFIX, 1
    while os.path.exists(target):
        n += 1
        target = f"{source}{DAMAGED_SUFFIX}-{n}"
    os.replace(source, target)
    return target


def restore_latest(
    manager: ocp.CheckpointManager,
    abstract_state: PyTree,
    *,
    primary: bool = True,
    sync=lambda name: None,
) -> tuple[PyTree, dict, dict] | None:
    """The newest intact checkpoint (state, data_position, config), or None when there is none.

    A damaged checkpoint is logged (which one, why), moved aside by the primary process (`sync(name)`
    then waits for it on every process) and the next older one is tried. When every checkpoint was
    damaged a CheckpointDamaged error says so (they are all set aside: a rerun starts from step 0).
    A checkpoint of another model raises CheckpointMismatch at once: that is a wrong work directory,
    not damage, and nothing is moved."""
    directory = str(manager.directory)
    steps = sorted(manager.all_steps(), reverse=True)
    problems = []
    for step in steps:
        try:
            return restore(manager, abstract_state, step)
        except CheckpointDamaged as e:
            problems.append(e)
            moved = set_aside(directory, step) if primary else f"{directory}/{step}{DAMAGED_SUFFIX}"
            sync(f"set aside checkpoint {step}")
            manager.reload()
            log.warning("%s; moved to %s, trying the previous checkpoint", e, moved)
    if problems:
        raise CheckpointDamaged(directory, problems[0].step,
                                f"and so is every older one ({'; '.join(p.reason for p in problems[1:]) or 'none'}); "
                                f"they were moved aside to *{DAMAGED_SUFFIX}: rerun to start from step 0")
    return None


def _saved_state_tree(reader, step: int, damaged):
    """The saved state's metadata tree of checkpoint `step`; unreadable or missing metadata is damage
    (`damaged(reason)` builds the error that names the checkpoint)."""
    try:
        saved = reader.item_metadata(step)[_STATE]
    except Exception as e:  # noqa: BLE001 - anything unreadable is damage
        raise damaged(f"its state metadata cannot be read ({_first_line(e)})") from e
    if saved is None:
        raise damaged("its state/ folder is missing")
    return saved.tree if hasattr(saved, "tree") else saved


def restore_params_only(
    directory: str | os.PathLike,
    step: int | None = None,
    *,
    key: str = "params",
) -> PyTree:
    """Reads only the `key` subtree of the saved state as numpy arrays, without an abstract state.

    For loading a teacher or a fine-tuning starting point: the optimizer state is not read.
    `key` may be a "/"-path into the state, e.g. "opt_state/masks" for a sparse run's masks.
    The structure is the saved one (nested dicts; named tuples become dicts of their fields).
    """
    names = key.split("/")
    # PyTreeCheckpointHandler (rather than Standard) is what offers partial
    # restoration; both read the same on-disk format.
    reader = _reader(directory, ocp.PyTreeCheckpointHandler())
    try:
        step = _resolve_step(directory, step, sorted(reader.all_steps()))
        damaged = lambda reason: CheckpointDamaged(_absolute(directory), step, reason)  # noqa: E731
        subtree = _saved_state_tree(reader, step, damaged)
        for depth, name in enumerate(names):
            if not isinstance(subtree, Mapping) or name not in subtree:
                found = sorted(subtree) if isinstance(subtree, Mapping) else type(subtree).__name__
                where = "/".join(names[:depth]) or "the top level"
                raise ValueError(
                    f"The state saved at step {step} in {_absolute(directory)!r} has no "
                    f"{key!r} entry; the keys at {where} are {found}."
                )
            subtree = subtree[name]

        def nested(x):
            for name in reversed(names):
                x = {name: x}
            return x

        as_numpy = lambda _: ocp.RestoreArgs(restore_type=np.ndarray)  # noqa: E731
        only_this = ocp.args.PyTreeRestore(
            item=nested(subtree),
            restore_args=nested(jax.tree.map(as_numpy, subtree)),
            partial_restore=True,
        )
        try:
            restored = reader.restore(step, args=ocp.args.Composite(**{_STATE: only_this}))[_STATE]
            position = reader.restore(step, args=ocp.args.Composite(**{_DATA: ocp.args.JsonRestore()}))[_DATA]
        except Exception as e:  # noqa: BLE001
            _drop_abandoned_reads()
            raise damaged(f"reading it failed ({_first_line(e)})") from e
        position = _checked_position(position, step, damaged)
    finally:
        reader.close()
    for name in names:
        restored = restored[name]
    expected = position.get(_CHECKSUMS)
    if expected is not None:
        bad = checksums.mismatches(expected, restored, prefix=key)
        if bad:
            raise damaged(f"{len(bad)} arrays differ from the checksums saved with them ({', '.join(bad[:3])})")
    return restored
