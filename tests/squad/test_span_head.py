"""The span head (jax_bert/finetune/heads.py: SPAN) against Hugging Face's BertForQuestionAnswering on a
tiny random model with the same weights: start / end logits at every position and the loss."""
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

import jax_bert
from jax_bert.finetune.heads import SPAN

CFG = dict(vocab_size=211, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=80,
           max_position_embeddings=32, type_vocab_size=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    hf = transformers.BertForQuestionAnswering(transformers.BertConfig(**CFG))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random init leaves biases at 0 and LayerNorm at 1: perturb everything
        for p in hf.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    hf.eval()
    path = tmp_path_factory.mktemp("qa")
    hf.bert.save_pretrained(path)  # the body; the qa_outputs layer is converted here (a transpose)
    config, params = jax_bert.load_hf(str(path))
    params = {"bert": params["bert"],
              "qa_outputs": {"kernel": jnp.asarray(hf.qa_outputs.weight.detach().numpy().T),
                             "bias": jnp.asarray(hf.qa_outputs.bias.detach().numpy())}}
    return hf, config, params


def _batch(padded: bool, seed=0, batch=4, length=24):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, CFG["vocab_size"], size=(batch, length))
    mask = np.ones((batch, length), np.int64)
    if padded:
        mask[1, length - 6:] = 0
        mask[3, 9:] = 0
    ids[mask == 0] = 0
    types = (np.arange(length)[None] >= rng.integers(3, 8, size=(batch, 1))).astype(np.int64) * mask
    real = mask.sum(1)
    start = rng.integers(0, real)
    end = np.minimum(start + rng.integers(0, 4, size=batch), real - 1)
    return ids, mask, types, np.stack([start, end], 1)


@pytest.mark.parametrize("padded", [False, True])
def test_span_logits_and_loss_match_hf(models, padded):
    hf, config, params = models
    ids, mask, types, labels = _batch(padded)
    batch = {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray(mask), "token_type_ids": jnp.asarray(types),
             "labels": jnp.asarray(labels), "weights": jnp.ones(len(ids), jnp.float32)}
    ours = np.asarray(SPAN.apply(config, params, batch))
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types),
                 start_positions=torch.tensor(labels[:, 0]), end_positions=torch.tensor(labels[:, 1]))
    np.testing.assert_allclose(ours[..., 0], out.start_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours[..., 1], out.end_logits.numpy(), atol=1e-4)
    loss = float(SPAN.loss(jnp.asarray(ours), batch))
    if not padded:
        assert loss == pytest.approx(float(out.loss), abs=1e-5)
    else:  # padding positions are left out of the softmax (the bucket must not matter); HF counts them
        real = torch.tensor(mask) != 0
        masked = [torch.where(real, x, torch.tensor(-1e9)) for x in (out.start_logits, out.end_logits)]
        ref = sum(torch.nn.functional.cross_entropy(m, torch.tensor(labels[:, i])) for i, m in enumerate(masked)) / 2
        assert loss == pytest.approx(float(ref), abs=1e-5)
        assert loss != pytest.approx(float(out.loss), abs=1e-3)
    # Weight-0 rows count nowhere: the loss of the real rows alone.
    w = np.array([1, 0, 1, 0], np.float32)
    half = float(SPAN.loss(jnp.asarray(ours), dict(batch, weights=jnp.asarray(w))))
    keep = w > 0
    alone = float(SPAN.loss(jnp.asarray(ours[keep]), {k: v[keep] for k, v in batch.items()}))
    assert half == pytest.approx(alone, abs=1e-6)


def test_span_labels_are_checked():
    assert SPAN.label_problem(np.zeros((3,), np.int32), 2, 16).startswith("span labels must be [examples, 2]")
    assert "start <= end" in SPAN.label_problem(np.array([[3, 2]]), 2, 16)
    assert SPAN.label_problem(np.array([[3, 16]]), 2, 16) is not None
    assert SPAN.label_problem(np.array([[0, 0], [3, 5]]), 2, 16) is None
