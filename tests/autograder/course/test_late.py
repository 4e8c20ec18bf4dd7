"""Late submissions: penalised as nbgrader's configured late-submission plugin computes (AssignLatePenalties),
in the gradebook, grades.csv, the totals and the feedback page; an on-time submission is not."""

from __future__ import annotations

import csv

import pytest
from nbgrader.utils import parse_utc

import minicourse as mc
from autograder.course.export import write_totals
from autograder.course.gradebook import write_feedback_pages
from autograder.course.late import Penalties, lateness
from autograder.course.root import Course

SUBMARKS = '''from nbgrader.plugins import BasePlugin


class SubMarks(BasePlugin):
    """nbgrader's documented example plugin: one mark per hour late."""

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return round(total_seconds_late / 3600, 0)
'''
DUE = "2026-01-10 12:00:00 UTC"
TIMES = {"ontime": "2026-01-10 11:59:00 UTC", "late": "2026-01-10 14:10:00 UTC"}  # late: 2 h 10 min
LATE_SECONDS = 2 * 3600 + 10 * 60


def _course(root, config: str):
    root = mc.make_course(root)
    with open(root / "nbgrader_config.py", "a") as handle:
        handle.write("\n" + config + "\n")
    return root


def test_the_configured_plugin_decides_and_the_penalty_stays_within_the_score(tmp_path):
    default = Penalties(Course(_course(tmp_path / "default", "")))
    assert default.penalty("s", 4.0, 3600) is None  # nbgrader's default: penalty_method "none"
    zero = Penalties(Course(_course(tmp_path / "zero", 'c.LateSubmissionPlugin.penalty_method = "zero"')))
    assert zero.penalty("s", 4.0, 3600) == 4.0 and zero.penalty("s", 4.0, 0) is None
    root = _course(tmp_path / "submarks", 'c.AssignLatePenalties.plugin_class = "submarks.SubMarks"')
    (root / "submarks.py").write_text(SUBMARKS)
    submarks = Penalties(Course(root))
    assert type(submarks.plugin).__name__ == "SubMarks"
    assert submarks.penalty("s", 6.0, LATE_SECONDS) == 2.0
    assert submarks.penalty("s", 6.0, 10 * 3600) == 6.0  # never more than the score
    assert lateness(LATE_SECONDS) == "2 h 10 min" and lateness(1) == "1 min"


@pytest.mark.slow
def test_a_late_submission_is_penalised_as_nbgrader_would_and_an_on_time_one_is_not(tmp_path):
    course = _course(tmp_path / "course", 'c.AssignLatePenalties.plugin_class = "submarks.SubMarks"')
    (course / "submarks.py").write_text(SUBMARKS)
    with Course(course).gradebook() as gb:  # what `nbgrader db assignment add mini --duedate=...` does
        gb.update_or_create_assignment(mc.NAME, duedate=parse_utc(DUE))
    answers = mc.submission(mc.ANSWERS)
    submitted = mc.write_submissions(tmp_path / "submitted", {student: answers for student in TIMES})
    for student, time in TIMES.items():
        (submitted / student / mc.NAME / "timestamp.txt").write_text(time)
    mc.grade(submitted, course)
    write_totals(Course(course), course / "grades_totals.csv")  # what `export --totals` adds

    expected = Penalties(Course(course)).plugin.late_submission_penalty("late", 6.0, LATE_SECONDS)
    assert expected == 2.0  # 2 h 10 min, rounded to hours
    with open(course / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    questions = {s: {r["question"]: r for r in rows if r["student_id"] == s} for s in TIMES}
    penalty = questions["late"].pop("late_submission_penalty")
    assert float(penalty["score"]) == -expected and penalty["status"] == "late penalty"
    assert penalty["reason"] == "submitted 2 h 10 min after the due date"
    assert set(questions["ontime"]) == set(questions["late"]) == {f"{q}_test" for q in mc.POINTS}
    for question, row in questions["ontime"].items():  # the same answers: the same scores, full marks
        assert row["status"] == "graded" and float(row["score"]) == mc.POINTS[question[:-len("_test")]]
        assert questions["late"][question]["score"] == row["score"]
    with open(course / "grades_totals.csv", newline="") as handle:
        totals = {r["student_id"]: r for r in csv.DictReader(handle)}
    assert float(totals["ontime"]["total"]) == 6.0 and float(totals["late"]["total"]) == 6.0 - expected
    assert totals["late"]["needs review"] == "" and float(totals["late"]["max_points"]) == 6.0

    from nbgrader.api import Gradebook

    with Gradebook(Course(course).db_url, Course(course).course_id) as gb:
        notebook = {s: gb.find_submission_notebook(mc.NAME, mc.NAME, s) for s in TIMES}
        assert notebook["late"].late_submission_penalty == expected
        assert notebook["ontime"].late_submission_penalty is None
        assert notebook["late"].score == notebook["ontime"].score == 6.0

    def page(student):
        return (course / "feedback" / student / mc.NAME / f"{mc.NAME}.html").read_text()

    assert "Late submission penalty" not in page("ontime")
    assert "Late submission penalty" in page("late") and f"-{expected}" in page("late")
    (course / "feedback" / "late" / mc.NAME / f"{mc.NAME}.html").unlink()
    assert write_feedback_pages(Course(course), student="late") == 1  # what `feedback` does after manual grading
    assert "Late submission penalty" in page("late") and f"-{expected}" in page("late")
