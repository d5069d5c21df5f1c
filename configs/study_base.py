"""The original's study at full scale: the original BERT-base runs, the no-distillation control, real GLUE.

    python scripts/reproduce.py --scale base --out runs/study_base [--glue_data_dir DIR] [--pretrain_seeds 3]

Rows: configs/bert_1mi.py (teacher), configs/bert_100k.py, static 80% + one-cycle without distillation
(configs/sparse80_kd_onecycle.py without its teacher: claim 1's control, not in the original),
configs/sparse80_kd_onecycle.py and configs/rigl80.py (the original's layout and RigL: 1000 updates
every 100 steps, drop 0.3 cosine to 0 at the end, global ranking), on Wikipedia + BookCorpus from the
hub, then GLUE (nyu-mll/glue from the hub, or --glue_data_dir) with the protocol's seeds, sparse models
fine-tuned with their pruned weights free to regrow as in the original's table (keep_masks=False, in
OUT/glue_regrow; `--glue_keep_masks both` also the masks-kept setting, in OUT/glue). Expected: the
original's table in docs/original.md (eval loss 1.612 / 2.154 / 2.28 / 2.138; average_glue 77.17 /
71.68 / 72.18 / 72.57). One pretraining seed per row, as the original: each 100k-step row took the
original most of a day on 32 V100s, so three seeds (--pretrain_seeds 3) cost three times that, and with
one seed the report marks every claim "not resolved" (no spread to tell a difference from noise).
GPU hosts and days; on the 2-core CPU of docs/benchmarks.md one BERT-base step at batch 256 x 512 would
take about 9 minutes, so years.
"""
from jax_bert.train.config import load_sibling
from study.rows import add_row, base_study_config


def get_config():
    c = base_study_config()
    c.name = "base"
    c.title = "Sparse BERT study, BERT-base (the original recipe)"
    c.share_teacher_tokenizer = False  # all rows use bert-base-cased
    c.seeds = 1
    add_row(c, "teacher", "bert_1mi (teacher)", load_sibling(__file__, "bert_1mi").get_config())
    add_row(c, "dense_short", "bert_100k", load_sibling(__file__, "bert_100k").get_config())
    add_row(c, "static", "sparse_80%_onecycle_lr (no KD)", load_sibling(__file__, "sparse80_kd_onecycle").get_config())
    add_row(c, "static_kd", "sparse_80%_kd_onecycle_lr", load_sibling(__file__, "sparse80_kd_onecycle").get_config(),
            distill=True)
    add_row(c, "rigl_kd", "sparse_80%_kd_onecycle_lr_rigl", load_sibling(__file__, "rigl80").get_config(),
            distill=True)
    c.glue.synthetic = False  # the hub's nyu-mll/glue unless --glue_data_dir
    # The original's table was fine-tuned without re-zeroing (pruned weights could regrow): compare like with
    # like. `--glue_keep_masks both` adds the masks-kept runs (OUT/glue), labelled in the table.
    c.glue.keep_masks = (False,)
    return c
