"""Pretrain (sparse) BERT: python scripts/pretrain.py --config configs/tiny.py [--config.a.b=v] [--workdir DIR]

Given a work directory that holds a checkpoint, the run resumes from it. On several hosts run the same
command on each (see README: Multi-host). A bad command line is one line `error: ...` and exit status 2;
a run that stops on an expected error (bad data, a damaged checkpoint, a full disk, divergence, a lost
peer process) is one line `error: ...` and exit status 1. It ends with a short summary of what it wrote
and where (process 0 only); the final evaluation is in WORKDIR/eval_results.json.
"""
import logging
import os

# transformers' advice that PyTorch is not installed (it is not needed here) stays off the terminal.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from jax_bert import cli, compile_cache  # noqa: E402
from jax_bert.train import config as pretrain_config  # noqa: E402

flags.adopt_module_key_flags(compile_cache)  # --compile_cache, listed by --help
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (default: runs/<config name>).")


class _PlainLines(logging.Formatter):
    """Our log lines as they are (absl prefixes each with level, time, thread and file); warnings say so."""

    def format(self, record):
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def main(argv):
    del argv
    # Our progress at INFO; the libraries' (orbax logs every save) only when something is wrong.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    absl_logging.get_absl_handler().setFormatter(_PlainLines("%(message)s"))
    import jax

    from jax_bert.train import loop, summary

    cli.run(lambda: compile_cache.enable(compile_cache.FLAG.value))  # a second run starts warm

    config = flags.FLAGS.config
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename.split(":")[0]))[0])
    result = cli.run(lambda: loop.run(config, workdir))
    if jax.process_index() == 0:
        print(summary.run_summary(result, workdir, config.train.steps), flush=True)


if __name__ == "__main__":
    app.run(main, flags_parser=pretrain_config.parse_command_line)
