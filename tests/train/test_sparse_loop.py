"""Sparse pretraining in the engine: static masks and RigL keep exact zeros and exact density,
distillation from a teacher work directory, mesh equivalence, export, and the errors before compiling."""
import os

import jax
import numpy as np
import pytest

import jax_bert
import sparsity
from eight_devices import one_device_overrides
from helpers import losses, tiny_config, with_overrides
from jax_bert.train import checkpoint
from jax_bert.train import loop as pretrain
from jax_bert.train.sparse_config import sparsity_spec


@pytest.fixture
def teacher(reference_run):
    """The session's 8-step reference run, with its Hugging Face export: a teacher of the student's size."""
    return reference_run[0]


@pytest.fixture(scope="module")
def rigl_runs(tmp_path_factory, cache_dir):
    """mode -> work directory of the 6-step RigL run on one device: the one-device twins of the 8-device
    runs (eight_devices.MESH_RUNS), checked on their own too."""
    root = tmp_path_factory.mktemp("rigl")
    runs = {}
    for mode, name in (("global", "rigl_global_2x2x2"), ("per_tensor", "rigl_per_tensor_fsdp8")):
        runs[mode] = str(root / mode)
        pretrain.run(with_overrides(tiny_config(cache_dir), one_device_overrides(name)), runs[mode])
    return runs


def sparse_config(cache_dir, *, rigl=False, mode="global", teacher=None, **train):
    c = tiny_config(cache_dir, **train)
    c.sparsity.update(enabled=True, overall=0.6)
    if rigl:
        c.sparsity.rigl.update(enabled=True, update_freq=2, start=2, drop_fraction=0.3, mode=mode)
    if teacher:
        c.distill.teachers = [{"path": teacher, "weight": 1.0}]
    return c


def _final_state(workdir):
    """(params, masks, step) of the last checkpoint, as host arrays (masks: None where dense)."""
    directory = os.path.join(workdir, "checkpoints")
    step = checkpoint.latest_step(directory)
    params = checkpoint.restore_params_only(directory, step)
    masks = checkpoint.restore_params_only(directory, step, key="opt_state/masks")
    return params, masks, step


def _initial_masks(config, workdir):
    from jax_bert import data, model
    from jax_bert.model import BertConfig

    tok = data.get_tokenizer(os.path.join(workdir, "tokenizer"))
    mc = BertConfig(**{**config.model.to_dict(), "vocab_size": len(tok)})
    params = model.abstract_params(mc)
    spec = sparsity_spec(config.sparsity)
    return sparsity.init_masks(jax.random.key(config.sparsity.seed), params, spec)


@pytest.mark.parametrize("rigl,mode", [(False, None), (True, "global"), (True, "per_tensor")])
def test_masked_weights_stay_zero_and_density_is_exact(cache_dir, tmp_path, rigl_runs, rigl, mode):
    config = sparse_config(cache_dir, rigl=rigl, mode=mode or "global", steps=6, checkpoint_every=6)
    if rigl:  # the module's RigL run of this mode is this config's
        workdir = rigl_runs[mode]
        name = {"global": "rigl_global_2x2x2", "per_tensor": "rigl_per_tensor_fsdp8"}[mode]
        assert with_overrides(tiny_config(cache_dir), one_device_overrides(name)).to_dict() == config.to_dict()
    else:
        workdir = str(tmp_path / "run")
        pretrain.run(config, workdir)
    params, masks, step = _final_state(workdir)
    assert step == 6
    initial = _initial_masks(config, workdir)
    flat_params = dict(sparsity.named_leaves(params))
    changed = 0
    total_kept, total_kept_initial = 0, 0
    for path, mask in sparsity.named_leaves(masks):
        w = np.asarray(flat_params[path])
        m0 = np.asarray(dict(sparsity.named_leaves(initial))[path])
        assert np.all(w[~np.asarray(mask)] == 0.0), f"{path}: masked-off weights are not zero"
        kept, kept0 = int(np.asarray(mask).sum()), int(m0.sum())
        total_kept += kept
        total_kept_initial += kept0
        if not rigl or mode == "per_tensor":
            assert kept == kept0, f"{path}: density changed {kept0} -> {kept}"
        changed += int((np.asarray(mask) != m0).sum())
    assert total_kept == total_kept_initial
    if rigl:
        assert changed > 0, "RigL never changed a mask"
    else:
        assert changed == 0
    n_all = sum(int(np.size(x)) for x in jax.tree.leaves(params))
    nonzero = sum(int(np.count_nonzero(x)) for x in jax.tree.leaves(params))
    assert abs((1 - nonzero / n_all) - 0.6) < 0.01  # the solved overall level (a few weights may be 0 anyway)


def test_sparse_export_keeps_the_zeros(cache_dir, tmp_path):
    config = sparse_config(cache_dir, steps=4, export_hf=True)
    workdir = str(tmp_path / "run")
    pretrain.run(config, workdir)
    _, params = jax_bert.load_hf(os.path.join(workdir, "hf"))
    _, masks, _ = _final_state(workdir)
    stats = sparsity.sparsity_stats(params, None)
    assert abs(stats.overall.sparsity - 0.6) < 0.01
    import transformers

    hf = transformers.BertForMaskedLM.from_pretrained(os.path.join(workdir, "hf"))
    q = hf.bert.encoder.layer[0].attention.self.query.weight.detach().numpy()
    mask = np.asarray(masks["bert"]["encoder"]["layer_0"]["attention"]["self"]["query"]["kernel"]).T
    assert np.all(q[~mask] == 0.0) and np.all(q[mask] != 0.0)


def test_distillation_from_a_teacher_work_directory(cache_dir, teacher, tmp_path):
    config = sparse_config(cache_dir, rigl=True, teacher=teacher, steps=6)
    result = pretrain.run(config, str(tmp_path / "kd"))
    trace = losses(str(tmp_path / "kd"))
    assert np.isfinite(result["eval_loss"]) and len(trace) == 6
    # factor 0: the distillation objective is the MLM loss, step for step
    zero = sparse_config(cache_dir, teacher=teacher, steps=3)
    zero.distill.factor = 0.0
    plain = sparse_config(cache_dir, steps=3)
    pretrain.run(zero, str(tmp_path / "factor0"))
    pretrain.run(plain, str(tmp_path / "plain"))
    np.testing.assert_allclose(list(losses(str(tmp_path / "factor0")).values()),
                               list(losses(str(tmp_path / "plain")).values()), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.xdist_group("eight_devices")
@pytest.mark.parametrize("mode,name", [("global", "rigl_global_2x2x2"), ("per_tensor", "rigl_per_tensor_fsdp8")])
def test_sparse_rigl_on_eight_devices_matches_one(rigl_runs, eight_devices, mode, name):
    """RigL's selection works on each device's shards (only counts cross devices) and picks exactly
    the weights one device picks: global RigL on 2 x 2 x 2, per-tensor RigL on fsdp 8."""
    one_dir, eight_dir = rigl_runs[mode], eight_devices["mesh_runs"][name]
    one, eight = losses(one_dir), losses(eight_dir)
    np.testing.assert_allclose([eight[s] for s in range(1, 7)], [one[s] for s in range(1, 7)], rtol=1e-5)
    p1, m1, _ = _final_state(one_dir)
    p8, m8, _ = _final_state(eight_dir)
    for (p, a), (_, b) in zip(sparsity.named_leaves(m1), sparsity.named_leaves(m8)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=p)
    for (p, a), (_, b) in zip(sparsity.named_leaves(p1), sparsity.named_leaves(p8)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=p)


# --- bad input: one clear error before any compilation ------------------------------------------------

@pytest.mark.parametrize("change,message", [
    (lambda c: c.sparsity.update(overall=-1.0, level=1.0), r"sparsity.level must be in \[0, 1\)"),
    (lambda c: c.sparsity.update(overall=1.2), r"sparsity.overall must be in \[0, 1\)"),
    (lambda c: c.sparsity.update(include=[r"^bert/decoder/kernel$"]), r"decoder"),
    (lambda c: c.sparsity.update(overall=0.99, include=[r"query/kernel$"]), r"(?i)reach|cannot|unreachable"),
    (lambda c: c.sparsity.rigl.update(enabled=True, update_freq=0), r"update_freq must be >= 1"),
    (lambda c: c.sparsity.rigl.update(enabled=True, start=10, end_fraction=0.5), r"not after start"),
])
def test_bad_sparsity_settings(cache_dir, tmp_path, change, message, monkeypatch):
    config = sparse_config(cache_dir, steps=8)
    change(config)
    compiled = []
    from jax_bert.train import step

    monkeypatch.setattr(step, "build", lambda *a, **k: compiled.append(1))
    with pytest.raises(ValueError, match=message):
        pretrain.run(config, str(tmp_path / "w"))
    assert not compiled


def test_missing_teacher_says_how_to_train_one(cache_dir, tmp_path):
    config = sparse_config(cache_dir, teacher=str(tmp_path / "no_such_run"))
    with pytest.raises(ValueError, match="configs/bert_1mi.py"):
        pretrain.run(config, str(tmp_path / "w"))


def test_teacher_without_a_tokenizer_is_refused(cache_dir, tmp_path):
    """Its vocabulary could not be compared with the student's."""
    import transformers

    other = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=123, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    other.save_pretrained(tmp_path / "other")
    config = sparse_config(cache_dir, teacher=str(tmp_path / "other"))
    with pytest.raises(ValueError, match="has no tokenizer"):
        pretrain.run(config, str(tmp_path / "w"))
