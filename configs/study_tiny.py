"""The whole study at tiny scale, offline, on a 2-core CPU: five rows x three pretraining seeds, GLUE, claims.

    python scripts/reproduce.py --scale tiny --out runs/study_tiny              # the study (report.md)
    python scripts/reproduce.py --scale tiny --out runs/study_tiny --ablation   # the RigL ablation (ablation.md)

Five 2-layer BERTs (hidden 128) on the standard library's docstrings: the teacher (400 steps, one seed),
then the dense short run, static 80% + one-cycle without distillation, static 80% + KD + one-cycle and
RigL 80% + KD + one-cycle (150 steps each, seeds 0, 1, 2), then all nine GLUE tasks on small SYNTHETIC
GLUE-format data that the project generates (the report says so) for the seed-0 models with the
protocol's seed counts, then report.md: eval loss and perplexity as mean ± std over the three seeds and
the original's three claims judged against that spread. docs/study.md holds a run's results and wall
time. Expect perplexities of a few hundred; the GLUE numbers mean little beyond "the pipeline works".

How the tiny values map to the original's (docs/original.md):
  teacher: 1M steps in the original (10x the students' 100k); here 400 steps (2.7x the students' 150).
      One teacher for all seeds, as the original had one: every distilled row learns from the same
      model, so rows differ only by their own seed.
  dense_short (bert_100k): the students' length, warmup_linear as the teacher (40 warm-up steps).
  sparse rows: 80.0% of ALL params zero (configs/sparse80_kd_onecycle.py's overall80 layout: at this
      size the dense params are a large share, so 80% per tensor would be far below 80% overall);
      one-cycle as the original (pct_start 0.3, div 25, final div 1e4, b1 0.95 -> 0.85 -> 0.95) with
      max lr 3e-3 instead of 1.2e-3 (a 150-step run of a tiny model); distillation factor 1, T 1.
  RigL, relative to the run (sparsity.rigl.num_updates / end_fraction): the original made 1000 updates
      over 100k steps (every 100 steps = 0.1% of the run, from step 100 to the end), drop fraction 0.3
      decayed by a cosine to 0 at the end (so its last update drops nothing), one global ranking. A
      150-step run cannot keep that spacing (0.15 steps); the study's RigL row keeps the original's
      per-update values (drop 0.3, cosine decay, global ranking) with 6 updates (every 25 steps, the
      first at step 25): RIGL_ORIGINAL below. Which of these settings explains RigL's rank at this scale
      is the ablation's question (docs/study.md: at 150 steps an early update costs, more so before
      one-cycle's peak).
The ablation (rows with parts=('ablation',)) varies one RigL setting at a time from RIGL_ORIGINAL (the
original's per-update values, an update every 25 steps), each over the same three seeds and from the same
teacher: drop fraction, number of updates, end fraction, per-tensor vs global ranking; one row changes
drop fraction and end together. Two more RigL rows separate causes: the null control (`rigl_null`, drop
1e-7: no weight moves, so it equals static_kd bit for bit, a test checks it) and a late first update with
many updates after it (`rigl_late_many`: step 50, then every 10; against rigl_n3's 3 updates from step 50).
The controls (CONTROLS) move one-cycle's peak to 10% of the run for static + KD and RigL + KD, give a fair
dense baseline (dense with the sparse rows' one-cycle, with and without KD), and prune gradually (GMP) to
the static rows' kept count.
The horizon (`--horizon`, HORIZONS) compares static + KD with RigL + KD at 150, 1,000 and 4,000 steps, RigL
with the original's 1000 updates scaled to each run (every step at 150 and 1,000 steps, every 4 at 4,000).
`--horizons` builds the pair at any length by the same rule, for a machine that can run longer ones:

    python scripts/reproduce.py --scale tiny --out runs/study_tiny_gpu --horizon --horizons 10000   # a GPU
Every student logs its loss at every step (the report shows it around each RigL update).
"""
import ml_collections

from jax_bert.train.config import load_sibling
from study.rows import add_row, base_study_config

STUDENT_STEPS = 150
# The study's RigL row (rigl_kd): the original's per-update values, an update every 25 steps of 150.
RIGL_ORIGINAL = {"num_updates": 6, "end_fraction": 1.0, "drop_fraction": 0.3, "mode": "global"}
# One setting changed at a time from RIGL_ORIGINAL: key -> (label, changes).
ABLATION = {
    "rigl_drop10": ("drop 0.1", {"drop_fraction": 0.1}),
    "rigl_drop03": ("drop 0.03", {"drop_fraction": 0.03}),
    "rigl_n3": ("3 updates (every 50 steps)", {"num_updates": 3}),
    "rigl_n15": ("15 updates (every 10 steps)", {"num_updates": 15}),
    "rigl_end50": ("end at 50% of the run", {"end_fraction": 0.5}),
    "rigl_end75": ("end at 75% of the run", {"end_fraction": 0.75}),
    "rigl_per_tensor": ("per-tensor ranking", {"mode": "per_tensor"}),
    # both "less churn" changes together (a first guess at a better tiny schedule)
    "rigl_drop10_end75": ("drop 0.1, end at 75% of the run", {"drop_fraction": 0.1, "end_fraction": 0.75}),
    # the null control: k = floor(1e-7 x active) = 0 weights move, so it must equal static_kd bit for bit
    "rigl_null": ("null control: drop 1e-7, no weight moves", {"drop_fraction": 1e-7}),
    # late like rigl_n3 (the first update at step 50, after one-cycle's peak at 45) but 11 updates, not 3
    "rigl_late_many": ("first update at step 50, then every 10 steps (11 updates)",
                       {"num_updates": 0, "update_freq": 10, "start": 50}),
}
# Controls that separate causes (each over the same seeds, distilled from the same teacher where marked):
# key -> (label, kind, distill). one-cycle's lr peak moved from 30% to 10% of the run, a fair dense baseline
# (the sparse rows' one-cycle, with and without KD) and gradual magnitude pruning to the same count.
CONTROLS = {
    "static_kd_pct10": ("static 80% + KD, one-cycle pct_start 0.1", "static_pct10", True),
    "rigl_kd_pct10": ("RigL 80% + KD, one-cycle pct_start 0.1", "rigl_pct10", True),
    "dense_onecycle": ("dense, one-cycle (no KD)", "dense_onecycle", False),
    "dense_onecycle_kd": ("dense + KD, one-cycle", "dense_onecycle", True),
    "gmp_kd": ("GMP to 80% of all params + KD, one-cycle", "gmp", True),
}


def _student(config):
    # every step's loss logged: the report shows it around each RigL update, the rows' and static_kd's
    config.train.update(steps=STUDENT_STEPS, eval_every=0, checkpoint_every=STUDENT_STEPS, log_every=1)
    return config


def _sparse(tiny, kd):
    """Static 80% of all params + one-cycle; the study wires the teacher (or none) by the row's distill."""
    config = _student(kd.sparse_kd_onecycle(tiny.get_config(), teacher_dir="", layout="overall80"))
    config.optim.learning_rate = 3e-3
    return config


def _rigl(tiny, kd, rigl, settings):
    config = rigl.add_rigl(_sparse(tiny, kd))
    config.sparsity.rigl.update(**{"update_freq": 0, "start": 0, **settings})  # num_updates > 0 sets both
    return config


# The horizon: static + KD against RigL + KD at these lengths, RigL with the original's spacing scaled to each
# run (its 1000 updates over the run, every 0.1% of it: every step at 150 and 1,000 steps, every 4 at 4,000;
# the first after one interval), drop 0.3 and the original's cosine, global ranking.
HORIZONS = (150, 1000, 4000)


def _at_horizon(config, steps):
    # checkpoints every 500 steps, so that a long row resumes; the loss every step up to 150, else every 50
    # (and every step around each RigL update, which the loop logs anyway)
    config.train.update(steps=steps, checkpoint_every=min(steps, 500), log_every=1 if steps <= STUDENT_STEPS else 50)
    return config


def _control(tiny, kd, rigl, kind):
    if kind == "static_pct10":
        config = _sparse(tiny, kd)
    elif kind == "rigl_pct10":
        config = _rigl(tiny, kd, rigl, RIGL_ORIGINAL)
    elif kind == "dense_onecycle":  # the sparse rows' optimizer, schedule and distillation settings, dense
        sparse = _sparse(tiny, kd)
        config = _student(tiny.get_config())
        config.optim = ml_collections.ConfigDict(sparse.optim.to_dict())
        config.distill = ml_collections.ConfigDict(sparse.distill.to_dict())
        return config
    elif kind == "gmp":  # dense for 15 steps, a prune every 15 until step 120 (8 prunes), 30 steps without
        config = load_sibling(__file__, "gmp80_onecycle").add_gmp(
            _sparse(tiny, kd), warmup_steps=15, cooldown_steps=30, prune_period=15, target=0.8, counted_over="")
        return config
    else:
        raise ValueError(f"unknown control {kind!r}")
    config.optim.pct_start = 0.1
    return config


def get_config(horizons=HORIZONS):
    """The preset; `horizons`: the lengths (steps) of its horizon pairs (scripts/reproduce.py --horizons)."""
    if any(int(h) < 1 for h in horizons):
        raise ValueError(f"horizons {tuple(horizons)}: each is a run length in steps, >= 1.")
    c = base_study_config()
    c.name = "tiny"
    c.title = "Sparse BERT study, tiny scale (offline corpus)"
    tiny = load_sibling(__file__, "tiny")
    kd = load_sibling(__file__, "sparse80_kd_onecycle")
    rigl = load_sibling(__file__, "rigl80")

    both = ("study", "ablation")
    add_row(c, "teacher", "bert_1mi (teacher)", tiny.get_config(), seeds=1, parts=both)
    add_row(c, "dense_short", "bert_100k", _student(tiny.get_config()))
    add_row(c, "static", "sparse_80%_onecycle_lr (no KD)", _sparse(tiny, kd))
    add_row(c, "static_kd", "sparse_80%_kd_onecycle_lr", _sparse(tiny, kd), distill=True,
            parts=(*both, "horizon"))
    add_row(c, "rigl_kd", "sparse_80%_kd_onecycle_lr_rigl", _rigl(tiny, kd, rigl, RIGL_ORIGINAL), distill=True,
            parts=both)
    for key, (label, changes) in ABLATION.items():
        add_row(c, key, f"RigL, {label}", _rigl(tiny, kd, rigl, {**RIGL_ORIGINAL, **changes}), distill=True,
                parts=("ablation",))

    for key, (label, kind, distill) in CONTROLS.items():
        add_row(c, key, label, _control(tiny, kd, rigl, kind), distill=distill, parts=("ablation",))

    c.ablation_references = ("static_kd", "rigl_kd")
    for steps in sorted({int(h) for h in horizons}):
        static = "static_kd" if steps == STUDENT_STEPS else f"static_kd_h{steps}"
        if static != "static_kd":
            add_row(c, static, f"static 80% + KD, {steps:,} steps", _at_horizon(_sparse(tiny, kd), steps),
                    distill=True, parts=("horizon",))
        add_row(c, f"rigl_kd_h{steps}", f"RigL 80% + KD, {steps:,} steps, original spacing",
                _at_horizon(_rigl(tiny, kd, rigl, {**RIGL_ORIGINAL, "num_updates": min(1000, steps)}), steps),
                distill=True, parts=("horizon",))
        c.horizon_pairs = list(c.horizon_pairs) + [(steps, static, f"rigl_kd_h{steps}")]
    c.glue.synthetic_sizes = {"train": 256, "validation": 64, "test": 16}
    c.glue.overrides = {"learning_rate": 1e-3, "max_length": 64, "batch_size": 32}
    return c
