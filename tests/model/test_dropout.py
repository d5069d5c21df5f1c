"""jax_bert.dropout against JAX's own Threefry and flax's nn.Dropout: the same bits, the same masks."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_bert.model import dropout


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4, 5), (16, 4, 33, 31)])
def test_threefry_bits_equal_jax_random_bits(shape):
    for seed in (0, 1, 2**31 + 5):
        key = jax.random.key(seed)
        ours = jax.jit(lambda k: dropout.threefry_bits(jax.random.key_data(k), shape))(key)
        np.testing.assert_array_equal(ours, jax.random.bits(key, shape, jnp.uint32))


def test_threefry_bits_under_vmap_over_keys():
    keys = jax.random.split(jax.random.key(11), 5)
    ours = jax.jit(jax.vmap(lambda k: dropout.threefry_bits(jax.random.key_data(k), (6, 9))))(keys)
    theirs = jax.vmap(lambda k: jax.random.bits(k, (6, 9), jnp.uint32))(keys)
    np.testing.assert_array_equal(ours, theirs)


class _Twice(nn.Module):
    """Two dropouts in one module (two rng draws), ours or flax's."""
    ours: bool
    rate: float

    @nn.compact
    def __call__(self, x):
        cls = dropout.Dropout if self.ours else nn.Dropout
        return cls(self.rate)(cls(self.rate)(x, deterministic=False), deterministic=False)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey], ids=["typed", "raw"])
def test_dropout_equals_flax_dropout(rate, make_key):
    x = jax.random.normal(jax.random.key(0), (4, 13, 24))
    rngs = {"dropout": make_key(3)}
    ours = jax.jit(lambda x: _Twice(True, rate).apply({}, x, rngs=rngs))(x)
    theirs = jax.jit(lambda x: _Twice(False, rate).apply({}, x, rngs=rngs))(x)
    np.testing.assert_array_equal(ours, theirs)
    kept = float((ours != 0).mean())
    assert abs(kept - (1 - rate) ** 2) < 0.05  # really drops, at about the right rate
    # the gradient is the mask / keep_prob, as flax's
    g = jax.grad(lambda x: _Twice(True, rate).apply({}, x, rngs=rngs).sum())(x)
    g_ref = jax.grad(lambda x: _Twice(False, rate).apply({}, x, rngs=rngs).sum())(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6)


def test_edge_rates_and_deterministic():
    x = jnp.ones((3, 4))
    rngs = {"dropout": jax.random.key(0)}
    np.testing.assert_array_equal(dropout.Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs), x)
    np.testing.assert_array_equal(dropout.Dropout(0.3).apply({}, x, deterministic=True), x)
    np.testing.assert_array_equal(dropout.Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs), 0 * x)


def test_other_prng_implementations_fall_back_to_jax_random():
    key = jax.random.key(5, impl="rbg")
    x = jnp.ones((64, 64))
    out = dropout.Dropout(0.25).apply({}, x, deterministic=False, rngs={"dropout": key})
    ref = nn.Dropout(0.25).apply({}, x, deterministic=False, rngs={"dropout": key})
    np.testing.assert_array_equal(out, ref)
    assert abs(float((out == 0).mean()) - 0.25) < 0.03


@pytest.mark.parametrize("shape, layout", [((2, 5, 3), (2, 8, 3)), ((3, 4, 1, 6), (3, 4, 7, 7)),
                                           ((1, 1), (4, 9)), ((6,), (6,))])
def test_a_layout_gives_the_corner_of_the_layout_bits(shape, layout):
    """Padding-invariant masks: an input that is the leading corner of `layout` gets that corner's bits."""
    key = jax.random.key(7)
    ours = jax.jit(lambda k: dropout.threefry_bits(jax.random.key_data(k), shape, layout))(key)
    corner = tuple(slice(0, d) for d in shape)
    np.testing.assert_array_equal(ours, jax.random.bits(key, layout, jnp.uint32)[corner])
    mask = dropout.keep_mask(key, 0.7, shape, layout)
    np.testing.assert_array_equal(mask, jax.random.bernoulli(key, 0.7, layout)[corner])
    rbg = jax.random.key(7, impl="rbg")  # the fallback path cuts the corner out of JAX's own mask
    np.testing.assert_array_equal(dropout.keep_mask(rbg, 0.7, shape, layout),
                                  jax.random.bernoulli(rbg, 0.7, layout)[corner])


def test_a_layout_smaller_than_the_input_is_refused():
    with pytest.raises(ValueError, match="at least its size in every dimension"):
        dropout.keep_mask(jax.random.key(0), 0.9, (2, 8), (2, 4))
    with pytest.raises(ValueError, match="the input's rank"):
        dropout.keep_mask(jax.random.key(0), 0.9, (2, 8), (2, 8, 1))
