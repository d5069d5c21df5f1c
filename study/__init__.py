"""The study: pretraining rows over seeds, their GLUE, statistics, the report (`scripts/reproduce.py`).

    pipeline.py  the stages (pretrain each row and seed, GLUE for each row's models, the reports), resumable
    rows.py      a preset's table of rows (configs/study_*.py build it with `add_row`)
    stats.py     mean ± std and 95% interval over seeds; each claim on paired per-seed differences
    report.py    report.md, ablation.md and horizon.md
"""
