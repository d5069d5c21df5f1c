"""One command for the whole study: the preset's pretraining rows over several seeds, GLUE, one report.

    python scripts/reproduce.py --scale tiny|small|base [--out DIR] [--glue_data_dir DIR] [--seeds N]
        [--pretrain_seeds N] [--glue_keep_masks preset|kept|regrow|both] [--ablation [--rows KEY,...]]
        [--horizon [--horizons STEPS,...]] [--squad DIR,...]

The scale presets are configs/study_{tiny,small,base}.py. --ablation runs the preset's RigL ablation rows
instead (into the same study directory, sharing its teacher) and writes ablation.md; --rows keeps only the
named ablation rows (and the rows they are compared with). --horizon runs the preset's horizon pairs (static +
KD against RigL + KD at several lengths; --horizons runs only the named lengths, which may be new ones where
the preset builds pairs at any length, as tiny does) and writes horizon.md and horizon.png. --glue_keep_masks
chooses whether a sparse model's zeros are kept while fine-tuning (kept: OUT/glue), free to regrow as in the
original's table (regrow: OUT/glue_regrow), or both, each labelled in the GLUE table (default: the preset's).
Rerunning the same command skips what is finished and resumes what was interrupted. --squad adds SQuAD v1.1 EM
/ F1 columns: the results of scripts/squad.py runs (their --out folders or results.json files,
comma-separated), a run of a row's seed-0 model named by the row's label. Compiled programs are cached in
DIR/jax_cache (seeds and rows of one shape compile once). See study/pipeline.py. A bad command line is one
line `error: ...` and exit status 2; a run that stops on an expected error is one line and exit status 1.
"""
import argparse
import inspect
import logging
import os
import sys

SCALES = ("tiny", "small", "base")
GLUE_MASKS = {"preset": None, "kept": (True,), "regrow": (False,), "both": (False, True)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", required=True, choices=SCALES)
    parser.add_argument("--out", default=None, help="Study directory (default runs/study_SCALE).")
    parser.add_argument("--glue_data_dir", default=None,
                        help="Local GLUE data (hub parquet or GLUE TSV layout); tiny/small default: synthetic tasks.")
    parser.add_argument("--seeds", type=int, default=None, help="Runs per GLUE task (default: the protocol's).")
    parser.add_argument("--pretrain_seeds", type=int, default=None,
                        help="Pretraining seeds per row (default: the preset's; the teacher keeps one).")
    parser.add_argument("--glue_keep_masks", default="preset", choices=tuple(GLUE_MASKS),
                        help="GLUE with sparse masks kept, free to regrow, or both (default: the preset's).")
    parser.add_argument("--ablation", action="store_true", help="Run the preset's RigL ablation (ablation.md).")
    parser.add_argument("--horizon", action="store_true",
                        help="Run the preset's horizon pairs (horizon.md, horizon.png).")
    parser.add_argument("--horizons", default=None,
                        help="With --horizon: only these lengths (comma-separated steps, e.g. 150,1000).")
    parser.add_argument("--rows", default=None,
                        help="With --ablation: only these ablation rows (comma-separated keys) and the reference rows.")
    parser.add_argument("--squad", default=None,
                        help="SQuAD v1.1 results to show in the report (EM / F1): comma-separated --out folders of "
                             "scripts/squad.py runs or their results.json files.")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    import jax

    from jax_bert import cli
    from jax_bert.train.config import load_config_file
    from study import pipeline as study

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    preset_file = load_config_file(os.path.join(root, "configs", f"study_{args.scale}.py"))
    preset = preset_file.get_config()
    out = args.out or os.path.join("runs", f"study_{args.scale}")
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.path.abspath(os.path.join(out, "jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    try:  # a bad command line or preset: one line and exit status 2, before any work
        if args.ablation and (args.glue_data_dir or args.seeds or args.glue_keep_masks != "preset"):
            raise ValueError("--ablation pretrains only; drop --glue_data_dir, --seeds and --glue_keep_masks.")
        if args.rows is not None and not args.ablation:
            raise ValueError("--rows selects ablation rows; add --ablation.")
        if args.horizon and (args.ablation or args.glue_data_dir or args.seeds or args.glue_keep_masks != "preset"):
            raise ValueError("--horizon pretrains its pairs only; drop --ablation, --glue_data_dir, --seeds and "
                             "--glue_keep_masks.")
        if args.horizons is not None and not args.horizon:
            raise ValueError("--horizons selects horizon lengths; add --horizon.")
        rows = None if args.rows is None else [r for r in args.rows.split(",") if r]
        horizons = None
        if args.horizons is not None:
            try:
                horizons = [int(h) for h in args.horizons.split(",") if h]
            except ValueError:
                raise ValueError(f"--horizons {args.horizons}: give whole numbers of steps, e.g. 150,1000.") from None
            if not horizons or min(horizons) < 1:
                raise ValueError(f"--horizons {args.horizons}: give run lengths of at least 1 step, e.g. 150,1000.")
            if "horizons" in inspect.signature(preset_file.get_config).parameters:  # builds pairs at any length
                known = {int(h) for h, _, _ in preset.horizon_pairs}
                preset = preset_file.get_config(horizons=tuple(sorted(known | set(horizons))))
            study.with_horizons(preset, horizons)
        squad_results = None if args.squad is None else [p for p in args.squad.split(",") if p]
        if squad_results is not None:
            if args.ablation or args.horizon:
                raise ValueError("--squad adds columns to the study's report; drop --ablation and --horizon.")
            from squad import report as squad_report

            if not squad_results:
                raise ValueError("--squad: give the --out folders of scripts/squad.py runs (or their results.json).")
            for path in squad_results:  # each file readable now, not after hours of pretraining
                squad_report.load_v11(path)
        glue_masks = GLUE_MASKS[args.glue_keep_masks]
        study.check(study.with_glue_masks(study.with_ablation_rows(study.with_seeds(preset, args.pretrain_seeds), rows),
                                          glue_masks), args.seeds)
    except ValueError as e:
        cli.fail(str(e), cli.USAGE)
    # an expected error while running (bad data, a damaged checkpoint, a full disk): one line, exit status 1
    if args.horizon:
        text = cli.run(lambda: study.run_horizon(preset, out, pretrain_seeds=args.pretrain_seeds, horizons=horizons))
    elif args.ablation:
        text = cli.run(lambda: study.run_ablation(preset, out, pretrain_seeds=args.pretrain_seeds, rows=rows))
    else:
        text = cli.run(lambda: study.run_study(preset, out, glue_data_dir_arg=args.glue_data_dir, seeds=args.seeds,
                                               pretrain_seeds=args.pretrain_seeds, glue_keep_masks=glue_masks,
                                               squad_results=squad_results))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
