"""Fine-tune a BERT checkpoint on GLUE with every seed of a task in one compiled training step.

    python scripts/glue.py --checkpoint WORKDIR_OR_HF_DIR --seeds 10 [--tasks cola,rte] [--data_dir DIR]
        [--out DIR] [--config FILE] [--config.KEY=VALUE ...] [--test_predictions] [--hparams FILE_OR_DIR]
    python scripts/glue.py --checkpoint DIR --search glue/search_config.py [--search.KEY=VALUE ...] ...
    python scripts/glue.py --report_only --out DIR [--out DIR2 ...] [--csv PATH]

The settings are glue/config.py (the default --config; `--config.tasks.cola.epochs=3` changes one).
See glue/run.py for the outputs and an offline example (synthetic data, tiny checkpoint). --search
chooses each task's learning rate, warm-up ratio and epochs first (glue/search.py, keys in
glue/search_config.py); --hparams runs with the values a search chose (its OUT/hparams directory or a file).
"""
import os
import signal
import sys


def _stopped_while_starting(number, frame):
    # Until glue.command installs its own stop (jax_bert.cli.exit_on_signals): one line, not a traceback
    # from the middle of an import.
    print(f"error: stopped by {signal.Signals(number).name} while starting; nothing was written", file=sys.stderr)
    os._exit(128 + number)


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _stopped_while_starting)

from jax_bert.cli import script_named_like_a_package  # noqa: E402

# This file is named like the `glue` package: imported as `glue`, it hands over to the package (docs/design.md).
script_named_like_a_package(__name__, __file__)

if __name__ == "__main__":
    from glue import command

    command.run_command()
