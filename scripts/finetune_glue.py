"""Fine-tune a BERT checkpoint on GLUE with every seed of a task in one compiled training step.

    python scripts/finetune_glue.py --checkpoint WORKDIR_OR_HF_DIR --seeds 10 [--tasks cola,rte] [--data_dir DIR]
        [--out DIR] [--config FILE] [--config.KEY=VALUE ...] [--test_predictions]
    python scripts/finetune_glue.py --report_only --out DIR [--out DIR2 ...] [--csv PATH]

The settings are glue/config.py (the default --config; `--config.tasks.cola.epochs=3` changes one).
See glue/run.py for the outputs and an offline example (synthetic data, tiny checkpoint).
"""
import logging

from absl import app, flags

import glue.config
from glue import run
from jax_bert import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Hugging Face BERT directory or pretraining work directory.")
_SEEDS = flags.DEFINE_integer("seeds", None, "Runs (seeds 0..N-1) per task; overrides the per-task runs.")
_TASKS = flags.DEFINE_string("tasks", "all", "Comma-separated tasks (cola,sst2,mrpc,stsb,qqp,mnli,qnli,rte,wnli).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Local GLUE data (hub parquet or GLUE TSV layout); "
                                "default: the Hugging Face hub.")
_OUT = flags.DEFINE_multi_string("out", None, "Output directory (default runs/glue/<model>); repeatable with "
                                 "--report_only.")
_MODEL_NAME = flags.DEFINE_string("model_name", None, "Row name in the tables (default: the checkpoint's name).")
_TEST_PREDICTIONS = flags.DEFINE_boolean("test_predictions", False, "Also predict the test splits and write "
                                         "GLUE submission TSVs.")
_REPORT_ONLY = flags.DEFINE_boolean("report_only", False, "Only rebuild the tables from the --out directories.")
_CSV = flags.DEFINE_string("csv", None, "With --report_only: also write the table as CSV here.")
_NO_PROGRESS = flags.DEFINE_boolean("no_progress", False, "No progress bars.")


def parse(argv):
    """--config (glue/config.py by default) and the flags; a bad command line is one line `error: ...`
    and exit status 2."""
    return cli.parse_flags(argv, default_file=glue.config.__file__, defaults=glue.config.get_config,
                           keys_file="glue/config.py", validate=glue.config.validate)


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    return run.main(flags.FLAGS.config, checkpoint=_CHECKPOINT.value, seeds=_SEEDS.value, tasks=_TASKS.value,
                    data_dir=_DATA_DIR.value, out=_OUT.value, model_name=_MODEL_NAME.value,
                    test_predictions=_TEST_PREDICTIONS.value, report_only=_REPORT_ONLY.value, csv=_CSV.value,
                    progress=not _NO_PROGRESS.value)


if __name__ == "__main__":
    app.run(main, flags_parser=parse)
