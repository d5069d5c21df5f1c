"""The disk under a pretraining run: a full disk (before a save, and while orbax writes one), a read-only
work directory, and the umask of the files a run exports.

The full and read-only disks are tmpfs mounts (the tests skip without root), and the runs on them are
child processes (tests/helpers.py) that end through jax_bert.cli as the script does: the promise is one
`error: ...` line with what to do and exit status 1, the checkpoints before the fault intact, and a rerun
after space is freed equal to the uninterrupted run. The umask test runs in this process.
"""
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, checkpoints_dir, losses, one_error_line, subprocess_env, tiny_config, tmp_checkpoint_folders
from jax_bert.train import checkpoint
from jax_bert.train import loop as pretrain

HELPER = os.path.join(ROOT, "tests", "helpers.py")


@pytest.fixture
def straight(reference_run):
    """The session's uninterrupted 8-step run (checkpoints at 4 and 8): the reference."""
    return reference_run[0]


def _mount_tmpfs(path, options):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "disk"
    _mount_tmpfs(path, "size=16m")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


# The run in a child process, optionally without the free-space check before a save, so that the disk
# fills up while orbax writes (the other way a full disk shows).
_UNCHECKED = ("import sys; sys.path.insert(0, {tests!r}); from jax_bert.train import checkpoint; "
              "checkpoint._check_free_space = lambda *a: None; import helpers; "
              "sys.argv = ['helpers.py', *sys.argv[1:]]; helpers.run_in_subprocess_main()")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before the save", "during the save"])
def test_a_full_disk_is_one_line_and_keeps_the_checkpoints(straight, cache_dir, small_disk, when):
    workdir = str(small_disk / "run")
    shutil.copytree(straight, workdir, ignore=shutil.ignore_patterns("8", "eval_results.json"))  # resume at 4
    before = sorted(os.listdir(checkpoints_dir(workdir)))
    stat = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as f:  # leave ~100 KB: the logs fit, a checkpoint does not
        f.write(b"\0" * max(stat.f_bavail * stat.f_frsize - 100_000, 0))
    entry = [HELPER] if when == "before the save" else ["-c", _UNCHECKED.format(tests=os.path.join(ROOT, "tests"))]
    out = subprocess.run([sys.executable, *entry, workdir, cache_dir, "{}"], env=subprocess_env(1),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    line = one_error_line(out.stderr)
    assert "No space left on device" in line and "free space on that disk" in line, line
    assert sorted(os.listdir(checkpoints_dir(workdir))) == before and not tmp_checkpoint_folders(workdir)
    checkpoint.restore_params_only(checkpoints_dir(workdir), 4)  # intact (verified against its checksums)
    os.remove(small_disk / "filler")
    out = subprocess.run([sys.executable, HELPER, workdir, cache_dir, "{}"], env=subprocess_env(1),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert losses(workdir) == losses(straight)


@pytest.mark.slow
def test_a_read_only_work_directory_is_one_line(cache_dir, tmp_path):
    path = tmp_path / "readonly"
    _mount_tmpfs(path, "ro,size=1m")
    try:
        out = subprocess.run([sys.executable, HELPER, str(path / "run"), cache_dir, "{}"], env=subprocess_env(1),
                             capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
    assert out.returncode == 1
    assert "Read-only file system" in one_error_line(out.stderr)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_exported_files_follow_the_umask(cache_dir, tmp_path, umask):
    previous = os.umask(umask)
    try:
        config = tiny_config(cache_dir, steps=1, export_hf=True)  # its vocabulary is trained in tokenizer/
        pretrain.run(config, str(tmp_path / "run"))
    finally:
        os.umask(previous)
    for sub in ("hf", "tokenizer"):
        root = tmp_path / "run" / sub
        assert (os.stat(root).st_mode & 0o777) == 0o777 & ~umask, sub
        for path in root.iterdir():
            assert (os.stat(path).st_mode & 0o777) == 0o666 & ~umask, path
    assert (os.stat(tmp_path / "run" / "eval_results.json").st_mode & 0o777) == 0o666 & ~umask
