"""course_lib stays readable by a newcomer: no module too long to read in one sitting, no function doing several jobs.

A module (any .py file under course_lib/, subpackages included) has at most `MODULE_LINES` lines, and a
function or method (nested ones too) at most `FUNCTION_LINES`, from its ``def`` line to its last line.
"""

import ast
from pathlib import Path

from autograder import REPO_ROOT

MODULE_LINES = 500
FUNCTION_LINES = 60
COURSE_LIB = Path(REPO_ROOT) / "course_lib"


def modules() -> list[Path]:
    found = sorted(COURSE_LIB.rglob("*.py"))
    assert len(found) > 20, f"course_lib's modules not found under {COURSE_LIB}"
    return found


def long_modules(limit: int = MODULE_LINES) -> list[str]:
    """'path: n lines' for every course_lib module over `limit` lines."""
    lengths = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in modules()}
    return [f"{path.relative_to(REPO_ROOT)}: {n} lines" for path, n in lengths.items() if n > limit]


def long_functions(limit: int = FUNCTION_LINES) -> list[str]:
    """'path:line name: n lines' for every function or method in course_lib over `limit` lines."""
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_course_lib_module_is_over_500_lines():
    too_long = long_modules()
    assert not too_long, (f"split these into modules of one job each (at most {MODULE_LINES} lines):\n"
                          + "\n".join(too_long))


def test_no_course_lib_function_is_over_60_lines():
    too_long = long_functions()
    assert not too_long, (f"break these into functions that each do one job (at most {FUNCTION_LINES} lines):\n"
                          + "\n".join(too_long))


def test_the_checks_find_what_is_over_a_lower_limit():
    """The checks are not vacuous: at lower limits they name every module, and functions that exist."""
    assert len(long_modules(limit=0)) == len(modules())
    assert any("monitoring/monitor.py" in entry and " _compute_pending: " in entry
               for entry in long_functions(limit=1))
