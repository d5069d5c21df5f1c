"""The same command gives the same run: vocabulary training is the same in every process, and two fresh
work directories (each with its own data cache and its own trained vocabulary) give bitwise the same
tokenizer files and losses.

The vocabulary test needs two interpreters with different hash seeds (the library's trainer once
differed between processes), so it runs two children; the two runs are in this process.
"""
import os
import subprocess
import sys

from helpers import losses, subprocess_env, tiny_config
from jax_bert.train import loop as pretrain


def test_vocabulary_training_is_the_same_in_every_process(tmp_path):
    """Two interpreters with different hash seeds (the library's trainer differed between processes)."""
    code = ("import hashlib, sys; from jax_bert.data import corpus, tokenizer; "
            "v = tokenizer.train_wordpiece_vocab(corpus.offline_documents()[:1500], 2000); "
            "print(len(v), hashlib.sha256('\\n'.join(v).encode()).hexdigest())")
    outs = []
    for seed in ("1", "2"):
        env = dict(subprocess_env(1), PYTHONHASHSEED=seed)
        outs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   timeout=300, check=True).stdout)
    assert outs[0] == outs[1] and outs[0].startswith("2000 ")


def test_two_fresh_work_directories_give_bitwise_the_same_losses(tmp_path):
    """Each run trains its own vocabulary (tiny_config names none): same files, same losses, bit for bit."""
    runs = []
    for name in ("a", "b"):
        config = tiny_config(str(tmp_path / f"cache_{name}"), steps=4)  # fresh data caches too
        pretrain.run(config, str(tmp_path / name))
        runs.append(str(tmp_path / name))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        assert open(os.path.join(runs[0], "tokenizer", f), "rb").read() == open(
            os.path.join(runs[1], "tokenizer", f), "rb").read()
    assert losses(runs[0]) == losses(runs[1]) and len(losses(runs[0])) == 4
