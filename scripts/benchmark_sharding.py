"""What each mesh axis costs per device (see jax_bert/bench/sharding_cost.py): the train step compiled
for several meshes of fake CPU devices, XLA's memory and FLOPs against data parallelism.

    python scripts/benchmark_sharding.py --preset base --length 512 --devices 8 --per_device 8 \\
        --meshes 8,1,1 1,8,1 4,1,2 --recipes dense,rigl80_kd
"""
from jax_bert.bench import sharding_cost

if __name__ == "__main__":
    sharding_cost.main()
