"""Tests for MLM masking and the step -> batch mapping (numpy only)."""
import numpy as np
import pytest

from jax_bert import data
from jax_bert.data import corpus, mlm_batches

# A synthetic vocab: 0..4 special ([PAD], [UNK], [CLS], [SEP], [MASK]), 5..39 word starts,
# 40..59 '##' continuations.
PAD, UNK, CLS, SEP, MASK = range(5)
VOCAB = 60
IS_CONT = np.arange(VOCAB) >= 40
SPECIAL = (PAD, UNK, CLS, SEP, MASK)


def _kwargs(seq_len, whole_word=True, p=0.15):
    return dict(vocab_size=VOCAB, special_ids=SPECIAL, mask_id=MASK, pad_id=PAD,
                mlm_probability=p, whole_word=whole_word,
                is_continuation=IS_CONT if whole_word else None,
                max_predictions=mlm_batches.max_predictions(seq_len, p))


def _make_blocks(rng, rows, seq_len):
    """Documents of words (a start + 0..3 continuations) packed as [CLS] ... [SEP]; some
    rows start mid-word, some end in padding, the last row is all padding."""
    stream = []
    while len(stream) < rows * seq_len:
        stream.append(CLS)
        for _ in range(rng.integers(1, 30)):
            stream.append(int(rng.integers(5, 40)))
            n_cont = rng.choice(4, p=[.6, .2, .1, .1])
            stream.extend(int(t) for t in rng.integers(40, 60, size=n_cont))
        stream.append(SEP)
    blocks = np.asarray(stream[: rows * seq_len], dtype=np.int32).reshape(rows, seq_len)
    for r in range(0, rows - 1, 7):  # trailing padding
        blocks[r, seq_len - int(rng.integers(1, seq_len)):] = PAD
    blocks[1, :3] = [45, 46, 7]  # a row that starts with continuation tokens
    blocks[-1] = PAD
    return blocks


def _words(row):
    """Reference word segmentation, one token at a time: lists of positions."""
    words, open_word = [], False
    for i, t in enumerate(row):
        if t in SPECIAL:
            open_word = False
        elif IS_CONT[t] and open_word:
            words[-1].append(i)
        else:
            words.append([i])
            open_word = True
    return words


def _budget(row, p=0.15, seq_len=None):
    n_real = int((row != PAD).sum())
    return min(mlm_batches.max_predictions(seq_len or row.size, p), max(1, round(n_real * p)))


def _restore(batch):
    """The original blocks: input_ids with the labels written back at the real slots."""
    ids = batch["input_ids"].copy()
    for r in range(ids.shape[0]):
        n = int(batch["masked_weights"][r].sum())
        ids[r, batch["masked_positions"][r, :n]] = batch["masked_labels"][r, :n]
    return ids


def test_max_predictions():
    assert mlm_batches.max_predictions(512, 0.15) == 77
    assert mlm_batches.max_predictions(128, 0.15) == 19
    assert mlm_batches.max_predictions(4, 0.1) == 1
    with pytest.raises(ValueError, match="mlm_probability"):
        mlm_batches.max_predictions(128, 1.5)


def _check_common(blocks, batch, p):
    b, length = blocks.shape
    assert batch["input_ids"].dtype == np.int32 and batch["input_ids"].shape == (b, length)
    assert batch["masked_weights"].dtype == np.float32
    np.testing.assert_array_equal(batch["attention_mask"], (blocks != PAD).astype(np.int32))
    np.testing.assert_array_equal(batch["token_type_ids"], np.zeros((b, length)))
    np.testing.assert_array_equal(_restore(batch), blocks)  # only masked slots changed
    for r in range(b):
        w = batch["masked_weights"][r]
        n = int(w.sum())
        assert np.all(w[:n] == 1) and np.all(w[n:] == 0)  # real slots first
        pos = batch["masked_positions"][r]
        assert np.all(pos[n:] == 0) and np.all(batch["masked_labels"][r, n:] == 0)
        assert np.all(np.diff(pos[:n]) > 0)  # distinct, sorted
        np.testing.assert_array_equal(batch["masked_labels"][r, :n], blocks[r, pos[:n]])
        assert not np.isin(blocks[r, pos[:n]], SPECIAL).any()  # specials never masked
        assert n <= _budget(blocks[r], p, length)
    assert batch["masked_weights"][-1].sum() == 0  # the all-padding row


def test_token_masking_exact_count_per_row():
    rng = np.random.default_rng(0)
    blocks = _make_blocks(rng, 50, 48)
    batch = mlm_batches.mask_batch(blocks, rng, **_kwargs(48, whole_word=False))
    _check_common(blocks, batch, 0.15)
    counts = batch["masked_weights"].sum(1)
    for r in range(len(blocks) - 1):
        assert counts[r] == _budget(blocks[r], 0.15)


def test_whole_word_masking_masks_only_whole_words():
    rng = np.random.default_rng(1)
    blocks = _make_blocks(rng, 200, 64)
    batch = mlm_batches.mask_batch(blocks, rng, **_kwargs(64))
    _check_common(blocks, batch, 0.15)
    exact = 0
    for r in range(len(blocks) - 1):
        n = int(batch["masked_weights"][r].sum())
        masked = set(batch["masked_positions"][r, :n].tolist())
        words = _words(blocks[r])
        for word in words:  # a word is masked entirely or not at all
            assert len(masked & set(word)) in (0, len(word)), (r, word, masked)
        # Greedy with skipping stops short only when no word fits what is left.
        budget = _budget(blocks[r])
        longest = max(len(w) for w in words)
        assert budget - (longest - 1) <= n <= budget
        exact += n == budget
    assert exact >= 0.9 * (len(blocks) - 1)
    # Row 1 starts mid-word: its leading continuations form their own word.
    assert _words(blocks[1])[0] == [0, 1]


def test_whole_word_masking_with_a_trained_tokenizer(tmp_path):
    docs = corpus.offline_documents()[:300]
    tok = data.get_tokenizer(None, workdir=str(tmp_path), documents=docs, vocab_size=800)
    table = mlm_batches.continuation_table(tok)
    for token, i in tok.get_vocab().items():
        assert table[i] == (token.startswith("##") and len(token) > 2)
    assert table.sum() > 50
    blocks = data.tokenize_to_blocks(docs, tok, 64, cache_dir=str(tmp_path),
                                     cache_key_parts=["m"])[:64]
    kw = mlm_batches.masking_kwargs(tok, 64)
    assert kw["special_ids"] == (0, 1, 2, 3, 4) and kw["max_predictions"] == 10
    batch = mlm_batches.mask_batch(np.asarray(blocks), np.random.default_rng(0), **kw)
    tokens = [tok.convert_ids_to_tokens(row) for row in np.asarray(blocks)]
    for r in range(len(tokens)):
        n = int(batch["masked_weights"][r].sum())
        masked = set(batch["masked_positions"][r, :n].tolist())
        for i in masked:
            # A masked '##' piece has its word's previous piece masked too (or nothing
            # before it in this block), and the piece after a masked one, if it
            # continues the word, is masked as well.
            after_word = i > 0 and tokens[r][i - 1] not in ("[CLS]", "[SEP]")
            if tokens[r][i].startswith("##") and after_word:
                assert i - 1 in masked
            if i + 1 < 64 and tokens[r][i + 1].startswith("##"):
                assert i + 1 in masked


def test_80_10_10_replacement_proportions():
    rng = np.random.default_rng(2)
    blocks = rng.integers(5, VOCAB, size=(4000, 40)).astype(np.int32)
    blocks[:, 0], blocks[:, -1] = CLS, SEP
    batch = mlm_batches.mask_batch(blocks, rng, **_kwargs(40, whole_word=False))
    w = batch["masked_weights"] > 0
    pos = batch["masked_positions"]
    rows = np.broadcast_to(np.arange(len(blocks))[:, None], pos.shape)
    new = batch["input_ids"][rows[w], pos[w]]
    old = batch["masked_labels"][w]
    total = new.size
    assert total == 4000 * 6
    n_words = VOCAB - 5
    frac_mask = np.mean(new == MASK)
    frac_same = np.mean(new == old)
    frac_random = np.mean((new != MASK) & (new != old))
    # 10% random, of which 1/55 happen to draw the original token.
    assert abs(frac_mask - 0.8) < 0.015
    assert abs(frac_same - (0.1 + 0.1 / n_words)) < 0.012
    assert abs(frac_random - 0.1 * (1 - 1 / n_words)) < 0.012
    assert not np.isin(new[new != MASK], SPECIAL).any()  # random tokens are never special
    # Every candidate position is chosen about equally often (6 of 38 per row).
    hits = np.bincount(pos[w], minlength=40)[1:-1] / 4000
    assert np.all(np.abs(hits - 6 / 38) < 0.03)


def test_mask_batch_rejects_bad_input():
    blocks = np.full((2, 8), 7, dtype=np.int32)
    with pytest.raises(ValueError, match="is_continuation"):
        mlm_batches.mask_batch(blocks, np.random.default_rng(0),
                           **{**_kwargs(8), "is_continuation": None})
    with pytest.raises(ValueError, match="vocab_size"):
        mlm_batches.mask_batch(blocks + 100, np.random.default_rng(0), **_kwargs(8))
    with pytest.raises(ValueError, match="generators"):
        mlm_batches.mask_batch(blocks, [np.random.default_rng(0)], **_kwargs(8))


# ----------------------------------------------------------------------------- steps


@pytest.fixture(scope="module")
def train_blocks():
    return _make_blocks(np.random.default_rng(3), 10, 32)[:-1]  # 9 blocks, no empty row


def test_batch_for_step_is_a_pure_function_of_seed_and_step(train_blocks):
    kw = _kwargs(32)
    a = mlm_batches.batch_for_step(train_blocks, 5, seed=7, global_batch_size=4, **kw)
    b = mlm_batches.batch_for_step(train_blocks, 5, seed=7, global_batch_size=4, **kw)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = mlm_batches.batch_for_step(train_blocks, 6, seed=7, global_batch_size=4, **kw)
    d = mlm_batches.batch_for_step(train_blocks, 5, seed=8, global_batch_size=4, **kw)
    assert not np.array_equal(a["input_ids"], c["input_ids"])
    assert not np.array_equal(a["input_ids"], d["input_ids"])


def test_one_process_equals_two_processes(train_blocks):
    kw = _kwargs(32)
    for step in (0, 1, 2, 11):  # step 2 straddles an epoch boundary (rows 8..11 of 9)
        one = mlm_batches.batch_for_step(train_blocks, step, seed=1, global_batch_size=4, **kw)
        two = [mlm_batches.batch_for_step(train_blocks, step, seed=1, global_batch_size=4,
                                      process_index=i, process_count=2, **kw)
               for i in range(2)]
        for key in one:
            assert two[0][key].shape[0] == 2
            np.testing.assert_array_equal(np.concatenate([two[0][key], two[1][key]]),
                                          one[key])
    with pytest.raises(ValueError, match="divisible"):
        mlm_batches.batch_for_step(train_blocks, 0, seed=1, global_batch_size=5,
                               process_count=2, **kw)


def test_epochs_are_permutations_and_wrap_correctly(train_blocks):
    n, g, seed = len(train_blocks), 4, 3
    kw = _kwargs(32)
    rows = np.concatenate([_restore(mlm_batches.batch_for_step(train_blocks, s, seed=seed,
                                                           global_batch_size=g, **kw))
                           for s in range(9)])  # 36 samples = 4 epochs of 9
    index = [int(np.flatnonzero((train_blocks == r).all(1))[0]) for r in rows]
    for epoch in range(4):
        expected = np.random.default_rng((seed, epoch)).permutation(n)
        assert index[epoch * n:(epoch + 1) * n] == expected.tolist()


def test_eval_batches_cover_every_block_once():
    blocks = _make_blocks(np.random.default_rng(4), 12, 32)[:-1]  # 11 blocks
    kw = _kwargs(32)
    out = list(mlm_batches.eval_batches(blocks, 4, seed=0, **kw))
    assert [n for _, n in out] == [4, 4, 3]
    assert len(out) == mlm_batches.num_eval_batches(11, 4)
    for batch, _ in out:
        assert batch["input_ids"].shape == (4, 32)  # static shapes, last batch padded
    restored = np.concatenate([_restore(b) for b, _ in out])
    np.testing.assert_array_equal(restored[:11], blocks)
    assert np.all(restored[11:] == PAD) and out[-1][0]["masked_weights"][3].sum() == 0
    assert all(b["masked_weights"][:n].sum(1).min() > 0 for b, n in out)
    # Fixed masking: the same per block whatever the batch size or process count.
    again = list(mlm_batches.eval_batches(blocks, 2, seed=0, **kw))
    by_two = [list(mlm_batches.eval_batches(blocks, 4, seed=0, process_index=i,
                                        process_count=2, **kw)) for i in range(2)]
    assert sum(n for _, n in again) == 11 == sum(n for p in by_two for _, n in p)
    for key in out[0][0]:
        full = np.concatenate([b[key] for b, _ in out])[:11]
        np.testing.assert_array_equal(np.concatenate([b[key] for b, _ in again])[:11], full)
        split = np.concatenate([np.concatenate([by_two[0][k][0][key], by_two[1][k][0][key]])
                                for k in range(3)])[:11]
        np.testing.assert_array_equal(split, full)
