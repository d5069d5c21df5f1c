"""Gradual magnitude pruning in the engine: the kept count of every checkpoint follows the cubic schedule,
the final sparsity of the counted parameters is exact, pruned weights stay zero, eight devices prune
exactly what one device prunes, the GMP configs, and the errors before compiling."""
import math
import os

import jax
import numpy as np
import pytest

import sparsity
from eight_devices import one_device_overrides
from helpers import ROOT, losses, tiny_config, tiny_tokenizer, with_overrides
from jax_bert import model
from jax_bert.model import BertConfig, body
from jax_bert.train import checkpoint, gmp_check, sparse_config
from jax_bert.train import loop as pretrain
from jax_bert.train.config import BERT_BODY, load_config_file

BERT_BASE_CASED_VOCAB = 28996
GMP = {"target": 0.6, "warmup_steps": 2, "cooldown_steps": 2, "prune_period": 2}


def gmp_config(cache_dir, counted_over=BERT_BODY, **train):
    c = tiny_config(cache_dir, **train)
    c.sparsity.enabled = True
    c.sparsity.gmp.update(enabled=True, counted_over=counted_over, **GMP)
    return c


def shapes_of(config, cache_dir):
    vocab = len(tiny_tokenizer(cache_dir))  # the vocabulary every tiny_config run trains for itself
    mc = BertConfig(**{**config.model.to_dict(), "vocab_size": vocab})
    return model.abstract_params(mc)


def expected_kept(shapes, include, counted_over, target, steps):
    """{step: kept count of the sparse tensors} by hand: the final count from the target over the counted
    params (dense ones nonzero, round half up), then the original's cubic, step by step."""
    leaves = sparsity.named_leaves(shapes)
    sparse_paths = set(sparsity.match_rules(shapes, [(p, None, -2) for p in include]))
    # The body: the parameters jax_bert.model.body reports the sparsity of.
    counted = [(p, math.prod(x.shape)) for p, x in leaves if body._is_body(p) or counted_over == ""]
    n_counted = sum(n for _, n in counted)
    n_dense = sum(n for p, n in counted if p not in sparse_paths)
    start = sum(math.prod(x.shape) for p, x in leaves if p in sparse_paths)
    end = math.floor((1 - target) * n_counted + 0.5) - n_dense
    warmup, cooldown, period = GMP["warmup_steps"], GMP["cooldown_steps"], GMP["prune_period"]
    total_prunes = (steps - warmup - cooldown) / period + 1
    kept, i = {}, 1
    current = start
    for step in range(1, steps + 1):
        if warmup <= step <= steps - cooldown and (step - warmup) % period == 0:
            current = int(end + (start - end) * (1 - i / total_prunes) ** 3)
            i += 1
        kept[step] = current
    return kept, n_counted, n_dense


def checkpoint_at(workdir, step):
    directory = os.path.join(workdir, "checkpoints")
    return (checkpoint.restore_params_only(directory, step),
            checkpoint.restore_params_only(directory, step, key="opt_state/masks"))


@pytest.mark.parametrize("counted_over", [BERT_BODY, ""])
def test_gmp_follows_the_cubic_schedule_at_every_step(cache_dir, tmp_path, counted_over):
    config = gmp_config(cache_dir, counted_over, steps=10, checkpoint_every=1, keep_checkpoints=20)
    workdir = str(tmp_path / "run")
    pretrain.run(config, workdir)
    want, n_counted, n_dense = expected_kept(shapes_of(config, cache_dir), config.sparsity.include, counted_over,
                                             0.6, 10)
    assert len(set(want.values())) == 5  # dense, then 4 prunes (steps 2, 4, 6, 8)
    previous = None
    for step in range(1, 11):
        params, masks = checkpoint_at(workdir, step)
        kept = sum(int(np.asarray(m).sum()) for m in jax.tree.leaves(masks))
        assert kept == want[step], step
        assert sparsity.masked_nonzero(params, masks) == 0, step  # pruned weights are exactly 0
        if previous is not None:  # ... and stay off
            for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(previous)):
                assert not np.any(np.asarray(a) & ~np.asarray(b))
        previous = masks
    # The step logs the kept count: the same numbers, step by step.
    from jax_bert.train.logs import read_jsonl

    logged = {r["step"]: r["train/kept_weights"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))
              if "train/kept_weights" in r}
    assert logged == {step: float(n) for step, n in want.items()}
    # scripts/gmp_check.py's table, from the work directory alone.
    rows = gmp_check.schedule_check(workdir)
    assert [(r["step"], r["kept_target"], r["kept_logged"]) for r in rows] == \
        [(s, want[s], want[s]) for s in (2, 4, 6, 8)]
    assert "every logged count is the schedule's" in gmp_check.format_check(rows)
    # Exact final sparsity of the counted params (dense ones counted as nonzero), as the solver rounds it.
    assert kept + n_dense == math.floor(0.4 * n_counted + 0.5)
    assert abs((1 - (kept + n_dense) / n_counted) - 0.6) < 1 / n_counted
    if counted_over == BERT_BODY:  # the sparsity pretraining and GLUE report: the target (a weight may be 0 anyway)
        assert 60.0 - 100 / n_counted < body.body_sparsity(params) < 60.1


@pytest.mark.slow
@pytest.mark.xdist_group("eight_devices")
def test_gmp_on_eight_devices_prunes_what_one_device_prunes(cache_dir, tmp_path, eight_devices):
    """The global magnitude prune works on each device's shards (2 x 2 x 2 mesh: batch, fsdp and tensor
    sharding; only counts cross devices) and picks exactly the weights one device picks."""
    config = gmp_config(cache_dir, steps=8)
    assert with_overrides(tiny_config(cache_dir), one_device_overrides("gmp_2x2x2")).to_dict() == config.to_dict()
    pretrain.run(config, str(tmp_path / "one"))
    eight_dir = eight_devices["mesh_runs"]["gmp_2x2x2"]
    one, eight = losses(str(tmp_path / "one")), losses(eight_dir)
    np.testing.assert_allclose([eight[s] for s in range(1, 9)], [one[s] for s in range(1, 9)], rtol=1e-5)
    p1, m1 = checkpoint_at(str(tmp_path / "one"), 8)
    p8, m8 = checkpoint_at(eight_dir, 8)
    for (p, a), (_, b) in zip(sparsity.named_leaves(m1), sparsity.named_leaves(m8)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=p)
    for (p, a), (_, b) in zip(sparsity.named_leaves(p1), sparsity.named_leaves(p8)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6, err_msg=p)


def test_the_bert_base_gmp_configs_end_at_80_percent_of_the_body():
    for name in ("gmp80_onecycle", "gmp80_pretrained"):
        config = load_config_file(f"{ROOT}/configs/{name}.py").get_config()
        fields = {**config.model.to_dict(), "vocab_size": BERT_BASE_CASED_VOCAB}
        shapes = model.abstract_params(BertConfig(**fields))
        schedule = sparse_config.gmp_schedule(config.sparsity, config.train.steps, shapes)
        n_body = sum(math.prod(x.shape) for p, x in sparsity.named_leaves(shapes) if body._is_body(p))
        alloc = sparsity.allocate(shapes, sparse_config.sparsity_spec(config.sparsity))
        n_sparse = sum(a.size for a in alloc.values())
        assert schedule.final_kept + n_body - n_sparse == math.floor(0.2 * n_body + 0.5), name
        assert config.sparsity.include == (r"^bert/encoder/.*/kernel$", r"^bert/embeddings/word_embeddings/embedding$")
        if name == "gmp80_onecycle":  # the original's tiny_bert_gmp_100k schedule, on one-cycle
            assert (schedule.start, schedule.end, schedule.period, schedule.num_prunes) == (5_000, 80_000, 500, 151)
            assert config.optim.schedule == "one_cycle"
        else:  # bert_1mi_pretrained_gmp_52k: 2000 warm-up, 30000 pruning every 1000, 20000 cool-down
            assert (schedule.start, schedule.end, schedule.period, schedule.num_prunes) == (2_000, 32_000, 1_000, 31)
            assert (config.optim.schedule, config.optim.warmup_steps, config.optim.cooldown_steps,
                    config.optim.learning_rate, config.train.steps) == ("three_stage", 2_000, 20_000, 3e-4, 52_000)
            assert config.init_from_hf == "runs/bert_1mi/hf"


@pytest.mark.parametrize("use", ["onecycle", "pretrained"])
def test_the_tiny_gmp_configs_are_valid(use):
    from jax_bert.train.config import validate

    config = load_config_file(f"{ROOT}/configs/tiny_gmp.py").get_config(use)
    validate(config)
    want = (40, 300) if use == "onecycle" else (20, 140)
    assert sparse_config.gmp_steps(config.sparsity, config.train.steps) == want
    with pytest.raises(ValueError, match="unknown GMP use"):
        load_config_file(f"{ROOT}/configs/tiny_gmp.py").get_config("later")


def test_the_schedule_check_refuses_what_is_not_a_gmp_run(cache_dir, tmp_path):
    with pytest.raises(ValueError, match="config.json is missing"):
        gmp_check.schedule_check(str(tmp_path))
    pretrain.run(tiny_config(cache_dir, steps=1), str(tmp_path / "dense"))
    with pytest.raises(ValueError, match="not a gradual-magnitude-pruning run"):
        gmp_check.schedule_check(str(tmp_path / "dense"))


# --- bad input: one clear error before any compilation ------------------------------------------------

@pytest.mark.parametrize("change,message", [
    (lambda c: c.sparsity.rigl.update(enabled=True), "rigl and sparsity.gmp are both enabled"),
    (lambda c: c.sparsity.gmp.update(prune_period=3), "positive multiple of prune_period 3"),
    (lambda c: c.sparsity.gmp.update(warmup_steps=0), "warmup_steps >= 1"),
    (lambda c: c.sparsity.gmp.update(target=1.0), r"target must be in \(0, 1\)"),
    (lambda c: c.sparsity.gmp.update(counted_over="(bert"), "not a valid regex"),
    (lambda c: c.sparsity.update(include=[r"query/kernel$"]), r"gmp.target 0.6 over .*unreachable"),
    (lambda c: c.sparsity.gmp.update(counted_over="^bert/encoder/"), "word_embeddings/embedding, outside"),
])
def test_bad_gmp_settings(cache_dir, tmp_path, change, message, monkeypatch):
    config = gmp_config(cache_dir, steps=8)
    change(config)
    compiled = []
    from jax_bert.train import step

    monkeypatch.setattr(step, "build", lambda *a, **k: compiled.append(1))
    with pytest.raises(ValueError, match=message):
        pretrain.run(config, str(tmp_path / "w"))
    assert not compiled
