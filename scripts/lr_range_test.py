"""The LR range test of a pretraining config: suggests one-cycle's max_lr.

    python scripts/lr_range_test.py --config configs/X.py [--config.a.b=value ...] [--workdir DIR]
        [--min_lr 1e-5] [--max_lr 1e-2] [--steps 100] [--mode linear|exponential] [--eval_fraction 0.05]

Trains the config's own step for --steps steps while the lr ramps from --min_lr to --max_lr, evaluates on
a fixed 5% of the validation blocks after every step, writes lr_range.csv, lr_range.png and
lr_range.json to the work directory (default runs/lr_range/<config name>) and prints the suggested
max_lr with the rule that chose it. See jax_bert/train/lr_range.py. A bad command line is one line
`error: ...` and exit status 2; a test that stops on an expected error (bad settings, data, teachers)
is one line and exit status 1.
"""
import logging
import os

from absl import app, flags

from jax_bert import cli
from jax_bert.train import config as pretrain_config

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (default: runs/lr_range/<config name>).")
_MIN_LR = flags.DEFINE_float("min_lr", 1e-5, "Learning rate of the first step.")
_MAX_LR = flags.DEFINE_float("max_lr", 1e-2, "Learning rate of the last step.")
_STEPS = flags.DEFINE_integer("steps", 100, "Training steps (one evaluation after each).")
_MODE = flags.DEFINE_enum("mode", "linear", ["linear", "exponential"], "How the lr rises.")
_EVAL_FRACTION = flags.DEFINE_float("eval_fraction", 0.05, "Fraction of the validation blocks evaluated.")
_WINDOW = flags.DEFINE_integer("smoothing_window", 9, "Steps of the centred moving average (odd).")


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    from jax_bert.train import lr_range

    name = os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename.split(":")[0]))[0]
    workdir = _WORKDIR.value or os.path.join("runs", "lr_range", name)
    result = cli.run(lambda: lr_range.run(flags.FLAGS.config, workdir, min_lr=_MIN_LR.value, max_lr=_MAX_LR.value,
                                          steps=_STEPS.value, mode=_MODE.value, eval_fraction=_EVAL_FRACTION.value,
                                          window=_WINDOW.value))
    print(f"suggested max_lr: {result['suggested_max_lr']:.4g} (step {result['at_step']} of {result['steps_run']})")
    print(f"rule: {result['rule']}")
    for note in result["notes"]:
        print(f"note: {note}")
    print("wrote " + ", ".join(result["files"].values()))


if __name__ == "__main__":
    app.run(main, flags_parser=pretrain_config.parse_command_line)
