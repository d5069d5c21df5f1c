"""The LR range test of a pretraining config: suggests one-cycle's max_lr.

    python scripts/lr_range_test.py --config configs/X.py [--config.a.b=value ...] [--workdir DIR]
        [--min_lr 1e-5] [--max_lr 1e-2] [--steps 100] [--mode linear|exponential] [--eval_fraction 0.05]

Trains the config's own step for --steps steps while the lr ramps from --min_lr to --max_lr, evaluates on
a fixed 5% of the validation blocks after every step, writes lr_range.csv, lr_range.png and
lr_range.json to the work directory (default runs/lr_range/<config name>) and prints the suggested
max_lr with the rule that chose it. See jax_bert/train/lr_range.py.
"""
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (default: runs/lr_range/<config name>).")
_MIN_LR = flags.DEFINE_float("min_lr", 1e-5, "Learning rate of the first step.")
_MAX_LR = flags.DEFINE_float("max_lr", 1e-2, "Learning rate of the last step.")
_STEPS = flags.DEFINE_integer("steps", 100, "Training steps (one evaluation after each).")
_MODE = flags.DEFINE_enum("mode", "linear", ["linear", "exponential"], "How the lr rises.")
_EVAL_FRACTION = flags.DEFINE_float("eval_fraction", 0.05, "Fraction of the validation blocks evaluated.")
_WINDOW = flags.DEFINE_integer("smoothing_window", 9, "Steps of the centred moving average (odd).")


def _one_line(error: Exception) -> str:
    """The message of a command-line error on one line (config_flags wraps errors in others, quotes a
    missing key, and embeds the traceback of a failing get_config)."""
    while isinstance(error.__cause__, Exception):
        error = error.__cause__
    if error.args and isinstance(error.args[0], KeyError):  # config_flags: AttributeError(KeyError("'key'"))
        error = error.args[0]
    if isinstance(error, KeyError):
        key = str(error.args[0]).strip("'\"")
        return f"unknown config key {key!r} in a --config.* override; every key is in jax_bert/train/config.py."
    text = str(error)
    if "Traceback (most recent call last)" in text:  # the config file's own error is the last line
        text = [line for line in text.splitlines() if line.strip()][-1]
    return " ".join(text.split())


def parse(argv):
    """Defines --config (it reads its --config.KEY=VALUE overrides from argv) and parses the flags; a bad
    command line or config file is one line `error: ...` and exit status 2."""
    try:
        config = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                                 lock_config=True, sys_argv=argv)
        rest = flags.FLAGS(argv)
        if not flags.FLAGS["config"].present:
            raise ValueError("--config is required, e.g. --config configs/tiny.py")
        path = flags.FLAGS["config"].config_filename
        if not os.path.isfile(path.split(":", 1)[0]):
            raise ValueError(f"--config {path}: no such file; give a Python file with get_config().")
        from jax_bert.train.config import validate

        validate(config.value)  # loads the file and applies the overrides: their errors surface here
    except Exception as e:  # absl, ml_collections and the config file raise many kinds; all mean bad input
        print("error: " + _one_line(e), file=sys.stderr)
        sys.exit(2)
    if len(rest) > 1:
        print(f"error: unexpected arguments {rest[1:]}", file=sys.stderr)
        sys.exit(2)
    return rest


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    from jax_bert.train import lr_range

    name = os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename.split(":")[0]))[0]
    workdir = _WORKDIR.value or os.path.join("runs", "lr_range", name)
    try:
        result = lr_range.run(flags.FLAGS.config, workdir, min_lr=_MIN_LR.value, max_lr=_MAX_LR.value,
                              steps=_STEPS.value, mode=_MODE.value, eval_fraction=_EVAL_FRACTION.value,
                              window=_WINDOW.value)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"suggested max_lr: {result['suggested_max_lr']:.4g} (step {result['at_step']} of {result['steps_run']})")
    print(f"rule: {result['rule']}")
    for note in result["notes"]:
        print(f"note: {note}")
    print("wrote " + ", ".join(result["files"].values()))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=parse)
