"""The whole study at tiny scale, offline, on a 2-core CPU in about 25 minutes.

    python scripts/reproduce.py --scale tiny --out runs/study_tiny

Four 2-layer BERTs on the standard library's docstrings (teacher 400 steps; dense short run, static
80% + KD + one-cycle and RigL 80% + KD + one-cycle 150 steps each), then all nine GLUE tasks on
small SYNTHETIC GLUE-format data that the project generates (the report's title says so), with the
protocol's seed counts. Expect perplexities of a few hundred and GLUE numbers that mean little
beyond "the pipeline works": the synthetic tasks are easy (a cue word) or hard (word overlap).
"""
from glue.study import base_study_config
from jax_bert.train.config import load_sibling


def get_config():
    c = base_study_config()
    c.name = "tiny"
    c.title = "Sparse BERT study, tiny scale (offline corpus)"
    tiny = load_sibling(__file__, "tiny")
    kd = load_sibling(__file__, "sparse80_kd_onecycle")
    rigl = load_sibling(__file__, "rigl80")

    teacher = tiny.get_config()
    dense_short = tiny.get_config()
    dense_short.train.update(steps=150, eval_every=0, checkpoint_every=150)
    # The study sets the teacher's path. At this size the dense params are a large share of the model:
    # 80% per tensor would be far below 80% overall, so the layout is the overall80 variant.
    sparse_kd = kd.sparse_kd_onecycle(tiny.get_config(), teacher_dir="", layout="overall80")
    sparse_kd.train.update(steps=150, eval_every=0, checkpoint_every=150)
    sparse_kd.optim.learning_rate = 3e-3
    rigl_kd = rigl.add_rigl(kd.sparse_kd_onecycle(tiny.get_config(), teacher_dir="", layout="overall80"))
    rigl_kd.train.update(steps=150, eval_every=0, checkpoint_every=150)
    rigl_kd.optim.learning_rate = 3e-3
    rigl_kd.sparsity.rigl.update(update_freq=25, start=25)
    c.stages.update(teacher=teacher, dense_short=dense_short, sparse_kd=sparse_kd, rigl_kd=rigl_kd)

    c.glue.synthetic_sizes = {"train": 256, "validation": 64, "test": 16}
    c.glue.overrides = {"learning_rate": 1e-3, "max_length": 64, "batch_size": 32}
    return c
