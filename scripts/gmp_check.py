"""The schedule check of a gradual-magnitude-pruning run: the cubic schedule's kept count at every prune
step beside the count the run logged.

    python scripts/gmp_check.py --workdir runs/tiny_gmp

Reads the work directory only (config.json, bert_config.json, metrics.jsonl); log every prune step
(train.log_every dividing the prune period and warmup_steps) to see them all. Exit status 1 when a
logged count differs from the schedule or the directory is not a GMP run. See jax_bert/train/gmp_check.py.
"""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="The work directory of a GMP pretraining run.")
    args = parser.parse_args(argv)
    from jax_bert import cli
    from jax_bert.train import gmp_check

    rows = cli.run(lambda: gmp_check.schedule_check(args.workdir))
    print(gmp_check.format_check(rows))
    return cli.FAILED if any(r["kept_logged"] not in (None, r["kept_target"]) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
