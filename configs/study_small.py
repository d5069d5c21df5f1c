"""The whole study at small scale: BERT-small (4 layers, hidden 256) on the offline corpus.

    python scripts/reproduce.py --scale small --out runs/study_small [--glue_data_dir DIR]

Teacher 5,000 steps, the three other rows 1,500 steps each, batch 64, length 128; GLUE at the
protocol's length 128 and seed counts, on real GLUE from --glue_data_dir or else synthetic tasks.
Hours on a 2-core CPU; minutes on one GPU. No network needed.
"""
from glue.study import base_study_config
from jax_bert.train.config import load_sibling


def _small(config):
    config.model.update(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    config.tokenizer.vocab_size = 16000
    config.train.update(global_batch_size=64, seq_len=128, log_every=50, eval_every=0, checkpoint_every=500)
    return config


def get_config():
    c = base_study_config()
    c.name = "small"
    c.title = "Sparse BERT study, small scale (offline corpus)"
    tiny = load_sibling(__file__, "tiny")
    kd = load_sibling(__file__, "sparse80_kd_onecycle")
    rigl = load_sibling(__file__, "rigl80")
    teacher = _small(tiny.get_config())
    teacher.train.steps = 5000
    teacher.optim.update(learning_rate=5e-4, warmup_steps=500)
    dense_short = _small(tiny.get_config())
    dense_short.train.steps = 1500
    dense_short.optim.update(learning_rate=5e-4, warmup_steps=150)
    # At this size the dense params are a large share: 80% per tensor would be far below 80% overall.
    sparse_kd = _small(kd.sparse_kd_onecycle(tiny.get_config(), teacher_dir="", layout="overall80"))
    sparse_kd.train.steps = 1500
    rigl_kd = rigl.add_rigl(_small(kd.sparse_kd_onecycle(tiny.get_config(), teacher_dir="",
                                                         layout="overall80")))
    rigl_kd.train.steps = 1500
    c.stages.update(teacher=teacher, dense_short=dense_short, sparse_kd=sparse_kd, rigl_kd=rigl_kd)
    return c
