"""Grade submissions of one course notebook for real, with `python -m autograder grade`, in a scratch course root."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder import COURSE_ROOT, REPO_ROOT
from autograder.build import read_source


def make_submission(student_nb, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The student notebook with `answers` (grade_id -> code) in its solution cells."""
    nb = nbformat.from_dict(student_nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[grade_id]
    return nb


def question_points(source) -> dict[str, float]:
    return {cell.metadata["nbgrader"]["grade_id"][:-len("_test")]: float(cell.metadata["nbgrader"]["points"])
            for cell in source.cells if cell.metadata.get("nbgrader", {}).get("grade")}


def read_grades(path: Path) -> dict[str, dict]:
    """student -> {"scores": {question: score}, "flags": [reasons of flagged rows]} from grades.csv."""
    out = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            entry = out.setdefault(row["student_id"], {"scores": {}, "flags": []})
            entry["scores"][row["question"][:-len("_test")]] = float(row["score"]) if row["score"] else None
            if row["status"] != "graded":
                entry["flags"].append(f"{row['question']}: {row['status']} ({row['reason']}) {row['detail']}"[:400])
    return out


def grade_answers(name: str, root: Path, answers: dict[str, dict[str, str]]) -> dict:
    """Grade, in one run, one submission per student: answers[student] = {grade_id: code}.

    Returns {"points": {question: max}, "grades": read_grades(...), "log": the grader's last output}.
    """
    source, _ = read_source(name)
    student_nb = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    course = root / "course"
    (course / "source" / name).mkdir(parents=True)
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    nbformat.write(source, course / "source" / name / f"{name}.ipynb")
    submitted = root / "submitted"
    for student, filled in answers.items():
        folder = submitted / student / name
        folder.mkdir(parents=True)
        nbformat.write(make_submission(student_nb, filled), folder / f"{name}.ipynb")
    command = [sys.executable, "-m", "autograder", "grade", str(submitted), "--course-root", str(course),
               "--workers", "2", "--no-progress", "--no-feedback"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    log = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"{name}: grade exited {result.returncode}\n{log}"
    return {"points": question_points(source), "grades": read_grades(course / "grades.csv"), "log": log}
