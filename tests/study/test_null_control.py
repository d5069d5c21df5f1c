"""The study's RigL null control (configs/study_tiny.py `rigl_null`: a drop fraction so small that no weight
moves) equals static sparsity + KD (`static_kd`) bit for bit: the RigL machinery itself (its lax.cond, its
ranking on update steps) changes nothing, so a gap between RigL and static rows comes from moved weights."""
import json
import os

import numpy as np
import pytest

import sparsity
from helpers import ROOT, tiny_config
from jax_bert.train import checkpoint, sparse_config
from jax_bert.train import loop as pretrain
from jax_bert.train.config import load_sibling
from study import rows as study_rows

STEPS = 4


def _shrunk(preset, key, teacher, cache_dir):
    """The preset's row at the tests' tiny size (the tiny run's model, data, tokenizer), distilled from `teacher`."""
    config = study_rows.row_config(preset, key, 0, "unused")
    small = tiny_config(cache_dir, steps=STEPS, checkpoint_every=STEPS)
    config.model, config.data, config.tokenizer = small.model, small.data, small.tokenizer
    config.data_cache_dir = cache_dir
    config.train.update(steps=STEPS, global_batch_size=8, seq_len=32, eval_batch_size=16, log_every=1,
                        checkpoint_every=STEPS, eval_every=0, progress_bar=False)
    config.distill.teachers = ({"path": teacher, "weight": 1.0},)
    if config.sparsity.rigl.enabled:
        config.sparsity.rigl.num_updates = 2  # updates after steps 2 and 4 of the 4
    return config


def _final(workdir):
    directory = os.path.join(workdir, "checkpoints")
    params = checkpoint.restore_params_only(directory, STEPS)
    masks = checkpoint.restore_params_only(directory, STEPS, key="opt_state/masks")
    losses = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return params, masks, [(r["step"], r["train/loss"]) for r in losses if "train/loss" in r]


@pytest.mark.slow
def test_rigl_null_control_equals_static_kd_bit_for_bit(reference_run, cache_dir, tmp_path):
    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    static = _shrunk(preset, "static_kd", reference_run[0], cache_dir)
    null = _shrunk(preset, "rigl_null", reference_run[0], cache_dir)
    schedule = sparse_config.rigl_schedule(null.sparsity, STEPS)
    assert [c for c in range(1, STEPS + 1) if schedule.is_update(c)] == [2, 4]  # RigL does run its updates
    assert null.sparsity.rigl.drop_fraction * 1e6 < 1  # floor(drop x active) = 0 below a million active weights
    pretrain.run(static, str(tmp_path / "static_kd"))
    pretrain.run(null, str(tmp_path / "rigl_null"))
    (p0, m0, l0), (p1, m1, l1) = _final(str(tmp_path / "static_kd")), _final(str(tmp_path / "rigl_null"))
    assert len(l0) == STEPS and l0 == l1  # every step's training loss, exactly
    flat = lambda tree: {k: np.asarray(v) for k, v in sparsity.named_leaves(tree) if v is not None}  # noqa: E731
    a, b = flat(p0), flat(p1)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    ma, mb = flat(m0), flat(m1)
    assert ma.keys() == mb.keys() and len(ma) > 0
    for name in ma:
        np.testing.assert_array_equal(ma[name], mb[name], err_msg=name)
    eval0 = json.loads((tmp_path / "static_kd" / "eval_results.json").read_text())
    eval1 = json.loads((tmp_path / "rigl_null" / "eval_results.json").read_text())
    assert eval0["eval_loss"] == eval1["eval_loss"]

