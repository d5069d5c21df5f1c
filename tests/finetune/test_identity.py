"""A fine-tuning results directory belongs to one checkpoint (jax_bert/finetune/identity.py): the record,
the refusal naming both checkpoints, --fresh moving the old results aside, and directories from before
identities were recorded."""
import json

import pytest

from jax_bert.finetune import identity


def model_files(folder, weights=b"\x00\x01\x02\x03" * 8, config='{"hidden_size": 32}'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").write_bytes(weights)
    return [folder / "config.json", folder / "model.safetensors"]


def test_fingerprint_follows_the_bytes_not_the_path(tmp_path):
    a = identity.checkpoint_identity(tmp_path / "a", model_files(tmp_path / "a"))
    copy = identity.checkpoint_identity(tmp_path / "copy", model_files(tmp_path / "copy"))
    flipped = identity.checkpoint_identity(tmp_path / "b", model_files(tmp_path / "b", weights=b"\x00\x01\x02\x04" * 8))
    config = identity.checkpoint_identity(tmp_path / "c", model_files(tmp_path / "c", config='{"hidden_size": 64}'))
    assert a["fingerprint"] == copy["fingerprint"] and a["path"] != copy["path"]
    assert len({a["fingerprint"], flipped["fingerprint"], config["fingerprint"]}) == 3
    assert a["path"] == str(tmp_path / "a")


def test_another_checkpoint_is_refused_naming_both_and_fresh_moves_aside(tmp_path):
    a = identity.checkpoint_identity(tmp_path / "A", model_files(tmp_path / "A"))
    b = identity.checkpoint_identity(tmp_path / "B", model_files(tmp_path / "B", weights=b"\x09" * 32))
    out = tmp_path / "out"
    assert identity.claim(out, a, has_results=False) is None
    (out / "results.json").write_text("{}")
    assert identity.claim(out, a, has_results=True) is None  # the same model: goes on
    with pytest.raises(identity.ResultsOfAnotherModel) as caught:
        identity.claim(out, b, has_results=True)
    message = str(caught.value)
    assert str(tmp_path / "A") in message and str(tmp_path / "B") in message and "--fresh" in message
    assert "\n" not in message
    assert identity.recorded(out) == a and (out / "results.json").read_text() == "{}"  # nothing touched
    moved = identity.claim(out, b, has_results=True, fresh=True)
    assert moved == tmp_path / "out.replaced-1"
    assert (moved / "results.json").read_text() == "{}" and identity.recorded(moved) == a
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json"] and identity.recorded(out) == b
    (out / "results.json").write_text("{}")
    assert identity.claim(out, b, has_results=True, fresh=True) == tmp_path / "out.replaced-2"


def test_results_from_before_the_record(tmp_path):
    """A directory with results but no checkpoint.json: adopted only when the run's own record of its
    checkpoint path (legacy_path) is this checkpoint."""
    a = identity.checkpoint_identity(tmp_path / "A", model_files(tmp_path / "A"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(identity.ResultsOfAnotherModel, match="holds the results of an unrecorded checkpoint"):
        identity.claim(out, a, has_results=True, legacy_path=str(tmp_path / "other"))
    identity.claim(out, a, has_results=True, legacy_path=str(tmp_path / "A"))
    assert json.loads((out / "checkpoint.json").read_text())["fingerprint"] == a["fingerprint"]


def test_a_damaged_record_is_named(tmp_path):
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(ValueError, match="checkpoint.json is damaged.*--fresh"):
        identity.recorded(tmp_path)
