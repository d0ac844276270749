"""Every stage of dvc.yaml depends on the saltseg code its command runs.

DVC reruns a stage only when a listed dependency changes: a module the stage imports but does not
list (say, the RLE encoder of `predict`) could change while the stage's outputs stay as they were.
The modules a stage runs are found statically: the `salt` command function of the stage, the
saltseg imports anywhere in it and in its module's top level, then every saltseg import
(top-level or inside functions) of those modules, transitively. Inside functions counts too:
the CLI imports its heavy modules lazily.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "saltseg"


def module_file(name: str) -> Path | None:
    """The file of saltseg module `name` (a package's __init__.py), None outside saltseg."""
    if name != "saltseg" and not name.startswith("saltseg."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(nodes: list[ast.AST], package: str) -> set[str]:
    """Names of the saltseg modules that the import statements under `nodes` import."""
    names: set[str] = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return {n for n in names if module_file(n) is not None}


def parents(name: str) -> set[str]:
    """The packages whose __init__ runs before `name` is imported."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def closure(start: set[str]) -> set[Path]:
    """The files of the saltseg modules in `start` and of everything they import, transitively.

    The CLI's modules are not followed (`command_modules` reads the command's own part of its
    module): the package and the other commands only dispatch."""
    seen: set[str] = set()
    todo = set(start)
    while todo:
        name = todo.pop()
        if name in seen or name == "saltseg.cli" or name.startswith("saltseg.cli."):
            continue
        seen.add(name)
        path = module_file(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo |= (imported([ast.parse(path.read_text())], package) | parents(name)) - seen
    return {module_file(n) for n in seen}


def command_modules(cmd: str) -> set[str]:
    """The saltseg modules the `salt ...` command `cmd` imports: its Typer function and the top
    level of the CLI module that defines it (not the other commands of that module)."""
    words = shlex.split(cmd)
    assert words[0] == "salt", cmd
    group, command = ("data", words[2]) if words[1] == "data" else (None, words[1])
    module = f"saltseg.cli.{group or command}"
    if command == "champion":  # defined beside `predict`
        module = "saltseg.cli.predict"
    tree = ast.parse(module_file(module).read_text())
    top = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    wanted = {command} | ({f"_{command}"} if f"_{command}" in functions else set())
    body = [functions[name] for name in functions if name in wanted or _called_by(functions, wanted, name)]
    return {module} | imported(top + body, "saltseg.cli")


def _called_by(functions: dict[str, ast.FunctionDef], roots: set[str], name: str) -> bool:
    """Whether module-level function `name` is called, directly or not, from the functions `roots`."""
    reached, todo = set(), set(roots)
    while todo:
        current = todo.pop()
        reached.add(current)
        for node in ast.walk(functions[current]):
            if isinstance(node, ast.Name) and node.id in functions and node.id not in reached:
                todo.add(node.id)
    return name in reached


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def runs_code(path: Path) -> bool:
    """False for a package __init__ that imports nothing (a docstring, a version string)."""
    tree = ast.parse(path.read_text())
    return path.name != "__init__.py" or any(
        isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)
    )


def missing(stage: dict) -> list[str]:
    """The saltseg files the stage's command runs that its deps do not cover."""
    modules = command_modules(stage["cmd"])
    cli = {module_file(n) for n in modules if n.startswith("saltseg.cli.")}
    files = closure(modules) | cli
    deps = stage.get("deps", [])
    return sorted(str(p.relative_to(ROOT)) for p in files if runs_code(p) and not covered(p, deps))


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_depends_on_the_code_it_runs(name: str) -> None:
    assert missing(stages()[name]) == [], f"dvc.yaml stage {name!r}: add these to its deps"


@pytest.mark.parametrize(
    ("name", "dep"), [("predict", "src/saltseg/data/rle.py"), ("train", "src/saltseg/config.py")]
)
def test_the_check_sees_a_dependency_taken_away(name: str, dep: str) -> None:
    stage = dict(stages()[name])
    assert dep in stage["deps"], f"{dep} is not listed for {name}: pick another"
    stage["deps"] = [d for d in stage["deps"] if d != dep]
    assert dep in missing(stage)


def test_the_closure_follows_lazy_imports_only_of_the_command() -> None:
    """salt train imports saltseg.train_stage inside a function, and train_stage the MLflow
    helpers; the other commands of the CLI are not followed."""
    files = {str(p.relative_to(ROOT)) for p in closure(command_modules("salt train --fold 0"))}
    assert {"src/saltseg/train_stage.py", "src/saltseg/tracking.py", "src/saltseg/data/folds.py"} <= files
    assert not any(f.startswith("src/saltseg/cli/") for f in files)
    assert "src/saltseg/predict.py" not in files and "src/saltseg/registry.py" not in files
