"""The autograder's layout holds: trust zones import only downwards, nothing outside isolation/ imports the
code that runs inside the sandbox, no import cycles, no private name used across modules, no module or
function too long to read at once, one command per module of commands/, and the console scripts point at
callables."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

from autograder import REPO_ROOT

PACKAGE = REPO_ROOT / "autograder"
IN_SANDBOX = {"autograder.isolation.shell"}  # runs inside the sandbox: only isolation/ may import it
# zone -> the zones its modules may import (their own included)
ALLOWED = {
    "base": {"base"},  # autograder/__init__.py, files.py
    "isolation": {"base", "isolation"},
    "judging": {"base", "isolation", "judging"},
    "authoring": {"base", "judging", "authoring"},  # build.py, execute.py: notebooks from the authored sources
    "course": {"base", "isolation", "judging", "authoring", "course"},
    "commands": {"base", "isolation", "judging", "authoring", "course", "commands"},
    "main": {"base", "commands"},
}
# inside isolation/, each module -> the isolation modules it may import: the system calls, owners, limits and
# the clock at the bottom, then cgroups and the file view, then the probe, and the sandbox that ties them together
ISOLATION = {
    "output": set(), "wire": set(), "shell": {"wire", "output"},
    "linux": set(), "owners": set(), "limits": set(), "clock": set(),
    "cgroups": {"limits", "owners"}, "file_view": {"linux", "owners"},
    "machine": {"cgroups", "clock", "file_view", "linux"},
    "sandbox": {"cgroups", "clock", "file_view", "limits", "linux", "machine", "owners", "shell"},
}
LONGEST = 500  # lines: a module a newcomer reads in one sitting
LONGEST_FUNCTION = 60  # lines: a function does one job


def zone(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ("isolation", "judging", "course", "commands"):
        return parts[1]
    if parts[1:] in (["isolation"], ["judging"], ["course"], ["commands"]):
        return parts[1]
    return {"build": "authoring", "execute": "authoring", "__main__": "main"}.get(parts[-1], "base")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).with_suffix("")
        if relative.parts[1] == "source" or relative.name == "nbgrader_config":  # notebooks; nbgrader's config file
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported autograder module, name taken from it or None, line) for every import, however deep."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "autograder"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "autograder":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    out.append((submodule, None, node.lineno))
                else:
                    out.append((target, alias.name, node.lineno))
    return out


GRAPH = {module: imports(module, path) for module, path in MODULES.items()}


def test_every_module_is_seen():
    assert {"autograder.judging.judge", "autograder.isolation.shell", "autograder.course.gradebook",
            "autograder.commands.grade", "autograder.judging.jobs", "autograder.course.grading"} <= set(MODULES)
    assert all(target in MODULES for edges in GRAPH.values() for target, _, _ in edges), \
        [(m, t) for m, edges in GRAPH.items() for t, _, _ in edges if t not in MODULES]


def test_zones_import_only_downwards():
    wrong = [f"{module}:{line} imports {target}" for module, edges in GRAPH.items() for target, _, line in edges
             if zone(target) not in ALLOWED[zone(module)]]
    assert not wrong, wrong


def test_only_isolation_imports_the_code_that_runs_in_the_sandbox():
    wrong = [f"{module}:{line}" for module, edges in GRAPH.items() for target, _, line in edges
             if target in IN_SANDBOX and zone(module) != "isolation"]
    assert not wrong, wrong
    importers = {module for module, edges in GRAPH.items() for target, _, _ in edges if target in IN_SANDBOX}
    assert importers == {"autograder.isolation.sandbox"}, importers  # imported once, before any fork
    # and the in-sandbox code itself needs nothing but the wire and its output buffer
    assert {t for t, _, _ in GRAPH["autograder.isolation.shell"]} <= {"autograder.isolation.wire",
                                                                      "autograder.isolation.output"}


def test_isolation_is_layered_one_job_per_module():
    found = {m.rsplit(".", 1)[-1] for m in MODULES if zone(m) == "isolation" and m != "autograder.isolation"}
    assert found == set(ISOLATION), found ^ set(ISOLATION)  # a new module gets its place in the table
    wrong = [f"{module}:{line} imports {target}" for module, edges in GRAPH.items() if zone(module) == "isolation"
             for target, _, line in edges if zone(target) == "isolation" and target != module
             and target.rsplit(".", 1)[-1] not in ISOLATION[module.rsplit(".", 1)[-1]]]
    assert not wrong, wrong


def test_every_module_can_be_read_in_one_sitting():
    long = {module: n for module, path in MODULES.items() if (n := len(path.read_text().splitlines())) > LONGEST}
    assert not long, long


def test_every_function_does_one_job():
    """No function or method (nested ones counted in their own right and in the one around them) is longer
    than LONGEST_FUNCTION lines: a longer one does several jobs, each of which gets a function named for it."""
    long = [f"{module}:{node.lineno} {node.name} ({n} lines)" for module, path in MODULES.items()
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (n := node.end_lineno - node.lineno + 1) > LONGEST_FUNCTION]
    assert not long, long


def test_no_import_cycles():
    edges = {module: sorted({t for t, _, _ in found if t != module}) for module, found in GRAPH.items()}
    state: dict[str, str] = {}
    cycles = []

    def visit(node, trail):
        state[node] = "open"
        for target in edges[node]:
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_no_private_name_is_used_across_modules():
    wrong = []
    for module, path in MODULES.items():
        bound = set()  # names of autograder modules this module imported (`from . import judge`)
        for target, name, line in GRAPH[module]:
            if name is None:
                bound.add(target.rsplit(".", 1)[-1])
            elif name.startswith("_") and not name.startswith("__"):
                wrong.append(f"{module}:{line} imports {target}.{name}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                wrong.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not wrong, wrong


def test_the_central_class_is_public():
    from autograder.judging import judge

    assert isinstance(judge.Judge, type) and not hasattr(judge, "_Judge")


def test_one_command_per_module_and_the_console_scripts_resolve():
    from autograder.commands import COMMANDS

    for command in COMMANDS:
        assert callable(command.main) and callable(command.add_parser), command.__name__
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"autograder", "vg-grade"} <= set(scripts)
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), target


@pytest.mark.parametrize("argv", [["grade", "--help"], ["grade-one", "--help"], ["export", "--help"]])
def test_the_cli_keeps_its_commands(argv, capsys):
    from autograder.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0 and "--course-root" in capsys.readouterr().out
