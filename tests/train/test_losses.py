"""MLM and distillation losses against a float64 numpy reference: values and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_bert.train import losses

B, P, V = 2, 5, 11


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _softmax(z):
    return np.exp(_log_softmax(z))


def _ref_target(teachers, teacher_weights, labels, factor, t):
    w = np.asarray(teacher_weights, np.float64) / np.sum(teacher_weights)
    probs = sum(wi * _softmax(np.asarray(tl, np.float64) / t) for wi, tl in zip(w, teachers))
    return factor * probs + (1 - factor) * np.eye(V)[np.clip(labels, 0, V - 1)]


def _ref_kd(student, target, weights, t, student_temperature, scale_by_t2):
    """Loss sum in float64 and its analytic gradient wrt the student logits."""
    z = np.asarray(student, np.float64) / (t if student_temperature else 1.0)
    scale = t * t if scale_by_t2 else 1.0
    per_slot = -(target * _log_softmax(z)).sum(-1) * scale
    grad = (_softmax(z) * target.sum(-1, keepdims=True) - target) * scale * weights[..., None]
    if student_temperature:
        grad = grad / t
    return (per_slot * weights).sum(), grad


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(B, P, V)) * 3
    teachers = [rng.normal(size=(B, P, V)) * 3 for _ in range(3)]
    labels = rng.integers(0, V, size=(B, P))
    weights = np.ones((B, P))
    weights[0, 3:] = 0  # padding slots, with junk labels
    weights[1, 4] = 0
    labels[0, 3] = -100
    labels[0, 4] = V + 7
    return student, teachers, labels, weights


def _j(a, dtype=jnp.float32):
    return jnp.asarray(a, dtype)


def test_mlm_loss_matches_numpy(data):
    student, _, labels, weights = data
    out = losses.mlm_loss(_j(student), jnp.asarray(labels), _j(weights))
    safe = np.where(weights > 0, labels, 0)
    nll = -np.take_along_axis(_log_softmax(student), safe[..., None], -1)[..., 0]
    np.testing.assert_allclose(out["loss_sum"], (nll * weights).sum(), rtol=1e-5)
    assert float(out["weight_sum"]) == weights.sum() == 7
    assert float(out["correct_sum"]) == ((student.argmax(-1) == safe) * weights).sum()
    assert all(v.dtype == jnp.float32 for v in out.values())


def test_mlm_loss_bf16_logits_use_float32_softmax(data):
    student, _, labels, weights = data
    bf16 = jnp.asarray(student * 10, jnp.bfloat16)  # large logits: tiny probabilities
    out = losses.mlm_loss(bf16, jnp.asarray(labels), _j(weights))
    exact = np.asarray(bf16.astype(jnp.float32), np.float64)
    safe = np.where(weights > 0, labels, 0)
    nll = -np.take_along_axis(_log_softmax(exact), safe[..., None], -1)[..., 0]
    assert out["loss_sum"].dtype == jnp.float32
    np.testing.assert_allclose(out["loss_sum"], (nll * weights).sum(), rtol=1e-5)


@pytest.mark.parametrize("factor,t,student_t,t2,n_teachers", [
    (1.0, 1.0, False, False, 1),   # the original run: pure teacher, T=1
    (0.7, 2.0, False, False, 1),   # the original's rule at T != 1: student logits not divided
    (0.7, 2.0, True, True, 1),     # Hinton's variant
    (0.5, 1.5, False, True, 3),    # several teachers, weighted
])
def test_distillation_value_and_grad(data, factor, t, student_t, t2, n_teachers):
    student, teachers, labels, weights = data
    teachers = teachers[:n_teachers]
    teacher_weights = [1.0, 2.0, 0.5][:n_teachers]
    target = _ref_target(teachers, teacher_weights, labels, factor, t)
    want, want_grad = _ref_kd(student, target, weights, t, student_t, t2)

    def loss(s):
        tl = [_j(x) for x in teachers] if n_teachers > 1 else _j(teachers[0])
        return losses.distillation_loss(
            s, tl, jnp.asarray(labels), _j(weights), factor=factor, temperature=t,
            scale_by_t2=t2, student_temperature=student_t,
            teacher_weights=teacher_weights if n_teachers > 1 else None)["loss_sum"]

    value, grad = jax.value_and_grad(loss)(_j(student))
    np.testing.assert_allclose(value, want, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, atol=1e-5, rtol=1e-4)
    # The analytic reference gradient itself, against float64 central differences.
    eps = 1e-6
    for idx in [(0, 0, 3), (1, 2, 7), (1, 4, 0)]:
        d = np.zeros_like(student)
        d[idx] = eps
        fd = (_ref_kd(student + d, target, weights, t, student_t, t2)[0]
              - _ref_kd(student - d, target, weights, t, student_t, t2)[0]) / (2 * eps)
        assert fd == pytest.approx(want_grad[idx], abs=1e-7)


def test_distillation_factor_zero_is_mlm_loss(data):
    student, teachers, labels, weights = data
    kd = losses.distillation_loss(_j(student), _j(teachers[0]), jnp.asarray(labels), _j(weights),
                                  factor=0.0, temperature=3.0)
    mlm = losses.mlm_loss(_j(student), jnp.asarray(labels), _j(weights))
    for k in mlm:
        np.testing.assert_allclose(kd[k], mlm[k], rtol=1e-6)


def test_zero_weight_slots_are_ignored(data):
    student, teachers, labels, weights = data
    rng = np.random.default_rng(1)
    pad = weights == 0
    student2, teacher2, labels2 = student.copy(), teachers[0].copy(), labels.copy()
    student2[pad] = rng.normal(size=(pad.sum(), V)) * 50
    teacher2[pad] = rng.normal(size=(pad.sum(), V)) * 50
    labels2[pad] = rng.integers(-200, 200, size=pad.sum())

    def run(s, t, lab):
        f = lambda s: losses.distillation_loss(s, _j(t), jnp.asarray(lab), _j(weights),
                                               factor=0.6, temperature=2.0)["loss_sum"]
        return jax.value_and_grad(f)(_j(s))

    (v1, g1), (v2, g2) = run(student, teachers[0], labels), run(student2, teacher2, labels2)
    assert np.isfinite(float(v2))
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    np.testing.assert_allclose(g1, g2, atol=1e-7)
    assert np.all(np.asarray(g2)[pad] == 0)
    m1 = losses.mlm_loss(_j(student), jnp.asarray(labels), _j(weights))
    m2 = losses.mlm_loss(_j(student2), jnp.asarray(labels2), _j(weights))
    for k in m1:
        np.testing.assert_allclose(m1[k], m2[k], rtol=1e-6)


def test_combine_teachers_and_traced_factor(data):
    student, teachers, labels, weights = data
    probs = losses.combine_teachers([_j(t) for t in teachers[:2]], [3.0, 1.0], temperature=2.0)
    np.testing.assert_allclose(probs, 0.75 * _softmax(teachers[0] / 2) + 0.25 * _softmax(teachers[1] / 2),
                               atol=1e-6)

    @jax.jit
    def at_step(step):  # factor and temperature decaying inside jit
        factor = losses.linear_decay(1.0, 0.0, step, 10)
        temp = losses.linear_decay(4.0, 1.0, step, 10)
        return losses.distillation_loss(_j(student), _j(teachers[0]), jnp.asarray(labels), _j(weights),
                                        factor=factor, temperature=temp)["loss_sum"]

    for step, factor, temp in [(0, 1.0, 4.0), (5, 0.5, 2.5), (10, 0.0, 1.0), (20, 0.0, 1.0)]:
        want, _ = _ref_kd(student, _ref_target(teachers[:1], [1.0], labels, factor, temp), weights,
                          temp, False, False)
        np.testing.assert_allclose(at_step(step), want, rtol=1e-5)


def test_linear_decay():
    np.testing.assert_allclose([losses.linear_decay(2.0, 1.0, s, 4) for s in (0, 1, 4, 9)],
                               [2.0, 1.75, 1.0, 1.0])
    with pytest.raises(ValueError, match="total"):
        losses.linear_decay(1.0, 0.0, 3, 0)


def test_bad_inputs_raise(data):
    student, teachers, labels, weights = data
    args = (_j(student), _j(teachers[0]), jnp.asarray(labels), _j(weights))
    with pytest.raises(ValueError, match="factor"):
        losses.distillation_loss(*args, factor=1.5, temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        losses.distillation_loss(*args, factor=0.5, temperature=0.0)
    with pytest.raises(ValueError, match="teacher weights"):
        losses.combine_teachers([_j(t) for t in teachers], [1.0, 1.0])
    with pytest.raises(ValueError, match="labels"):
        losses.mlm_loss(_j(student), jnp.asarray(labels[:, :2]), _j(weights))
    with pytest.raises(ValueError, match="shape"):
        losses.distillation_loss(_j(student), _j(teachers[0][:, :3]), jnp.asarray(labels), _j(weights),
                                 factor=0.5, temperature=1.0)
