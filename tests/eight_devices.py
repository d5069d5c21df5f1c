"""Everything the tests need from JAX on 8 CPU devices, computed in one child process (JAX takes its
device count when it starts), shared by the tests through the session fixture `eight_devices`:

    mesh_runs       tiny pretraining runs on 8-device meshes (MESH_RUNS), each compared by its test with
                    the same run on one device (`one_device_overrides`): losses, masks and weights
    sharding_costs  the train step compiled for data 8, fsdp 8 and data 4 x tensor 2 (test_sharding_cost.py)

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
    result = {"mesh_runs": mesh_runs(sys.argv[1], sys.argv[2]), "sharding_costs": sharding_costs()}
    print(json.dumps(result))
