"""nbgrader's gradebook, written only here: an assignment's cells, and each graded submission in one
transaction (then its files, then its marker, so a kill leaves it completely in or not at all); and what
is read back from it: grade rows, what is graded, feedback pages re-rendered after manual grading."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import nbformat

from .. import ensure_tools_on_path
from ..files import write_atomic
from ..judging.feedback import render_html
from ..judging.jobs import JobResult
from ..judging.source import SourceModel
from . import late
from .root import MARKER, Course, GradingError
from .submissions import Submission


def _gradebook_layout(gb, assignment: str):
    """(notebook, grade cell, points) and (notebook, solution cell) the gradebook has for `assignment`."""
    try:
        found = gb.find_assignment(assignment)
    except Exception:  # noqa: BLE001 - MissingEntry
        return None
    return (sorted((nb.name, c.name, float(c.max_score)) for nb in found.notebooks for c in nb.grade_cells),
            sorted((nb.name, c.name) for nb in found.notebooks for c in nb.solution_cells))


def _source_layout(sources: dict[str, Path]):
    grades, solutions = [], []
    for name, path in sources.items():
        model = SourceModel.from_notebook(name, nbformat.read(path, as_version=4))
        grades += [(name, c.grade_id, float(c.points)) for c in model.graded()]
        solutions += [(name, c.grade_id) for c in model.cells if c.kind in ("solution", "manual")]
    return sorted(grades), sorted(solutions)


@contextlib.contextmanager
def gradebook_lock(gb, name: str):
    """Many graders at once on a PostgreSQL gradebook (Slurm array tasks): one at a time per `name`.

    A session-level advisory lock (pg_advisory_lock) on a connection of its own, held over the
    transaction and the files written around it; the server drops it if the holder dies. SQLite
    (one machine, one writer: `grade`) needs none.
    """
    if gb.engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    with gb.engine.connect() as connection:
        key = connection.execute(text("SELECT hashtextextended(:name, 0)"), {"name": f"autograder:{name}"}).scalar()
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def ensure_in_gradebook(course: Course, assignment: str, sources: dict[str, Path]) -> None:
    """Run nbgrader generate_assignment unless the gradebook already has this assignment's graded cells
    (graders starting at once on a shared gradebook: one runs it, under the assignment's lock)."""
    layout = _source_layout(sources)
    with course.gradebook() as gb:
        if _gradebook_layout(gb, assignment) == layout:
            return
        with gradebook_lock(gb, f"assignment:{assignment}"):
            gb.db.rollback()  # read again, under the lock
            if _gradebook_layout(gb, assignment) == layout:
                return
            from nbgrader.apps import NbGraderAPI

            ensure_tools_on_path()
            api = NbGraderAPI(coursedir=course.coursedir, config=course.config)
            result = api.generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        details = result.get("error") or result.get("log")
        raise GradingError(f"nbgrader generate_assignment {assignment} failed:\n{details}")


def commit(course: Course, gb, submission: Submission, result: JobResult, *, force: bool = False) -> bool:
    """Write one graded submission: gradebook rows (one transaction), then files, then the marker.

    Idempotent: a result whose job key (submitted bytes, source, plan, settings) the gradebook already
    holds changes nothing and returns False (unless `force`). Graders committing at once (Slurm tasks,
    PostgreSQL) hold the student's gradebook_lock, so none sees or writes half of another's submission.
    """
    with gradebook_lock(gb, f"student:{submission.student}"):
        if not force and result.key and submission.key in graded_pairs(gb, submission.student):
            marker = course.read_marker(submission.student, submission.assignment)
            if marker and marker.get("key") == result.key:
                return False
        _commit(course, gb, submission, result)
    return True


def _commit(course: Course, gb, submission: Submission, result: JobResult) -> None:
    """The autograded notebooks; grades, comments and late penalties in one transaction; then the feedback
    pages (re-rendered with the penalty where there is one) and last the marker."""
    from nbgrader import utils

    folder = course.autograded / submission.student / submission.assignment
    _write_autograded(folder, submission, result)
    db = gb.db
    try:
        record = _submission_record(gb, submission, _student_record(db, submission))
        record.timestamp = _parse_time(utils, submission.timestamp)
        db.flush()
        for submitted in record.notebooks:
            _set_scores(submitted, result.notebooks.get(submitted.name))
        penalties = _assign_late_penalties(course, db, record)
        db.commit()
    except Exception:
        db.rollback()
        raise
    _write_feedback(course, submission, result, penalties)
    _write_marker(folder, submission, result)


def _write_autograded(folder: Path, submission: Submission, result: JobResult) -> None:
    """The autograded notebooks (for the formgrader) and the submission time nbgrader keeps beside them."""
    for name, data in result.notebooks.items():
        if data.autograded:
            write_atomic(folder / f"{name}.ipynb", nbformat.writes(nbformat.from_dict(data.autograded)))
    if submission.timestamp:
        write_atomic(folder / "timestamp.txt", submission.timestamp)


def _student_record(db, submission: Submission):
    """The gradebook's Student (added if new), with the name and LMS id the submission gives where it has none."""
    from nbgrader.api import Student

    student = db.query(Student).filter(Student.id == submission.student).one_or_none()
    if student is None:
        student = Student(id=submission.student)
        db.add(student)
    if (submission.first_name or submission.last_name) and not (student.first_name or student.last_name):
        student.first_name = submission.first_name or None  # as the LMS file name gives them (lms.py)
        student.last_name = submission.last_name or None
    if submission.lms_user_id and not getattr(student, "lms_user_id", None):
        student.lms_user_id = submission.lms_user_id
    return student


def _submission_record(gb, submission: Submission, student):
    """The gradebook's SubmittedAssignment of this student and assignment; a new one is built as nbgrader's
    add_submission builds it (a row for each notebook, grade and comment), to be committed with the grades."""
    from nbgrader.api import Comment, Grade, SubmittedAssignment, SubmittedNotebook

    db = gb.db
    assignment = gb.find_assignment(submission.assignment)
    record = db.query(SubmittedAssignment).filter(SubmittedAssignment.assignment_id == assignment.id,
                                                  SubmittedAssignment.student_id == submission.student
                                                  ).one_or_none()
    if record is not None:
        return record
    with db.no_autoflush:
        record = SubmittedAssignment(assignment=assignment, student=student)
        for notebook in assignment.notebooks:
            submitted = SubmittedNotebook(notebook=notebook, assignment=record)
            for cell in notebook.grade_cells:
                Grade(cell=cell, notebook=submitted)
            for cell in notebook.solution_cells:
                Comment(cell=cell, notebook=submitted)
            for cell in notebook.task_cells:
                Comment(cell=cell, notebook=submitted)
                Grade(cell=cell, notebook=submitted)
        db.add(record)
    return record


def _set_scores(submitted, data) -> None:
    """A submitted notebook's flag, automatic scores (a manual score kept) and "No response." comments from
    its result (`data`: a NotebookResult, or None for a notebook the result lacks)."""
    scores = data.scores if data else {}
    submitted.flagged = bool(data and data.flags)
    solution_sources = _solution_sources(data)
    for grade in submitted.grades:
        score = scores.get(grade.cell.name)
        grade.auto_score = None if score is None else score.score
        grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
    for comment in submitted.comments:
        cell = comment.cell
        source = solution_sources.get(cell.name)
        source_cell = next((c for c in submitted.notebook.source_cells if c.name == cell.name), None)
        unchanged = source is None or (source_cell is not None and source == source_cell.checksum)
        comment.auto_comment = "No response." if unchanged else None


def _write_feedback(course: Course, submission: Submission, result: JobResult, penalties: dict[str, float]) -> None:
    """The feedback pages; a late notebook's re-rendered with its penalty."""
    for name, data in result.notebooks.items():
        if data.feedback_html:
            html = data.feedback_html
            if penalties.get(name) and data.feedback is not None:
                html = render_html(data.feedback, notebook=name, scores=data.page_scores(),
                                   late_penalty=penalties[name])
            write_atomic(course.feedback / submission.student / submission.assignment / f"{name}.html", html)


def _write_marker(folder: Path, submission: Submission, result: JobResult) -> None:
    """The marker, written last: the job key and the results (without the notebooks and pages)."""
    compact = {name: {k: v for k, v in data.to_json().items() if k not in ("autograded", "feedback_html")}
               for name, data in result.notebooks.items()}
    write_atomic(folder / MARKER, json.dumps({"key": result.key, "student": submission.student,
                                              "assignment": submission.assignment, "notebooks": compact,
                                              "extra_files": submission.extra_files}))


def _assign_late_penalties(course: Course, db, record) -> dict[str, float]:
    """What nbgrader's AssignLatePenalties stores for each notebook of a submission (late.py): the penalty,
    None when on time; returns notebook -> penalty of those penalised."""
    seconds_late = record.total_seconds_late  # after the assignment's due date (+ extension) in the gradebook
    penalties = late.Penalties(course) if seconds_late > 0 else None
    out = {}
    db.flush()
    for submitted in record.notebooks:
        db.expire(submitted, ["score"])  # nbgrader's score (auto, manual, extra credit) of the grades just set
        penalty = penalties.penalty(record.student_id, submitted.score, seconds_late) if penalties else None
        submitted.late_submission_penalty = penalty
        if penalty:
            out[submitted.name] = penalty
    return out


def _parse_time(utils, text: str | None):
    """nbgrader's reading of a submission time; None for one it cannot read (lms.py lists those)."""
    try:
        return utils.parse_utc(text) if text else None
    except (ValueError, OverflowError, TypeError):
        return None


def _solution_sources(data) -> dict[str, str]:
    """grade_id -> nbgrader checksum of each solution cell as submitted (to spot "No response.")."""
    from nbgrader import utils

    out = {}
    if not data or not data.autograded:
        return out
    for cell in nbformat.from_dict(data.autograded).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if utils.is_solution(cell) and grade_id:
            out[grade_id] = utils.compute_checksum(cell)
    return out


def graded_pairs(gb, student: str | None = None) -> set[tuple[str, str]]:
    """(student, assignment) of every submission in the gradebook (of one student, if given)."""
    from nbgrader.api import Assignment, SubmittedAssignment

    query = gb.db.query(SubmittedAssignment.student_id, Assignment.name).join(
        Assignment, SubmittedAssignment.assignment_id == Assignment.id)
    if student is not None:
        query = query.filter(SubmittedAssignment.student_id == student)
    rows = query.all()
    gb.db.commit()  # ends the read: a PostgreSQL connection would otherwise sit idle in a transaction
    return {(student, assignment) for student, assignment in rows}


CSV_COLUMNS = ["student_id", "assignment", "notebook", "question", "score", "max_score", "status", "reason", "detail"]


def csv_rows(course: Course, *, assignment: str | None = None) -> list[dict]:
    """One row per student, notebook and question: the gradebook's score (manual overrides included), status,
    reason; and a late notebook's penalty as a row of its own (question late.ROW, a negative score)."""
    rows = []
    with course.gradebook() as gb:
        for record in gb.assignments:
            if assignment and record.name != assignment:
                continue
            for submission in record.submissions:
                marker = course.read_marker(submission.student_id, record.name) or {}
                for submitted in submission.notebooks:
                    data = marker.get("notebooks", {}).get(submitted.name, {})
                    flags = data.get("flags", [])
                    status = "flagged" if submitted.flagged or flags else "graded"
                    reason = "; ".join(flags)
                    for grade in sorted(submitted.grades, key=lambda g: g.cell.name):
                        detail = (data.get("scores", {}).get(grade.cell.name) or {}).get("error") or ""
                        question_status = status
                        if grade.score is None or grade.needs_manual_grade:
                            question_status = "needs manual grading" if status == "graded" else status
                        rows.append({"student_id": submission.student_id, "assignment": record.name,
                                     "notebook": submitted.name, "question": grade.cell.name,
                                     "score": "" if grade.score is None else round(float(grade.score), 4),
                                     "max_score": float(grade.max_score), "status": question_status,
                                     "reason": reason, "detail": detail.replace("\n", " ")[:300]})
                    if submitted.late_submission_penalty:  # a row of its own: the totals subtract it
                        rows.append({"student_id": submission.student_id, "assignment": record.name,
                                     "notebook": submitted.name, "question": late.ROW,
                                     "score": -round(float(submitted.late_submission_penalty), 4),
                                     "max_score": 0.0, "status": late.STATUS, "detail": "",
                                     "reason": f"submitted {late.lateness(submission.total_seconds_late)} "
                                               "after the due date"})
    rows.sort(key=lambda r: (r["assignment"], r["student_id"], r["notebook"], r["question"]))
    return rows


def write_feedback_pages(course: Course, *, assignment: str | None = None, student: str | None = None) -> int:
    """Re-render the feedback pages from the gradebook's scores and comments (after manual grading) and
    the feedback notebooks the markers keep (never with hidden tests); returns how many were written."""
    count = 0
    with course.gradebook() as gb:
        for record in gb.assignments:
            if assignment and record.name != assignment:
                continue
            for submission in record.submissions:
                if student and submission.student_id != student:
                    continue
                marker = course.read_marker(submission.student_id, record.name)
                if not marker:
                    continue
                for submitted in submission.notebooks:
                    data = marker["notebooks"].get(submitted.name)
                    if not data or not data.get("feedback"):
                        continue
                    scores = {g.cell.name: (g.score, g.max_score) for g in submitted.grades}
                    comments = {c.cell.name: c.comment for c in submitted.comments}
                    html = render_html(data["feedback"], notebook=submitted.name, scores=scores, comments=comments,
                                       late_penalty=submitted.late_submission_penalty or 0.0)
                    write_atomic(course.feedback / submission.student_id / record.name / f"{submitted.name}.html",
                                 html)
                    count += 1
    return count
