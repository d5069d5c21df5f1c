"""What a run reads from outside its work directory, checked once before any work: the teachers, a
named tokenizer, `init_from_hf` and hub datasets. Local paths must exist; hub names need the Hugging
Face hub or a cached copy. Without network (or with HF_HUB_OFFLINE=1) everything missing is named in
one line with the local alternative, instead of each library retrying the hub in turn; when all of it
is cached, the libraries are switched to offline mode so that they read the cache without retrying.
"""
from __future__ import annotations

import os
import sys
import threading
import urllib.error
import urllib.request

from jax_bert.train.teachers import HOW_TO_GET_A_TEACHER, teacher_path

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
PROBE_SECONDS = 3.0
LOCAL_FIX = ("give local copies: --config.distill.teachers=WORKDIR_OR_HF_DIR, --config.tokenizer.name=DIR (with "
             "tokenizer.json or vocab.txt), --config.init_from_hf=DIR, and --config.data.source=files "
             "--config.data.files='/data/*.parquet' (or --config.data.source=offline for the built-in corpus)")


def _looks_local(name: str) -> bool:
    """A path rather than a hub name ('org/model' or 'model')."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.path.exists(os.path.expanduser(name))


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be used (an offline variable, or no answer within PROBE_SECONDS),
    or None when it answered."""
    for name in _OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{name}={os.environ[name]}"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    answer: list = []

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_SECONDS).close()
            answer.append(None)
        except urllib.error.HTTPError:
            answer.append(None)  # it answered
        except (OSError, ValueError) as e:
            answer.append(" ".join(str(getattr(e, "reason", e)).split())[:100])

    # In a thread: the timeout of urlopen does not cover the name lookup, which can hang for longer.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS + 1)
    if answer and answer[0] is None:
        return None
    return f"{endpoint} did not answer within {PROBE_SECONDS:g} s: {answer[0] if answer else 'no reply'}"


def _hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _model_cached(repo: str, files: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(repo, f, cache_dir=_hub_cache()), str) for f in files)
    except ValueError:  # not a valid repo id (HFValidationError): nothing of that name is cached
        return False


def _dataset_cached(name: str) -> bool:
    datasets_cache = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "datasets")
    return (os.path.isdir(os.path.join(_hub_cache(), "datasets--" + name.replace("/", "--")))
            or os.path.isdir(os.path.join(datasets_cache, name.replace("/", "___"))))


def _go_offline() -> None:
    """The libraries read their cache without asking the hub (each would otherwise retry it)."""
    for name in _OFFLINE_VARIABLES:
        os.environ[name] = "1"
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        sys.modules["datasets"].config.HF_HUB_OFFLINE = True
        sys.modules["datasets"].config.HF_DATASETS_OFFLINE = True


def check_sources(config) -> None:
    """Raises ValueError naming everything the run cannot get (see the module docstring)."""
    from jax_bert.model import hf_io

    local_teachers = []  # (path, why it is not there)
    hub = []  # (what, hub name, files that show a cached copy; None: a dataset)
    for entry in config.distill.teachers:
        path = teacher_path(entry)
        if os.path.isdir(os.path.expanduser(path)):
            continue
        if _looks_local(path):
            local_teachers.append((path, "no such directory"))
        else:
            hub.append((f"teacher {path!r}", path, ("config.json",)))
    if config.tokenizer.name and not _looks_local(config.tokenizer.name):
        hub.append((f"tokenizer {config.tokenizer.name!r}", config.tokenizer.name, ("tokenizer.json", "vocab.txt")))
    if config.init_from_hf and not _looks_local(config.init_from_hf):
        hub.append((f"init_from_hf {config.init_from_hf!r}", config.init_from_hf, ("config.json",)))
    if config.data.source == "hub":
        for d in config.data.datasets:
            name = d.split(":")[0] if isinstance(d, str) else dict(d)["name"]
            hub.append((f"dataset {name!r}", name, None))

    offline = hub_unreachable() if hub else None
    if offline is None:
        for what, name, _ in hub:  # the hub answers: a teacher must be a model there
            if what.startswith("teacher"):
                try:
                    hf_io.resolve_hf_dir(name)
                except hf_io.CheckpointError as e:
                    cause = e.__cause__ or e
                    local_teachers.append((name, "no such directory, and no Hugging Face hub model of that name: "
                                                 f"{type(cause).__name__}"))
        if local_teachers:
            path, why = local_teachers[0]
            problem = "does not exist" if why == "no such directory" else f"does not exist ({why})"
            raise ValueError(f"teacher {path!r} {problem}. To get one, {HOW_TO_GET_A_TEACHER}.")
        return
    missing = [f"teacher {path!r}: {why}" for path, why in local_teachers]
    for what, name, files in hub:
        if not (_model_cached(name, files) if files else _dataset_cached(name)):
            missing.append(f"{what}: no such directory, nor a cached hub model" if what.startswith("teacher")
                           else f"{what}: not cached")
    if missing:
        advice = []
        if any(m.startswith("teacher") for m in missing):
            advice.append(f"To get a teacher, {HOW_TO_GET_A_TEACHER}.")
        if any(not m.startswith("teacher") for m in missing):
            advice.append(f"Offline, {LOCAL_FIX}.")
        raise ValueError(f"missing before any work, with the Hugging Face hub unreachable ({offline}): "
                         f"{'; '.join(missing)}. {' '.join(advice)}")
    _go_offline()
