"""Every notebook's mutation suite, graded for real by `python -m autograder grade`.

Per notebook, one course root and one grading run hold these submissions of the
student notebook (answers taken from the authored source):
  solution    every answer filled in                        -> full marks, unflagged
  untouched   the notebook as handed out                    -> 0
  mistake_i   all answers right but one, which holds an authored mistake
              (`mistake=` cell)                              -> exactly that question's points lost
  right_i     all answers right, one of them an authored alternative
              (`right=` cell)                                -> full marks, unflagged
The plain-nbgrader round trip lives in test_roundtrip.py.
"""

import pytest

from autograder.build import read_source, solution_cells
from conftest import NAMES
from grading import grade_answers

pytestmark = pytest.mark.slow


def grade_variants(name: str, root) -> dict:
    """Grade every variant of notebook `name` in one run; returns points, grades and each case's variant."""
    source, variants = read_source(name)
    answers = solution_cells(source)
    cases = {"solution": ("solution", None, answers), "untouched": ("untouched", None, {})}
    for index, variant in enumerate(variants):
        kind = "right" if variant.right else "mistake"
        cases[f"{kind}{index:02d}"] = (kind, variant, {**answers, variant.grade_id: variant.source})
    result = grade_answers(name, root, {student: filled for student, (_, _, filled) in cases.items()})
    result["cases"] = {student: (kind, variant) for student, (kind, variant, _) in cases.items()}
    return result


def mutation_problems(name: str, result: dict) -> list[str]:
    """Every way the graded suite departs from what each case must score."""
    points, grades, problems = result["points"], result["grades"], []
    solution = grades["solution"]
    lost = {q: (solution["scores"].get(q), full) for q, full in points.items() if solution["scores"].get(q) != full}
    if lost or solution["flags"]:
        problems.append(f"the solution lost points (got, max) {lost} or was flagged {solution['flags']}")
    untouched = grades["untouched"]["scores"]
    if sum(s or 0 for s in untouched.values()) != 0:
        problems.append(f"the untouched notebook earned {untouched}")
    for student, (kind, variant) in result["cases"].items():
        if kind == "mistake":
            scores = grades[student]["scores"]
            what = f"{variant.grade_id} mistake {variant.label!r}"
            if scores.get(variant.grade_id) != 0:
                problems.append(f"{what}: earned {scores.get(variant.grade_id)} of {points[variant.grade_id]}")
            others = {q: s for q, s in scores.items() if q != variant.grade_id and s != points[q]}
            if others:
                problems.append(f"{what}: also cost other questions {others}")
        elif kind == "right":
            entry = grades[student]
            lost = {q: s for q, s in entry["scores"].items() if s != points[q]}
            if lost or entry["flags"]:
                problems.append(f"{variant.grade_id} right variant {variant.label!r}: lost {lost}, "
                                f"flags {entry['flags']}")
    return problems


# One test per notebook: its cases share one grading run (xdist would otherwise make a second
# worker wait for the first one's run).
@pytest.mark.parametrize("name", NAMES)
def test_mutation_suite(tmp_path, name):
    """Solution full and unflagged, untouched 0, each mistake exactly its question, each right variant full."""
    result = grade_variants(name, tmp_path)
    problems = mutation_problems(name, result)
    assert not problems, f"{name}:\n" + "\n".join(problems) + f"\n{result['log']}"
