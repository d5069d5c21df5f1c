"""The command line of the scripts (scripts/pretrain.py, scripts/glue.py, ...): one `error: ...` line for
what the user can fix, a traceback only for a bug.

- `parse_flags` reads `--config FILE` and `--config.KEY=VALUE` (ml_collections' config_flags) and
  the other absl flags; a bad command line (unknown key, bad value, missing or broken config file,
  a value that `validate` refuses) is one line and exit status 2 (`USAGE`).
- `script_named_like_a_package` lets scripts/glue.py share its name with the `glue` package.
- `exit_on_signals` ends a job that keeps its results file by file (GLUE) at once on SIGINT / SIGTERM,
  wherever it is: one line and exit status 130 / 143.
- `run` calls the job; an expected error (`EXPECTED`: a ValueError from validation, data, teachers or
  checkpoints, an OSError such as a full disk or a read-only directory, or a `RunStopped`) is one line
  and exit status 1 (`FAILED`). Set JAX_BERT_TRACEBACK=1 to see its traceback anyway.
"""
from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import signal
import sys
import threading
import warnings
from typing import Callable, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from jax_bert import files
from jax_bert.errors import PeerLost, RunStopped

USAGE, FAILED = 2, 1
EXPECTED = (ValueError, OSError, RunStopped)

# What to do about the OSErrors a run meets in practice.
_OS_ADVICE = {
    errno.ENOSPC: "free space on that disk (or choose another --workdir), then rerun: the run resumes from "
                  "its last checkpoint",
    errno.EDQUOT: "free space within your disk quota, then rerun: the run resumes from its last checkpoint",
    errno.EACCES: "choose a directory you may write to, or fix its permissions",
    errno.EPERM: "choose a directory you may write to, or fix its permissions",
    errno.EROFS: "the file system is read-only: choose a directory on a writable one",
}


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(error: BaseException) -> str:
    """The message of an expected error on one line, with what to do for the usual OSErrors."""
    if isinstance(error, OSError) and error.errno is not None:
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror or os.strerror(error.errno)}{where}"
        advice = _OS_ADVICE.get(error.errno)
        return one_line(f"{text}; {advice}" if advice else text)
    return one_line(str(error) or type(error).__name__)


def fail(message: str, status: int = FAILED) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(status)


class _QuietLibraryNoise(logging.Filter):
    """Drops the reports that orbax and asyncio print from background threads when a checkpoint save
    fails (its error reaches us through checkpoint.finish and is reported once, as the last line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        from_orbax = "orbax" in record.pathname and record.levelno >= logging.ERROR
        unretrieved = record.name == "asyncio" and "exception was never retrieved" in text
        return not (from_orbax or unretrieved)


def _quiet_unraisable(previous):
    def hook(unraisable):
        # A tensorstore write finishing after orbax closed the event loop that awaited it.
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            return
        previous(unraisable)

    return hook


def run(job: Callable[[], object]):
    """Runs `job()`; an expected error becomes one `error: ...` line on stderr and exit status 1.

    The libraries' background reports of a failed checkpoint save are dropped (it is reported once);
    set JAX_BERT_TRACEBACK=1 to see everything."""
    if not os.environ.get("JAX_BERT_TRACEBACK"):
        quiet = _QuietLibraryNoise()
        for name in ("absl", "asyncio"):
            logging.getLogger(name).addFilter(quiet)
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet)
        sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
        # A tensorstore write that a failed save abandoned is garbage-collected unawaited at exit.
        warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)
    try:
        return job()
    except PeerLost as e:
        # Exit now: a normal exit would wait in jax.distributed's shutdown barrier for the lost process
        # until the heartbeat timeout, then abort with a C++ stack dump.
        print(f"error: {describe(e)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(FAILED)
    except EXPECTED as e:
        if os.environ.get("JAX_BERT_TRACEBACK"):
            raise
        fail(describe(e))


# ----------------------------------------------------------------------------- stopping on a signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalStop:
    """What `exit_on_signals` says on a signal: `kept()` tells what the job keeps (set it once the job
    knows, e.g. its output directory); until then, that nothing was written."""

    def __init__(self):
        self.kept: Callable[[], str] = lambda: "nothing was written yet"


def exit_on_signals() -> SignalStop:
    """SIGINT (Ctrl-C) and SIGTERM end the process at once, wherever it is, compiling included: one line
    `error: stopped by SIGINT; <what was kept>` on stderr and exit status 128 + the signal number (130,
    143). For jobs whose results are complete files written one by one (jax_bert.files), not for the
    pretraining loop, which finishes its step and saves.

    Python runs a signal handler only when the main thread is between bytecodes, which a compilation
    holds for minutes; a KeyboardInterrupt raised there unwinds through libraries not written for it, and
    the interpreter's exit then races XLA's threads (a segmentation fault). Here the C-level handler only
    writes the signal number into a pipe (signal.set_wakeup_fd); a thread waiting on the pipe prints the
    line and ends the process with os._exit once no file is being written (jax_bert.files.WRITING, which a
    job may also hold over several files that belong together)."""
    stop = SignalStop()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)  # a Python handler, so that the C handler writes to the pipe
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def wait_and_exit():
        while True:
            number = os.read(read_end, 1)[0]
            if number in STOP_SIGNALS:
                break
        with files.WRITING:  # what is kept is read once the files being written are in place
            try:
                kept = stop.kept()
            except Exception as e:  # noqa: BLE001 - the line must still be printed
                kept = f"what was kept is unknown ({type(e).__name__}: {e})"
            sys.stdout.flush()
            start = "\n" if sys.stderr.isatty() else ""  # below a progress bar's line
            sys.stderr.write(f"{start}error: stopped by {signal.Signals(number).name}; {one_line(kept)}\n")
            sys.stderr.flush()
            os._exit(128 + number)

    threading.Thread(target=wait_and_exit, name="exit-on-signal", daemon=True).start()
    _whole_compilation_cache_entries()
    return stop


def _whole_compilation_cache_entries() -> None:
    """JAX writes a compiled program into its persistent cache in place (LRUCache.put: write_bytes), and
    never replaces an entry that exists: an exit in the middle would leave a truncated entry that every
    later run fails to read and compiles again. Each write holds jax_bert.files.WRITING, as ours do."""
    try:
        from jax._src import lru_cache
    except ImportError:  # another JAX layout: nothing to guard
        return
    cache_class = getattr(lru_cache, "LRUCache", None)  # a private class: absent in another JAX, no guard
    put = getattr(cache_class, "put", None)
    if put is None or getattr(put, "holds_files_writing", False):
        return

    def put_whole(self, key, value):
        with files.WRITING:
            return put(self, key, value)

    put_whole.holds_files_writing = True
    cache_class.put = put_whole


# ----------------------------------------------------------------------------- the command line


def parse_flags(argv: Sequence[str], *, default_file: str | None, defaults: Callable[[], ml_collections.ConfigDict],
                keys_file: str, validate: Callable[[ml_collections.ConfigDict], None],
                flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """An absl `flags_parser`: defines --config (config_flags reads its overrides from argv as it is
    defined), parses every flag and validates the config; any error is one line and exit status 2.

    `defaults()` is the config with every key (to name the known keys of an unknown one), `keys_file`
    where they are listed. With `default_file` None, --config is required. `flag_values`: where the
    flags live (absl's global FLAGS; the tests parse into a FlagValues of their own)."""
    argv = list(argv)
    try:
        config = config_flags.DEFINE_config_file("config", default_file, "A Python config file with "
                                                 "get_config().", lock_config=True, sys_argv=argv,
                                                 flag_values=flag_values)
        rest = flag_values(argv)
        if config.value is None:
            raise flags.Error("--config is required: give a config file, e.g. --config configs/tiny.py")
        validate(config.value)  # also raises a config file's load error, which waits till now
    except Exception as e:  # noqa: BLE001 - every way a command line can be wrong
        fail(command_line_error(e, argv, defaults, keys_file, default_file), USAGE)
    if len(rest) > 1:
        fail(f"unexpected arguments {rest[1:]}", USAGE)
    return rest


def command_line_error(error: Exception, argv: Sequence[str], defaults: Callable[[], ml_collections.ConfigDict],
                       keys_file: str, default_file: str | None = None) -> str:
    """One line for an error that absl / config_flags (or `validate`) raised while reading the command
    line (their own reports: a traceback for an unknown key, two lines for a bad value, nothing until
    the config is used for a missing file)."""
    given = [a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
             for i, a in enumerate(argv) if re.fullmatch(r"--?config(=.*)?", a)]
    for path in given:
        if path and not os.path.isfile(path) and not os.path.isfile(path.split(":", 1)[0]):
            return f"--config {path}: no such file; give a Python file with get_config()."
    if isinstance(error, LookupError | AttributeError):
        known = defaults()
        for arg in argv:
            m = re.match(r"--?config\.([^=]+)", arg)
            problem = m and unknown_key(known, m.group(1), keys_file)
            if problem:
                return problem
    text = error
    while isinstance(text, BaseException):  # config_flags wraps a KeyError in an AttributeError
        text = text.args[0] if text.args else type(text).__name__
    text = one_line(text)
    if isinstance(error, flags.Error | ValueError):  # a bad flag value, or validate()'s message
        return text
    # Anything else was raised while loading the config file (no get_config, a syntax error, ...).
    return f"--config {given[-1] if given else default_file}: {type(error).__name__}: {text}"


def unknown_key(config: ml_collections.ConfigDict, dotted: str, keys_file: str) -> str | None:
    """What is wrong with `dotted` as a key of `config`, or None when it is one."""
    node, parts = config, dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict):
            return (f"unknown config key {dotted!r}: {'.'.join(parts[:i])} is a value, not a group "
                    "of keys.")
        if part not in node:
            import difflib

            where = ".".join(parts[:i]) or "the config"
            close = difflib.get_close_matches(part, list(node.keys()), n=1)
            guess = f" Did you mean {'.'.join(parts[:i] + close)!r}?" if close else ""
            return f"unknown config key {dotted!r}: {where} has the keys {', '.join(node.keys())} ({keys_file}).{guess}"
        node = node[part]
    return None


# ----------------------------------------------------------------------------- a script named like a package


def script_named_like_a_package(name: str, script: str) -> None:
    """Call at the top of a script that has a package's name (scripts/glue.py beside the `glue` package).

    Python puts a script's folder first on sys.path, so for every script in that folder (this one
    included) `import glue` finds the script, not the package. Run as a program (`name` is
    "__main__") this does nothing. Imported under the package's name, it imports the package with
    the script's folder left out of the search and puts it in the script's place in sys.modules; the
    import system returns what sys.modules holds once the module has run, so the importer gets the
    package. The rest of the script must run only under `if __name__ == "__main__":`."""
    if name == "__main__":
        return
    folder = os.path.dirname(os.path.abspath(script))
    search_path = sys.path[:]
    this_script = sys.modules.pop(name)
    sys.path[:] = [p for p in search_path if os.path.abspath(p or os.curdir) != folder]
    try:
        package = importlib.import_module(name)
    except BaseException:
        sys.modules[name] = this_script
        raise
    finally:
        sys.path[:] = search_path
    sys.modules[name] = package
