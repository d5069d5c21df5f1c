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
                       intermediate_size=48, max_position_embeddings=128, num_labels=3)
FULL = 128  # GLUE's max_length: the padding every shorter layout is compared with
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
    short, full = (jax_bert.classify(CFG, params, *batch(w)) for w in (40, FULL))
    np.testing.assert_allclose(short, full, rtol=1e-5, atol=1e-5)


# Jitted: op by op, every model call compiles hundreds of small programs (the arithmetic is the same).
apply = jax.jit(model.apply, static_argnums=0, static_argnames="head")


def train_logits(config, params, width, rng=jax.random.key(5)):
    return apply(config, params, *batch(width), head="classifier", dropout_rng=rng)


def test_training_with_a_dropout_layout_does_not_depend_on_padding(params):
    cfg = CFG.replace(dropout_layout_length=FULL)
    np.testing.assert_allclose(train_logits(cfg, params, 40), train_logits(cfg, params, FULL),
                               rtol=1e-5, atol=1e-5)
    # Without the layout the masks are laid out for each width, so padding changes the numbers.
    assert np.abs(train_logits(CFG, params, 40) - train_logits(CFG, params, FULL)).max() > 1e-3
    with pytest.raises(ValueError, match="exceeds dropout_layout_length"):
        train_logits(CFG.replace(dropout_layout_length=32), params, 40)


def encoder_output(head, params, rng):
    """The encoder's output (captured) when the whole model runs in training mode with `head`."""
    _, state = bert.Bert(CFG, head, deterministic=False).apply(
        {"params": params}, *batch(FULL), rngs={"dropout": rng}, capture_intermediates=True,
        mutable=["intermediates"])
    return state["intermediates"]["bert"]["encoder"]["__call__"][0]


def test_the_classifier_computes_the_first_position_of_every_position_model(params):
    rng = jax.random.key(3)
    first = encoder_output("classifier", params, rng)
    body = {"bert": {k: v for k, v in params["bert"].items() if k != "pooler"}}
    every = encoder_output("none", body, rng)
    assert first.shape == (len(LENGTHS), 1, CFG.hidden_size) and every.shape[1] == FULL
    np.testing.assert_allclose(first[:, 0], every[:, 0], rtol=1e-5, atol=1e-5)  # dropout included
    # and the same holds in eval mode, against the scanned layers, which compute every position
    np.testing.assert_allclose(jax_bert.classify(CFG.replace(scan_layers=True), params, *batch(FULL)),
                               jax_bert.classify(CFG, params, *batch(FULL)), rtol=1e-5, atol=1e-5)


def packed(width: int, tokens: int):
    """The batch at `width` as packed tokens: (input_ids [T], token_type_ids [T], packing)."""
    from jax_bert.model import packing

    ids, mask, types = batch(width)
    slot_token, token_slot = packing.pack_indices(mask.sum(1), width, tokens)
    return (packing.packed_values(ids, token_slot), packing.packed_values(types, token_slot),
            {"slot_token": slot_token, "token_slot": token_slot})


@pytest.mark.parametrize("scan_layers", [False, True])
def test_packed_tokens_compute_what_the_padded_batch_computes(params, scan_layers):
    """Eval logits, training-mode logits (dropout masks included) and gradients of the classifier on
    packed tokens (with dummy rows past the real ones) equal those of the padded batch, and so does the
    body's output alone (the span head's input)."""
    cfg = CFG.replace(dropout_layout_length=FULL, scan_layers=scan_layers)
    p = model.match_layout(params, scan_layers, CFG.num_hidden_layers)
    ids, types, packing = packed(40, sum(LENGTHS) + 13)

    def logits(params, rng, packed_tokens):
        if packed_tokens:
            return apply(cfg, params, ids, None, types, head="classifier", dropout_rng=rng, packing=packing)
        return apply(cfg, params, *batch(FULL), head="classifier", dropout_rng=rng)

    for rng in (None, jax.random.key(9)):
        np.testing.assert_allclose(logits(p, rng, True), logits(p, rng, False), rtol=1e-5, atol=1e-5)
    grads = [jax.jit(jax.grad(lambda q: logits(q, jax.random.key(9), packed_tokens).sum()))(p)
             for packed_tokens in (1, 0)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), *grads)
    # The body alone (the span head's): its packed rows are the padded batch's real positions, dropout included.
    from jax_bert.model.packing import to_padded

    real = batch(40)[1] != 0
    rows = apply(cfg, p, ids, None, types, head="none", dropout_rng=jax.random.key(9), packing=packing)
    full = apply(cfg, p, *batch(FULL), head="none", dropout_rng=jax.random.key(9))
    assert rows.shape == (len(ids), CFG.hidden_size)
    np.testing.assert_allclose(np.asarray(to_padded(rows, packing))[real], np.asarray(full)[:, :40][real],
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="for the classifier head or none, not 'mlm'"):
        apply(cfg, p, ids, None, types, head="mlm", packing=packing)


def test_pack_indices():
    from jax_bert.model import packing

    slot_token, token_slot = packing.pack_indices(np.array([2, 3, 1]), 4, 8)
    assert slot_token.tolist() == [[0, 1, 8, 8], [2, 3, 4, 8], [5, 8, 8, 8]]
    assert token_slot.tolist() == [0, 1, 4, 5, 6, 8, 12, 12]
    with pytest.raises(ValueError, match="6 real tokens do not fit a packed budget of 5"):
        packing.pack_indices(np.array([2, 3, 1]), 4, 5)
