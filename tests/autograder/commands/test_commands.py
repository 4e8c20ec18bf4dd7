"""Every command end to end on a tiny course (tests/minicourse.py), cheaply: the gradebook is filled
through course/gradebook.commit with results as a job returns them (no grading run), then `export`,
`report` and `feedback` run through the CLI's entry point; `grade-one` grades one real file in one process.
(`grade` itself: tests/test_grading_pages.py, test_redteam*.py; `build` and `run`: test_build.py, conftest.)"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import nbformat
import pytest

import minicourse as mc
from autograder import REPO_ROOT
from autograder.__main__ import main
from autograder.course.batch import prepare
from autograder.course.gradebook import commit
from autograder.course.root import Course
from autograder.course.submissions import Submission
from autograder.judging.feedback import student_view
from autograder.judging.jobs import CellScore, JobResult, NotebookResult

RESULTS = {  # student -> the points lost per question, flags
    "alice": ({}, []),
    "bob": ({"q1_total_test": 2.0}, ["suspicious code: cell 3, line 1: uses the IPython shell object"]),
}


def command(capsys, *argv: str) -> str:
    """`python -m autograder ARGV` in this process (what the console scripts call); its output."""
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = mc.make_course(tmp_path_factory.mktemp("commands") / "course")
    course = Course(root)
    prepare(course, [Submission("alice", mc.NAME)])  # registers the assignment (nbgrader generate_assignment)
    autograded = mc.source_notebook()
    for student, (lost, flags) in RESULTS.items():
        scores = {f"{q}_test": CellScore(points - lost.get(f"{q}_test", 0.0), points, "judge")
                  for q, points in mc.POINTS.items()}
        notebook = NotebookResult(mc.NAME, scores, list(flags), autograded=dict(autograded),
                                  feedback=dict(student_view(autograded)))
        with course.gradebook() as gb:
            commit(course, gb, Submission(student, mc.NAME, {}), JobResult(f"{student}/{mc.NAME}", student, mc.NAME,
                                                                            "key", {mc.NAME: notebook}))
    return root


def test_export_writes_the_grades_and_the_totals(course, capsys):
    assert "grades.csv (6 rows)" in command(capsys, "export", "--totals", "--course-root", str(course))
    with open(course / "grades.csv", newline="") as handle:
        rows = {(r["student_id"], r["question"]): r for r in csv.DictReader(handle)}
    bob, alice = rows["bob", "q1_total_test"], rows["alice", "q2_scale_test"]
    assert float(bob["score"]) == 0.0 and bob["status"] == "flagged"
    assert float(alice["score"]) == 3.0 and alice["status"] == "graded"
    with open(course / "grades_totals.csv", newline="") as handle:
        totals = {r["student_id"]: r for r in csv.DictReader(handle)}
    assert float(totals["alice"]["total"]) == 6.0 and float(totals["bob"]["total"]) == 4.0
    assert float(totals["bob"]["max_points"]) == 6.0 and totals["bob"]["needs review"] == "yes"


def test_report_draws_the_class(course, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    command(capsys, "report", "--course-root", str(course))
    page = (course / "reports" / "index.html").read_text()
    assert (course / "reports" / f"{mc.NAME}.png").is_file() and "q1_total" in page


def test_feedback_is_rerendered_after_manual_grading_and_shows_no_hidden_test(course, capsys):
    from nbgrader.api import Gradebook

    with Gradebook(Course(course).db_url, Course(course).course_id) as gb:
        gb.find_grade("q1_total_test", mc.NAME, mc.NAME, "bob").manual_score = 1.5
        gb.db.commit()
    assert "wrote 1 feedback page(s)" in command(capsys, "feedback", "--student", "bob", "--course-root", str(course))
    page = (course / "feedback" / "bob" / mc.NAME / f"{mc.NAME}.html").read_text()
    assert "5.5" in page  # 1.5 (manual) + 3 + 1
    assert mc.HIDDEN_INPUT not in page and "BEGIN HIDDEN" not in page


def test_grade_one_grades_one_file_in_one_process(course, tmp_path):
    submitted = tmp_path / f"{mc.NAME}.ipynb"
    submitted.write_bytes(mc.submission({**mc.ANSWERS, "q3_rate": "q3_rate = 0.25"}))
    out = subprocess.run([sys.executable, "-m", "autograder", "grade-one", str(submitted), "--student", "carol",
                          "--course-root", str(course), "--timeout", "20", "--out", str(tmp_path / "result.json")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)  # its own process, as on a cluster
    assert out.stdout.strip() == f"carol {mc.NAME}: 5/6 graded", out.stdout + out.stderr[-2000:]
    result = JobResult.load(tmp_path / "result.json")
    assert result.notebooks[mc.NAME].scores["q3_rate_test"].score == 0.0
    assert "carol" not in json.dumps([p.name for p in (course / "autograded").iterdir()])  # no --commit: no write
    assert nbformat.reads(json.dumps(result.notebooks[mc.NAME].autograded), as_version=4).cells
