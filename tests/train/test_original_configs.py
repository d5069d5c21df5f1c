"""The table configs reproduce the original's sparse layout on BERT-base's real parameter shapes, and
the RigL schedule can be given relative to the run."""
import math

import jax
import numpy as np
import pytest

import sparsity
from helpers import ROOT
from jax_bert import model
from jax_bert.model import BertConfig
from jax_bert.train import sparse_config
from jax_bert.train.config import load_config_file

BERT_BASE_CASED_VOCAB = 28996


def config_and_shapes(name: str, layout: str):
    config = load_config_file(f"{ROOT}/configs/{name}.py").get_config(layout)
    fields = {**config.model.to_dict(), "vocab_size": BERT_BASE_CASED_VOCAB}
    shapes = model.abstract_params(BertConfig(**fields))
    return config, shapes


@pytest.mark.parametrize("name", ["sparse80_kd_onecycle", "rigl80"])
def test_the_original_layout_keeps_154_of_768_and_614_of_3072(name):
    config, shapes = config_and_shapes(name, "original")
    alloc = sparsity.allocate(shapes, sparse_config.sparsity_spec(config.sparsity))
    kernels = {p: a for p, a in alloc.items() if p.endswith("kernel")}
    assert len(kernels) == 6  # query, key, value, attention output, intermediate, output (scanned: 12 layers each)
    for path, a in kernels.items():
        layers, fan_in, units = dict(sparsity.named_leaves(shapes))[path].shape
        assert layers == 12
        assert a.n_keep == {768: 154, 3072: 614}[fan_in] * units * layers, path
    emb = alloc["bert/embeddings/word_embeddings/embedding"]
    assert emb.n_keep == 154 * BERT_BASE_CASED_VOCAB
    # The original's 79.58%: zeros over the BERT body (embeddings and encoder; its MLM model has no pooler).
    body = sum(math.prod(x.shape) for p, x in sparsity.named_leaves(shapes) if p.startswith("bert/"))
    kept = sum(a.n_keep for a in alloc.values()) + body - sum(a.size for a in alloc.values())
    assert round(100 * (1 - kept / body), 2) == 79.58
    # The initialiser really gives every unit (every embedding row) that count, on the real shapes.
    out = np.asarray(sparsity.fixed_fan_in(jax.random.key(0), (3072, 768), 0.8))
    np.testing.assert_array_equal(out.sum(axis=0), np.full(768, 614))
    rows = np.asarray(sparsity.fixed_fan_in(jax.random.key(1), (BERT_BASE_CASED_VOCAB, 768), 0.8, fan_in_axis=-1))
    np.testing.assert_array_equal(rows.sum(axis=1), np.full(BERT_BASE_CASED_VOCAB, 154))


def test_the_overall80_variant_is_exactly_80_percent_of_all_parameters():
    config, shapes = config_and_shapes("rigl80", "overall80")
    alloc = sparsity.allocate(shapes, sparse_config.sparsity_spec(config.sparsity))
    total = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    kept = sum(a.n_keep for a in alloc.values()) + total - sum(a.size for a in alloc.values())
    assert kept == math.floor(0.2 * total + 0.5)
    query = alloc["bert/encoder/layers/attention/self/query/kernel"]
    assert 0.8080 < query.sparsity < 0.8090  # 80.85% per tensor on BERT-base
    assert round(query.n_keep / (12 * 768)) == 147  # per unit, about 147 of 768


def test_the_rigl_config_is_the_originals_schedule():
    config, _ = config_and_shapes("rigl80", "original")
    schedule = sparse_config.rigl_schedule(config.sparsity, config.train.steps)
    assert (schedule.update_freq, schedule.start, schedule.end) == (100, 100, 100_000)
    assert (schedule.drop_fraction, schedule.mode, schedule.reinit_when_same) == (0.3, "global", True)


def test_rigl_schedule_relative_to_the_run():
    config, _ = config_and_shapes("rigl80", "original")
    r = config.sparsity.rigl
    r.num_updates = 1000  # the original's proportion, at any length
    assert sparse_config.rigl_schedule(config.sparsity, 100_000)[:3] == (100, 100, 100_000)
    assert sparse_config.rigl_schedule(config.sparsity, 15_000)[:3] == (15, 15, 15_000)
    r.end_fraction = 0.75
    assert sparse_config.rigl_schedule(config.sparsity, 100_000)[:3] == (75, 75, 75_000)
    with pytest.raises(ValueError, match="num_updates 1000 is more than the 150 steps"):
        sparse_config.rigl_schedule(config.sparsity, 200)
    r.num_updates = -1
    with pytest.raises(ValueError, match="num_updates must be >= 0"):
        sparse_config.rigl_schedule(config.sparsity, 1_000)
