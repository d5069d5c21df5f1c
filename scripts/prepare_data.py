"""Build a pretraining config's tokenizer and block caches once, before the run (on many hosts: once for
every host that shares data_cache_dir):

    python scripts/prepare_data.py --config configs/X.py [--config.a.b=value ...] [--workdir DIR]

The flags are scripts/pretrain.py's; the run with the same flags then starts without tokenising. A bad
command line is one line `error: ...` and exit status 2; missing or bad data one line and exit status 1.
"""
import logging
import os

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from absl import app, flags  # noqa: E402

from jax_bert import cli  # noqa: E402
from jax_bert.train import config as pretrain_config  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of the run (default: runs/<config name>): "
                                                "a trained vocabulary is kept in its tokenizer/.")


def main(argv):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    from jax_bert.train import data_caches

    config = flags.FLAGS.config
    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename.split(":")[0]))[0])
    print(cli.run(lambda: data_caches.prepare_caches(config, workdir)), flush=True)


if __name__ == "__main__":
    app.run(main, flags_parser=pretrain_config.parse_command_line)
