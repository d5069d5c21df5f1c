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
    preset.horizon_pairs = []  # its rows are gone (test_horizon_report_pairs_each_length_by_seed covers it)
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
        assert cells[6] == ", ".join(f"{v:.3f}" for v in losses)
        if len(seeds) > 1:
            assert losses[0] != losses[1]  # the seeds change the run
            assert cells[3] == f"{np.mean(losses):.3f} ± {np.std(losses, ddof=1):.3f}"
            assert cells[4] == study_stats.interval(*study_stats.t_interval(losses))
            ppl = np.exp(losses)
            assert cells[5] == f"{ppl.mean():.1f} ± {ppl.std(ddof=1):.1f}"
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
    verdicts = re.findall(r"^- \*\*Claim (\d): [^*]+\*\* — .*?: \*\*([a-z0-9 ]+)\*\* at 4 steps", claims, re.M)
    assert [n for n, _ in verdicts] == ["1", "2", "3", "3"]  # no fair dense row in the study part: not shown
    assert {v for _, v in verdicts} <= {"supported", "contradicted", "not separated at 2 seeds"}
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
    assert f"**{sum(seconds.values()):.0f}**" in total and total.endswith("% | |")
    commit = study.code_version()
    assert commit != "unknown" and state["commit"] == {stage: commit for stage in seconds}  # each stage's code
    assert f"| {commit} |" in text
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
    per_seed = {k: study_rows.eval_losses(preset, out, k) for k in sums}
    assert line[6:] == [study_stats.cell(study_stats.paired(per_seed["rigl_per_tensor"], per_seed[r]))
                        for r in ("static_kd", "rigl_kd")]
    assert re.fullmatch(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\](, p \S+)?: "
                        r"(supported|contradicted|not separated at 2 seeds)", line[6]), line
    # the loss around each RigL update: every step of the 4 is logged, the update after step 2 is shown
    assert "## Training loss around each RigL update" in ablation
    around = ablation.split("## Training loss around each RigL update")[1]
    window = next(r for r in around.splitlines() if r.startswith(f"| {preset.rows.rigl_kd.label} | 2 |"))
    cells = [c.strip() for c in window.strip("|").split("|")][2:]  # steps 1, 2, 3, 4, then past the run's end
    mean_loss = np.mean([next(r["train/loss"] for r in map(json.loads, open(out / "rigl_kd" / f"seed{s}" /
                                                                              "metrics.jsonl"))
                              if r.get("step") == 3 and "train/loss" in r) for s in (0, 1)])
    assert cells[2] == f"{mean_loss:.3f}" and cells[4:] == [""] * 8
    assert any(r.startswith("| minus `static_kd` | 2 |") for r in around.splitlines())
    assert _table_row(ablation, preset.rows.static_kd.label)[2] == "static"
    assert _table_row(ablation, preset.rows.rigl_kd.label)[7] == ""  # no comparison with itself
    assert (out / "ablation.md").read_text() == ablation
    # --rows: only the named ablation rows and the reference rows, all finished already
    messages = []
    only = study.run_ablation(preset, str(out), rows=["rigl_per_tensor"], log=messages.append)
    assert len(messages) == 7 and all("skipped" in m for m in messages)
    assert _table_row(only, preset.rows.rigl_per_tensor.label) == line
    assert f"| {preset.rows.rigl_drop10.label} |" not in only and f"| {preset.rows.rigl_kd.label} |" in only
    # a run written before the project gained a config key (at its default) is still the same run
    written = out / "rigl_per_tensor" / "seed0" / "config.json"
    older = json.loads(written.read_text())
    del older["tokenizer"]["train_documents"]
    written.write_text(json.dumps(older))
    messages.clear()
    study.run_ablation(preset, str(out), rows=["rigl_per_tensor"], log=messages.append)
    assert len(messages) == 7 and all("skipped" in m for m in messages)

    # a preset changed after a run is an error, not a silent reuse of the old results
    preset.rows.dense_short.config.optim.learning_rate = 1e-3
    with pytest.raises(ValueError, match=r"dense_short/seed0 holds a run of another config \(optim.learning_rate "
                                         "changed"):
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
    (["--horizons", "150"], "--horizons selects horizon lengths; add --horizon"),
    (["--horizon", "--horizons", "150,0"], "--horizons 150,0: give run lengths of at least 1 step"),
    (["--horizon", "--horizons", "1e3"], "--horizons 1e3: give whole numbers of steps"),
    (["--horizon", "--ablation"], "--horizon pretrains its pairs only"),
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


def test_horizon_pairs_at_a_new_length_follow_the_presets_rule():
    """--horizons 10000 (a GPU's length): the pair is built as the others, RigL's 1000 updates every 10 steps."""
    from jax_bert.train import sparse_config

    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config(horizons=(150, 10000))
    chosen = study.with_horizons(preset, [10000])
    assert chosen.horizon_pairs == [(10000, "static_kd_h10000", "rigl_kd_h10000")]
    static, rigl = (study_rows.row_config(chosen, key, 0, "out") for key in ("static_kd_h10000", "rigl_kd_h10000"))
    assert static.train.steps == rigl.train.steps == 10000 and rigl.train.checkpoint_every == 500
    assert not static.sparsity.rigl.enabled and static.sparsity.to_dict() | {"rigl": None} == \
        rigl.sparsity.to_dict() | {"rigl": None}
    schedule = sparse_config.rigl_schedule(rigl.sparsity, 10000)
    assert [c for c in range(1, 10001) if schedule.is_update(c)] == list(range(10, 10001, 10))
    with pytest.raises(ValueError, match="horizons"):
        load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config(horizons=(0,))


def test_horizon_report_pairs_each_length_by_seed(tmp_path):
    """horizon.md from finished rows (their eval_results.json written here): the paired statistics of
    study/stats.py at each length, in steps order, and the plot."""
    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    chosen = study.with_horizons(preset, [150, 1000])
    assert [p[0] for p in chosen.horizon_pairs] == [150, 1000]
    assert study_rows.rows_of(chosen, "horizon") == ["teacher", "static_kd", "rigl_kd_h150", "static_kd_h1000",
                                                     "rigl_kd_h1000"]
    rng = np.random.default_rng(0)
    losses = {}
    for key in study_rows.rows_of(chosen, "horizon")[1:]:
        losses[key] = list(5.5 + rng.normal(0, 0.05, 3))
        for seed, loss in enumerate(losses[key]):
            wd = study_rows.workdir(tmp_path, key, seed)
            wd.mkdir(parents=True)
            (wd / "eval_results.json").write_text(json.dumps({"eval_loss": loss}))
    text = study.write_horizon_report(chosen, tmp_path, {"seconds": {}})
    for steps, static, rigl in chosen.horizon_pairs:
        c = study_stats.paired(losses[rigl], losses[static])
        cells = _table_row(text, f"{steps:,}")
        assert cells[2] == "3" and cells[5] == f"{c.diff:+.3f} {study_stats.interval(c.low, c.high, signed=True)}"
        assert cells[8] == study_stats.verdict(c)
    assert "1000 updates every 1 steps" in _table_row(text, "1,000")[1]
    assert (tmp_path / "horizon.png").stat().st_size > 1000 and (tmp_path / "horizon.md").read_text() == text
    with pytest.raises(ValueError, match="not rows of the 'horizon' part"):
        broken = study.with_horizons(preset, None)
        broken.horizon_pairs = [(150, "static_kd", "rigl_kd")]
        study.check(broken)


def test_claim_3_against_the_fair_dense_baseline_once_it_has_run(tmp_path):
    """The report's claims use the dense one-cycle + KD control (an ablation-part row) when all its seeds
    have finished, and leave it out before."""
    from study import report as study_report

    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    keys = study_rows.rows_of(preset, "study")

    def write(key, losses):
        for seed, loss in enumerate(losses):
            wd = study_rows.workdir(tmp_path, key, seed)
            wd.mkdir(parents=True, exist_ok=True)
            (wd / "eval_results.json").write_text(json.dumps({"eval_loss": loss, "step": 150}))

    write("teacher", [5.4])
    for key in keys[1:]:
        write(key, [5.7, 5.8, 5.9])
    assert set(study_report._claim_losses(preset, tmp_path, keys)) == set(keys)
    write("dense_onecycle_kd", [5.5, 5.6])  # two of three seeds: not finished
    assert "dense_onecycle_kd" not in study_report._claim_losses(preset, tmp_path, keys)
    write("dense_onecycle_kd", [5.5, 5.6, 5.65])
    losses = study_report._claim_losses(preset, tmp_path, keys)
    assert losses["dense_onecycle_kd"] == [5.5, 5.6, 5.65]
    text = study_stats.claims_section(losses, {k: preset.rows[k].label for k in preset.order}, "150 steps")
    assert sum(f"vs {preset.rows.dense_onecycle_kd.label}: **contradicted**" in line
               for line in text.splitlines()) == 2  # both sparse rows above the fair dense baseline


def _squad_results(path, checkpoint, version, scores):
    """A results.json as scripts/squad.py writes it: `scores` is [(exact_match, f1) or None for a failed seed]."""
    em = "exact_match" if version == "1.1" else "exact"
    runs = [{"seed": s, "error": "diverged"} if m is None else
            {"seed": s, "metrics": {em: m[0], "f1": m[1], "answered": 8}} for s, m in enumerate(scores)]
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"model": os.path.basename(checkpoint), "checkpoint": checkpoint,
                                                   "version": version, "questions": 8, "body_sparsity": 79.58,
                                                   "runs": runs}))
    return str(path)


def test_the_report_shows_squad_v11_em_and_f1_per_model(tmp_path):
    from study import report as study_report

    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    out = tmp_path / "study"
    row = _squad_results(tmp_path / "a", str(study_rows.workdir(out, "static_kd", 0)), "1.1",
                         [(50.0, 60.0), None, (62.5, 70.25), (37.5, 55.0)])
    other = _squad_results(tmp_path / "b", "/models/elsewhere", "1.1", [(12.5, 20.0)])
    text = "\n".join(study_report.squad_section(preset, out, [row, os.path.join(other, "results.json")]))
    assert text.startswith("## SQuAD v1.1")
    em, f1 = np.array([50.0, 62.5, 37.5]), np.array([60.0, 70.25, 55.0])
    assert _table_row(text, preset.rows["static_kd"].label)[1:] == [
        "79.58", "62.50", "70.25", f"{em.mean():.2f} ± {em.std(ddof=1):.2f}", f"{f1.mean():.2f} ± {f1.std(ddof=1):.2f}",
        "3 of 4"]
    assert _table_row(text, "elsewhere")[1:] == ["79.58", "12.50", "20.00", "12.50", "20.00", "1 of 1"]


def test_reproduce_refuses_squad_results_it_cannot_show(tmp_path, capsys, reproduce_main):
    v2 = _squad_results(tmp_path / "v2", "/models/m", "2.0", [(50.0, 60.0)])
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "results.json").write_text("{")
    v1 = _squad_results(tmp_path / "v1", "/models/m", "1.1", [(50.0, 60.0)])
    for args, message in [(["--squad", v2], "SQuAD v2.0 results; the columns are SQuAD v1.1 EM and F1"),
                          (["--squad", str(tmp_path / "damaged")], "not a SQuAD results file (JSONDecodeError"),
                          (["--squad", str(tmp_path / "none")], "no results.json there"),
                          (["--squad", v1, "--ablation"], "drop --ablation and --horizon")]:
        with pytest.raises(SystemExit) as exit:
            reproduce_main(["--scale", "tiny", "--out", str(tmp_path / "s"), *args])
        stderr = capsys.readouterr().err
        assert exit.value.code == 2 and stderr.strip().splitlines() == [stderr.strip()], stderr
        assert stderr.startswith("error: ") and message in stderr, stderr
    assert not (tmp_path / "s" / "teacher").exists()  # refused before any work


def test_a_reports_horizon_is_its_own_rows_length():
    """The ablation and the claims are judged at their rows' length, not the horizon pairs' longer ones."""
    from study import report as study_report

    preset = load_sibling(os.path.join(ROOT, "configs", "x.py"), "study_tiny").get_config()
    assert {preset.rows[k].config.train.steps for k in preset.order} >= {150, 1000, 4000}
    ablation = [k for k in study_rows.rows_of(preset, "ablation") if k != preset.teacher]
    assert study_report.horizon(preset, ablation) == "150 steps (tiny preset)"
    assert study_report.horizon(preset, ["static_kd_h1000", "rigl_kd_h1000"]) == "1,000 steps (tiny preset)"
