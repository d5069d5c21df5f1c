"""Everything the tests need from JAX on 8 CPU devices, computed in one child process (JAX takes its
device count when it starts), shared by the tests through the session fixture `eight_devices`:

    mesh_runs       tiny pretraining runs on 8-device meshes (MESH_RUNS), each compared by its test with
                    the same run on one device (`one_device_overrides`): losses, masks and weights
    sharding_costs  the train step compiled for data 8, fsdp 8 and data 4 x tensor 2 (test_sharding_cost.py)
    plan_state      the planner's state bytes per device beside a live state's, on PLAN_MESHES (tests/plan)

    python tests/eight_devices.py ROOT CACHE_DIR    # prints the results as one JSON line
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 8
MESH_KEYS = ("mesh.data", "mesh.fsdp", "mesh.tensor")

_SPARSE = {"sparsity.enabled": True, "sparsity.overall": 0.6, "sparsity.rigl.enabled": True,
           "sparsity.rigl.update_freq": 2, "sparsity.rigl.start": 2, "sparsity.rigl.drop_fraction": 0.3,
           "train.steps": 6, "train.checkpoint_every": 6}
_GMP = {"sparsity.enabled": True, "sparsity.gmp.enabled": True, "sparsity.gmp.target": 0.6,
        "sparsity.gmp.warmup_steps": 2, "sparsity.gmp.cooldown_steps": 2, "sparsity.gmp.prune_period": 2,
        "train.steps": 8}
# name -> tiny_config overrides (helpers.tiny_config), the mesh included. The dense run's one-device twin
# is the session's reference run; each other test trains its twin with `one_device_overrides(name)`.
MESH_RUNS = {
    "dense_2x2x2": {"mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2, "train.steps": 8},
    # RigL's selection works on each device's shards (only counts cross devices).
    "rigl_global_2x2x2": {**_SPARSE, "sparsity.rigl.mode": "global", "mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2},
    "rigl_per_tensor_fsdp8": {**_SPARSE, "sparsity.rigl.mode": "per_tensor", "mesh.data": 1, "mesh.fsdp": 8,
                              "mesh.tensor": 1},
    # The global magnitude prune on batch, fsdp and tensor sharding at once.
    "gmp_2x2x2": {**_GMP, "mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2},
}

# The model and recipes of the sharding costs (test_sharding_cost.py says why these).
SHARDING_MESHES = {"data": (8, 1, 1), "fsdp": (1, 8, 1), "tensor": (4, 1, 2)}
SHARDING_RECIPES = ("dense", "rigl80_kd")


# The planner's state against a live one (tests/plan/test_planner.py): sparse with RigL, on these meshes.
PLAN_MESHES = {"2x2x2": (2, 2, 2), "fsdp8": (1, 8, 1)}


def plan_config():
    """A tiny sparse RigL recipe with a fixed vocabulary (planned without data)."""
    from jax_bert.train.config import base_config

    c = base_config()
    c.model.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=32, vocab_size=600, scan_layers=True)
    c.train.update(steps=100, global_batch_size=8, seq_len=32)
    c.sparsity.update(enabled=True, level=0.8)
    c.sparsity.rigl.update(enabled=True, update_freq=10, start=10)
    return c


def live_state_bytes(state) -> list[dict]:
    """Per device, {kind: bytes} of the shards a live state holds there, from the allocated buffers."""
    import jax

    import sparsity
    from jax_bert.plan.state import KINDS, kind_of

    per_device: dict = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        kind = kind_of(sparsity.path_str(path), leaf)
        for shard in leaf.addressable_shards:
            data = shard.data
            if jax.dtypes.issubdtype(data.dtype, jax.dtypes.prng_key):
                data = jax.random.key_data(data)
            counts = per_device.setdefault(shard.device.id, dict.fromkeys(KINDS[:4], 0))
            counts[kind] += int(data.nbytes)
    return [per_device[d] for d in sorted(per_device)]


def plan_state() -> dict:
    """{mesh name: {"planned": bytes per kind, "live": [bytes per kind on each device]}}."""
    from jax_bert.plan import planner, recipe, state
    from jax_bert.train import sharding

    out = {}
    for name, sizes in PLAN_MESHES.items():
        mesh = sharding.mesh_of(sizes)
        program, _ = planner.build(recipe.recipe_of(plan_config()), mesh)
        out[name] = {"planned": state.state_bytes(program.abstract_state, program.shardings),
                     "live": live_state_bytes(program.init_state())}
    return out


def one_device_overrides(name: str) -> dict:
    """The overrides of MESH_RUNS[name] without its mesh: the same run on one device."""
    return {k: v for k, v in MESH_RUNS[name].items() if k not in MESH_KEYS}


def mesh_runs(root: str, cache_dir: str) -> dict:
    from helpers import tiny_config, with_overrides
    from jax_bert.train import loop

    workdirs = {}
    for name, overrides in MESH_RUNS.items():
        workdirs[name] = os.path.join(root, name)
        loop.run(with_overrides(tiny_config(cache_dir), overrides), workdirs[name])
    return workdirs


def sharding_costs() -> dict:
    """{recipe: {mesh name: step_cost row}}."""
    from benchmarks import sharding
    from jax_bert.model import BertConfig

    cfg = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=512, max_position_embeddings=32, scan_layers=True)
    return {recipe: {name: sharding.measure(cfg, recipe, sizes, per_device=4, length=32)
                     for name, sizes in SHARDING_MESHES.items()} for recipe in SHARDING_RECIPES}


def run_child(root: str, cache_dir: str, timeout: int = 900) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), root, cache_dir], env=env, capture_output=True,
                         text=True, timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.path.append(os.path.join(ROOT, "tests"))  # helpers (after the packages: tests/sparsity is not sparsity)
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(ROOT, ".jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    assert jax.device_count() == DEVICES, jax.device_count()
    result = {"mesh_runs": mesh_runs(sys.argv[1], sys.argv[2]), "sharding_costs": sharding_costs(),
              "plan_state": plan_state()}
    print(json.dumps(result))
