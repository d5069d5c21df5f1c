"""The SQuAD command line (scripts/squad.py): its flags and the call of squad.run.main; --search FILE and its
--search.KEY=VALUE overrides as GLUE's (jax_bert/finetune/search_config.py).

A bad command line (an unknown flag or config key, a bad value) is one line `error: ...` and exit
status 2, before any work (jax_bert.cli); an expected failure while running (missing data, a bad
checkpoint) is one line and exit status 1.
"""
import logging
import os

from absl import app, flags
from absl import logging as absl_logging

import squad.config
from jax_bert import cli
from jax_bert.finetune import search_config
from squad import run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Hugging Face BERT directory or pretraining work directory.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Runs (seeds 0..N-1), all in one compiled step.")
_VERSION = flags.DEFINE_enum("version", "1.1", ["1.1", "2.0"], "SQuAD version.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Local SQuAD files in the official format (train-vX.json, "
                                "dev-vX.json); default: the Hugging Face hub.")
_OUT = flags.DEFINE_string("out", None, "Output directory (default runs/squad/<model>-v<version>).")
_NO_PROGRESS = flags.DEFINE_boolean("no_progress", False, "No progress bar.")
_HPARAMS = flags.DEFINE_string("hparams", None, "A search's chosen values: OUT/hparams of a --search run or its "
                               "TASK.json (squad.json for v1.1, squad_v2.json for v2.0); they replace the config's.")
_FRESH = flags.DEFINE_boolean("fresh", False, "Start --out afresh: results already there (of this or another "
                              "checkpoint) are moved aside to OUT.replaced-N, not deleted.")


def parse(argv, flag_values: flags.FlagValues = flags.FLAGS):
    search_config.define_flag(argv, flag_values)  # --search FILE, as GLUE's
    rest = cli.parse_flags(argv, default_file=squad.config.__file__, defaults=squad.config.get_config,
                           keys_file="squad/config.py", validate=squad.config.validate, flag_values=flag_values)
    if flag_values.checkpoint is None:
        cli.fail("--checkpoint is required: a Hugging Face BERT directory or a pretraining work directory.",
                 cli.USAGE)
    if flag_values.seeds < 1:
        cli.fail(f"--seeds must be >= 1, got {flag_values.seeds}.", cli.USAGE)
    search_config.check_flag(flag_values)
    if flag_values.search is not None and flag_values.hparams is not None:
        cli.fail("give --search (choose hyper-parameters) or --hparams (use chosen ones), not both.", cli.USAGE)
    return rest


def quiet_libraries() -> None:
    """The libraries' advice off the terminal and their warnings as `warning (LOGGER): ...`, as the GLUE
    command does (glue/command.py; importing it would define its flags here too)."""
    if os.environ.get("JAX_BERT_TRACEBACK"):
        return
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    absl_logging.get_absl_handler().setFormatter(
        type("_Formatter", (logging.Formatter,), {"format": lambda self, r: f"{r.levelname.lower()} ({r.name}): "
                                                                            f"{r.getMessage()}"})())


_STOP = cli.SignalStop()  # run_command's: what a Ctrl-C or SIGTERM says was kept


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    quiet_libraries()
    return cli.run(lambda: run.main(flags.FLAGS.config, checkpoint=_CHECKPOINT.value, seeds=_SEEDS.value,
                                    version=_VERSION.value, data_dir=_DATA_DIR.value, out=_OUT.value,
                                    progress=not _NO_PROGRESS.value, fresh=_FRESH.value,
                                    search=flags.FLAGS.search, hparams=_HPARAMS.value,
                                    on_out=lambda out: setattr(_STOP, "kept", lambda: run.kept_after_stop(out))))


def run_command() -> None:
    """scripts/squad.py: parse the command line and run."""
    global _STOP
    _STOP = cli.exit_on_signals()  # Ctrl-C / SIGTERM: one line naming what was kept, exit 130 / 143
    for flag in flags.FLAGS.get_key_flags_for_module(__name__):
        flags.FLAGS.register_key_flag_for_module(__import__("sys").argv[0], flag)
    app.run(main, flags_parser=parse)
