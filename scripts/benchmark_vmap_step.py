"""Micro-benchmark behind the GLUE speed note: the gradient of a tiny BERT classifier for one seed
against the same gradient vmapped over 10 seeds, in one process.

    python scripts/benchmark_vmap_step.py 0.1    # dropout 0.1 (training)
    python scripts/benchmark_vmap_step.py 0.0    # no dropout
"""
import time, jax, jax.numpy as jnp, numpy as np
from jax_bert import model
from jax_bert.config import BertConfig
import sys
drop = float(sys.argv[1])
cfg = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64, hidden_dropout_prob=drop, attention_probs_dropout_prob=drop, num_labels=2)
p = model.init_params(cfg, jax.random.key(0), "classifier")
B, L, S = 32, 64, 10
ids = jnp.ones((B, L), jnp.int32)
def loss(p, ids, rng):
    out = model.apply(cfg, p, ids, head="classifier", dropout_rng=rng)
    return out.sum()
g1 = jax.jit(jax.grad(loss))
ps = jax.tree.map(lambda x: jnp.stack([x]*S), p)
gS = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None, 0)))
rngs = jax.random.split(jax.random.key(1), S)
r = jax.random.key(2)
jax.block_until_ready(g1(p, ids, r)); jax.block_until_ready(gS(ps, ids, rngs))
t=time.time()
for _ in range(20): jax.block_until_ready(g1(p, ids, r))
a=(time.time()-t)/20
t=time.time()
for _ in range(20): jax.block_until_ready(gS(ps, ids, rngs))
b=(time.time()-t)/20
print(f"drop {drop}: 1 seed {a*1e3:.1f} ms, {S} seeds vmapped {b*1e3:.1f} ms, per seed {b/S*1e3:.1f} ms, speedup {a*S/b:.2f}x")
