"""A run's data, ready before its first step: the tokenizer and the train / validation block caches.

One process builds whatever is not cached (`build`). On several processes (`prepare`), a process never
tokenises while its peers wait in a device collective: when the caches are there every process opens them
at once (no documents read); when they are missing the run stops on every process within seconds, in one
line naming `python scripts/prepare_data.py` (the same flags) that builds them once for every host that
shares the cache directory, unless `data.build_on_process0_wait_s` > 0. Then process 0 builds them while
the others poll the cache directory (a cache is complete when its .npy is renamed into place, last) for at
most that many seconds; which process builds is settled by a file lock in the cache directory, so on
hosts whose cache directories are separate disks, one process per disk builds, all at the same time
(the others give process 0 GRACE_S to take the lock first). Caches built anywhere are the same bytes.
"""
from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from typing import Callable

from jax_bert import files
from jax_bert.data.blocks import NotCached, prepare_blocks
from jax_bert.data.documents import data_fingerprint, datasets_cache_dir, load_documents, normalize_spec
from jax_bert.data.tokenizer import get_tokenizer

log = logging.getLogger(__name__)

GRACE_S = 5.0  # how long processes other than 0 leave the build to process 0 before taking it on (only who
# builds depends on it: a process that comes later waits for whoever holds the lock)
POLL_S = 1.0  # how often a waiting process looks for the caches
LOCK = ".prepare"  # the cache directory's build lock: a folder holding flock's .lock file


def cache_dir(config) -> str:
    return config.data_cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "jax_sparse_bert")


def _caches(config, workdir: str, tokenizer_name: str | None, build_missing: bool,
            check: Callable | None = None):
    """(tokenizer, train_blocks, validation_blocks); with build_missing=False, NotCached for anything that would
    have to be read or tokenised (a vocabulary to train, a block cache to build)."""
    spec = normalize_spec(config.data.to_dict())
    folder = cache_dir(config)

    def documents():
        if not build_missing:
            raise NotCached(f"no trained tokenizer in {os.path.join(workdir, 'tokenizer')} nor in {folder}")
        return load_documents(spec, cache_dir=datasets_cache_dir(folder))[0]

    tokenizer = get_tokenizer(tokenizer_name, workdir=workdir, documents=documents,
                              vocab_size=config.tokenizer.vocab_size, lowercase=config.tokenizer.lowercase,
                              cache_dir=folder, corpus_key=data_fingerprint(spec),
                              train_documents=config.tokenizer.get("train_documents", 0))
    if check is not None:
        check(tokenizer)  # e.g. the teachers' vocabulary, before any data work on a wrong one
    train, validation = prepare_blocks(spec, tokenizer, config.train.seq_len, cache_dir=folder, build=build_missing)
    return tokenizer, train, validation


def build(config, workdir: str, tokenizer_name: str | None, check: Callable | None = None):
    """Opens the caches, building what is missing (this process reads and tokenises)."""
    return _caches(config, workdir, tokenizer_name, True, check)


def open_ready(config, workdir: str, tokenizer_name: str | None, check: Callable | None = None):
    """Opens the caches without reading a document; NotCached when one is missing."""
    return _caches(config, workdir, tokenizer_name, False, check)


def prepare_command() -> str:
    """The command that builds this run's caches: this command line with scripts/prepare_data.py."""
    args = sys.argv[1:] if os.path.basename(sys.argv[0] or "") == "pretrain.py" else ["--config", "CONFIG", "..."]
    return shlex.join(["python", "scripts/prepare_data.py", *args])


def prepare(config, workdir: str, tokenizer_name: str | None, *, process_index: int, process_count: int,
            check: Callable | None = None, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep):
    """(tokenizer, train_blocks, validation_blocks) on process `process_index` of `process_count` (see the
    module docstring). ValueError, one line, when the caches are missing and may not be built, or did not
    appear within data.build_on_process0_wait_s."""
    if process_count == 1:
        return build(config, workdir, tokenizer_name, check)
    try:
        return open_ready(config, workdir, tokenizer_name, check)
    except NotCached as e:
        missing = str(e)
    wait_s = float(config.data.get("build_on_process0_wait_s", 0))
    who = f"process {process_index} of {process_count}"
    if wait_s <= 0:
        raise ValueError(
            f"{who}: the data caches are missing ({missing}); a run on several processes does not tokenise. "
            f"Build them once for every host that shares data_cache_dir: {prepare_command()}; or set "
            "--config.data.build_on_process0_wait_s=SECONDS to let process 0 build them while the others wait")
    folder = cache_dir(config)
    lock_folder = os.path.join(folder, LOCK)
    os.makedirs(lock_folder, exist_ok=True)
    start = clock()
    while True:
        if process_index == 0 or clock() - start >= GRACE_S:
            try:
                lock = files.lock_folder(lock_folder, busy=lambda holder: holder)
            except ValueError:
                lock = None  # another process of this cache directory builds: wait for it
            if lock is not None:
                try:  # it may have been built while this process waited for the lock
                    log.info("%s builds the data caches in %s", who, folder)
                    return build(config, workdir, tokenizer_name, check)
                finally:
                    lock.close()
        try:
            return open_ready(config, workdir, tokenizer_name, check)
        except NotCached as e:
            missing = str(e)
        if clock() - start >= wait_s:
            raise ValueError(f"{who}: waited {wait_s:g} s (data.build_on_process0_wait_s) for the data caches in "
                             f"{folder} and they are still missing ({missing}); build them first with "
                             f"{prepare_command()}, or wait longer")
        sleep(POLL_S)
