"""PNG curves of a pretraining run, no service needed: python scripts/plot.py WORKDIR [--out DIR]

Writes loss.png (train and eval loss), accuracy.png, learning_rate.png, grad_norm.png and
throughput.png from WORKDIR/metrics.jsonl into WORKDIR/plots (or --out); works while the run is going.
For tensorboard: pip install -e ".[tensorboard]" && tensorboard --logdir WORKDIR/tensorboard
"""
import argparse

from jax_bert import cli
from jax_bert.train.curves import plot_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", help="a pretraining work directory (it holds metrics.jsonl)")
    parser.add_argument("--out", default=None, help="where the PNGs go (default: WORKDIR/plots)")
    args = parser.parse_args()
    for path in cli.run(lambda: plot_curves(args.workdir, args.out)):
        print(path)


if __name__ == "__main__":
    main()
