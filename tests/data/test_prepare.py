"""A run's data on one process or several (jax_bert/data/prepare.py), with the process index given: what
each process does when the caches are there, missing, or being built by another."""
import json
import time

import numpy as np
import pytest

from helpers import tiny_config
from jax_bert import files
from jax_bert.data import documents, prepare


def corpus_config(tmp_path, cache: str, **data):
    """A tiny config on a small JSONL corpus in tmp_path (seconds to prepare)."""
    path = tmp_path / "corpus.jsonl"
    if not path.exists():
        with open(path, "w") as f:
            for i in range(300):
                f.write(json.dumps({"text": f"Paragraph {i} says that topic {i % 13} is about {i % 5} things."})
                        + "\n")
    config = tiny_config(cache)
    config.data.update(source="files", files=(str(path),), max_documents=0, **data)
    return config


class Reads:
    """Counts the documents loads (monkeypatched into documents.load_documents' callers)."""

    def __init__(self, monkeypatch):
        self.count = 0
        real = documents.load_documents

        def counted(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(prepare, "load_documents", counted)
        from jax_bert.data import blocks
        monkeypatch.setattr(blocks, "load_documents", counted)


def test_caches_built_once_are_opened_by_every_process_without_reading(tmp_path, monkeypatch):
    reads = Reads(monkeypatch)
    config = corpus_config(tmp_path, str(tmp_path / "cache"))
    tok, train, val = prepare.prepare(config, str(tmp_path / "w"), None, process_index=0, process_count=1)
    built = reads.count
    assert built >= 1
    for index in (0, 1):
        tok2, train2, val2 = prepare.prepare(config, str(tmp_path / "w"), None, process_index=index,
                                             process_count=2)
        np.testing.assert_array_equal(train2, train)
        np.testing.assert_array_equal(val2, val)
        assert tok2.get_vocab() == tok.get_vocab()
    assert reads.count == built  # no document read on the second start


def test_missing_caches_on_several_processes_are_one_line_naming_the_prepare_command(tmp_path, monkeypatch):
    reads = Reads(monkeypatch)
    config = corpus_config(tmp_path, str(tmp_path / "cache"))
    start = time.perf_counter()
    for index in (0, 1):
        with pytest.raises(ValueError, match=rf"process {index} of 2: the data caches are missing .*"
                                             r"scripts/prepare_data\.py.*build_on_process0_wait_s") as e:
            prepare.prepare(config, str(tmp_path / "w"), None, process_index=index, process_count=2)
        assert "\n" not in str(e.value)
    assert time.perf_counter() - start < 10 and reads.count == 0


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_waiting_process_polls_until_the_builder_is_done_and_builds_nothing(tmp_path, monkeypatch):
    config = corpus_config(tmp_path, str(tmp_path / "cache"), build_on_process0_wait_s=600)
    clock, polls, built = FakeClock(), [], []
    lock = files.lock_folder(_lock_folder(config), busy=str)  # process 0 is building

    def sleep(seconds):
        polls.append(clock.now)
        clock.now += seconds
        if len(polls) == 30:  # process 0 finishes (it builds; the lock goes with it)
            prepare.build(config, str(tmp_path / "w"), None)
            built.append(reads.count)
            lock.close()

    reads = Reads(monkeypatch)
    _, train, _ = prepare.prepare(config, str(tmp_path / "w"), None, process_index=1, process_count=2,
                                  clock=clock, sleep=sleep)
    assert len(polls) == 30 and reads.count == built[0] >= 1  # process 0's reads; the waiting process's none
    assert train.shape[1] == config.train.seq_len


def test_a_wait_that_runs_out_is_one_line(tmp_path):
    config = corpus_config(tmp_path, str(tmp_path / "cache"), build_on_process0_wait_s=20)
    clock = FakeClock()
    lock = files.lock_folder(_lock_folder(config), busy=str)  # a builder that never finishes
    try:
        with pytest.raises(ValueError, match=r"process 1 of 2: waited 20 s .*still missing.*prepare_data\.py"):
            prepare.prepare(config, str(tmp_path / "w"), None, process_index=1, process_count=2, clock=clock,
                            sleep=lambda s: setattr(clock, "now", clock.now + s))
        assert 20 <= clock.now <= 22
    finally:
        lock.close()


def test_a_process_alone_on_its_cache_directory_builds_after_the_grace(tmp_path, monkeypatch):
    """Hosts with separate cache directories: nobody else holds the lock, so process 1 builds its own copy
    (GRACE_S after it started), the same bytes as process 0's in another directory."""
    reads = Reads(monkeypatch)
    mine = corpus_config(tmp_path, str(tmp_path / "cache1"), build_on_process0_wait_s=600)
    clock = FakeClock()
    _, train, val = prepare.prepare(mine, str(tmp_path / "w1"), None, process_index=1, process_count=2,
                                    clock=clock, sleep=lambda s: setattr(clock, "now", clock.now + s))
    assert prepare.GRACE_S <= clock.now <= prepare.GRACE_S + 2 and reads.count >= 1
    other = corpus_config(tmp_path, str(tmp_path / "cache0"), build_on_process0_wait_s=600)
    _, train0, val0 = prepare.prepare(other, str(tmp_path / "w0"), None, process_index=0, process_count=2)
    assert open(train.filename, "rb").read() == open(train0.filename, "rb").read()
    assert open(val.filename, "rb").read() == open(val0.filename, "rb").read()


def _lock_folder(config) -> str:
    import os

    folder = os.path.join(prepare.cache_dir(config), prepare.LOCK)
    os.makedirs(folder, exist_ok=True)
    return folder
