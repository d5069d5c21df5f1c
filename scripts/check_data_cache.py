"""Checks every tokenised-data cache of a directory in full against the checksums written with it.

    python scripts/check_data_cache.py [--cache_dir ~/.cache/jax_sparse_bert]

A run checks a cache when it opens it (whole up to 4 GiB, sampled chunks above: docs/benchmarks.md has
the cost); this reads every byte of every cache. One line per cache; a damaged one is moved aside
(NAME.damaged) and the next run builds it again. Exit status 1 when one was damaged.
"""
import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "jax_sparse_bert"),
                        help="The data cache directory (the pretraining config's data_cache_dir).")
    args = parser.parse_args(argv)
    from jax_bert import cli
    from jax_bert.data import blocks

    if not os.path.isdir(args.cache_dir):
        cli.fail(f"--cache_dir {args.cache_dir}: no such directory", cli.USAGE)
    results = cli.run(lambda: blocks.verify_caches(args.cache_dir))
    for path, problem in results:
        print(f"{path}: {problem or 'intact'}")
    if not results:
        print(f"{args.cache_dir} holds no data cache")
    return cli.FAILED if any(problem for _, problem in results) else 0


if __name__ == "__main__":
    sys.exit(main())
