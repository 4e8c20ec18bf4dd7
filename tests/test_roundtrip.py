"""nbgrader round trip, for real: generate, submit, `nbgrader autograde`, read the gradebook.

Per notebook, one course root holds these submissions of the student notebook:
  solution   every answer filled in          -> full marks
  untouched  the notebook as handed out      -> 0
  mistakes   every answer holds its question's first authored mistake
             -> 0 on every question
Grading runs in the course's grading mode (demo cells skipped), as instructors get it.
That each mistake loses exactly its own question's points, and each right variant
keeps full marks, is proven per variant through our grader (test_mutations.py):
plain nbgrader takes 5-15 s per submission.
"""

import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder import COURSE_ROOT
from autograder.build import generate_student_notebooks, read_source, solution_cells
from conftest import NAMES
from grading import make_submission


def grade_class(name: str, root) -> dict:
    """Build, submit every variant, autograde with nbgrader; returns student -> {question: score}."""
    from nbgrader.api import Gradebook

    source, variants = read_source(name)
    first_mistakes = {v.grade_id: v.source for v in reversed(variants) if not v.right}  # the first per question
    student_nb = nbformat.reads(generate_student_notebooks({name: source}, root)[name], as_version=4)
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    answers = solution_cells(source)
    variants = {"solution": answers, "untouched": {}, "mistakes": first_mistakes}
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


# One test per notebook: its three submissions share one grading run.
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_round_trip(tmp_path, name):
    """Solution full marks, untouched 0, every first mistake 0 on its question."""
    result = grade_class(name, tmp_path)
    points, scores = result["points"], result["scores"]
    lost = {q: (s, points[q]) for q, s in scores["solution"].items() if s != points[q]}
    assert not lost, f"{name}: the solution lost points (got, max): {lost}\n{result['log']}"
    untouched = scores["untouched"]
    assert sum(untouched.values()) == 0, f"{name}: the untouched notebook earned points: {untouched}"
    missing = [q for q in points if q not in scores["mistakes"]]
    earned = {q: s for q, s in scores["mistakes"].items() if s != 0}
    assert not missing and not earned, f"{name}: mistakes that earned points {earned}; no mistake for {missing}"
