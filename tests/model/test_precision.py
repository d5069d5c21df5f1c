"""bf16 compute keeps the vocabulary projection (and so the losses and a teacher's targets) in float32."""
import jax
import jax.numpy as jnp
import numpy as np

from jax_bert import model
from jax_bert.model import BertConfig


def test_bf16_model_gives_float32_vocabulary_logits():
    f32 = BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=16)
    bf16 = f32.replace(dtype="bfloat16")
    params = model.init_params(f32, jax.random.key(0))
    ids = jax.random.randint(jax.random.key(1), (2, 12), 5, 500)
    positions = jnp.array([[1, 4, 7], [2, 3, 9]])
    apply = jax.jit(model.apply, static_argnums=0)  # one compiled program, not hundreds of op-by-op ones
    low = apply(bf16, params, ids, masked_positions=positions)
    high = apply(f32, params, ids, masked_positions=positions)
    assert low.dtype == jnp.float32
    # Not bf16 values cast up: most logits carry more than bf16's 8 bits of mantissa.
    as_bf16 = np.asarray(low.astype(jnp.bfloat16).astype(jnp.float32))
    assert np.mean(np.asarray(low) != as_bf16) > 0.9
    # The bf16 body still rounds (relative error ~1e-2), the projection adds nothing beyond it.
    np.testing.assert_allclose(low, high, atol=0.05, rtol=0.05)
    # The softmax of the float32 logits keeps probabilities that bf16 logits would flatten.
    assert jax.nn.softmax(low).dtype == jnp.float32


def _equations(jaxpr):
    """Every equation of a jaxpr, nested ones (pjit, custom_jvp, scans) included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


def test_vocabulary_projection_runs_at_highest_precision_on_an_unrounded_float32_transform():
    """On a GPU a default-precision float32 matmul may run in TF32 or bf16 passes; HIGHEST forbids it. The
    transform's LayerNorm must hand the projection float32 values, not bf16 ones cast up."""
    cfg = BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=16, dtype="bfloat16")
    params = model.init_params(cfg, jax.random.key(0))
    ids = jnp.ones((2, 12), jnp.int32)
    jaxpr = jax.make_jaxpr(lambda p: model.apply(cfg, p, ids, masked_positions=jnp.array([[1], [2]])))(params)
    eqns = list(_equations(jaxpr.jaxpr))
    made_by = {id(out): e for e in eqns for out in e.outvars}
    projections = [e for e in eqns if e.primitive.name == "dot_general" and e.outvars[0].aval.shape[-1] == 500]
    assert len(projections) == 1
    proj = projections[0]
    assert set(proj.params["precision"]) == {jax.lax.Precision.HIGHEST}
    lhs = proj.invars[0]
    assert lhs.aval.dtype == jnp.float32
    producer = made_by.get(id(lhs))
    # the float32 transform output is not a bf16 value converted up
    assert not (producer is not None and producer.primitive.name == "convert_element_type"
                and producer.invars[0].aval.dtype == jnp.bfloat16)
