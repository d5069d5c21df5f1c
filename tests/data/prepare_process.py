"""One process of a two-process run's data set-up on localhost (tests/data/test_prepare_processes.py):
jax.distributed as the pretraining run initialises it, then the run's `prepare_data`, nothing else.

    python tests/data/prepare_process.py PORT PROCESS_ID WORKDIR OVERRIDES_JSON

Prints one JSON line: the sha256 of each block cache it opened and whether it read any document; an
expected error is scripts/pretrain.py's one `error: ...` line and exit status 1.
"""
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from helpers import with_overrides  # noqa: E402
from jax_bert import cli  # noqa: E402


def tiny_config():
    """configs/tiny.py's config, as scripts/pretrain.py --config configs/tiny.py reads it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_config", os.path.join(ROOT, "configs", "tiny.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main(port: str, process_id: str, workdir: str, overrides: str) -> None:
    from jax_bert.data import blocks
    from jax_bert.data import prepare as data_prepare
    from jax_bert.train import loop, sharding

    config = with_overrides(tiny_config(), json.loads(overrides))
    config.distributed.update(initialize="yes", coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                              process_id=int(process_id), heartbeat_timeout_seconds=10)
    reads = []
    real = blocks.load_documents

    def recorded(*args, **kwargs):
        reads.append(1)
        return real(*args, **kwargs)

    blocks.load_documents = data_prepare.load_documents = recorded
    sharding.maybe_initialize_distributed(config.distributed)
    _, train, val = cli.run(lambda: loop.prepare_data(config, workdir))
    digest = {name: hashlib.sha256(open(a.filename, "rb").read()).hexdigest() for name, a in
              (("train", train), ("validation", val))}
    print(json.dumps({**digest, "read_documents": bool(reads)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
