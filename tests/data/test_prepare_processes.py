"""Two processes on localhost (jax.distributed, gloo CPU collectives) set up a run's data: caches built
by scripts/prepare_data.py are opened without reading a document; missing caches stop both processes in
one line within seconds; processes with separate cache directories each build their own copy at the
same time, the same bytes."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import ROOT, one_error_line, subprocess_env

PROCESS = os.path.join(ROOT, "tests", "data", "prepare_process.py")


def _corpus(tmp_path) -> str:
    path = tmp_path / "corpus.jsonl"
    with open(path, "w") as f:
        for i in range(300):
            f.write(json.dumps({"text": f"Paragraph {i} says that topic {i % 13} is about {i % 5} things."}) + "\n")
    return str(path)


def _overrides(tmp_path, cache: str, **more) -> dict:
    return {"data.source": "files", "data.files": (_corpus(tmp_path),), "data_cache_dir": cache,
            "tokenizer.vocab_size": 600, "train.seq_len": 32, **more}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(workdirs, overrides_per_process, timeout=120):
    """(returncode, stdout, stderr, seconds) of each of the two processes, started together."""
    port, start = _free_port(), time.perf_counter()
    procs = [subprocess.Popen([sys.executable, PROCESS, str(port), str(pid), workdirs[pid],
                               json.dumps(overrides_per_process[pid])], env=subprocess_env(1),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr, time.perf_counter() - start))
    return out


def _report(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_caches_built_by_the_prepare_script_are_opened_by_both_processes_without_reading(tmp_path):
    workdir, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    overrides = _overrides(tmp_path, cache)
    flags = [f"--config.{k}={v[0] if isinstance(v, tuple) else v}" for k, v in overrides.items()]
    script = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prepare_data.py"), "--config",
                             os.path.join(ROOT, "configs", "tiny.py"), *flags, "--workdir", workdir],
                            env=subprocess_env(1), capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert script.returncode == 0, script.stderr[-3000:]
    assert "data caches ready in" in script.stdout and "train blocks" in script.stdout
    results = _two_processes([workdir, workdir], [overrides, overrides])
    for code, stdout, stderr, _ in results:
        assert code == 0, stderr[-3000:]
    reports = [_report(stdout) for _, stdout, _, _ in results]
    assert not any(r["read_documents"] for r in reports)
    assert reports[0] == reports[1]


def test_missing_caches_stop_both_processes_in_one_line_within_seconds(tmp_path):
    overrides = _overrides(tmp_path, str(tmp_path / "cache"))
    results = _two_processes([str(tmp_path / "run")] * 2, [overrides, overrides])
    for pid, (code, _, stderr, seconds) in enumerate(results):
        assert code == 1, stderr[-3000:]
        line = one_error_line(stderr)
        assert f"process {pid} of 2: the data caches are missing" in line and "scripts/prepare_data.py" in line
        assert seconds < 60  # jax's import and initialisation; the check itself reads nothing
    cache = tmp_path / "cache"
    assert not (cache.exists() and [f for f in os.listdir(cache) if f.startswith("blocks-")])  # nothing built


@pytest.mark.slow
def test_processes_with_separate_cache_directories_each_build_the_same_caches(tmp_path):
    per_process = [_overrides(tmp_path, str(tmp_path / f"cache{pid}"), **{"data.build_on_process0_wait_s": 120})
                   for pid in (0, 1)]
    results = _two_processes([str(tmp_path / f"run{pid}") for pid in (0, 1)], per_process)
    for code, _, stderr, _ in results:
        assert code == 0, stderr[-3000:]
    reports = [_report(stdout) for _, stdout, _, _ in results]
    assert all(r["read_documents"] for r in reports)  # each built its own copy
    assert reports[0] == reports[1]
