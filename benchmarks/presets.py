"""The model sizes the benchmarks run, one definition each (`--preset NAME` means the same model in
every benchmark). vocab 30,522 is BERT's uncased vocabulary."""
from __future__ import annotations

from jax_bert.model import BertConfig

ARCHITECTURES = {
    "tiny": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128, vocab_size=1000),
    "small": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024,
                  vocab_size=30522),
    # configs/tiny.py's model: the offline main job and configs/tiny_rigl.py.
    "tiny_run": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512,
                     vocab_size=8000),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=30522),
}


def bert_config(preset: str, **changes) -> BertConfig:
    """The preset's BertConfig (every other field BertConfig's default), then `changes`."""
    if preset not in ARCHITECTURES:
        raise ValueError(f"unknown preset {preset!r}; use one of {sorted(ARCHITECTURES)}.")
    return BertConfig(**ARCHITECTURES[preset], **changes)
