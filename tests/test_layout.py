"""The layout's promises (docs/design.md): imports point one way and run in no circle; every entry
script answers --help from the repo root and from another directory (`scripts/glue.py` shares its name
with the `glue` package: the package must win for every script)."""
import ast
import collections
import concurrent.futures
import os
import subprocess
import sys

import pytest

from helpers import ROOT, subprocess_env

PACKAGES = ("sparsity", "jax_bert", "glue", "squad", "study", "benchmarks")
# The floors: a unit may import only units on lower floors. jax_bert's own helpers (files, errors,
# cli, cpu_load) sit under the model; its root __init__ is the small public API over the model.
FLOORS = {"sparsity": 0, "jax_bert.base": 1, "jax_bert.model": 2, "jax_bert": 3, "jax_bert.data": 3,
          "jax_bert.train": 4, "jax_bert.finetune": 5, "jax_bert.plan": 5, "glue": 6, "squad": 7,
          "study": 8, "benchmarks": 8, "scripts": 9}
JAX_BERT_UNITS = ("model", "data", "train", "finetune", "plan")
# Config files import only config helpers.
CONFIG_HELPERS = {"jax_bert.train.config", "study.rows"}


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "jax_bert":
        return parts[0]
    if len(parts) == 1:
        return "jax_bert"
    return f"jax_bert.{parts[1]}" if parts[1] in JAX_BERT_UNITS else "jax_bert.base"


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def first_party_imports(path: str):
    """Every first-party module a file imports, at any depth (function-level imports count too)."""
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name


def python_files(*folders):
    for folder in folders:
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            yield from (os.path.join(dirpath, n) for n in sorted(names) if n.endswith(".py"))


def known_module(name: str, modules: set[str]) -> str:
    """`name` (a module, or a module plus an attribute) as the module it is."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_imports_point_down_the_floors():
    upward = []
    for path in python_files(*PACKAGES, "scripts"):
        module = module_name(path)
        source = "scripts" if module.startswith("scripts.") else unit_of(module)
        for name in first_party_imports(path):
            target = unit_of(name)
            if target != source and FLOORS[target] >= FLOORS[source]:
                upward.append(f"{module} imports {name} ({source} -> {target})")
    assert not upward, "\n".join(upward)


def test_configs_import_only_config_helpers():
    modules = {module_name(p) for p in python_files(*PACKAGES)}
    others = [f"{os.path.basename(p)} imports {name}" for p in python_files("configs")
              for name in first_party_imports(p) if known_module(name, modules) not in CONFIG_HELPERS]
    assert not others, others


def test_no_module_import_circle():
    paths = list(python_files(*PACKAGES))
    modules = {module_name(p) for p in paths}
    graph = collections.defaultdict(set)
    for path in paths:
        module = module_name(path)
        for name in first_party_imports(path):
            target = known_module(name, modules)
            # A package's __init__ re-exporting its own modules is not a circle through them.
            if target != module and not module.startswith(target + "."):
                graph[module].add(target)
    seen, on_path, circles = set(), [], []

    def visit(m):
        if m in on_path:
            circles.append(on_path[on_path.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        on_path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        on_path.pop()

    for m in sorted(graph):
        visit(m)
    assert not circles, [" -> ".join(c) for c in circles]


ENTRY_SCRIPTS = sorted(f for f in os.listdir(os.path.join(ROOT, "scripts")) if f.endswith(".py"))


@pytest.fixture(scope="module")
def help_runs(tmp_path_factory):
    """{(script, where): CompletedProcess} of `python scripts/X.py --help` from the repo root and from
    an unrelated directory, two at a time."""
    elsewhere = str(tmp_path_factory.mktemp("elsewhere"))
    jobs = [(script, where) for script in ENTRY_SCRIPTS for where in ("root", "elsewhere")]

    def run(job):
        script, where = job
        return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), "--help"],
                              cwd=ROOT if where == "root" else elsewhere, env=subprocess_env(), capture_output=True,
                              text=True, timeout=300)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return dict(zip(jobs, pool.map(run, jobs)))


@pytest.mark.slow
@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_every_entry_script_answers_help(help_runs, script, where):
    out = help_runs[(script, where)]
    # argparse exits 0 after --help; absl exits 1 after printing the main program's flags.
    absl_help = out.returncode == 1 and "Try --helpfull" in out.stdout
    assert out.returncode == 0 or absl_help, out.stderr[-2000:]
    assert "usage" in out.stdout.lower() or absl_help, out.stdout[-2000:]
    assert "Traceback" not in out.stderr and "error" not in out.stderr.lower(), out.stderr[-2000:]
    if script in ("glue.py", "squad.py"):  # their flags live in PACKAGE/command.py and are listed all the same
        assert "--checkpoint" in out.stdout and "--seeds" in out.stdout


def test_the_glue_script_hands_over_to_the_package():
    """Imported as `glue` with scripts/ first on sys.path (as any script in scripts/ runs), the file
    scripts/glue.py makes `import glue` the package."""
    code = ("import sys; sys.path.insert(0, 'scripts'); import glue, glue.tasks; "
            "print(glue.__file__); print(len(glue.tasks.TASK_NAMES))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    package_file, tasks = out.stdout.split()
    assert package_file == os.path.join(ROOT, "glue", "__init__.py") and tasks == "9"
