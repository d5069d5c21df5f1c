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
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

_STATE, _DATA, _CONFIG = "state", "data_position", "config"
_ITEMS = (_STATE, _DATA, _CONFIG)

PyTree = Any


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
    if step in manager.all_steps():
        return False
    items = {
        _STATE: ocp.args.StandardSave(state),
        _DATA: ocp.args.JsonSave(data_position),
        _CONFIG: ocp.args.JsonSave(config),
    }
    return manager.save(step, args=ocp.args.Composite(**items), force=force)


def wait(manager: ocp.CheckpointManager) -> None:
    """Blocks until every async save of `manager` is committed to disk."""
    manager.wait_until_finished()


def _steps(directory: str | os.PathLike) -> list[int]:
    if not os.path.isdir(_absolute(directory)):
        return []
    reader = _reader(directory)
    try:
        return sorted(reader.all_steps())
    finally:
        reader.close()


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


def restore(
    manager_or_dir: ocp.CheckpointManager | str | os.PathLike,
    abstract_state: PyTree,
    step: int | None = None,
) -> tuple[PyTree, dict, dict]:
    """Restores (state, data_position, config) from `step` (default: the latest).

    `abstract_state` gives the structure and target placement: a pytree whose
    array leaves are `jax.ShapeDtypeStruct`s with a `.sharding` (e.g.
    `jax.eval_shape(init)` with the run's shardings attached). The arrays are
    resharded onto those shardings, whatever mesh wrote them. Leaves without a
    sharding come back as numpy arrays; None leaves stay None.
    """
    if isinstance(manager_or_dir, ocp.CheckpointManager):
        manager, owned = manager_or_dir, False
    else:
        manager, owned = _reader(manager_or_dir), True
    try:
        step = _resolve_step(manager.directory, step, sorted(manager.all_steps()))
        items = {
            _STATE: ocp.args.StandardRestore(abstract_state),
            _DATA: ocp.args.JsonRestore(),
            _CONFIG: ocp.args.JsonRestore(),
        }
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    finally:
        if owned:
            manager.close()
    return restored[_STATE], restored[_DATA], restored[_CONFIG]


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
        saved = reader.item_metadata(step)[_STATE]
        subtree = saved.tree if hasattr(saved, "tree") else saved
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
        restored = reader.restore(step, args=ocp.args.Composite(**{_STATE: only_this}))[_STATE]
    finally:
        reader.close()
    for name in names:
        restored = restored[name]
    return restored
