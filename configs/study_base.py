"""The original's study at full scale: the four original BERT-base runs and real GLUE.

    python scripts/reproduce.py --scale base --out runs/study_base [--glue_data_dir DIR]

Stages: configs/bert_1mi.py (teacher), configs/bert_100k.py, configs/sparse80_kd_onecycle.py and
configs/rigl80.py, on Wikipedia + BookCorpus from the hub, then GLUE (nyu-mll/glue from the hub, or
--glue_data_dir) with the protocol's seeds. Expected: the original's table in docs/original.md (eval loss
1.612 / 2.154 / 2.28 / 2.138; average_glue 77.17 / 71.68 / 72.18 / 72.57). GPU hosts and days.
"""
from glue.study import base_study_config
from jax_bert.train.config import load_sibling


def get_config():
    c = base_study_config()
    c.name = "base"
    c.title = "Sparse BERT study, BERT-base (the original recipe)"
    c.share_teacher_tokenizer = False  # all four use bert-base-cased
    c.stages.update(
        teacher=load_sibling(__file__, "bert_1mi").get_config(),
        dense_short=load_sibling(__file__, "bert_100k").get_config(),
        sparse_kd=load_sibling(__file__, "sparse80_kd_onecycle").get_config(),
        rigl_kd=load_sibling(__file__, "rigl80").get_config(),
    )
    c.glue.synthetic = False  # the hub's nyu-mll/glue unless --glue_data_dir
    return c
