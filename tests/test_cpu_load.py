"""The benchmarks' judgement of a busy machine: a ratio timed while other processes used more than 10% of
the CPUs is printed as NOT VALID."""
import os
import subprocess
import sys
import time

import pytest

from jax_bert import cpu_load


def _monitor(share):
    m = cpu_load.CpuMonitor()
    m.other_share = share
    return m


@pytest.mark.parametrize("share, valid", [(None, True), (0.0, True), (0.10, True), (0.11, False), (0.65, False)])
def test_a_ratio_from_a_busy_machine_is_marked_not_valid(share, valid):
    text = cpu_load.ratio_text(2.7249, _monitor(share))
    assert text.startswith("2.72x") and cpu_load.is_quiet(_monitor(share)) is valid
    assert ("NOT VALID" in text) is (not valid)
    if not valid:
        assert f"{share:.0%} of the CPUs" in text and "not quiet-machine" in cpu_load.load_note(_monitor(share))


def test_the_monitor_sees_another_process_burning_a_cpu():
    # A child spinning on one CPU for the whole block: at least a share of 1/cpus minus scheduling slack.
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 2\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)  # the child has started spinning
        with cpu_load.CpuMonitor() as m:
            time.sleep(1.0)
    finally:
        spin.wait()
    assert m.other_share is not None and m.other_share >= 0.6 / (os.cpu_count() or 1)
