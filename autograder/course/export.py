"""Grades out of the gradebook: one CSV row per student, notebook and question (manual grades
included), and a totals CSV with one row per student for an LMS gradebook import."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import write_atomic
from . import late
from .gradebook import CSV_COLUMNS, csv_rows
from .root import Course


def write_csv(course: Course, path: Path, *, assignment: str | None = None) -> int:
    """The grades CSV (csv_rows) at `path`; returns its number of rows."""
    rows = csv_rows(course, assignment=assignment)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())
    return len(rows)


def write_totals(course: Course, path: Path, *, assignment: str | None = None) -> None:
    """One row per student, one column per assignment (total score), then the total and the maximum
    points of those assignments (late penalties subtracted): what an LMS gradebook import wants."""
    rows = csv_rows(course, assignment=assignment)
    totals, assignments = {}, sorted({r["assignment"] for r in rows})
    maxima = {}  # assignment -> its points (the same for every student: one row per question)
    for row in rows:
        student = totals.setdefault(row["student_id"], {})
        student[row["assignment"]] = student.get(row["assignment"], 0.0) + (row["score"] or 0.0)
        per_student = maxima.setdefault(row["assignment"], {})
        per_student[row["student_id"]] = per_student.get(row["student_id"], 0.0) + row["max_score"]
        if row["status"] not in ("graded", late.STATUS):
            student["needs review"] = "yes"
    max_points = sum(max(per_student.values()) for per_student in maxima.values())
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["student_id", *assignments, "total", "max_points", "needs review"])
    for student, values in sorted(totals.items()):
        total = sum(values.get(a, 0.0) for a in assignments)
        writer.writerow([student, *[round(values[a], 4) if a in values else "" for a in assignments],
                         round(total, 4), round(max_points, 4), values.get("needs review", "")])
    write_atomic(path, text.getvalue())
