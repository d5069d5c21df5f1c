"""Writing files so that a crash never leaves a half-written one: write a temporary file next to the
target, then rename it over the target (atomic on POSIX). Permissions follow the umask, as a plain
`open(path, "w")` would (mkstemp alone would make every file private)."""
from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Any, Callable

# Held while a file is written and renamed into place: a process that ends on a signal waits for it
# (jax_bert.cli.exit_on_signals), so that it leaves neither a half-written target nor a stray temporary.
WRITING = threading.RLock()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Gives `path` the mode a plain open() / mkdir() would have given it (0666 / 0777 less the umask):
    for what mkstemp / mkdtemp (always private) or a library made."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def follow_umask_tree(root: str | os.PathLike) -> None:
    """follow_umask for a directory, its sub-directories and files (a saved tokenizer, an export)."""
    follow_umask(root, directory=True)
    for parent, dirs, names in os.walk(root):
        for d in dirs:
            follow_umask(os.path.join(parent, d), directory=True)
        for n in names:
            follow_umask(os.path.join(parent, n))


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Calls `write(tmp_path)`, then renames the temporary file to `path` (parents are created)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with WRITING:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".tmp-{os.path.basename(path)}-")
        os.close(fd)
        try:
            write(tmp)
            follow_umask(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's contents; {} when it does not exist (the results files the commands keep are written
    atomically, so a file that exists is whole)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def lock_folder(folder: str | os.PathLike, busy: Callable[[str], str]):
    """An exclusive flock on FOLDER/.lock, held while the returned file stays open (closing it, or the
    process ending, even killed, releases it); the file names the holder. Another process holding it:
    ValueError(busy(holder)), where holder is "pid N on HOST"."""
    import fcntl

    f = open(os.path.join(folder, ".lock"), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ValueError(busy(holder)) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    f.flush()
    return f
