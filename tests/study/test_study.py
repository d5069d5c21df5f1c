"""The whole study (study/pipeline.py) end to end with a further-reduced tiny preset, its checks, the
command line of scripts/reproduce.py (read in this process; the script itself runs in a child process once,
for one bad command line), and the mean ± std / claim logic of study/stats.py on hand-made numbers."""
import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from glue import config as glue_config
from glue import report
from helpers import ROOT, shared_tokenizer, subprocess_env
from jax_bert.train.config import load_sibling
from study import pipeline as study
from study import rows as study_rows
from study import stats as study_stats

TASKS = ["sst2", "stsb"]
ABLATION_KEEP = ("rigl_drop10", "rigl_per_tensor")  # the micro ablation: the shared rows and these


def micro_preset(cache_dir):
    """configs/study_tiny.py with the study's rows and ABLATION_KEEP only, two seeds, 1-layer models (the
    fewer layers, the less tracing in each of the study's 13 runs) of 4 steps (the teacher 6) and two small
    GLUE tasks; the vocabulary and tokenised corpus live in `cache_dir` (the tests' shared one)."""
    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    for key in [k for k in preset.order if "study" not in preset.rows[k].parts and k not in ABLATION_KEEP]:
        del preset.rows[key]
    preset.order = [k for k in preset.order if k in preset.rows]
    preset.seeds = 2
    for key in preset.order:
        config = preset.rows[key].config
        config.model.update(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=32)
        config.data.max_documents = 300
        config.data_cache_dir = cache_dir
        config.train.update(steps=6 if key == "teacher" else 4, global_batch_size=8, seq_len=32,
                            eval_batch_size=16, log_every=1, checkpoint_every=100, eval_every=0,
                            progress_bar=False)
        if config.sparsity.rigl.enabled:
            config.sparsity.rigl.update(num_updates=2, end_fraction=1.0)  # every 2 of the 4 steps
    preset.rows.teacher.config.tokenizer.name = shared_tokenizer(cache_dir)
    preset.glue.tasks = TASKS
    preset.glue.synthetic_sizes = {"train": 48, "validation": 24, "test": 8}
    preset.glue.overrides = {"max_length": 32, "batch_size": 16, "learning_rate": 1e-3,
                             "tasks": {"sst2": {"epochs": 1}, "stsb": {"epochs": 1}}}
    return preset


def _table_row(text, label):
    line = next(row for row in text.splitlines() if row.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.slow
def test_tiny_study_end_to_end_seeds_claims_ablation_and_resume(tmp_path, monkeypatch, cache_dir):
    preset = micro_preset(cache_dir)
    out = tmp_path / "study"
    text = study.run_study(preset, str(out), seeds=2, log=lambda *_: None)
    assert "SYNTHETIC" in text.splitlines()[0]
    keys = ["teacher", "dense_short", "static", "static_kd", "rigl_kd"]
    assert study_rows.rows_of(preset, "study") == keys
    for key in keys:
        seeds = [0] if key == "teacher" else [0, 1]
        assert sorted(os.listdir(out / key)) == [f"seed{s}" for s in seeds]
        losses = []
        for s in seeds:
            config = json.loads((out / key / f"seed{s}" / "config.json").read_text())
            assert config["train"]["seed"] == config["sparsity"]["seed"] == s
            teachers = config["distill"]["teachers"]
            assert teachers == ([{"path": str(out / "teacher" / "seed0"), "weight": 1.0}]
                                if key in ("static_kd", "rigl_kd") else [])
            losses.append(json.loads((out / key / f"seed{s}" / "eval_results.json").read_text())["eval_loss"])
        # the report's mean ± std is that of the seeds' eval losses (and perplexities) on disk
        cells = _table_row(text, preset.rows[key].label)
        assert cells[1:3] == [f"`{key}`", str(len(seeds))]
        assert cells[5] == ", ".join(f"{v:.3f}" for v in losses)
        if len(seeds) > 1:
            assert losses[0] != losses[1]  # the seeds change the run
            assert cells[3] == f"{np.mean(losses):.3f} ± {np.std(losses, ddof=1):.3f}"
            ppl = np.exp(losses)
            assert cells[4] == f"{ppl.mean():.1f} ± {ppl.std(ddof=1):.1f}"
        # GLUE on the seed-0 model of each row
        results = report.load_results(str(out / "glue" / key / "seed0"))
        assert results["model"] == preset.rows[key].label
        assert sorted(results["runs"]) == sorted(TASKS) and all(len(r) == 2 for r in results["runs"].values())
        assert results["extras"]["eval_loss"] == pytest.approx(losses[0])
        glue_row = _table_row(text.split("## GLUE")[1], preset.rows[key].label)
        assert glue_row[-1] == "kept", glue_row  # the "sparse masks" column: the study keeps them (the default)
    assert not (out / "glue" / "static" / "seed1").exists()
    claims = text.split("## The original's claims")[1].split("## GLUE")[0]
    assert study_stats.RULE in claims
    verdicts = re.findall(r"^- \*\*Claim (\d): [^*]+\*\* — .*?: \*\*([a-z ]+)\*\* at tiny scale", claims, re.M)
    assert [n for n, _ in verdicts] == ["1", "2", "3", "3"]
    assert {v for _, v in verdicts} <= {"supported", "not supported", "contradicted", "not resolved"}
    assert "RigL 2 updates every 2 steps, 2 .. 4, end 100% of the run" in text
    assert (out / "loss_curves.png").stat().st_size > 1000
    assert (out / "density_rigl_kd.png").is_file() and (out / "density_static.png").is_file()
    zeros = float(re.search(r"sparse_80%_kd_onecycle_lr_rigl \(seed 0\): ([\d.]+)% of all parameters are zero",
                            text).group(1))
    assert 80.0 <= zeros < 80.5  # the masks' exact 80%, plus the odd weight (an unused token's bias) still 0

    # a rerun finds everything finished and only rebuilds the report, also with the directory spelled otherwise
    state = json.loads((out / "study_state.json").read_text())
    seconds = state["seconds"]
    assert len(seconds) == 9 + 5  # pretraining runs + GLUE models
    assert set(state["other_cpu_share"]) == set(seconds) and all(0 <= v <= 1 for v in state["other_cpu_share"].values())
    total = next(line for line in text.splitlines() if line.startswith("| **total** |"))
    assert f"**{sum(seconds.values()):.0f}**" in total and total.endswith("% |")
    messages = []
    monkeypatch.chdir(tmp_path)
    assert study.run_study(preset, "study", seeds=2, log=messages.append) == text
    assert all("skipped" in m for m in messages) and len(messages) == 9 + 5
    assert json.loads((out / "study_state.json").read_text())["seconds"] == seconds

    # the ablation shares the teacher and the study's KD rows, runs its own rows, compares with static_kd
    messages = []
    ablation = study.run_ablation(preset, str(out), log=messages.append)
    assert sum("skipped" in m for m in messages) == 5 and len(messages) == 9
    assert sorted(os.listdir(out / "rigl_per_tensor")) == ["seed0", "seed1"]
    line = _table_row(ablation, preset.rows.rigl_per_tensor.label)
    assert "per-tensor ranking" in line[2] and line[3] == "2" and len(line) == 8
    sums = {k: study_stats.summarize(study_rows.eval_losses(preset, out, k))
            for k in ("rigl_per_tensor", "static_kd", "rigl_kd")}
    assert line[4] == study_stats.pm(sums["rigl_per_tensor"].loss_mean, sums["rigl_per_tensor"].loss_std, 3)
    assert line[6:] == [study_stats.versus(sums["rigl_per_tensor"], sums[r]) for r in ("static_kd", "rigl_kd")]
    assert re.fullmatch(r"[+-]\d\.\d{3} \(spread \d\.\d{3}\): (lower|higher|within spread)", line[6]), line
    assert _table_row(ablation, preset.rows.static_kd.label)[2] == "static"
    assert _table_row(ablation, preset.rows.rigl_kd.label)[7] == ""  # no comparison with itself
    assert (out / "ablation.md").read_text() == ablation
    # --rows: only the named ablation rows and the reference rows, all finished already
    messages = []
    only = study.run_ablation(preset, str(out), rows=["rigl_per_tensor"], log=messages.append)
    assert len(messages) == 7 and all("skipped" in m for m in messages)
    assert _table_row(only, preset.rows.rigl_per_tensor.label) == line
    assert f"| {preset.rows.rigl_drop10.label} |" not in only and f"| {preset.rows.rigl_kd.label} |" in only

    # a preset changed after a run is an error, not a silent reuse of the old results
    preset.rows.dense_short.config.optim.learning_rate = 1e-3
    with pytest.raises(ValueError, match="dense_short/seed0 holds a run of another config"):
        study.run_study(preset, str(out), seeds=2, log=lambda *_: None)


def test_bad_study_input(tmp_path, cache_dir):
    preset = micro_preset(cache_dir)
    preset.glue.tasks = ["sst2", "nope"]
    with pytest.raises(ValueError, match="unknown GLUE tasks.*nope"):
        study.run_study(preset, str(tmp_path / "s"))
    preset.glue.tasks = ["sst2"]
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        study.run_study(preset, str(tmp_path / "s"), seeds=0)
    with pytest.raises(ValueError, match="--pretrain_seeds must be >= 1"):
        study.run_study(preset, str(tmp_path / "s"), pretrain_seeds=0)
    with pytest.raises(ValueError, match="row 'static': added twice"):
        study_rows.add_row(preset, "static", "again", preset.rows.static.config)
    preset.glue.overrides.tasks.sst2 = {"epoch": 1}
    with pytest.raises(ValueError, match="study glue.overrides: unknown GLUE config key 'tasks.sst2.epoch'"):
        study.run_study(preset, str(tmp_path / "s"))  # before any pretraining
    assert not (tmp_path / "s" / "teacher").exists()
    base = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_base").get_config()
    with pytest.raises(ValueError, match="no ablation rows"):
        study.run_ablation(base, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="--rows static,nope: not ablation rows.*choose from static_kd,rigl_kd,"):
        study.run_ablation(preset, str(tmp_path / "s"), rows=["rigl_drop10", "static", "nope"])
    assert not (tmp_path / "s" / "teacher").exists()


def test_ablation_rows_keep_the_named_rows_the_references_and_the_teacher(tmp_path):
    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    chosen = study.with_ablation_rows(preset, ["rigl_n3", "rigl_end50"])
    assert study_rows.rows_of(chosen, "ablation") == ["teacher", "static_kd", "rigl_kd", "rigl_n3", "rigl_end50"]
    assert study_rows.rows_of(chosen, "study") == study_rows.rows_of(preset, "study")
    assert study.with_ablation_rows(preset, None) is preset
    # the preset itself is unchanged: teacher, static_kd, rigl_kd, 10 RigL variations and 5 controls
    assert len(study_rows.rows_of(preset, "ablation")) == 3 + 10 + 5


REPRODUCE = os.path.join(ROOT, "scripts", "reproduce.py")


@pytest.fixture
def reproduce_main(monkeypatch):
    """scripts/reproduce.py's main(argv), loaded from its file, to run in this process: the compilation
    cache stays the tests' (main points it at OUT/jax_cache unless JAX_COMPILATION_CACHE_DIR is set) and
    the log levels that main sets are restored afterwards."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", jax.config.jax_compilation_cache_dir)
    spec = importlib.util.spec_from_file_location("reproduce_script", REPRODUCE)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    loggers = [logging.getLogger(), logging.getLogger("jax_bert")]
    levels = [logger.level for logger in loggers]
    yield script.main
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


@pytest.mark.parametrize("args, message", [
    (["--pretrain_seeds", "0"], "--pretrain_seeds must be >= 1"),
    (["--ablation", "--seeds", "2"], "--ablation pretrains only"),
    (["--rows", "rigl_n3"], "--rows selects ablation rows; add --ablation"),
    (["--ablation", "--rows", "rigl_n4"], "--rows rigl_n4: not ablation rows"),
    (["--ablation", "--glue_keep_masks", "both"], "--ablation pretrains only"),
])
def test_reproduce_command_line_errors_are_one_line_and_exit_2(tmp_path, capsys, reproduce_main, args, message):
    with pytest.raises(SystemExit) as exit:
        reproduce_main(["--scale", "tiny", "--out", str(tmp_path / "s"), *args])
    stderr = capsys.readouterr().err
    assert exit.value.code == 2, stderr
    assert stderr.strip().splitlines() == [stderr.strip()] and message in stderr
    assert stderr.startswith("error: ")
    assert not (tmp_path / "s" / "teacher").exists()  # refused before any work


@pytest.mark.slow
def test_reproduce_script_bad_command_line_is_one_line_and_exit_2(tmp_path):
    """The real entry point on one bad command line; the others run main in this process (above)."""
    result = subprocess.run([sys.executable, REPRODUCE, "--scale", "tiny", "--out", str(tmp_path / "s"),
                             "--pretrain_seeds", "0"], capture_output=True, text=True, env=subprocess_env(),
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "--pretrain_seeds must be >= 1" in result.stderr and result.stderr.startswith("error: ")
    assert not (tmp_path / "s" / "teacher").exists()  # refused before any work


def test_glue_keep_masks_settings_have_their_own_directories_and_labels(tmp_path):
    base = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_base").get_config()
    # the base study compares with the original's table, fine-tuned with pruned weights free to regrow
    assert tuple(base.glue.keep_masks) == (False,)
    assert [m for _, _, m in study_rows.glue_stages(base)] == [False] * 5
    both = study.with_glue_masks(base, (False, True))
    stages = study_rows.glue_stages(both)
    assert len(stages) == 10 and {m for _, _, m in stages} == {False, True}
    assert study_rows.glue_dir(tmp_path, "rigl_kd", 0, False) == tmp_path / "glue_regrow" / "rigl_kd" / "seed0"
    assert study_rows.glue_dir(tmp_path, "rigl_kd", 0, True) == tmp_path / "glue" / "rigl_kd" / "seed0"
    assert len({study_rows.glue_stage(*g) for g in stages}) == 10  # each setting's wall time apart
    assert study.with_glue_masks(base, None) is base
    study.check(both)
    with pytest.raises(ValueError, match="glue.keep_masks must list True and/or False once each"):
        study.check(study.with_glue_masks(base, (True, True)))


def test_study_glue_config_is_the_glue_defaults_with_the_overrides(cache_dir):
    config = study.glue_config_of(micro_preset(cache_dir))
    expected = glue_config.get_config()
    expected.update(max_length=32, batch_size=16, learning_rate=1e-3)
    expected.tasks.sst2.epochs = expected.tasks.stsb.epochs = 1
    assert config == expected


# ------------------------------------------------------------------ mean ± std and the claims, by hand


def test_summary_is_mean_and_sample_std_of_losses_and_perplexities():
    s = study_stats.summarize([5.0, 5.2, 5.4])
    assert (s.n, s.loss_mean) == (3, pytest.approx(5.2))
    assert s.loss_std == pytest.approx(0.2)  # sqrt((0.04 + 0 + 0.04) / 2)
    ppl = [math.exp(5.0), math.exp(5.2), math.exp(5.4)]
    assert s.ppl_mean == pytest.approx(sum(ppl) / 3)  # mean of perplexities, not exp(mean loss)
    assert s.ppl_mean > math.exp(5.2)
    assert s.ppl_std == pytest.approx(math.sqrt(sum((p - s.ppl_mean) ** 2 for p in ppl) / 2))
    one = study_stats.summarize([4.0])
    assert one.n == 1 and math.isnan(one.loss_std) and math.isnan(one.ppl_std)
    with pytest.raises(ValueError, match="at least one"):
        study_stats.summarize([])


def _s(*losses):
    return study_stats.summarize(list(losses))


def test_compare_needs_the_difference_to_exceed_the_sum_of_the_stds():
    a, b = _s(5.0, 5.2, 5.4), _s(5.6, 5.7, 5.8)  # stds 0.2 and 0.1: spread 0.3
    c = study_stats.compare(a, b)
    assert c.diff == pytest.approx(0.5) and c.spread == pytest.approx(0.3) and c.outcome == "A lower"
    assert study_stats.compare(b, a).outcome == "B lower"
    close = _s(5.4, 5.5, 5.6)  # 0.3 above a, spread 0.3: not more than the spread
    assert study_stats.compare(a, close).outcome == "within spread"
    assert study_stats.compare(_s(5.0), _s(9.0)).outcome == "within spread"  # one seed: no spread


def test_claims_verdicts_on_hand_made_rows():
    dense, static = _s(5.30, 5.40, 5.50), _s(5.90, 6.00, 6.10)  # stds 0.1
    static_kd, rigl_kd = _s(5.60, 5.70, 5.80), _s(5.55, 5.65, 5.75)
    v = {(c.number, c.row): study_stats.judge(c, {"dense_short": dense, "static": static,
                                                  "static_kd": static_kd, "rigl_kd": rigl_kd}).verdict
         for c in study_stats.CLAIMS}
    assert v == {(1, "static_kd"): "supported",  # 0.3 lower, spread 0.2
                 (2, "rigl_kd"): "not resolved",  # 0.05 lower: within the spread
                 (3, "rigl_kd"): "not supported",  # 0.25 above the dense run: beyond the spread
                 (3, "static_kd"): "not supported"}
    # the other way round: RigL loses clearly, the sparse rows within the dense run's spread
    rigl_bad, near_dense = _s(6.0, 6.1, 6.2), _s(5.45, 5.50, 5.55)
    rows = {"dense_short": dense, "static": static, "static_kd": near_dense, "rigl_kd": rigl_bad}
    verdicts = [study_stats.judge(c, rows).verdict for c in study_stats.CLAIMS]
    assert verdicts == ["supported", "contradicted", "not supported", "supported"]
    rows["static"] = _s(5.0, 5.1, 5.2)  # distillation hurts beyond the spread
    assert study_stats.judge(study_stats.CLAIMS[0], rows).verdict == "contradicted"
    assert study_stats.judge(study_stats.CLAIMS[0], {"static_kd": near_dense}).verdict == "not tested"
    one_seed = {"static": _s(7.0), "static_kd": _s(5.0)}
    assert study_stats.judge(study_stats.CLAIMS[0], one_seed).verdict == "not resolved"


def test_claims_section_states_rule_numbers_and_missing_rows():
    rows = {"dense_short": _s(5.3, 5.4, 5.5), "static_kd": _s(5.6, 5.7, 5.8), "rigl_kd": _s(5.55, 5.65, 5.75)}
    text = study_stats.claims_section(rows, {"static_kd": "static KD", "rigl_kd": "RigL KD"}, "tiny")
    assert text.startswith("Rule: " + study_stats.RULE)
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(lines) == 4
    assert "**not tested** at tiny scale (no row static)" in lines[0]
    assert "RigL KD vs static KD: **not resolved** at tiny scale. Eval loss 5.650 ± 0.100 vs 5.700 ± 0.100" in lines[1]
    assert "difference +0.050 nats, spread 0.200; n = 3, 3" in lines[1]


def test_control_rows_change_only_what_they_control():
    """configs/study_tiny.py's controls: GMP ends at static's kept count; pct_start rows move only the lr peak;
    the dense one-cycle rows have the sparse rows' schedule; the late RigL row starts at 50 with 11 updates."""
    import sparsity
    from jax_bert import model
    from jax_bert.model import BertConfig
    from jax_bert.train import sparse_config

    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    config = {k: study_rows.row_config(preset, k, 0, "out") for k in preset.order}
    shapes = model.abstract_params(BertConfig(**{**config["static_kd"].model.to_dict(), "vocab_size": 8000}))
    static_kept = sum(a.n_keep for a in sparsity.allocate(shapes, sparse_config.sparsity_spec(
        config["static_kd"].sparsity)).values())
    assert sparse_config.gmp_schedule(config["gmp_kd"].sparsity, 150, shapes).final_kept == static_kept
    for key, reference in (("static_kd_pct10", "static_kd"), ("rigl_kd_pct10", "rigl_kd")):
        changed = config[key].to_dict()
        changed["optim"]["pct_start"] = 0.3
        assert changed == config[reference].to_dict() and config[key].optim.pct_start == 0.1
    for key in ("dense_onecycle", "dense_onecycle_kd"):
        assert not config[key].sparsity.enabled
        assert config[key].optim.to_dict() == config["static_kd"].optim.to_dict()
    assert config["dense_onecycle_kd"].distill.to_dict() == config["static_kd"].distill.to_dict()
    late = sparse_config.rigl_schedule(config["rigl_late_many"].sparsity, 150)
    assert [c for c in range(1, 151) if late.is_update(c)] == list(range(50, 151, 10))
    assert float(late.fraction(50)) == pytest.approx(0.3)  # the original's p at its first update
