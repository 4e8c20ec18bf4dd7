"""nbgrader round trip, for real: generate, submit, `nbgrader autograde`, read the gradebook.

Per notebook, one course root holds these submissions of the student notebook:
  solution   every answer filled in          -> full marks
  untouched  the notebook as handed out      -> 0
  wrong_<q>  all answers right except q, which holds the authored typical mistake
             -> exactly q's points lost, every other question full marks
Grading runs in the course's grading mode (demo cells skipped), as instructors get it.
"""

import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder import COURSE_ROOT
from autograder.build import generate_student_notebooks, read_source, solution_cells
from conftest import NAMES, cached, source_key


def make_submission(student_nb, answers: dict[str, str]):
    nb = nbformat.from_dict(student_nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[grade_id]
    return nb


def grade_class(name: str, root) -> dict:
    """Build, submit every variant, autograde with nbgrader; returns student -> {question: score}."""
    from nbgrader.api import Gradebook

    source, variants = read_source(name)
    mistakes = {v.grade_id: v for v in reversed(variants) if not v.right}.values()  # the first per question
    student_nb = nbformat.reads(generate_student_notebooks({name: source}, root)[name], as_version=4)
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    answers = solution_cells(source)
    variants = {"solution": answers, "untouched": {}}
    for mistake in mistakes:
        variants[f"wrong_{mistake.grade_id}"] = {**answers, mistake.grade_id: mistake.source}
    for student, filled in variants.items():
        folder = root / "submitted" / student / name
        folder.mkdir(parents=True)
        nbformat.write(make_submission(student_nb, filled), folder / f"{name}.ipynb")
    result = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", name, "--create", "--force"],
                            cwd=root, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    points = {cell.metadata["nbgrader"]["grade_id"][:-len("_test")]: cell.metadata["nbgrader"]["points"]
              for cell in source.cells if cell.metadata.get("nbgrader", {}).get("grade")}
    scores = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for student in variants:
            scores[student] = {q: gradebook.find_grade(f"{q}_test", name, name, student).score for q in points}
    return {"points": points, "scores": scores, "log": result.stderr[-4000:]}


@pytest.fixture(scope="session")
def graded(shared_cache, tmp_path_factory):
    def run(name):
        return cached(shared_cache, f"graded:{source_key(name)}",
                      lambda: grade_class(name, tmp_path_factory.mktemp(f"course-{name}")))
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(graded, name):
    result = graded(name)
    lost = {q: (s, result["points"][q]) for q, s in result["scores"]["solution"].items() if s != result["points"][q]}
    assert not lost, f"{name}: the solution lost points (got, max): {lost}\n{result['log']}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_untouched_student_notebook_scores_zero(graded, name):
    scores = graded(name)["scores"]["untouched"]
    assert sum(scores.values()) == 0, f"{name}: the untouched notebook earned points: {scores}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_typical_mistake_loses_exactly_its_question(graded, name):
    result = graded(name)
    problems = []
    for question, full in result["points"].items():
        scores = result["scores"].get(f"wrong_{question}")
        if scores is None:
            problems.append(f"{question}: no mistake cell")
            continue
        if scores[question] != 0:
            problems.append(f"{question}: the typical mistake still earned {scores[question]} of {full}")
        others = {q: s for q, s in scores.items() if q != question and s != result["points"][q]}
        if others:
            problems.append(f"{question}: the mistake also cost other questions {others}")
    assert not problems, f"{name}:\n" + "\n".join(problems)
