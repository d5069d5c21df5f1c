"""An offline English corpus that every Python install has: the standard library's docstrings.

`offline_documents()` gives a few MB of real technical English with no download, so the
tokenizer, the packing and the MLM pretraining loop can be exercised end to end anywhere
(tests, laptops, air-gapped machines). Sources, in a fixed order:

  1. `pydoc_data.topics.topics`: the language reference sections that `help()` shows;
  2. the docstrings of every importable standard-library module and submodule (from
     `sys.stdlib_module_names`), and of their public classes, functions and methods.

The modules are imported in a child interpreter so that import-time side effects
(readline hooks, signal handlers, stray prints, deprecation warnings) never touch the
caller's process; GUI and joke modules are never imported at all.

The corpus depends on the Python interpreter alone (its version and build), never on the
packages installed beside it: the child runs isolated and without `site` (`-I -S`: no
PYTHON* variables, no site-packages, no .pth hooks), and before collecting it keeps only the
standard library's own directories on sys.path, the standard importers on sys.meta_path and
the standard library's modules in sys.modules, so a package that shadows or monkey-patches a
standard module (setuptools' `_distutils_hack` swaps `distutils` for its own copy) cannot
change a document. Modules that a build tool vendors or a distribution ships separately
(`distutils`, `ensurepip`, `venv`, `lib2to3`, `tkinter`, `site`) are left out altogether.
"""
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile

# Never imported: GUI toolkits, modules that act on import (`this` prints, `antigravity`
# opens a browser, `__hello__` prints), the test suite, installers and platform-only shims.
_SKIP_TOP_LEVEL = frozenset({
    "antigravity", "this", "__hello__", "__phello__", "tkinter", "turtle", "turtledemo",
    "idlelib", "test", "ensurepip", "venv", "lib2to3", "pydoc_data", "__main__",
    "msvcrt", "winreg", "winsound", "_winapi", "nt", "_msi", "msilib", "_overlapped",
    "xxsubtype", "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
    "_testimportmultiple", "_testclinic", "_xxtestfuzz", "_ctypes_test", "xxlimited",
    "xxlimited_35", "_xxsubinterpreters", "_xxinterpchannels",
    # Vendored or patched by build tools (setuptools' copy of distutils), split into separate
    # packages by Linux distributions, or reading the environment (site, sitecustomize).
    "distutils", "_distutils_hack", "setuptools", "pkg_resources", "pip", "site", "sitecustomize",
    "usercustomize",
})

# A document packs consecutive paragraphs of one docstring up to this many characters; a
# longer single paragraph stays whole. Keeps the per-document [CLS]/[SEP] overhead small
# without cutting sentences.
MAX_DOCUMENT_CHARS = 1500
# Paragraphs shorter than this ("Args:", "Example::") only make sense next to their
# neighbours, which packing already provides; alone they are dropped.
_MIN_DOCUMENT_CHARS = 40


def _stdlib_dir() -> str:
    return os.path.realpath(getattr(sys, "_stdlib_dir", None) or os.path.dirname(os.__file__))


def _in_stdlib(path: str | None, stdlib: str) -> bool:
    """Whether a file or sys.path entry is the standard library's own (its folder, lib-dynload, the
    zipped stdlib), not a site-packages folder inside or beside it."""
    if not path:
        return False
    real = os.path.realpath(path)
    if "site-packages" in real.split(os.sep) or "dist-packages" in real.split(os.sep):
        return False
    zipped = os.path.join(os.path.realpath(sys.base_prefix), "lib",
                          f"python{sys.version_info.major}{sys.version_info.minor}.zip")
    return real == stdlib or real.startswith(stdlib + os.sep) or real == zipped


def _standard_module(module, stdlib: str) -> bool:
    spec = getattr(module, "__spec__", None)
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    return _in_stdlib(getattr(module, "__file__", None), stdlib)


def _only_the_standard_library() -> None:
    """Runs in the child first: whatever started the interpreter (a site-packages .pth hook, a
    sitecustomize, PYTHONPATH when the child is run by hand), imports see the standard library only."""
    import importlib.machinery

    stdlib = _stdlib_dir()
    sys.path[:] = [p for p in sys.path if _in_stdlib(p, stdlib)]
    standard = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter,
                importlib.machinery.PathFinder)
    sys.meta_path[:] = [f for f in sys.meta_path if f in standard or isinstance(f, standard)]
    sys.path_importer_cache.clear()
    for name in [n for n, m in list(sys.modules.items()) if n != "__main__" and not _standard_module(m, stdlib)]:
        del sys.modules[name]


def _collect_docstrings() -> list[str]:
    """Runs in the child interpreter: every docstring, in a deterministic order."""
    _only_the_standard_library()
    import importlib
    import inspect
    import pkgutil
    import warnings

    stdlib = _stdlib_dir()
    warnings.simplefilter("ignore")
    texts: list[str] = []

    from pydoc_data.topics import topics
    texts.extend(topics[key] for key in sorted(topics))

    def add(obj) -> None:
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str) and doc.strip():
            texts.append(inspect.cleandoc(doc))

    def module_names() -> list[str]:
        names = []
        for top in sorted(sys.stdlib_module_names):
            if top in _SKIP_TOP_LEVEL or top.startswith("_"):
                continue
            names.append(top)
            try:
                module = _quiet_import(importlib, top)
            except BaseException:  # noqa: BLE001 - any failure just means "skip it"
                continue
            if hasattr(module, "__path__"):  # a package: its submodules too
                subs = pkgutil.walk_packages(module.__path__, prefix=top + ".",
                                             onerror=lambda _name: None)
                names.extend(sorted(info.name for info in subs
                                    if ".test" not in info.name and "._" not in info.name))
        return names

    for name in module_names():
        try:
            module = _quiet_import(importlib, name)
        except BaseException:  # noqa: BLE001
            continue
        if not _standard_module(module, stdlib):  # a stand-in from outside the standard library
            continue
        add(module)
        for attr in sorted(getattr(module, "__all__", None) or dir(module)):
            if not isinstance(attr, str) or attr.startswith("_"):
                continue
            obj = getattr(module, attr, None)
            # Re-exports (os.* functions live in posix) are kept: repeats are removed later.
            if inspect.isclass(obj):
                add(obj)
                for member in sorted(vars(obj)):
                    if not member.startswith("_"):
                        add(vars(obj)[member])
            elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
                add(obj)
    return texts


def _quiet_import(importlib, name: str):
    """Imports with stdout/stderr silenced (some modules print on import)."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(name)


def _split_documents(texts: list[str]) -> list[str]:
    """Splits each text on blank lines and packs its paragraphs into documents."""
    documents: list[str] = []
    seen: set[str] = set()

    def emit(doc: str) -> None:
        if len(doc) >= _MIN_DOCUMENT_CHARS and doc not in seen:
            seen.add(doc)
            documents.append(doc)

    for text in texts:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        current = ""
        for paragraph in paragraphs:
            if current and len(current) + 2 + len(paragraph) > MAX_DOCUMENT_CHARS:
                emit(current)
                current = paragraph
            else:
                current = f"{current}\n\n{paragraph}" if current else paragraph
        if current:
            emit(current)
    return documents


# -I: isolated mode, the child sees neither PYTHON* variables nor the user's site; -S: no `site`,
# so no site-packages and none of their .pth hooks.
CHILD_FLAGS = ("-I", "-S")


def collect_texts(python_flags: tuple[str, ...] = CHILD_FLAGS, env: dict | None = None) -> list[str]:
    """Every docstring, collected by a child interpreter started with `python_flags` (and `env`: the
    tests start one with a hostile environment to show that the texts do not depend on it)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "texts.json")
        # The child runs this very file as a script (see the bottom), importing nothing but the
        # standard library.
        proc = subprocess.run(
            [sys.executable, *python_flags, os.path.abspath(__file__), out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=300, check=False, env=env,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(
                "collecting standard-library docstrings failed in the child interpreter "
                f"(exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def documents_from(texts: list[str]) -> tuple[str, ...]:
    # Deduplicate whole texts first (many classes share an inherited docstring).
    return tuple(_split_documents(list(dict.fromkeys(texts))))


@functools.cache
def _offline_documents() -> tuple[str, ...]:
    return documents_from(collect_texts())


def fingerprint(documents) -> str:
    """sha256 of the documents (each UTF-8, NUL-separated): what "the same corpus" means."""
    import hashlib

    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.encode("utf-8") + b"\0")
    return digest.hexdigest()


def offline_documents() -> list[str]:
    """The offline corpus: a deterministic, de-duplicated list of English paragraphs.

    Same Python interpreter (version and build) -> same list, byte for byte, whatever packages
    are installed beside it. A few MB; the first call takes a few seconds (it imports the standard
    library in a child process), later calls are free.
    """
    return list(_offline_documents())


if __name__ == "__main__":  # the child interpreter of `_offline_documents`
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(_collect_docstrings(), f)
