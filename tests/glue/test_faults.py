"""Faults a GLUE user meets, on the shared offline example (conftest.glue_example): a results directory
reused with another checkpoint, a run killed or interrupted and rerun, bad labels and bytes in the data,
a pretraining work directory that has not exported its model yet."""
import json
import shutil

from glue import config as glue_config
from glue import run

QUICK = {"learning_rate": 3e-3, "batch_size": 16, "max_length": 32, "eval_batch_size": 32,
         "tasks": {"sst2": {"epochs": 1}, "mrpc": {"epochs": 1}, "cola": {"epochs": 1}}}


def quick_config(**changes):
    return glue_config.with_overrides(changes, glue_config.with_overrides(QUICK))


def other_model(glue_example, folder):
    """A copy of the example's checkpoint with one weight changed in its lowest mantissa byte: another model
    that loads like the first."""
    shutil.copytree(glue_example["ckpt"], folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 1
    weights.write_bytes(bytes(data))
    return folder


def glue(example, out, checkpoint=None, **kwargs):
    kwargs = {"tasks": "sst2", "seeds": 1, "progress": False} | kwargs
    return run.main(kwargs.pop("config", quick_config()), checkpoint=str(checkpoint or example["ckpt"]),
                    data_dir=str(example["data_dir"]), out=str(out), **kwargs)


def test_out_of_another_checkpoint_is_refused_and_fresh_moves_it_aside(glue_example, tmp_path, capsys):
    out = tmp_path / "out"
    assert glue(glue_example, out, tasks="sst2,mrpc") == 0
    before = (out / "results.json").read_bytes()
    b = other_model(glue_example, tmp_path / "model_b")
    capsys.readouterr()

    assert glue(glue_example, out, checkpoint=b) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert str(glue_example["ckpt"]) in err and str(b) in err and "--fresh" in err
    assert (out / "results.json").read_bytes() == before  # nothing of model B mixed in

    assert glue(glue_example, out, checkpoint=b, fresh=True) == 0
    assert f"moved to {tmp_path / 'out.replaced-1'}" in capsys.readouterr().err
    assert (tmp_path / "out.replaced-1" / "results.json").read_bytes() == before
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"sst2"}  # model A's mrpc is not averaged into model B's row
    assert json.loads((out / "checkpoint.json").read_text())["path"] == str(b)

    # The same model (by its bytes) from another path goes on into the same directory.
    copy = shutil.copytree(b, tmp_path / "copy_of_b")
    assert glue(glue_example, out, checkpoint=copy) == 0
