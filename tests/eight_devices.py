"""Work that needs JAX started with 8 CPU devices, done in one child process per job.

    python tests/eight_devices.py JOB      # prints the job's result as one JSON line

`run_child(JOB)` runs it from a test and returns the result. Jobs:
    sharding_costs   the train step compiled for data 8, fsdp 8 and data 4 x tensor 2 (test_sharding_cost.py)
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 8

# The model and recipes of the sharding costs (test_sharding_cost.py says why these).
SHARDING_MESHES = {"data": (8, 1, 1), "fsdp": (1, 8, 1), "tensor": (4, 1, 2)}
SHARDING_RECIPES = ("dense", "rigl80_kd")


def sharding_costs() -> dict:
    """{recipe: {mesh name: step_cost row}}."""
    from benchmarks import sharding
    from jax_bert.model import BertConfig

    cfg = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=512, max_position_embeddings=32, scan_layers=True)
    return {recipe: {name: sharding.measure(cfg, recipe, sizes, per_device=4, length=32)
                     for name, sizes in SHARDING_MESHES.items()} for recipe in SHARDING_RECIPES}


JOBS = {"sharding_costs": sharding_costs}


def run_child(job: str, timeout: int = 600):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), job], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(ROOT, ".jax_cache"))
    assert jax.device_count() == DEVICES, jax.device_count()
    print(json.dumps(JOBS[sys.argv[1]]()))
