"""The whole study at small scale: BERT-small (4 layers, hidden 256) on the offline corpus, three seeds.

    python scripts/reproduce.py --scale small --out runs/study_small [--glue_data_dir DIR]

The tiny study's five rows (configs/study_tiny.py) at BERT-small size: teacher 5,000 steps (one seed),
the dense short run, static 80% without distillation, static 80% + KD and RigL 80% + KD 1,500 steps
each over seeds 0, 1, 2, batch 64, length 128; GLUE at the protocol's length 128 and seed counts for
the seed-0 models, on real GLUE from --glue_data_dir or else synthetic tasks. No network needed.
Mapping to the original: teacher 3.3x the students' length (the original 10x); the dense runs
warmup_linear with lr 5e-4, the sparse rows the original's one-cycle (max lr 1.2e-3); RigL relative to
the run with the tiny study's values (configs/study_tiny.py RIGL_ORIGINAL: the same number of
updates, drop fraction and end fraction, so the same proportions of the run; docs/study.md).
Wall time on a 2-core CPU: about 10 hours (docs/benchmarks.md: measured steps, extrapolated); minutes on
one GPU.
"""
from jax_bert.train.config import load_sibling
from study.rows import add_row, base_study_config

STUDENT_STEPS = 1500


def _small(config, steps):
    config.model.update(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    config.tokenizer.vocab_size = 16000
    config.train.update(steps=steps, global_batch_size=64, seq_len=128, log_every=50, eval_every=0,
                        checkpoint_every=500)
    return config


def get_config():
    c = base_study_config()
    c.name = "small"
    c.title = "Sparse BERT study, small scale (offline corpus)"
    tiny = load_sibling(__file__, "tiny")
    kd = load_sibling(__file__, "sparse80_kd_onecycle")
    rigl = load_sibling(__file__, "rigl80")
    tiny_study = load_sibling(__file__, "study_tiny")

    teacher = _small(tiny.get_config(), 5000)
    teacher.optim.update(learning_rate=5e-4, warmup_steps=500)
    dense_short = _small(tiny.get_config(), STUDENT_STEPS)
    dense_short.optim.update(learning_rate=5e-4, warmup_steps=150)

    def sparse():  # at this size the dense params are a large share: 80% of ALL params (overall80)
        return _small(kd.sparse_kd_onecycle(tiny.get_config(), teacher_dir="", layout="overall80"), STUDENT_STEPS)

    rigl_kd = rigl.add_rigl(sparse())
    rigl_kd.sparsity.rigl.update(update_freq=0, start=0, **tiny_study.RIGL_ORIGINAL)  # num_updates sets both
    add_row(c, "teacher", "bert_1mi (teacher)", teacher, seeds=1)
    add_row(c, "dense_short", "bert_100k", dense_short)
    add_row(c, "static", "sparse_80%_onecycle_lr (no KD)", sparse())
    add_row(c, "static_kd", "sparse_80%_kd_onecycle_lr", sparse(), distill=True)
    add_row(c, "rigl_kd", "sparse_80%_kd_onecycle_lr_rigl", rigl_kd, distill=True)
    return c
