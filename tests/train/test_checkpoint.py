"""Tests for jax_bert.checkpoint: round trips, retention, atomicity, resharding, errors."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_bert.train import checkpoint

# ---------------------------------------------------------------- helpers


def _abstract(tree):
    """What a training script builds to restore: shapes, dtypes and target shardings."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if isinstance(x, jax.Array) else x,
        tree,
    )


def _bytes(x):
    """Raw bytes and dtype of a leaf; typed PRNG keys compared through their key data."""
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return ("key", str(jax.random.key_impl(x)), np.asarray(jax.random.key_data(x)).tobytes())
    if isinstance(x, (int, float)):
        return (type(x).__name__, x)
    a = np.asarray(x)
    return (str(a.dtype), a.shape, a.tobytes())


def _assert_bitwise_equal(restored, expected):
    # Same tree structure, including namedtuple types and None leaves.
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for (path, r), e in zip(jax.tree_util.tree_leaves_with_path(restored), jax.tree.leaves(expected)):
        assert _bytes(r) == _bytes(e), jax.tree_util.keystr(path)


def _train_state(seed=0):
    """A small train state as the trainer holds it: params, optax states after one update, key, masks."""
    k = jax.random.split(jax.random.key(seed), 4)
    params = {
        "encoder": {
            "dense": {"kernel": jax.random.normal(k[0], (6, 4)), "bias": jax.random.normal(k[1], (4,))},
            "ln": {"scale": jnp.ones((4,), jnp.bfloat16)},
        },
        "head": jax.random.normal(k[2], (4, 3)),
    }
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
    injected = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, b1=0.9, weight_decay=0.01)
    plain = optax.adamw(1e-3)
    opt_inj, opt_plain = injected.init(params), plain.init(params)
    _, opt_inj = injected.update(grads, opt_inj, params)  # nonzero moments and count
    _, opt_plain = plain.update(grads, opt_plain, params)
    masks = {
        "encoder": {"dense": {"kernel": jax.random.bernoulli(k[3], 0.2, (6, 4)), "bias": None},
                    "ln": {"scale": None}},
        "head": None,
    }
    return {
        "step": 7,
        "params": params,
        "opt_state": {"injected": opt_inj, "plain": opt_plain},
        "rng": jax.random.key(seed + 1),
        "masks": masks,
    }


CONFIG = {"model": {"hidden": 4, "layers": (1, 2)}, "train": {"lr": 1e-3, "steps": 10}, "name": "t"}


# ---------------------------------------------------------------- round trip


def test_round_trip_bitwise(tmp_path):
    state = _train_state()
    mngr = checkpoint.make_manager(tmp_path / "ckpt", save_every=1, keep=3)
    assert checkpoint.save(mngr, 7, state, data_position={"step": 7, "epoch": 0}, config=CONFIG)
    checkpoint.wait(mngr)
    mngr.close()

    restored, position, config = checkpoint.restore(tmp_path / "ckpt", _abstract(state))
    _assert_bitwise_equal(restored, state)
    # The restored namedtuples are the optax classes themselves: the state plugs back into optax.
    assert type(restored["opt_state"]["injected"]) is type(state["opt_state"]["injected"])
    assert restored["opt_state"]["injected"].hyperparams["b1"] == pytest.approx(0.9)
    assert jax.random.key_impl(restored["rng"]) == jax.random.key_impl(state["rng"])
    assert position == {"step": 7, "epoch": 0}
    assert config == json.loads(json.dumps(CONFIG))  # JSON: tuples come back as lists
    # One subtree by its path, without an abstract state (a sparse run's masks: "opt_state/masks").
    np.testing.assert_array_equal(checkpoint.restore_params_only(tmp_path / "ckpt", key="masks/encoder/dense/kernel"),
                                  np.asarray(state["masks"]["encoder"]["dense"]["kernel"]))
    with pytest.raises(ValueError, match=r"no 'masks/nope' entry; the keys at masks are \['encoder', 'head'\]"):
        checkpoint.restore_params_only(tmp_path / "ckpt", key="masks/nope")

    params = checkpoint.restore_params_only(tmp_path / "ckpt")
    _assert_bitwise_equal(params, jax.tree.map(np.asarray, state["params"]))
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(params))


def test_resume_through_manager_and_async_save_survives_deleted_arrays(tmp_path):
    """An async save may be followed at once by a donating train step: the saved values must not change."""
    state = _train_state(seed=3)
    expected = jax.tree.map(lambda x: np.array(x) if isinstance(x, jax.Array) and not
                            jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, state)
    abstract = _abstract(state)
    mngr = checkpoint.make_manager(tmp_path, save_every=5, keep=2, async_save=True)
    assert checkpoint.save(mngr, 5, state, data_position={"step": 5}, config={})
    # Free the device buffers as donation would, before the background write is waited on.
    for leaf in jax.tree.leaves(state["params"]):
        leaf.delete()
    checkpoint.wait(mngr)
    mngr.close()

    resumed = checkpoint.make_manager(tmp_path, save_every=5, keep=2)
    restored, position, _ = checkpoint.restore(resumed, abstract)
    _assert_bitwise_equal(restored["params"], expected["params"])
    assert position == {"step": 5}
    resumed.close()


# ---------------------------------------------------------------- retention and policy


def test_save_every_keep_latest_and_force(tmp_path):
    state = {"params": {"w": jnp.arange(6.0).reshape(2, 3)}, "step": jnp.int32(0)}
    mngr = checkpoint.make_manager(tmp_path, save_every=2, keep=2, async_save=True)
    started = []
    for s in range(1, 10):
        state = {"params": {"w": state["params"]["w"] + 1}, "step": jnp.int32(s)}
        if checkpoint.save(mngr, s, state, data_position={"step": s}, config=CONFIG):
            started.append(s)
    checkpoint.wait(mngr)
    assert started == [2, 4, 6, 8]
    assert checkpoint.latest_step(tmp_path) == 8
    assert sorted(int(d) for d in os.listdir(tmp_path) if d.isdigit()) == [6, 8]

    # The final step is saved off-interval with force; repeating it is a no-op.
    assert checkpoint.save(mngr, 9, state, data_position={"step": 9}, config=CONFIG, force=True)
    assert not checkpoint.save(mngr, 9, state, data_position={"step": 9}, config=CONFIG, force=True)
    checkpoint.wait(mngr)
    mngr.close()
    assert checkpoint.latest_step(tmp_path) == 9
    assert sorted(int(d) for d in os.listdir(tmp_path) if d.isdigit()) == [8, 9]

    restored, position, _ = checkpoint.restore(tmp_path, _abstract(state), step=8)
    np.testing.assert_array_equal(restored["params"]["w"], np.arange(6.0).reshape(2, 3) + 8)
    assert int(restored["step"]) == 8 and position == {"step": 8}
    with pytest.raises(ValueError, match=r"step 4 not found.*\[8, 9\]"):
        checkpoint.restore(tmp_path, _abstract(state), step=4)


# ---------------------------------------------------------------- atomicity


def test_unfinished_tmp_checkpoint_is_ignored_and_cleaned(tmp_path):
    state = {"params": {"w": jnp.arange(4.0)}}
    mngr = checkpoint.make_manager(tmp_path, save_every=1, keep=5)
    checkpoint.save(mngr, 1, state, data_position={"step": 1}, config={})
    checkpoint.wait(mngr)
    mngr.close()
    # What a process killed mid-save leaves behind: a half-written tmp step, newer than the last good one.
    tmp = tmp_path / "2.orbax-checkpoint-tmp-1234567890"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "garbage").write_bytes(b"\x00" * 10)

    assert checkpoint.latest_step(tmp_path) == 1
    restored, position, _ = checkpoint.restore(tmp_path, _abstract(state))
    np.testing.assert_array_equal(restored["params"]["w"], np.arange(4.0))
    assert position == {"step": 1}

    # A new run's manager removes the leftover and keeps the good step.
    mngr = checkpoint.make_manager(tmp_path, save_every=1, keep=5)
    assert checkpoint.save(mngr, 2, state, data_position={"step": 2}, config={})
    checkpoint.wait(mngr)
    mngr.close()
    assert not tmp.exists()
    assert checkpoint.latest_step(tmp_path) == 2


def _run(code, tmp_path, devices, name):
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_process_killed_during_async_save_keeps_previous_checkpoint(tmp_path):
    code = """
        import os, signal, sys
        import jax.numpy as jnp
        from jax_bert.train import checkpoint
        d = os.path.join(sys.argv[1], "ckpt")
        m = checkpoint.make_manager(d, save_every=1, keep=5, async_save=True)
        checkpoint.save(m, 1, {"w": jnp.full((1000, 1000), 1.0)}, data_position={"step": 1}, config={})
        checkpoint.wait(m)
        # 32 MB in the background, then the process dies without any cleanup.
        checkpoint.save(m, 2, {"w": jnp.full((8, 1000, 1000), 2.0)}, data_position={"step": 2}, config={})
        os.kill(os.getpid(), signal.SIGKILL)
    """
    proc = _run(code, tmp_path, 1, "killed")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    d = tmp_path / "ckpt"
    abstract = {"w": jax.ShapeDtypeStruct((1000, 1000), jnp.float32,
                                          sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))}
    restored, position, _ = checkpoint.restore(d, abstract, step=1)
    assert float(jnp.min(restored["w"])) == float(jnp.max(restored["w"])) == 1.0
    # Step 2 either never became a step (the usual case) or is complete; never half-written.
    if checkpoint.latest_step(d) == 2:
        abstract2 = {"w": jax.ShapeDtypeStruct((8, 1000, 1000), jnp.float32,
                                               sharding=abstract["w"].sharding)}
        assert float(jnp.min(checkpoint.restore(d, abstract2)[0]["w"])) == 2.0
    else:
        assert checkpoint.latest_step(d) == 1
    # The next run starts cleanly over the debris and can write step 2 itself.
    m = checkpoint.make_manager(d, save_every=1, keep=5)
    if checkpoint.latest_step(d) == 1:
        assert checkpoint.save(m, 2, {"w": jnp.full((2,), 3.0)}, data_position={"step": 2}, config={})
        checkpoint.wait(m)
    m.close()
    assert [x for x in os.listdir(d) if "tmp" in x] == []
    assert checkpoint.latest_step(d) == 2


# ---------------------------------------------------------------- resharding


_SAVE_ON_8 = """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from jax_bert.train import checkpoint
    assert jax.device_count() == 8
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"))
    put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))
    state = {
        "step": put(jnp.int32(11), P()),
        "params": {"w": put(jnp.arange(64.0).reshape(8, 8), P(("data", "fsdp"), "tensor")),
                   "b": put(jnp.arange(8, dtype=jnp.bfloat16), P("tensor"))},
        "masks": {"w": put(jnp.arange(64).reshape(8, 8) % 3 == 0, P("data", ("fsdp", "tensor"))), "b": None},
        "rng": put(jax.random.key(5), P()),
    }
    m = checkpoint.make_manager(sys.argv[1] + "/ckpt", save_every=1, keep=1)
    checkpoint.save(m, 11, state, data_position={"step": 11}, config={"mesh": [2, 2, 2]})
    checkpoint.wait(m)
"""

_RESTORE_ON_4 = """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, SingleDeviceSharding, PartitionSpec as P
    from jax_bert.train import checkpoint
    assert jax.device_count() == 4
    d = sys.argv[1] + "/ckpt"
    mesh = jax.make_mesh((2, 2), ("data", "tensor"))
    shardings = {
        "mesh4": {"step": NamedSharding(mesh, P()), "w": NamedSharding(mesh, P("tensor", "data")),
                  "b": NamedSharding(mesh, P()), "mask": NamedSharding(mesh, P(None, "tensor")),
                  "rng": NamedSharding(mesh, P())},
        "single": dict.fromkeys(["step", "w", "b", "mask", "rng"], SingleDeviceSharding(jax.devices()[0])),
    }
    out = {}
    for name, s in shardings.items():
        abstract = {
            "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=s["step"]),
            "params": {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=s["w"]),
                       "b": jax.ShapeDtypeStruct((8,), jnp.bfloat16, sharding=s["b"])},
            "masks": {"w": jax.ShapeDtypeStruct((8, 8), jnp.bool_, sharding=s["mask"]), "b": None},
            "rng": jax.eval_shape(lambda: jax.random.key(0)).update(sharding=s["rng"]),
        }
        state, pos, cfg = checkpoint.restore(d, abstract)
        assert pos == {"step": 11} and cfg == {"mesh": [2, 2, 2]}, (pos, cfg)
        assert state["masks"]["b"] is None
        for got, want in [(state["params"]["w"], s["w"]), (state["params"]["b"], s["b"]),
                          (state["masks"]["w"], s["mask"]), (state["step"], s["step"])]:
            assert got.sharding == want, (name, got.sharding, want)
        out[name + "_w"] = np.asarray(state["params"]["w"])
        out[name + "_b"] = np.asarray(state["params"]["b"]).astype(np.float32)
        out[name + "_mask"] = np.asarray(state["masks"]["w"])
        out[name + "_step"] = np.asarray(state["step"])
        out[name + "_key"] = np.asarray(jax.random.key_data(state["rng"]))
    p = checkpoint.restore_params_only(d)
    out["raw_w"], out["raw_b"] = p["w"], p["b"].astype(np.float32)
    np.savez(sys.argv[1] + "/restored.npz", **out)
"""


def test_restore_onto_different_device_count_and_mesh(tmp_path):
    saved = _run(_SAVE_ON_8, tmp_path, 8, "save8")
    assert saved.returncode == 0, saved.stderr[-3000:]
    restored = _run(_RESTORE_ON_4, tmp_path, 4, "restore4")
    assert restored.returncode == 0, restored.stderr[-3000:]

    out = np.load(tmp_path / "restored.npz")
    want_w = np.arange(64.0, dtype=np.float32).reshape(8, 8)
    want_mask = np.arange(64).reshape(8, 8) % 3 == 0
    want_key = np.asarray(jax.random.key_data(jax.random.key(5)))
    for name in ("mesh4", "single"):
        np.testing.assert_array_equal(out[name + "_w"], want_w)
        np.testing.assert_array_equal(out[name + "_b"], np.arange(8, dtype=np.float32))
        np.testing.assert_array_equal(out[name + "_mask"], want_mask)
        assert int(out[name + "_step"]) == 11
        np.testing.assert_array_equal(out[name + "_key"], want_key)
    np.testing.assert_array_equal(out["raw_w"], want_w)
    np.testing.assert_array_equal(out["raw_b"], np.arange(8, dtype=np.float32))


# ---------------------------------------------------------------- errors


def test_errors_name_the_directory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing"
    abstract = {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}
    assert checkpoint.latest_step(empty) is None
    assert checkpoint.latest_step(missing) is None
    for d in (empty, missing):
        with pytest.raises(ValueError, match=re.escape(f"No checkpoint found in '{d}'")):
            checkpoint.restore(d, abstract)
        with pytest.raises(ValueError, match=re.escape(str(d))):
            checkpoint.restore_params_only(d)
    assert not missing.exists()  # reading never creates directories


def test_bad_arguments_fail_before_saving(tmp_path):
    with pytest.raises(ValueError, match="save_every"):
        checkpoint.make_manager(tmp_path, save_every=0, keep=1)
    with pytest.raises(ValueError, match="keep"):
        checkpoint.make_manager(tmp_path, save_every=1, keep=0)
    mngr = checkpoint.make_manager(tmp_path, save_every=1, keep=1)
    state = {"w": jnp.zeros(2)}
    with pytest.raises(ValueError, match="config is not JSON-serialisable"):
        checkpoint.save(mngr, 1, state, data_position={"step": 1}, config={"lr": np.float32(1e-3)})
    with pytest.raises(ValueError, match="data_position must be a dict"):
        checkpoint.save(mngr, 1, state, data_position=[1], config={})
    mngr.close()
    assert checkpoint.latest_step(tmp_path) is None

    # A state without params: restore_params_only says what it found instead.
    mngr = checkpoint.make_manager(tmp_path, save_every=1, keep=1)
    checkpoint.save(mngr, 1, state, data_position={"step": 1}, config={})
    checkpoint.wait(mngr)
    mngr.close()
    with pytest.raises(ValueError, match=r"no 'params' entry.*\['w'\]"):
        checkpoint.restore_params_only(tmp_path)
