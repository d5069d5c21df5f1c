"""The fine-tuning engine's host-side batching and shape planning (jax_bert/finetune/batching.py), in numpy:
each epoch's order and batches, the length buckets, the step shapes a run compiles (plan_shapes) and
packed batches.
"""
import functools

import numpy as np
import pytest

from jax_bert.finetune import batching, steps_per_epoch

MAX_LEN = 32


@pytest.fixture(scope="module")
def tok(glue_tok):
    """tok(task, split) -> that split of the shared offline GLUE example (conftest.glue_example) at MAX_LEN."""
    return functools.partial(glue_tok, max_length=MAX_LEN)


def test_batches_cover_every_example_once_per_epoch():
    orders = np.stack([batching.epoch_order(37, s, 2) for s in (0, 1)])
    assert not np.array_equal(orders[0], orders[1])  # each seed its own order
    seen = [[], []]
    for i in range(steps_per_epoch(37, 8)):
        rows, weights = batching.batch_indices(orders, i, 8)
        assert rows.shape == weights.shape == (2, 8)
        for s in range(2):
            seen[s] += rows[s][weights[s] == 1].tolist()
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(37))


def test_length_buckets():
    assert batching.bucket_lengths(128, 4) == (32, 64, 96, 128)
    assert batching.bucket_lengths(128, 1) == (128,)
    assert batching.bucket_lengths(32, 4) == (8, 16, 24, 32)
    assert batching.bucket_lengths(100, 4) == (32, 56, 80, 100)  # multiples of 8, capped at max_length
    assert batching.bucket_lengths(16, 8) == (8, 16)
    with pytest.raises(ValueError, match="length_buckets must be >= 1"):
        batching.bucket_lengths(128, 0)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    assert batching.real_lengths(mask).tolist() == [3, 6, 0, 1]
    assert batching.bucket_for(np.array([3, 9, 16]), (8, 16, 24)) == 16
    assert batching.bucket_for(np.array([17]), (8, 16, 24)) == 24
    with pytest.raises(ValueError, match="more than the longest bucket 24"):
        batching.bucket_for(np.array([25]), (8, 16, 24))
    data = {"input_ids": np.arange(24).reshape(4, 6), "attention_mask": mask, "token_type_ids": mask * 0,
            "labels": np.array([5, 6, 7, 8])}
    batch = batching.gather_batch(data, np.array([[3, 1]]), np.ones((1, 2), np.float32), length=4)
    assert batch["input_ids"].tolist() == [[[18, 19, 20, 21], [6, 7, 8, 9]]]
    assert batch["labels"].tolist() == [[8, 6]] and batch["attention_mask"].shape == (1, 2, 4)


def test_rare_shapes_run_at_a_larger_common_one():
    needs = [(16, 192)] * 81 + [(16, 224)] * 4 + [(24, 192)] * 15 + [(24, 240)] * 6 + [(32, 192)] * 5 + [(32, 256)] * 17
    plan = batching.plan_shapes(needs, few=0)
    assert all(plan[n][0] >= n[0] and plan[n][1] >= n[1] for n in needs)  # every step fits its shape
    assert plan[(16, 224)] == (24, 240) and plan[(32, 192)] == (32, 256)  # the cheapest holder
    assert plan[(24, 240)] == (24, 240)  # 10 of 128 steps after the merge: not rare (5%)
    assert set(plan.values()) == {(16, 192), (24, 192), (24, 240), (32, 256)}
    # With few=64 (the default) shapes of fewer than 64 steps merge on: (32, 256) then has 47 steps and
    # nothing holds it, and running (16, 192)'s 81 steps there too wastes 81 x 64 tokens, less than 64
    # steps of 256 tokens: one shape (one compilation) for the whole run.
    assert set(batching.plan_shapes(needs).values()) == {(32, 256)}
    # MNLI's shapes at full size: the rare ones join a holder; (128, 2048) has none, and a shape holding
    # it and another would waste too much, so it stays.
    mnli = {(64, 1280): 11, (96, 1152): 125, (96, 1536): 13635, (96, 1920): 32, (128, 1536): 22586, (128, 2048): 427}
    plan = batching.plan_shapes([k for k, n in mnli.items() for _ in range(n)])
    assert set(plan.values()) == {(96, 1536), (128, 1536), (128, 2048)} and plan[(96, 1920)] == (128, 2048)
    # A shape compiled for an earlier task holds a rare one; a common shape keeps its own.
    plan = batching.plan_shapes([(16, 100)] * 2 + [(16, 200)] * 98, compiled={(16, 128), (32, 512)})
    assert plan == {(16, 100): (16, 128), (16, 200): (16, 200)}
    assert batching.plan_shapes([(8, 64)]) == {(8, 64): (8, 64)}  # nothing holds it: its own


def test_rare_shapes_of_short_tasks_share_their_buckets_full_shape():
    """Tasks of a few steps each (a small suite): a rare shape nothing holds runs at its bucket's full
    shape, which the next task's rare shapes of that bucket reuse instead of compiling their own."""
    compiled = set()
    first = batching.plan_shapes([(96, 704)] * 2 + [(32, 256)], compiled, batch_size=32)
    assert first == {(96, 704): (96, 3072), (32, 256): (96, 3072)}  # the 32-bucket step fits there too
    compiled.update(first.values())
    second = batching.plan_shapes([(96, 1600)] * 5 + [(128, 2048)], compiled, batch_size=32)
    assert second == {(96, 1600): (96, 3072), (128, 2048): (128, 4096)}
    # a common shape keeps its own; so does a rare one whose full shape would waste more than 64 steps hold
    third = batching.plan_shapes([(64, 512)] * 200 + [(128, 1024)] * 90, set(), batch_size=32)
    assert third == {(64, 512): (64, 512), (128, 1024): (128, 1024)}


def test_packed_batches_hold_every_real_token_once(tok):
    train = tok("mrpc", "train")
    lengths = batching.real_lengths(train["attention_mask"])
    rows = np.stack([batching.epoch_order(len(lengths), s, 0)[:16] for s in (0, 1)])
    weights = np.ones(rows.shape, np.float32)
    weights[1, -3:] = 0  # filling rows keep only their first token
    length, tokens = batching.step_shape(lengths, rows, weights, (MAX_LEN,), pack_tokens=True)
    batch = batching.pack_batch(train, lengths, rows, weights, length, tokens)
    real = np.minimum(lengths[rows], MAX_LEN)
    real[1, -3:] = 1
    assert batch["input_ids"].shape == (2, tokens) and tokens % (16 * 8) == 0
    assert tokens == batching.token_budget(real.sum(1).max(), 16, MAX_LEN) < 16 * MAX_LEN
    for s in range(2):
        slots = batch["token_slot"][s][batch["token_slot"][s] < 16 * MAX_LEN]
        assert len(slots) == real[s].sum()
        ids = train["input_ids"][rows[s]]
        np.testing.assert_array_equal(batch["input_ids"][s][:len(slots)], ids[slots // MAX_LEN, slots % MAX_LEN])


def test_steps_per_epoch_drops_the_last_partial_batch_when_asked():
    assert steps_per_epoch(37, 8) == 5 and steps_per_epoch(37, 8, drop_last=True) == 4
    assert steps_per_epoch(40, 8, drop_last=True) == 5  # no partial batch: nothing dropped
    assert steps_per_epoch(5, 8, drop_last=True) == 1  # smaller than a batch: its one partial batch is kept
