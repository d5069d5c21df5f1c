"""What BERT computes does not depend on how far a batch is padded, nor on the classifier computing only
the first position of the last layer: eval logits, and training-mode (dropout) outputs with
BertConfig.dropout_layout_length, on a batch whose rows have very different lengths."""
import jax
import numpy as np
import pytest

import jax_bert
from jax_bert import model
from jax_bert.model import bert

CFG = model.BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                       intermediate_size=48, max_position_embeddings=64, num_labels=3)
LENGTHS = (3, 17, 9, 40, 2, 31)  # real tokens per row; the longest fits the 40-position bucket


def batch(width: int):
    rng = np.random.default_rng(0)
    ids = np.zeros((len(LENGTHS), width), np.int32)
    types = np.zeros_like(ids)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = rng.integers(1, CFG.vocab_size, n)
        types[i, n // 2:n] = 1
    return ids, (ids != 0).astype(np.int32), types


@pytest.fixture(scope="module")
def params():
    return model.init_params(CFG, jax.random.key(0), "classifier")


def test_eval_logits_do_not_depend_on_padding(params):
    short, full = (jax_bert.classify(CFG, params, *batch(w)) for w in (40, 64))
    np.testing.assert_allclose(short, full, rtol=1e-5, atol=1e-5)


def train_logits(config, params, width, rng=jax.random.key(5)):
    return model.apply(config, params, *batch(width), head="classifier", dropout_rng=rng)


def test_training_with_a_dropout_layout_does_not_depend_on_padding(params):
    cfg = CFG.replace(dropout_layout_length=64)
    np.testing.assert_allclose(train_logits(cfg, params, 40), train_logits(cfg, params, 64),
                               rtol=1e-5, atol=1e-5)
    # Without the layout the masks are laid out for each width, so padding changes the numbers.
    assert np.abs(train_logits(CFG, params, 40) - train_logits(CFG, params, 64)).max() > 1e-3
    with pytest.raises(ValueError, match="exceeds dropout_layout_length"):
        train_logits(CFG.replace(dropout_layout_length=32), params, 40)


def encoder_output(head, params, rng):
    """The encoder's output (captured) when the whole model runs in training mode with `head`."""
    _, state = bert.Bert(CFG, head, deterministic=False).apply(
        {"params": params}, *batch(64), rngs={"dropout": rng}, capture_intermediates=True,
        mutable=["intermediates"])
    return state["intermediates"]["bert"]["encoder"]["__call__"][0]


def test_the_classifier_computes_the_first_position_of_every_position_model(params):
    rng = jax.random.key(3)
    first = encoder_output("classifier", params, rng)
    body = {"bert": {k: v for k, v in params["bert"].items() if k != "pooler"}}
    every = encoder_output("none", body, rng)
    assert first.shape == (len(LENGTHS), 1, CFG.hidden_size) and every.shape[1] == 64
    np.testing.assert_allclose(first[:, 0], every[:, 0], rtol=1e-5, atol=1e-5)  # dropout included
    # and the same holds in eval mode, against the scanned layers, which compute every position
    np.testing.assert_allclose(jax_bert.classify(CFG.replace(scan_layers=True), params, *batch(64)),
                               jax_bert.classify(CFG, params, *batch(64)), rtol=1e-5, atol=1e-5)
