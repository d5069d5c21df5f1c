"""Bad inputs to a pretraining run: config values, sparsity rules, a teacher's vocabulary, a damaged data
cache or cached tokenizer, and a work directory that another run holds.

Each test gives one run in this process one bad input and asserts the promise: the error names the
problem and comes before any work it would waste (the work directory, the data, compilation, a
checkpoint), or the damaged cache is named and built again so that the run is the same as with an intact one.
"""
import glob
import os

import pytest

from helpers import losses, tiny_config, tiny_tokenizer, tiny_tokenizer_dir
from jax_bert import data
from jax_bert.train import loop as pretrain

# ------------------------------------------------------------------ config values and sparsity rules


@pytest.mark.parametrize("key,value,message", [
    ("train.eval_batch_size", 0, "train.eval_batch_size must be an integer >= 1, got 0"),
    ("train.log_every", 0, "train.log_every must be an integer >= 1"),
    ("train.checkpoint_every", -1, "train.checkpoint_every must be"),
    ("masking.mlm_probability", 1.5, "masking.mlm_probability must be in"),
    ("distill.temperature", 0.0, "distill.temperature must be > 0"),
    ("mesh.data", 0, "mesh.data must be"),
    ("optim.schedule", "cosine", "schedule must be one of"),
    ("model.hidden_dropout_prob", 1.0, "model.hidden_dropout_prob must be in"),
    ("optim.learning_rate", float("nan"), "optim.learning_rate=nan: every numeric value must be a finite number"),
    ("distill.factor_end", float("inf"), "distill.factor_end=inf: every numeric value must be a finite"),
    ("data.validation_fraction", float("-inf"), "data.validation_fraction=-inf: every numeric"),
    # Out-of-range sparsity levels on a dense config: wrong whether sparsity is on or not.
    ("sparsity.level", 1.5, r"sparsity.level must be in \[0, 1\), got 1.5"),
    ("sparsity.overall", 1.0, r"sparsity.overall must be in \[0, 1\)"),
])
def test_bad_config_values_fail_before_any_work(cache_dir, tmp_path, key, value, message):
    config = tiny_config(cache_dir)
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=message):
        pretrain.run(config, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")  # refused before the work directory, data or compilation


def test_a_nan_anywhere_is_named_also_inside_a_teacher_entry(cache_dir, tmp_path):
    config = tiny_config(cache_dir)
    config.distill.teachers = ({"path": "runs/tiny", "weight": float("nan")},)
    with pytest.raises(ValueError, match=r"distill.teachers\[0\].weight=nan: every numeric value"):
        pretrain.run(config, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("change,named", [
    (lambda s: s.update(level=0.5), "sparsity.level=0.5"),
    (lambda s: s.rigl.update(enabled=True), "sparsity.rigl.enabled=True"),
    (lambda s: s.gmp.update(target=0.6, prune_period=2), "sparsity.gmp.prune_period=2, sparsity.gmp.target=0.6"),
])
def test_a_sparsity_key_on_a_dense_config_is_an_error_not_a_dense_run(cache_dir, tmp_path, change, named):
    config = tiny_config(cache_dir)
    change(config.sparsity)
    with pytest.raises(ValueError, match=f"{named} would be ignored: sparsity.enabled is False"):
        pretrain.run(config, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


def test_a_dense_config_may_set_the_mask_seed(cache_dir):
    """The study sets sparsity.seed with train.seed on every row, its dense teacher included."""
    from jax_bert.train.config import validate

    config = tiny_config(cache_dir)
    config.sparsity.seed = 3
    validate(config)


def test_sparsity_rules_are_checked_on_the_model_shapes_before_the_data(cache_dir, tmp_path, monkeypatch):
    config = tiny_config(cache_dir)
    config.model.vocab_size = 600
    config.sparsity.update(enabled=True, include=(r"^no/such/param$",))
    monkeypatch.setattr(pretrain, "prepare_data", lambda *a: pytest.fail("the data was prepared"))
    with pytest.raises(ValueError, match="no/such/param"):
        pretrain.run(config, str(tmp_path / "w"))


# ------------------------------------------------------------------ the teacher's vocabulary


def _hf_teacher(path, tokenizer):
    """A random BERT with an MLM head and `tokenizer`, as a Hugging Face directory."""
    import transformers

    transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def other_tokenizer(tmp_path_factory, cache_dir):
    """A vocabulary of the same size as the tests' shared one, trained on other documents."""
    from jax_bert.data import corpus

    workdir = str(tmp_path_factory.mktemp("other_vocab"))
    tok = data.get_tokenizer(None, workdir=workdir, documents=corpus.offline_documents()[400:800], vocab_size=600)
    assert len(tok) == len(tiny_tokenizer(cache_dir))
    return tok


def test_a_teacher_with_another_vocabulary_of_the_same_size_is_refused(cache_dir, tmp_path, other_tokenizer):
    config = tiny_config(cache_dir, steps=2)
    tiny_tokenizer(cache_dir)
    config.tokenizer.name = tiny_tokenizer_dir(cache_dir)  # the student's own vocabulary, named
    config.distill.teachers = (_hf_teacher(tmp_path / "teacher", other_tokenizer),)
    with pytest.raises(ValueError, match=r"tokenize differently: \d+ tokens only in the teacher's \(.*\); \d+ only "
                                         r"in the student's .*leave tokenizer.name empty"):
        pretrain.run(config, str(tmp_path / "kd"))
    assert not os.path.exists(tmp_path / "kd" / "checkpoints")


def test_distilling_without_a_tokenizer_takes_the_teachers(cache_dir, tmp_path, other_tokenizer):
    config = tiny_config(cache_dir, steps=2)  # no tokenizer.name
    config.distill.teachers = (_hf_teacher(tmp_path / "teacher", other_tokenizer),)
    pretrain.run(config, str(tmp_path / "kd"))
    used = data.get_tokenizer(str(tmp_path / "kd" / "tokenizer"))
    assert used.get_vocab() == other_tokenizer.get_vocab()


# ------------------------------------------------------------------ damaged caches, a busy work directory


def test_a_damaged_data_cache_is_rebuilt(cache_dir, tmp_path, caplog):
    """The validation cache cut short; in the training cache one token id changed to another valid one (it
    would train silently on it) and one to an id past the vocabulary (it would blame the tokenizer), its
    size unchanged. Both are named, moved aside and built again: the run is the one an intact cache gives."""
    import json

    import numpy as np

    cache = str(tmp_path / "cache")
    config = tiny_config(cache, steps=2)
    pretrain.run(config, str(tmp_path / "a"))
    for npy in glob.glob(os.path.join(cache, "blocks-*.npy")):
        with open(npy[:-4] + ".json") as f:
            validation = json.load(f)["pad_last"]
        if validation:
            with open(npy, "r+b") as f:
                f.truncate(os.path.getsize(npy) // 3)
        else:
            blocks = np.load(npy, mmap_mode="r+")
            blocks[0, 5] = (blocks[0, 5] + 1) % 600
            blocks[-1, -1] = 10**6
            blocks.flush()
            del blocks
    caplog.set_level("WARNING", logger="jax_bert")
    pretrain.run(config, str(tmp_path / "b"))
    warned = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warned) == 2 and all("moved aside to" in w and "building it again" in w for w in warned)
    assert sum("bytes differ from the checksum written with them" in w for w in warned) == 1
    assert len(glob.glob(os.path.join(cache, "blocks-*.npy.damaged"))) == 2
    assert losses(str(tmp_path / "a")) == losses(str(tmp_path / "b"))


def test_a_damaged_cached_tokenizer_is_named(cache_dir, tmp_path):
    config = tiny_config(cache_dir, steps=1)
    workdir = tmp_path / "run"
    pretrain.run(config, str(workdir))
    saved = workdir / "tokenizer" / "tokenizer.json"
    saved.write_text(saved.read_text().replace('"[MASK]": 4', '"[MASK]": 5', 1))  # a hand edit
    with pytest.raises(ValueError, match=r"tokenizer cached in .* is damaged \(tokenizer.json differs.*delete that"):
        pretrain.run(config, str(workdir))


def test_a_second_run_on_the_same_work_directory_is_refused(cache_dir, tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    with pretrain._workdir_lock(workdir, enabled=True):
        with pytest.raises(ValueError, match=rf"{workdir} is in use by a run that is still going \(pid {os.getpid()}"):
            pretrain.run(tiny_config(cache_dir), workdir)
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))
