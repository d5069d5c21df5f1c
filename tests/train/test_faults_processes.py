"""A multi-process pretraining run that loses a process: two real processes (tests/helpers.py as children,
jax.distributed on a local port), one killed with SIGKILL after the first checkpoint.

The promise: the survivor stops within seconds (not at the heartbeat timeout) with one `error: ...` line
that names the lost process, exit status 1, and the newest checkpoint restores with finite params.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT, one_error_line, subprocess_env
from jax_bert.train import checkpoint

HELPER = os.path.join(ROOT, "tests", "helpers.py")


def _checkpoints(workdir):
    return os.path.join(workdir, "checkpoints")


@pytest.mark.slow
def test_a_killed_peer_stops_the_survivor_within_seconds(cache_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = str(tmp_path / "two")
    procs = []
    for pid in range(2):
        overrides = {"distributed.initialize": "yes", "distributed.coordinator_address": f"127.0.0.1:{port}",
                     "distributed.num_processes": 2, "distributed.process_id": pid, "train.steps": 10_000,
                     "train.checkpoint_every": 2, "train.log_every": 50,
                     "data.build_on_process0_wait_s": 240}  # the shared cache may not be built yet
        procs.append(subprocess.Popen([sys.executable, HELPER, workdir, cache_dir, json.dumps(overrides)],
                                      env=subprocess_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    deadline = time.time() + 240
    while checkpoint.latest_step(_checkpoints(workdir)) is None and time.time() < deadline:
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.5)
    assert checkpoint.latest_step(_checkpoints(workdir)) is not None, "no checkpoint within 4 minutes"
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    _, err = procs[0].communicate(timeout=120)
    waited = time.time() - killed
    procs[1].wait()
    if procs[0].returncode == -signal.SIGABRT:
        # JAX's coordination client can learn of the lost process first and abort from its own thread,
        # with its own message, before the failed collective reaches Python (a race this JAX offers no
        # hook for: its client's missed_heartbeat_callback cannot be given a Python function).
        assert "another task died" in err, err[-3000:]
    else:
        assert procs[0].returncode == 1, err[-3000:]
        line = one_error_line(err)
        assert "process 1 of this 2-process run is gone" in line and "process 0 stopped too" in line
    assert waited < 30, waited
    step = checkpoint.latest_step(_checkpoints(workdir))
    params = checkpoint.restore_params_only(_checkpoints(workdir), step)  # intact: verified against checksums
    assert all(np.isfinite(x).all() for x in __import__("jax").tree.leaves(params))
