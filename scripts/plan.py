"""What a pretraining recipe needs on a cluster, before the cluster is rented:

    python scripts/plan.py --config configs/X.py --devices N [--mesh D,F,T] [--accelerator NAME]
        [--search [--workers 2]] [--json PATH] [--mfu 0.4] [--reserve 0.1] [--config.a.b=value ...]

compiles the config's real train step for N devices (fake CPU devices in a child process: nothing runs,
nothing is allocated, no data or network) and prints per device the state's bytes, the compiled
memory, FLOPs, collectives, a projected step and run time on the accelerator (v100-32gb, a100-40gb,
a100-80gb, h100-80gb, h200) and whether it fits; when it does not, the smallest change that does.
--search tries every mesh of N devices (with accumulation and remat as needed) and ranks those that fit
by projected time (--workers: that many meshes at once, in worker processes). A bad command line is
one line `error: ...` and exit status 2.
"""
import os
import subprocess
import sys

_CHILD = "JAX_BERT_PLAN_DEVICES"


def _devices(argv) -> str:
    """--devices from the command line when it is a positive integer, else "1" (the child then reports it)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--devices=") else (
            argv[i + 1] if arg == "--devices" and i + 1 < len(argv) else None)
        if value is not None:
            return value if value.isdigit() and int(value) >= 1 else "1"
    return "1"


if __name__ == "__main__" and _CHILD not in os.environ:
    # JAX takes its device count when it starts: the plan runs in a child started with N CPU devices.
    n = _devices(sys.argv[1:])
    env = dict(os.environ, JAX_PLATFORMS="cpu", **{_CHILD: n},
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip())
    sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env=env).returncode)

import logging  # noqa: E402 - the child only

from absl import app, flags  # noqa: E402

from jax_bert import cli  # noqa: E402
from jax_bert.train import config as pretrain_config  # noqa: E402

_DEVICES = flags.DEFINE_integer("devices", None, "Accelerators of the cluster (the mesh's devices).")
_MESH = flags.DEFINE_string("mesh", None, "data,fsdp,tensor sizes (default: the config's mesh on --devices).")
_ACCELERATOR = flags.DEFINE_string("accelerator", "a100-40gb", "v100-32gb, a100-40gb, a100-80gb, h100-80gb or h200.")
_SEARCH = flags.DEFINE_boolean("search", False, "Try every mesh of --devices and rank the plans that fit.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures (bytes as integers) to this JSON file.")
_MFU = flags.DEFINE_float("mfu", 0.4, "The model FLOPs utilisation the projected times assume.")
_RESERVE = flags.DEFINE_float("reserve", 0.1, "Fraction of the accelerator's memory not planned for.")
_WORKERS = flags.DEFINE_integer("workers", 1, "--search: meshes planned at once, each in its own process "
                                "(the rows do not depend on it).")


def parse(argv, flag_values: flags.FlagValues = flags.FLAGS):
    """The command line (`flag_values`: where this script's flags were defined; the tests' own)."""
    rest = cli.parse_flags(argv, default_file=None, defaults=pretrain_config.base_config,
                           keys_file="jax_bert/train/config.py", validate=pretrain_config.validate,
                           flag_values=flag_values)
    from jax_bert.plan import command

    try:
        command.check_arguments(devices=_DEVICES.value, mesh=_MESH.value, accelerator=_ACCELERATOR.value,
                                mfu=_MFU.value, reserve=_RESERVE.value, search=_SEARCH.value,
                                workers=_WORKERS.value)
    except ValueError as e:
        cli.fail(str(e), cli.USAGE)
    return rest


def main(argv, flag_values: flags.FlagValues = flags.FLAGS):
    del argv
    logging.getLogger().setLevel(logging.WARNING)
    from jax_bert.plan import command

    try:
        command.run(flag_values.config, config_file=flag_values["config"].config_filename, devices=_DEVICES.value,
                    mesh=_MESH.value, accelerator=_ACCELERATOR.value, mfu=_MFU.value, reserve=_RESERVE.value,
                    search=_SEARCH.value, workers=_WORKERS.value, json_path=_JSON.value,
                    command=" ".join(["scripts/plan.py", *sys.argv[1:]]))
    except ValueError as e:  # a mesh, batch or teacher the recipe cannot use: input, as the flags are
        if os.environ.get("JAX_BERT_TRACEBACK"):
            raise
        cli.fail(cli.describe(e), cli.USAGE)


if __name__ == "__main__":
    app.run(main, flags_parser=parse)
