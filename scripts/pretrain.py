"""Pretrain (sparse) BERT: python scripts/pretrain.py --config configs/tiny.py [--config.a.b=v] [--workdir DIR]

Given a work directory that holds a checkpoint, the run resumes from it. On several hosts run the same
command on each (see README: Multi-host).
"""
import logging
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (default: runs/<config name>).")


def main(argv):
    del argv
    # Our progress at INFO; the libraries' (orbax logs every save) only when something is wrong.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    from jax_bert.train import loop

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename))[0])
    result = loop.run(config, workdir)
    print({k: v for k, v in result.items() if k != "last_train"})


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
