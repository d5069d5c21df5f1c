"""The original's trifecta family (configs/rigl85.py, rigl90.py, rigl_2x_wide.py, rigl_4x_wide.py,
small_trifecta.py): each config's count of nonzero weights of the BERT body, computed from its masks'
kept counts on abstract shapes (sparsity.allocate reads shapes only: nothing is allocated), against the
original's stated counts and the count in the config's own docstring.

Two counting conventions, both the original's:
- BERT-base ("16.56 M on-params", "11.41 M"): the weights of the body (bert/embeddings, bert/encoder)
  that the masks keep, every dense param (biases, LayerNorms, position and token-type embeddings)
  included: `kept_in_body`.
- small BERT ("This will have 5,481,940 params"): nonzero params of the body at initialisation, when the
  biases and LayerNorm shifts (every leaf named `bias`) are still 0: `kept_in_body - zero_at_init`.
"""
import math
import re

import jax
import numpy as np
import pytest

import sparsity
from helpers import ROOT
from jax_bert import model
from jax_bert.model import BertConfig
from jax_bert.train import sparse_config
from jax_bert.train.config import load_config_file

BERT_BASE_CASED_VOCAB = 28996  # every config of the family uses bert-base-cased's tokenizer


def load(name: str, *args):
    return load_config_file(f"{ROOT}/configs/{name}.py").get_config(*args)


def body_counts(config) -> tuple[int, int, int]:
    """(weights the masks keep in the body, dense ones included; body params that are 0 at init
    besides the masked ones; all body params), from abstract shapes."""
    shapes = model.abstract_params(BertConfig(**{**config.model.to_dict(), "vocab_size": BERT_BASE_CASED_VOCAB}))
    alloc = sparsity.allocate(shapes, sparse_config.sparsity_spec(config.sparsity))
    body = {p: math.prod(x.shape) for p, x in sparsity.named_leaves(shapes) if p.startswith("bert/")}
    masked_off = sum(a.size - a.n_keep for p, a in alloc.items() if p in body)
    zero_at_init = sum(n for p, n in body.items() if p.endswith("/bias"))
    return sum(body.values()) - masked_off, zero_at_init, sum(body.values())


def docstring_of(name: str) -> str:
    return " ".join(open(f"{ROOT}/configs/{name}.py").read().split('"""')[1].split())


@pytest.mark.parametrize("name, stated, exact", [
    ("rigl_2x_wide", "16.56", 16_561_784),
    ("rigl_4x_wide", "11.41", 11_417_936),  # 11.4179 M: the original cut it after two decimals
    ("rigl85", None, 16_577_932),
    ("rigl90", None, 11_255_156),
])
def test_bert_base_family_counts_what_the_original_stated(name, stated, exact):
    kept, _, total = body_counts(load(name))
    assert kept == exact
    if stated is not None:  # "NN.NN M on-params", its two decimals cut
        assert f"{math.floor(kept / 1e4) / 100:.2f}" == stated
    doc = docstring_of(name)
    assert f"{exact:,} of {total:,}" in doc, doc


# variant -> the original's stated count, where it agrees with its own stated sparsity
@pytest.mark.parametrize("variant, stated_count, stated_zeros", [
    ("80", 5_481_940, "80.08"), ("85", None, "85.13"), ("90", 2_745_672, "90.02"), ("2x", 4_057_928, "94.94"),
    ("4x", None, "98.97")])
def test_small_family_counts_what_the_original_stated(variant, stated_count, stated_zeros):
    config = load("small_trifecta", variant)
    kept, zero_at_init, total = body_counts(config)
    at_init = kept - zero_at_init
    if stated_count is not None:
        assert at_init == stated_count
    zeros = 100 * (1 - at_init / total)
    assert stated_zeros in (f"{zeros:.2f}", f"{math.floor(100 * zeros) / 100:.2f}"), zeros
    assert f"| {variant} |" in docstring_of("small_trifecta") and f"{at_init:,}" in docstring_of("small_trifecta")


def test_biases_start_at_zero():
    """The small configs' convention rests on BERT's initialisation: every `bias` leaf starts at 0."""
    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16)
    leaves = dict(sparsity.named_leaves(model.init_params(cfg, jax.random.key(0))))
    biases = [p for p in leaves if p.endswith("/bias")]
    assert biases and all(not np.any(np.asarray(leaves[p])) for p in biases)
    assert all(np.any(np.asarray(x)) for p, x in leaves.items() if not p.endswith("/bias"))


def test_family_values_are_the_originals():
    for name, level, lr, hidden in [("rigl85", 0.85, 1e-3, 768), ("rigl90", 0.90, 1.2e-3, 768),
                                    ("rigl_2x_wide", 0.9595, 1.5e-3, 1536), ("rigl_4x_wide", 0.99365, 5e-3, 3072)]:
        c = load(name)
        assert (c.sparsity.level, c.optim.learning_rate, c.model.hidden_size) == (level, lr, hidden), name
        assert c.model.intermediate_size == 4 * hidden and c.model.num_attention_heads == 12
        assert c.sparsity.rigl.enabled and c.distill.teachers and c.train.global_batch_size == 256
    with pytest.raises(ValueError, match="unknown small trifecta variant '3x'"):
        load("small_trifecta", "3x")
    assert re.search(r"\(variants 80, 85, 90, 2x, 4x\)", docstring_of("small_trifecta"))
