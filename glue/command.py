"""The GLUE command line (scripts/glue.py): its flags, their checks, and the call of glue.run.main.

A bad command line (an unknown flag or config key, a bad value, a missing --config or --search file) is
one line `error: ...` and exit status 2, before any work (jax_bert.cli).
"""
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

import glue.config
from glue import run
from jax_bert import cli, compile_cache
from jax_bert.finetune import search_config

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
_FRESH = flags.DEFINE_boolean("fresh", False, "Start --out afresh: results already there (of this or another "
                              "checkpoint) are moved aside to OUT.replaced-N, not deleted.")
_HPARAMS = flags.DEFINE_string("hparams", None, "A search's chosen values: OUT/hparams of a --search run or one "
                               "TASK.json in it; they replace the config's for the tasks they name.")


def parse(argv, flag_values: flags.FlagValues = flags.FLAGS):
    """--config (glue/config.py by default), --search and the flags; a bad command line is one line
    `error: ...` and exit status 2. `flag_values`: where --config and --search are defined and every flag
    is parsed (absl's global FLAGS; the tests parse into a FlagValues of their own, holding this module's
    flags)."""
    _define_search(argv, flag_values)
    rest = cli.parse_flags(argv, default_file=glue.config.__file__, defaults=glue.config.get_config,
                           keys_file="glue/config.py", validate=glue.config.validate, flag_values=flag_values)
    search_config.check_flag(flag_values)
    return rest


def _define_search(argv, flag_values: flags.FlagValues):
    """--search FILE and its --search.KEY=VALUE overrides, as every task family's command line defines them."""
    search_config.define_flag(argv, flag_values, default_file="glue/search_config.py")


_STOP = cli.SignalStop()  # run_command's: what a Ctrl-C or SIGTERM says was kept


def quiet_libraries() -> None:
    """Keeps the libraries' advice and absl's log prefixes off the terminal: the job prints its own lines.
    Warnings and errors of the libraries still show, as `warning (LOGGER): ...` (JAX_BERT_TRACEBACK=1: as they
    come)."""
    if os.environ.get("JAX_BERT_TRACEBACK"):
        return
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # "PyTorch was not found. Models won't..."
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    absl_logging.get_absl_handler().setFormatter(_LibraryFormatter())


class _LibraryFormatter(logging.Formatter):
    """`warning (jax._src.xla_bridge): ...` instead of absl's `W1203 17:05:11.123456 140234 xla_bridge.py:9] ...`;
    never `error: ...`, which is the job's own one line."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()} ({record.name}): {record.getMessage()}"


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    quiet_libraries()
    cli.run(lambda: compile_cache.enable(compile_cache.FLAG.value))
    return run.main(flags.FLAGS.config, checkpoint=_CHECKPOINT.value, seeds=_SEEDS.value, tasks=_TASKS.value,
                    data_dir=_DATA_DIR.value, out=_OUT.value, model_name=_MODEL_NAME.value,
                    test_predictions=_TEST_PREDICTIONS.value, report_only=_REPORT_ONLY.value, csv=_CSV.value,
                    progress=not _NO_PROGRESS.value, search=flags.FLAGS.search, hparams=_HPARAMS.value,
                    fresh=_FRESH.value, on_out=lambda out: setattr(_STOP, "kept", lambda: run.kept_after_stop(out)))


def run_command() -> None:
    """scripts/glue.py: parse the command line and run. The flags are this module's; --help lists the
    main program's, so they are registered for it too."""
    global _STOP
    _STOP = cli.exit_on_signals()  # Ctrl-C / SIGTERM: one line, exit 130 / 143, finished tasks kept
    key_flags = flags.FLAGS.get_key_flags_for_module(__name__) + [flags.FLAGS[compile_cache.FLAG.name]]
    for flag in key_flags:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=parse)
