"""Fine-tune a BERT checkpoint on SQuAD v1.1 or v2.0 with every seed in one compiled training step.

    python scripts/squad.py --checkpoint WORKDIR_OR_HF_DIR --seeds 3 [--version 1.1|2.0] [--data_dir DIR]
        [--out DIR] [--config FILE] [--config.KEY=VALUE ...]

The settings are squad/config.py (the original's recipe by default); see squad/run.py for the outputs and
README.md for an offline example (synthetic data, tiny checkpoint).
"""
import os
import signal
import sys


def _stopped_while_starting(number, frame):
    print(f"error: stopped by {signal.Signals(number).name} while starting; nothing was written", file=sys.stderr)
    os._exit(128 + number)


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _stopped_while_starting)

from jax_bert.cli import script_named_like_a_package  # noqa: E402

# This file is named like the `squad` package: imported as `squad`, it hands over to the package (docs/design.md).
script_named_like_a_package(__name__, __file__)

if __name__ == "__main__":
    from squad import command

    command.run_command()
