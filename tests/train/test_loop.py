"""The pretraining engine: exact resume, mesh and multi-process equivalence, evaluation, bad input."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from eight_devices import one_device_overrides
from helpers import ROOT, losses, sigterm_after_step, subprocess_env, tiny_config, tiny_tokenizer
from jax_bert import data
from jax_bert.train import checkpoint
from jax_bert.train import loop as pretrain

HELPER = os.path.join(ROOT, "tests", "helpers.py")


def test_loss_falls_and_eval_scores_every_block(reference_run, cache_dir):
    workdir, result = reference_run
    trace = losses(workdir)
    assert sorted(trace) == list(range(1, 9))
    assert trace[8] < trace[1] - 0.05, trace
    tokenizer = data.get_tokenizer(os.path.join(workdir, "tokenizer"))
    assert tokenizer.get_vocab() == tiny_tokenizer(cache_dir).get_vocab()  # trained there, the same as here
    _, val_blocks = data.prepare_blocks(tiny_config(cache_dir).data.to_dict(), tokenizer, 32, cache_dir=cache_dir)
    assert len(val_blocks) % 16 != 0, "choose sizes so the last eval batch is partial"
    assert result["eval_blocks"] == len(val_blocks)
    assert np.isclose(result["perplexity"], np.exp(result["eval_loss"]))
    saved = json.load(open(os.path.join(workdir, "eval_results.json")))
    assert saved["eval_loss"] == result["eval_loss"]


def test_sigterm_then_resume_is_bitwise_identical(reference_run, cache_dir, tmp_path, monkeypatch):
    straight_dir, _ = reference_run
    workdir = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        sigterm_after_step(m, 4)
        first = pretrain.run(tiny_config(cache_dir), workdir)
    assert first["status"] == "stopped by SIGTERM at step 4"
    assert checkpoint.latest_step(os.path.join(workdir, "checkpoints")) == 4
    second = pretrain.run(tiny_config(cache_dir), workdir)
    assert second["status"] == "finished" and second["step"] == 8
    straight, resumed = losses(straight_dir), losses(workdir)
    assert [resumed[s] for s in range(1, 9)] == [straight[s] for s in range(1, 9)]
    a = checkpoint.restore_params_only(os.path.join(straight_dir, "checkpoints"), 8)
    b = checkpoint.restore_params_only(os.path.join(workdir, "checkpoints"), 8)
    for x, y in zip(_leaves(a), _leaves(b)):
        np.testing.assert_array_equal(x, y)


def _leaves(tree):
    import jax

    return jax.tree.leaves(tree)


@pytest.mark.slow
@pytest.mark.xdist_group("eight_devices")
def test_eight_device_mesh_matches_one_device(reference_run, eight_devices):
    straight_dir, _ = reference_run
    assert one_device_overrides("dense_2x2x2") == {"train.steps": 8}  # the reference run on 2 x 2 x 2
    one, eight = losses(straight_dir), losses(eight_devices["mesh_runs"]["dense_2x2x2"])
    np.testing.assert_allclose([eight[s] for s in range(1, 9)], [one[s] for s in range(1, 9)], rtol=1e-5)


def test_gradient_accumulation_matches_the_full_batch(cache_dir, tmp_path):
    """Dropout off: accumulation draws other dropout masks per micro-batch, nothing else differs."""
    runs = {}
    for accum in (1, 4):
        config = tiny_config(cache_dir, grad_accum_steps=accum, steps=4)
        config.model.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        pretrain.run(config, str(tmp_path / f"accum{accum}"))
        runs[accum] = losses(str(tmp_path / f"accum{accum}"))
    np.testing.assert_allclose([runs[4][s] for s in range(1, 5)], [runs[1][s] for s in range(1, 5)], rtol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(reference_run, cache_dir, tmp_path):
    straight_dir, _ = reference_run
    workdir = str(tmp_path / "two_procs")
    port = _free_port()
    procs = []
    for pid in range(2):
        # fsdp over the two processes: params are sharded across them, so the export must gather.
        overrides = {"distributed.initialize": "yes", "distributed.coordinator_address": f"127.0.0.1:{port}",
                     "distributed.num_processes": 2, "distributed.process_id": pid,
                     "mesh.data": 1, "mesh.fsdp": 2, "train.export_hf": True,
                     "data.build_on_process0_wait_s": 240}  # the shared cache may not be built yet
        procs.append(subprocess.Popen([sys.executable, HELPER, workdir, cache_dir, json.dumps(overrides)],
                                      env=subprocess_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    np.testing.assert_allclose([losses(workdir)[s] for s in range(1, 9)],
                               [losses(straight_dir)[s] for s in range(1, 9)], rtol=1e-5)
    import jax_bert

    _, exported = jax_bert.load_hf(os.path.join(workdir, "hf"))
    final = checkpoint.restore_params_only(os.path.join(workdir, "checkpoints"), 8)
    np.testing.assert_array_equal(exported["bert"]["embeddings"]["word_embeddings"]["embedding"],
                                  final["bert"]["embeddings"]["word_embeddings"]["embedding"])


def test_divergence_stops_with_the_step_and_keeps_the_last_checkpoint(cache_dir, tmp_path, monkeypatch):
    workdir = str(tmp_path / "nan")
    config = tiny_config(cache_dir, steps=12)
    with monkeypatch.context() as m:
        sigterm_after_step(m, 4)
        pretrain.run(tiny_config(cache_dir, steps=12), workdir)  # a good checkpoint at 4
    config.optim.update(learning_rate=1e30)
    # A resume refuses a changed learning rate by the run's config.json; without it, the diverging resume runs.
    os.remove(os.path.join(workdir, "config.json"))
    with pytest.raises(pretrain.TrainingDiverged,
                       match=r"step \d+: .*(nan|inf).*The last checkpoint, step 4, is intact"):
        pretrain.run(config, workdir)
    assert checkpoint.latest_step(os.path.join(workdir, "checkpoints")) == 4
    params = checkpoint.restore_params_only(os.path.join(workdir, "checkpoints"), 4)
    assert all(np.isfinite(x).all() for x in _leaves(params))


# --- bad input: one clear line each -------------------------------------------------------------------

def test_sequence_longer_than_positions(cache_dir, tmp_path):
    config = tiny_config(cache_dir, seq_len=64)
    with pytest.raises(ValueError, match="train.seq_len 64 exceeds model.max_position_embeddings 32"):
        pretrain.run(config, str(tmp_path))


def test_missing_data_files(cache_dir, tmp_path):
    config = tiny_config(cache_dir)
    config.data.update(source="files", files=[str(tmp_path / "nowhere" / "*.txt")])
    with pytest.raises(ValueError, match="nowhere"):
        pretrain.run(config, str(tmp_path / "w"))


def test_empty_corpus(cache_dir, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n   \n")
    config = tiny_config(cache_dir)
    config.data.update(source="files", files=[str(tmp_path / "empty.txt")])
    with pytest.raises(ValueError, match="(?i)empty|no document"):
        pretrain.run(config, str(tmp_path / "w"))


def test_hub_dataset_offline_suggests_local_files(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tiny_config(cache_dir)
    config.data.update(source="hub", datasets=[{"name": "wikimedia/wikipedia", "config": "20231101.en"}])
    with pytest.raises(ValueError, match="files"):
        pretrain.run(config, str(tmp_path / "w"))


@pytest.mark.slow
def test_unknown_config_key_is_refused_by_the_script(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "pretrain.py"), "--config",
                          os.path.join(ROOT, "configs", "tiny.py"), "--config.train.stepz=3",
                          "--workdir", str(tmp_path)],
                         env=subprocess_env(1), capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "stepz" in out.stderr


def test_bf16_remat_scan_switches_train_like_float32(reference_run, cache_dir, tmp_path):
    straight_dir, _ = reference_run
    config = tiny_config(cache_dir, steps=3)
    config.model.update(dtype="bfloat16", remat=True, scan_layers=True)
    result = pretrain.run(config, str(tmp_path / "bf16"))
    ours, reference = losses(str(tmp_path / "bf16")), losses(straight_dir)
    np.testing.assert_allclose([ours[s] for s in (1, 2, 3)], [reference[s] for s in (1, 2, 3)], rtol=2e-2)
    assert np.isfinite(result["eval_loss"])


def test_init_from_a_hugging_face_checkpoint(cache_dir, tmp_path):
    import transformers

    import jax_bert

    config = tiny_config(cache_dir, steps=1, export_hf=True)
    vocab = len(tiny_tokenizer(cache_dir))
    hf_config = transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=64, max_position_embeddings=32)
    transformers.BertForMaskedLM(hf_config).save_pretrained(tmp_path / "start")
    config.init_from_hf = str(tmp_path / "start")
    config.optim.learning_rate = 1e-9
    pretrain.run(config, str(tmp_path / "run"))
    _, start = jax_bert.load_hf(str(tmp_path / "start"))
    _, after = jax_bert.load_hf(str(tmp_path / "run" / "hf"))
    from jax_bert.model import hf_io

    a, b = hf_io._flatten(start), hf_io._flatten(after)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=k)

    transformers.BertModel(hf_config).save_pretrained(tmp_path / "no_head")
    config.init_from_hf = str(tmp_path / "no_head")
    with pytest.raises(ValueError, match="no_head has no MLM head"):
        pretrain.run(config, str(tmp_path / "run2"))


@pytest.mark.slow
def test_data_files_from_the_command_line(tmp_path):
    """--config.data.files=GLOB (a tuple field, so the command line can set it) end to end."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    rng = np.random.default_rng(0)
    (tmp_path / "a.txt").write_text("\n\n".join(" ".join(rng.choice(words, 40)) for _ in range(120)))
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "pretrain.py"),
         "--config", os.path.join(ROOT, "configs", "tiny.py"),
         "--workdir", str(tmp_path / "w"), "--config.data.source=files", f"--config.data.files={tmp_path}/*.txt",
         "--config.train.steps=2", "--config.tokenizer.vocab_size=100", f"--config.data_cache_dir={tmp_path}/cache",
         "--config.train.progress_bar=False", "--config.model.num_hidden_layers=1", "--config.train.seq_len=32",
         "--config.train.global_batch_size=4"],
        env=subprocess_env(1), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.load(open(tmp_path / "w" / "eval_results.json"))["step"] == 2
