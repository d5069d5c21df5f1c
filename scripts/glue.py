"""Fine-tune a BERT checkpoint on GLUE with every seed of a task vmapped into one training step.

    python scripts/glue.py --checkpoint WORKDIR_OR_HF_DIR --seeds 10 [--tasks cola,rte]
        [--data_dir DIR] [--out DIR] [--config path.py] [--config.KEY=VALUE] [--test_predictions]
    python scripts/glue.py --report_only --out DIR [--out DIR2 ...] [--csv PATH]

See glue/run.py for the outputs and an offline example (synthetic data, tiny checkpoint).
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    from glue import run

    sys.exit(run.main())
