"""A tiny nbgrader course for grading tests that must not depend on the course's own notebooks.

One assignment, "mini": a setup cell, two demo cells (the second reads the first), three questions
(a number, a function that changes a list in place, a setting), maths in the prose, visible checks
and hidden tests, and a demo cell after the last question. `submission(...)` builds what a student
hands in (the released notebook with answers filled in), `make_course(root)` a course root.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder import COURSE_ROOT, REPO_ROOT
from autograder.judging import hidden

NAME = "mini"
POINTS = {"q1_total": 2.0, "q2_scale": 3.0, "q3_rate": 1.0}
LIKELY = "Likely mistake: " + "you added only some of the numbers; " * 8 + "add every one."
HIDDEN_INPUT = "[3.0, 5.0, 7.0]"  # what question 2's hidden test passes; never on a student's page

ANSWERS = {
    "q1_total": "q1_total = sum(data)",
    "q2_scale": "def scale(values, factor):\n    for i in range(len(values)):\n        values[i] *= factor",
    "q3_rate": "q3_rate = 0.5",
}


def _code(source: str, *, grade_id: str | None = None, points: float | None = None, solution: bool = False,
          demo: bool = False):
    cell = nbformat.v4.new_code_cell(source)
    if demo:
        cell.metadata["tags"] = ["demo"]
    if grade_id:
        meta = {"grade_id": grade_id, "grade": points is not None, "solution": solution,
                "locked": not solution, "schema_version": 3}
        if points is not None:
            meta["points"] = points
        cell.metadata["nbgrader"] = meta
    return cell


def source_notebook():
    md = nbformat.v4.new_markdown_cell
    cells = [
        md("# Mini course\n\nThe chain rule multiplies local slopes: "
           "$\\frac{dL}{dx} = \\prod_{k=1}^{L} f_k'(h_{k-1})$, and at best $$0.25^{L} < 10^{-9}.$$"),
        _code("import numpy as np\nfrom course_lib import checks\n\ndata = [1, 2, 3]"),
        _code("table = list(data)\nprint('demo A ran')", demo=True),
        _code("doubled = [2 * t for t in table]", demo=True),
        md("### Question 1 (2 points): the total of $x_k$\n\nSet `q1_total` to the sum of `data`."),
        _code("### BEGIN SOLUTION\nq1_total = sum(data)\n### END SOLUTION", grade_id="q1_total", solution=True),
        _code("if q1_total != 6:\n"
              f"    raise checks.CheckFailed('Question 1: not yet right.\\n  {LIKELY}')\n"
              "print('Question 1: passes the visible check.')\n"
              "### BEGIN HIDDEN TESTS\nassert q1_total == 6, 'Question 1 (hidden): the total is wrong'\n"
              "### END HIDDEN TESTS", grade_id="q1_total_test", points=POINTS["q1_total"]),
        md("### Question 2 (3 points): scale a list in place\n\n"
           "Write `scale(values, factor)` that multiplies each entry of the list `values` by `factor`, in place."),
        _code("def scale(values, factor):\n    ### BEGIN SOLUTION\n    for i in range(len(values)):\n"
              "        values[i] *= factor\n    ### END SOLUTION", grade_id="q2_scale", solution=True),
        _code("_v = [1.0, 2.0]\nscale(_v, 2)\n"
              "assert _v == [2.0, 4.0], 'Question 2: scale must change the list it is given.'\n"
              "print('Question 2: passes the visible check.')\n"
              f"### BEGIN HIDDEN TESTS\n_w = {HIDDEN_INPUT}\nscale(_w, 3)\n"
              "assert _w == [9.0, 15.0, 21.0], 'Question 2 (hidden): the values are wrong'\n### END HIDDEN TESTS",
              grade_id="q2_scale_test", points=POINTS["q2_scale"]),
        md("### Question 3 (1 point): a setting\n\nSet `q3_rate` to one half."),
        _code("### BEGIN SOLUTION\nq3_rate = 0.5\n### END SOLUTION", grade_id="q3_rate", solution=True),
        _code("assert q3_rate == 0.5, 'Question 3: not yet right.'\n"
              "### BEGIN HIDDEN TESTS\nassert isinstance(q3_rate, float)\n### END HIDDEN TESTS",
              grade_id="q3_rate_test", points=POINTS["q3_rate"]),
        _code("late_value = 0.5", demo=True),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    return nb


def submission(answers: dict[str, str] | None = None, *, insert_after_setup: list[str] = (), edit=None) -> bytes:
    """The released notebook with `answers` (grade_id -> source) in its answer cells; untouched: stubs."""
    nb = copy.deepcopy(source_notebook())
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = (answers or {}).get(meta["grade_id"], stub)
        elif meta.get("grade"):
            cell.source = hidden.released_source(cell.source)
    for offset, source in enumerate(insert_after_setup):
        nb.cells.insert(2 + offset, nbformat.v4.new_code_cell(source))
    if edit:
        edit(nb)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"s-{index}"
    return nbformat.writes(nb).encode()


def make_course(root: Path) -> Path:
    (root / "source" / NAME).mkdir(parents=True)
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(source_notebook(), root / "source" / NAME / f"{NAME}.ipynb")
    return root


def write_submissions(folder: Path, students: dict[str, bytes]) -> Path:
    for student, data in students.items():
        path = folder / student / NAME / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def autograder(*args: str, cwd: Path = REPO_ROOT, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m autograder ARGS` as an instructor runs it; fails the test on an unexpected exit code."""
    result = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-5000:]
    return result


def grade(submissions: Path, course: Path, *, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return autograder("grade", str(submissions), "--course-root", str(course), "--workers", "2", "--timeout", "20",
                      "--memory-mb", "1000", "--no-progress", cwd=cwd)
