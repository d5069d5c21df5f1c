"""One command for the seed's whole study: four pretraining runs, GLUE for each, one report.

    python scripts/reproduce.py --scale tiny|small|base [--out DIR] [--glue_data_dir DIR] [--seeds N]

The scale presets are configs/study_{tiny,small,base}.py. Rerunning the same command skips the
finished stages and resumes the interrupted one. See glue/study.py.
"""
import argparse
import logging
import os
import sys

SCALES = ("tiny", "small", "base")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", required=True, choices=SCALES)
    parser.add_argument("--out", default=None, help="Study directory (default runs/study_SCALE).")
    parser.add_argument("--glue_data_dir", default=None,
                        help="Local GLUE data (hub parquet or GLUE TSV layout); tiny/small default: synthetic tasks.")
    parser.add_argument("--seeds", type=int, default=None, help="Runs per GLUE task (default: the protocol's).")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    from glue import study
    from jax_bert.train.config import load_config_file

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    preset = load_config_file(os.path.join(root, "configs", f"study_{args.scale}.py")).get_config()
    try:
        text = study.run_study(preset, args.out or os.path.join("runs", f"study_{args.scale}"),
                               glue_data_dir_arg=args.glue_data_dir, seeds=args.seeds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
