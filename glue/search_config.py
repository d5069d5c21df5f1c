"""Every key of a GLUE hyper-parameter search (`scripts/glue.py --search glue/search_config.py`), with its
default: the keys every task family's search shares, jax_bert/finetune/search_config.py (this file is a
search file too, and a file of your own may start from `glue.search_config.get_config()` as well).
"""
from jax_bert.finetune.search_config import SCORE_ON, get_config, grid_values, validate

__all__ = ["SCORE_ON", "get_config", "grid_values", "validate"]
