"""The whole study (scripts/reproduce.py) end to end with a further-reduced tiny preset."""
import json
import math
import os

import pytest

from glue import config as glue_config
from glue import report, study
from helpers import ROOT, shared_tokenizer
from jax_bert.train.config import load_sibling

TASKS = ["sst2", "stsb"]


def micro_preset(cache_dir):
    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    for stage, config in preset.stages.items():
        config.model.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=32)
        config.data.max_documents = 300
        config.data_cache_dir = cache_dir
        config.train.update(steps=6 if stage == "teacher" else 4, global_batch_size=8, seq_len=32,
                            eval_batch_size=16, log_every=1, checkpoint_every=100, eval_every=0,
                            progress_bar=False)
        if config.sparsity.rigl.enabled:
            config.sparsity.rigl.update(update_freq=2, start=2)
    preset.stages.teacher.tokenizer.name = shared_tokenizer(cache_dir)
    preset.glue.tasks = TASKS
    preset.glue.synthetic_sizes = {"train": 48, "validation": 24, "test": 8}
    preset.glue.overrides = {"max_length": 32, "batch_size": 16, "learning_rate": 1e-3,
                             "tasks": {"sst2": {"epochs": 1}, "stsb": {"epochs": 1}}}
    return preset


@pytest.mark.slow
def test_tiny_study_end_to_end_and_resume(tmp_path):
    preset = micro_preset(str(tmp_path / "cache"))
    out = tmp_path / "study"
    text = study.run_study(preset, str(out), seeds=2, log=lambda *_: None)
    assert "SYNTHETIC" in text.splitlines()[0]
    for stage in study.STAGES:
        results = report.load_results(str(out / "glue" / stage))
        assert results["model"] == study.ROW_NAMES[stage]
        assert sorted(results["runs"]) == sorted(TASKS)
        for task, seeds in results["runs"].items():
            assert len(seeds) == 2
        ev = json.loads((out / stage / "eval_results.json").read_text())
        assert math.isfinite(ev["eval_loss"]) and math.isfinite(ev["perplexity"])
        assert math.isfinite(results["extras"]["perplexity"])
    for stage in study.STAGES:  # one row per model in the table, with finite numbers
        line = next(row for row in text.splitlines() if row.startswith(f"| {study.ROW_NAMES[stage]} "))
        *cells, masks = [c.strip() for c in line.strip("|").split("|")][1:]
        assert masks == "kept", line  # the "sparse masks" column: the study keeps them (the default)
        numbers = [float(x) for c in cells for x in c.split("/") if x not in ("", "-")]
        assert numbers and all(math.isfinite(x) for x in numbers), line
    assert (out / "loss_curves.png").stat().st_size > 1000
    assert (out / "density_rigl_kd.png").is_file()
    import re

    zeros = float(re.search(r"sparse_80%_kd_onecycle_lr_rigl: ([\d.]+)% of all parameters are zero", text).group(1))
    assert 80.0 <= zeros < 80.5  # the masks' exact 80%, plus the odd weight (an unused token's bias) still 0

    # a rerun finds everything finished and only rebuilds the report
    seconds = json.loads((out / "study_state.json").read_text())["seconds"]
    messages = []
    study.run_study(preset, str(out), seeds=2, log=messages.append)
    assert all("skipped" in m for m in messages) and len(messages) == 8
    assert json.loads((out / "study_state.json").read_text())["seconds"] == seconds


def test_bad_study_input(tmp_path):
    preset = micro_preset(str(tmp_path / "cache"))
    preset.glue.tasks = ["sst2", "nope"]
    with pytest.raises(ValueError, match="unknown GLUE tasks.*nope"):
        study.run_study(preset, str(tmp_path / "s"))
    preset.glue.tasks = ["sst2"]
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        study.run_study(preset, str(tmp_path / "s"), seeds=0)
    preset.glue.overrides.tasks.sst2 = {"epoch": 1}
    with pytest.raises(ValueError, match="study glue.overrides: unknown GLUE config key 'tasks.sst2.epoch'"):
        study.run_study(preset, str(tmp_path / "s"))  # before any pretraining
    assert not (tmp_path / "s" / "teacher").exists()


def test_study_glue_config_is_the_glue_defaults_with_the_overrides(tmp_path):
    config = study.glue_config_of(micro_preset(str(tmp_path / "cache")))
    expected = glue_config.get_config()
    expected.update(max_length=32, batch_size=16, learning_rate=1e-3)
    expected.tasks.sst2.epochs = expected.tasks.stsb.epochs = 1
    assert config == expected
