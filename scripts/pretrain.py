"""Pretrain (sparse) BERT: python scripts/pretrain.py --config configs/tiny.py [--config.a.b=v] [--workdir DIR]

Given a work directory that holds a checkpoint, the run resumes from it. On several hosts run the same
command on each (see README: Multi-host). A bad command line is one line `error: ...` and exit status 2;
a run that stops on an expected error (bad data, a damaged checkpoint, a full disk, divergence, a lost
peer process) is one line `error: ...` and exit status 1.
"""
import logging
import os

from absl import app, flags

from jax_bert import cli
from jax_bert.train import config as pretrain_config

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (default: runs/<config name>).")


def parse(argv):
    return cli.parse_flags(argv, default_file=None, defaults=pretrain_config.base_config,
                           keys_file="jax_bert/train/config.py", validate=pretrain_config.validate)


def main(argv):
    del argv
    # Our progress at INFO; the libraries' (orbax logs every save) only when something is wrong.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("jax_bert").setLevel(logging.INFO)
    from jax_bert.train import loop

    config = flags.FLAGS.config
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename.split(":")[0]))[0])
    result = cli.run(lambda: loop.run(config, workdir))
    print({k: v for k, v in result.items() if k != "last_train"})


if __name__ == "__main__":
    app.run(main, flags_parser=parse)
