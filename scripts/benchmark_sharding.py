"""What each mesh axis costs per device (see benchmarks/sharding.py): the train step compiled
for several meshes of fake CPU devices, XLA's memory and FLOPs against data parallelism.

    python scripts/benchmark_sharding.py --preset base --length 512 --devices 8 --per_device 8 \\
        --meshes 8,1,1 1,8,1 4,1,2 --recipes dense,rigl80_kd
"""
from benchmarks import sharding

if __name__ == "__main__":
    sharding.main()
