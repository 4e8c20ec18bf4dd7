"""`python -m autograder grade`: a class graded in minutes, isolated, resumable, into nbgrader's gradebook.

    submissions (nbgrader tree / folder / LMS zip)   lms.discover
      -> calibration: the solution, graded like a student, must get full marks    calibrate
      -> one job per submission, N at a time, forked from a warm worker           worker.Pool
         (sandboxed kernel computes, trusted judge decides: judge.py)
      -> per finished submission, in ONE database transaction: its grades          commit
         then the autograded notebooks, feedback pages, and a marker file
      -> grades CSV                                                                write_csv

Only this process writes the gradebook. A submission is either completely in
it or not at all; the marker file (written last) carries a key over the
submitted bytes, the source, the grading plan and the grader version, so a
re-run after a kill grades exactly what is missing and ends with the grades
an uninterrupted run gives.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import nbformat

from . import COURSE_ROOT, ensure_tools_on_path, integrity, lms, sandbox, worker
from .feedback import write_atomic
from .judge import GRADER_VERSION, Plan, SourceModel

MARKER = ".grading.json"
REFERENCE_STUDENT = "__reference__"


class GradingError(RuntimeError):
    """A problem the instructor must fix before grading (message says what)."""


# ---- the course root -------------------------------------------------------------------------------

class Course:
    """An nbgrader course root: config, gradebook, source/, autograded/, feedback/."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root or COURSE_ROOT).resolve()
        if not self.root.is_dir():
            raise GradingError(f"no course root at {self.root}")
        from traitlets.config.loader import PyFileConfigLoader

        config_dir = self.root if (self.root / "nbgrader_config.py").is_file() else COURSE_ROOT
        self.config = PyFileConfigLoader("nbgrader_config.py", path=str(config_dir)).load_config()
        self.config.CourseDirectory.root = str(self.root)
        from nbgrader.coursedir import CourseDirectory

        self.coursedir = CourseDirectory(config=self.config)
        self.course_id = self.coursedir.course_id
        self.db_url = self.coursedir.db_url
        self.autograded = self.root / "autograded"
        self.feedback = self.root / "feedback"
        self.calibration = self.autograded / ".calibration"

    def gradebook(self):
        from nbgrader.api import Gradebook

        ensure_tools_on_path()
        return Gradebook(self.db_url, self.course_id)

    def notebooks(self) -> dict[str, str]:
        """Every gradable notebook name -> its assignment (from source/; the authored .py counts too)."""
        out = {}
        source = self.root / "source"
        if source.is_dir():
            for folder in sorted(p for p in source.iterdir() if p.is_dir()):
                names = {p.stem for p in folder.glob("*.ipynb")}
                if self.root == COURSE_ROOT:
                    names |= {p.stem for p in folder.glob("*.py") if p.stem == folder.name}
                for name in sorted(names):
                    out[name] = folder.name
        return out

    def source_path(self, assignment: str, notebook: str) -> Path:
        """The nbgrader source notebook; for this repository's course it is rebuilt from the authored .py."""
        path = self.root / "source" / assignment / f"{notebook}.ipynb"
        authored = path.with_suffix(".py")
        if self.root == COURSE_ROOT and authored.is_file() and notebook == assignment:
            from .build import read_source

            nb, _ = read_source(notebook)
            text = nbformat.writes(nb)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                write_atomic(path, text)
        if not path.is_file():
            raise GradingError(f"no source notebook {path}")
        return path

    def marker(self, student: str, assignment: str) -> Path:
        return self.autograded / student / assignment / MARKER


# ---- preparing an assignment -----------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def ensure_in_gradebook(course: Course, assignment: str, sources: dict[str, Path]) -> None:
    """Run nbgrader generate_assignment unless the gradebook already has this assignment's graded cells."""
    with course.gradebook() as gb:
        if _gradebook_layout(gb, assignment) == _source_layout(sources):
            return
    from nbgrader.apps import NbGraderAPI

    ensure_tools_on_path()
    api = NbGraderAPI(coursedir=course.coursedir, config=course.config)
    result = api.generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        details = result.get("error") or result.get("log")
        raise GradingError(f"nbgrader generate_assignment {assignment} failed:\n{details}")


def _reference_file(source: Path, scratch: Path, name: str) -> Path:
    """The solution notebook as a submission (hidden tests stripped from its copy: the kernel never needs them)."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            cell.source = integrity.strip_hidden(cell.source)
    path = scratch / "reference" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def calibrate(course: Course, runner: "Runner", targets: dict[str, list[str]], sources: dict, *, scratch: Path,
              base_spec: dict, log=print) -> dict[str, dict]:
    """Find how each notebook's tests can run (see judge.Plan): the solution must get full marks.

    Tries, in order: judge everything (skipping trusted cells no test needs);
    judge everything; run the failing tests inside the kernel; run all tests
    inside the kernel (plain nbgrader). Cached per source version.
    """
    plans, pending = {}, {}
    for assignment, names in targets.items():
        for name in names:
            sha = sources[name]["sha"]
            cache = course.calibration / f"{name}.plan.json"
            if cache.is_file():
                try:
                    cached = json.loads(cache.read_text())
                    if cached["key"] == f"{GRADER_VERSION}:{sha}":
                        plans[name] = cached["plan"]
                        continue
                except (ValueError, KeyError):
                    pass
            pending[name] = {"assignment": assignment, "plan": Plan(), "step": 0}
    ladder = ["judge, pruned", "judge", "failing tests in the kernel", "all tests in the kernel"]
    while pending:
        specs = []
        for name, state in pending.items():
            reference = _reference_file(Path(sources[name]["path"]), scratch, name)
            specs.append(dict(base_spec, job_id=f"calibrate:{name}:{state['step']}", student=REFERENCE_STUDENT,
                              assignment=state["assignment"], notebooks={name: {"path": str(reference)}},
                              sources={name: sources[name]["path"]}, plans={name: state["plan"].to_json()},
                              feedback=False, result_path=str(scratch / f"calibrate-{name}-{state['step']}.json")))
        results = runner.run(specs)
        for spec in specs:
            name = next(iter(spec["notebooks"]))
            state = pending[name]
            result = results.get(spec["job_id"])
            if result is None:
                raise GradingError(f"calibration of {name} failed: the grading job did not finish")
            scores = result["notebooks"][name]["scores"]
            failing = sorted(gid for gid, s in scores.items() if s["mode"] != "manual" and s["score"] != s["points"])
            if not failing:
                plans[name] = state["plan"].to_json()
                write_atomic(course.calibration / f"{name}.plan.json",
                             json.dumps({"key": f"{GRADER_VERSION}:{sources[name]['sha']}", "plan": plans[name]}))
                if state["step"]:
                    log(f"  {name}: tests graded as '{ladder[state['step']]}' "
                        f"(kernel tests: {plans[name]['kernel_tests'] or 'none'})")
                del pending[name]
                continue
            state["step"] += 1
            if state["step"] >= len(ladder):
                details = "; ".join(f"{gid}: {scores[gid]['error']}" for gid in failing)
                raise GradingError(f"the solution of {name} does not pass its own tests in grading mode "
                                   f"({details}). Fix the notebook (python -m autograder run {name} --grading).")
            plan = state["plan"]
            if state["step"] == 1:
                plan.prune = False
            elif state["step"] == 2:
                plan.kernel_tests = failing
            else:
                plan.kernel_tests = sorted(scores)
    return plans


# ---- running jobs ---------------------------------------------------------------------------------

class Runner:
    """Runs job specs N at a time in a warm worker; results come back from the result files."""

    def __init__(self, workers: int, *, job_timeout: float):
        from .worker import Pool

        self.workers, self.job_timeout = max(1, workers), job_timeout
        self.pool = Pool()  # spawned now: it imports torch & co. while the caller does other work

    def run(self, specs: list[dict], on_result=None) -> dict[str, dict]:
        queue, running, results, attempts = list(specs), {}, {}, {}
        while queue or running:
            while queue and len(running) < self.workers:
                spec = queue.pop(0)
                Path(spec["result_path"]).unlink(missing_ok=True)
                self.pool.submit(spec)
                running[spec["job_id"]] = (spec, time.monotonic())
                attempts[spec["job_id"]] = attempts.get(spec["job_id"], 0) + 1
            for job_id, code in self.pool.finished(timeout=0.1):
                spec, _ = running.pop(job_id, (None, None))
                if spec is None:
                    continue
                result = _load(spec["result_path"])
                if result is None and attempts[job_id] < 2 and not spec.get("_timed_out"):
                    queue.insert(0, spec)  # a crashed job is retried once before it counts as failed
                    continue
                if result is None:
                    why = (f"grading did not finish within {self.job_timeout:.0f} s" if spec.get("_timed_out")
                           else f"the grading job ended without a result (exit code {code})")
                    result = failed_result(spec, why)
                results[job_id] = result
                if on_result:
                    on_result(spec, result)
            now = time.monotonic()
            for job_id, (spec, started) in list(running.items()):
                if not spec.get("_timed_out") and now - started > self.job_timeout:
                    spec["_timed_out"] = True
                    self.pool.kill(job_id)  # its "done" message follows
        return results

    def close(self):
        self.pool.close()


class InlineRunner(Runner):
    """Runs jobs one by one in this process (grade-one, tests): no pool, same job code."""

    def __init__(self):
        self.workers = 1

    def run(self, specs, on_result=None):
        from .worker import run_job

        results = {}
        for spec in specs:
            result = run_job(spec)
            results[spec["job_id"]] = result
            if on_result:
                on_result(spec, result)
        return results

    def close(self):
        pass


def _load(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def failed_result(spec: dict, reason: str) -> dict:
    """A result for a job that could not grade: every question 0, flagged with the reason."""
    notebooks = {}
    for name in spec["notebooks"]:
        nb = nbformat.read(spec["sources"][name], as_version=4)
        model = SourceModel.from_notebook(name, nb)
        from .judge import zero_result

        notebooks[name] = dict(zero_result(model, name, f"grader problem: {reason}").to_json(), feedback_html=None)
    return {"job_id": spec["job_id"], "student": spec["student"], "assignment": spec["assignment"],
            "key": spec.get("key"), "notebooks": notebooks, "seconds": 0.0}


# ---- writing results ------------------------------------------------------------------------------

def commit(course: Course, gb, submission: lms.Submission, result: dict) -> None:
    """Write one graded submission: gradebook rows (one transaction), then files, then the marker."""
    from nbgrader import utils
    from nbgrader.api import Comment, Grade, Student, SubmittedAssignment, SubmittedNotebook

    folder = course.autograded / submission.student / submission.assignment
    notebooks = result["notebooks"]
    for name, data in notebooks.items():
        if data.get("autograded"):
            write_atomic(folder / f"{name}.ipynb", nbformat.writes(nbformat.from_dict(data["autograded"])))
    if submission.timestamp:
        write_atomic(folder / "timestamp.txt", submission.timestamp)
    db = gb.db
    try:
        student = db.query(Student).filter(Student.id == submission.student).one_or_none()
        if student is None:
            student = Student(id=submission.student)
            db.add(student)
        if (submission.first_name or submission.last_name) and not (student.first_name or student.last_name):
            student.first_name = submission.first_name or None  # as the LMS file name gives them (lms.py)
            student.last_name = submission.last_name or None
        if submission.lms_user_id and not getattr(student, "lms_user_id", None):
            student.lms_user_id = submission.lms_user_id
        assignment = gb.find_assignment(submission.assignment)
        record = db.query(SubmittedAssignment).filter(SubmittedAssignment.assignment_id == assignment.id,
                                                      SubmittedAssignment.student_id == submission.student
                                                      ).one_or_none()
        if record is None:
            with db.no_autoflush:  # built as nbgrader's add_submission builds it; committed once, below
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
        record.timestamp = _parse_time(utils, submission.timestamp)
        db.flush()
        for submitted in record.notebooks:
            data = notebooks.get(submitted.name)
            scores = data["scores"] if data else {}
            submitted.flagged = bool(data and data["flags"])
            solution_sources = _solution_sources(data)
            for grade in submitted.grades:
                score = scores.get(grade.cell.name)
                grade.auto_score = None if score is None else score["score"]
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            for comment in submitted.comments:
                cell = comment.cell
                source = solution_sources.get(cell.name)
                source_cell = next((c for c in submitted.notebook.source_cells if c.name == cell.name), None)
                unchanged = source is None or (source_cell is not None and source == source_cell.checksum)
                comment.auto_comment = "No response." if unchanged else None
        db.commit()
    except Exception:
        db.rollback()
        raise
    for name, data in notebooks.items():
        if data.get("feedback_html"):
            write_atomic(course.feedback / submission.student / submission.assignment / f"{name}.html",
                         data["feedback_html"])
    compact = {name: {k: v for k, v in data.items() if k not in ("autograded", "feedback_html")}
               for name, data in notebooks.items()}
    write_atomic(folder / MARKER, json.dumps({"key": result.get("key"), "student": submission.student,
                                              "assignment": submission.assignment, "notebooks": compact,
                                              "extra_files": submission.extra_files}))


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
    if not data or not data.get("autograded"):
        return out
    for cell in nbformat.from_dict(data["autograded"]).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id"):
            out[meta["grade_id"]] = utils.compute_checksum(cell)
    return out


def graded_pairs(gb) -> set[tuple[str, str]]:
    from nbgrader.api import Assignment, SubmittedAssignment

    rows = gb.db.query(SubmittedAssignment.student_id, Assignment.name).join(
        Assignment, SubmittedAssignment.assignment_id == Assignment.id).all()
    return {(student, assignment) for student, assignment in rows}


CSV_COLUMNS = ["student_id", "assignment", "notebook", "question", "score", "max_score", "status", "reason", "detail"]


def csv_rows(course: Course, *, assignment: str | None = None) -> list[dict]:
    """One row per student, notebook and question: the gradebook's score (manual overrides included), status, reason."""
    rows = []
    with course.gradebook() as gb:
        for record in gb.assignments:
            if assignment and record.name != assignment:
                continue
            for submission in record.submissions:
                marker = _load(course.marker(submission.student_id, record.name)) or {}
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
    rows.sort(key=lambda r: (r["assignment"], r["student_id"], r["notebook"], r["question"]))
    return rows


def write_csv(course: Course, path: Path, *, assignment: str | None = None) -> int:
    rows = csv_rows(course, assignment=assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
    return len(rows)


# ---- the command -------------------------------------------------------------------------------------

def require_isolation(*, unsafe: bool, force_mode: str | None = None, log=print) -> sandbox.Isolation:
    isolation = sandbox.probe(force_mode=force_mode)
    if isolation.mode == "none":
        banner = "!" * 78
        message = (f"{banner}\n  {isolation.describe()}\n"
                   "  Student code could read the solutions, hidden tests and gradebook, use the network,\n"
                   "  and leave processes behind. Run as root, or enable unprivileged user namespaces\n"
                   "  (sysctl kernel.unprivileged_userns_clone=1), or grade inside a container.\n")
        if not unsafe:
            raise GradingError(message + "  Refusing to grade. To grade anyway (trusted submissions only), "
                                         f"pass --unsafe-no-sandbox.\n{banner}")
        log(message + f"  --unsafe-no-sandbox given: grading WITHOUT isolation.\n{banner}")
    return isolation


def prepare(course: Course, submissions: list[lms.Submission], *, log=print) -> dict:
    """Source notebooks (paths and hashes) per notebook of the assignments being graded; gradebook entries."""
    notebooks = course.notebooks()
    assignments = sorted({s.assignment for s in submissions})
    sources = {}
    for assignment in assignments:
        names = sorted(n for n, a in notebooks.items() if a == assignment)
        paths = {name: course.source_path(assignment, name) for name in names}
        for name, path in paths.items():
            sources[name] = {"path": str(path), "sha": _sha256(path.read_bytes()), "assignment": assignment}
        ensure_in_gradebook(course, assignment, paths)
    return sources


def job_key(submission: lms.Submission, sources: dict, plans: dict, settings: dict) -> str:
    from .worker import read_bytes

    digest = hashlib.sha256(f"{GRADER_VERSION}|{json.dumps(settings, sort_keys=True)}".encode())
    for name in sorted(n for n, s in sources.items() if s["assignment"] == submission.assignment):
        digest.update(f"|{name}|{sources[name]['sha']}|{json.dumps(plans.get(name), sort_keys=True)}|".encode())
        location = submission.notebooks.get(name)
        try:
            digest.update(_sha256(read_bytes(location)).encode() if location else b"missing")
        except (OSError, KeyError) as error:
            digest.update(f"unreadable:{error}".encode())
    digest.update(json.dumps([sorted(submission.extra_files), submission.problems]).encode())
    return digest.hexdigest()


def grade(path: Path, *, course: Course, assignment: str | None = None, workers: int | None = None,
          cell_timeout: float = 60.0, limits: sandbox.Limits | None = None, unsafe: bool = False,
          force: bool = False, feedback: bool = True, csv_path: Path | None = None, progress: bool = True,
          isolation_mode: str | None = None, test_cache: bool = True, log=print) -> dict:
    """Grade every submission under `path` into `course`; returns a summary (see main_grade).

    With `test_cache`, a test that reads only plain answers and makes no call into the kernel
    runs once per distinct answer in the batch (judge.TestCache); without it, once per submission.
    """
    start = time.perf_counter()
    isolation = require_isolation(unsafe=unsafe, force_mode=isolation_mode, log=log)
    limits = limits or sandbox.Limits()
    workers = workers or os.cpu_count() or 1
    runner = Runner(workers, job_timeout=3600)  # the worker imports torch & co. while we find and prepare
    try:
        notebooks = course.notebooks()
        if assignment and assignment not in set(notebooks.values()):
            raise GradingError(f"no assignment {assignment!r} in {course.root / 'source'}")
        submissions, unplaced = lms.discover(Path(path), notebooks, assignment=assignment, protected=[course.root])
        if unplaced:
            log(f"Could not place {len(unplaced)} file(s) (not graded):")
            for item in unplaced:
                log(f"  - {item.where}: {item.why}")
        summary = {"graded": 0, "flagged": 0, "skipped": 0, "unplaced": [asdict(u) for u in unplaced],
                   "submissions": len(submissions), "isolation": isolation.describe()}
        if not submissions:
            log("No submissions found.")
            runner.close()
            return summary
        sources = prepare(course, submissions, log=log)
    except BaseException:
        runner.close()
        raise
    worker.clear_leftovers(course.root)  # what a grader killed earlier left behind
    scratch = worker.scratch_dir("grade")
    hide = [str(course.root), str(Path(path).resolve()), str(scratch), str(Path(path).resolve().parent)
            if Path(path).is_file() else str(Path(path).resolve())]
    if course.db_url.startswith("sqlite:///"):
        hide.append(str(Path(course.db_url[len("sqlite:///"):]).resolve().parent))
    settings = {"limits": asdict(limits), "cell_timeout": cell_timeout}
    base_spec = {"isolation": asdict(isolation), "limits": asdict(limits), "cell_timeout": cell_timeout,
                 "hide": hide}
    graded_spec = dict(base_spec, cache_dir=str(scratch / "test-cache") if test_cache else None)  # not calibration
    max_cells = max(len(nbformat.read(s["path"], as_version=4).cells) for s in sources.values())
    runner.job_timeout = cell_timeout * (max_cells + 10) + 120
    try:
        targets = {}
        for name, source in sources.items():
            targets.setdefault(source["assignment"], []).append(name)
        log(f"Isolation: {isolation.describe()}")
        plans = calibrate(course, runner, targets, sources, scratch=scratch, base_spec=base_spec, log=log)
        with course.gradebook() as gb:
            done = graded_pairs(gb)
        specs, by_job = [], {}
        for index, submission in enumerate(sorted(submissions, key=lambda s: s.key)):
            key = job_key(submission, sources, plans, settings)
            marker = _load(course.marker(submission.student, submission.assignment))
            if not force and marker and marker.get("key") == key and submission.key in done:
                summary["skipped"] += 1
                continue
            names = sorted(n for n, s in sources.items() if s["assignment"] == submission.assignment)
            job_id = f"{submission.student}/{submission.assignment}"
            spec = dict(graded_spec, job_id=job_id, student=submission.student, assignment=submission.assignment,
                        key=key, notebooks={n: submission.notebooks.get(n) for n in names},
                        sources={n: sources[n]["path"] for n in names}, plans={n: plans[n] for n in names},
                        feedback=feedback, result_path=str(scratch / f"job-{index}.json"))
            if submission.extra_files:
                spec["extra_files"] = submission.extra_files
            if submission.problems:
                spec["problems"] = submission.problems
            specs.append(spec)
            by_job[job_id] = submission
        if summary["skipped"]:
            log(f"Resuming: {summary['skipped']} submission(s) already graded, {len(specs)} to go.")
        bar = None
        if progress and specs:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(specs), unit="submission", desc="grading", file=sys.stderr)
        with course.gradebook() as gb:
            def on_result(spec, result):
                submission = by_job[spec["job_id"]]
                _note_extra_files(submission, result)
                commit(course, gb, submission, result)
                flagged = any(nb["flags"] for nb in result["notebooks"].values())
                summary["flagged" if flagged else "graded"] += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(flagged=summary["flagged"])

            runner.run(specs, on_result=on_result)
        if bar is not None:
            bar.close()
    finally:
        runner.close()
        shutil.rmtree(scratch, ignore_errors=True)
    csv_path = csv_path or course.root / "grades.csv"
    rows = write_csv(course, csv_path, assignment=assignment)
    summary["csv"] = str(csv_path)
    summary["seconds"] = time.perf_counter() - start
    log(f"Graded {summary['graded'] + summary['flagged']} submission(s) in {summary['seconds']:.1f} s "
        f"({summary['flagged']} flagged for review, {summary['skipped']} already graded, "
        f"{len(unplaced)} file(s) not placed). Grades: {csv_path} ({rows} rows).")
    return summary


def _note_extra_files(submission: lms.Submission, result: dict) -> None:
    """Files shipped next to a notebook never reach the sandbox; one that shadows a module is flagged."""
    if not submission.extra_files:
        return
    import importlib.util

    shadowing = []
    for relative in submission.extra_files:
        stem = Path(relative).parts[0].split(".")[0]
        if relative.endswith((".py", ".pth", ".so")) or "/" in relative and relative.split("/")[0] == stem:
            try:
                if stem in sys.builtin_module_names or importlib.util.find_spec(stem) is not None:
                    shadowing.append(relative)
            except (ImportError, ValueError):
                pass
    for data in result["notebooks"].values():
        data["notes"].append(f"extra files ignored (not given to the kernel): {submission.extra_files[:10]}")
        if shadowing:
            data["flags"].append(f"extra files would shadow real modules: {shadowing[:10]}")
            data["status"] = "flagged"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main_grade(args) -> int:
    import signal

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        course = Course(args.course_root)
        limits = sandbox.Limits(memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds, processes=args.processes,
                                file_size_mb=args.file_size_mb)
        summary = grade(Path(args.submissions), course=course, assignment=args.assignment, workers=args.workers,
                        cell_timeout=args.timeout, limits=limits, unsafe=args.unsafe_no_sandbox, force=args.force,
                        feedback=not args.no_feedback, csv_path=Path(args.csv) if args.csv else None,
                        progress=not args.no_progress, isolation_mode=args.isolation,
                        test_cache=not args.no_test_cache)
    except (GradingError, FileNotFoundError) as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ngrade: interrupted. Every submission already written is complete; run the same command "
              "again to grade the rest.", file=sys.stderr)
        return 130
    return 0 if not summary["unplaced"] else 1


def main_grade_one(args) -> int:
    """Grade one notebook file as one job (the unit a cluster scheduler runs); optionally commit it."""
    try:
        course = Course(args.course_root)
        isolation = require_isolation(unsafe=args.unsafe_no_sandbox, force_mode=args.isolation)
        notebooks = course.notebooks()
        name = args.notebook_name or Path(args.notebook).stem
        if name not in notebooks:
            raise GradingError(f"{name!r} is no notebook of this course; pass --notebook-name")
        assignment = notebooks[name]
        submission = lms.Submission(args.student, assignment, {name: {"path": str(Path(args.notebook).resolve())}})
        sources = prepare(course, [submission]) if args.commit else {
            n: {"path": str(course.source_path(assignment, n)), "assignment": assignment,
                "sha": _sha256(course.source_path(assignment, n).read_bytes())}
            for n, a in notebooks.items() if a == assignment}
        limits = sandbox.Limits(memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds)
        scratch = worker.scratch_dir("grade-one")
        base_spec = {"isolation": asdict(isolation), "limits": asdict(limits), "cell_timeout": args.timeout,
                     "hide": [str(course.root), str(Path(args.notebook).resolve().parent), str(scratch)]}
        runner = InlineRunner()
        try:
            plans = calibrate(course, runner, {assignment: sorted(sources)}, sources, scratch=scratch,
                              base_spec=base_spec, log=lambda *a: print(*a, file=sys.stderr))
            settings = {"limits": asdict(limits), "cell_timeout": args.timeout}
            spec = dict(base_spec, job_id=f"{args.student}/{assignment}", student=args.student,
                        assignment=assignment, key=job_key(submission, sources, plans, settings),
                        notebooks={n: submission.notebooks.get(n) for n in sorted(sources)},
                        sources={n: sources[n]["path"] for n in sorted(sources)},
                        plans={n: plans[n] for n in sorted(sources)}, feedback=True,
                        result_path=str(Path(args.out).resolve()) if args.out else None)
            result = runner.run([spec])[spec["job_id"]]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if args.commit:
            with course.gradebook() as gb:
                commit(course, gb, submission, result)
        for nb_name, data in result["notebooks"].items():
            total = sum(s["score"] or 0 for s in data["scores"].values())
            possible = sum(s["points"] for s in data["scores"].values())
            print(f"{args.student} {nb_name}: {total:g}/{possible:g} {data['status']}"
                  + (f" ({'; '.join(data['flags'])})" if data["flags"] else ""))
    except GradingError as error:
        print(f"grade-one: {error}", file=sys.stderr)
        return 2
    return 0


def main_export(args) -> int:
    course = Course(args.course_root)
    path = Path(args.out) if args.out else course.root / "grades.csv"
    rows = write_csv(course, path, assignment=args.assignment)
    print(f"wrote {path} ({rows} rows)")
    if args.totals:
        totals_path = path.with_name(path.stem + "_totals.csv")
        write_totals(course, totals_path, assignment=args.assignment)
        print(f"wrote {totals_path}")
    return 0


def write_totals(course: Course, path: Path, *, assignment: str | None = None) -> None:
    """One row per student, one column per assignment (total score), then the total and the maximum
    points of those assignments: what an LMS gradebook import wants."""
    rows = csv_rows(course, assignment=assignment)
    totals, assignments = {}, sorted({r["assignment"] for r in rows})
    maxima = {}  # assignment -> its points (the same for every student: one row per question)
    for row in rows:
        student = totals.setdefault(row["student_id"], {})
        student[row["assignment"]] = student.get(row["assignment"], 0.0) + (row["score"] or 0.0)
        per_student = maxima.setdefault(row["assignment"], {})
        per_student[row["student_id"]] = per_student.get(row["student_id"], 0.0) + row["max_score"]
        if row["status"] != "graded":
            student["needs review"] = "yes"
    max_points = sum(max(per_student.values()) for per_student in maxima.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", *assignments, "total", "max_points", "needs review"])
        for student, values in sorted(totals.items()):
            total = sum(values.get(a, 0.0) for a in assignments)
            writer.writerow([student, *[round(values[a], 4) if a in values else "" for a in assignments],
                             round(total, 4), round(max_points, 4), values.get("needs review", "")])
    os.replace(temporary, path)


def main_feedback(args) -> int:
    """Re-render feedback pages from the gradebook (after manual grading), never with hidden tests."""
    from .feedback import render_html

    course = Course(args.course_root)
    count = 0
    with course.gradebook() as gb:
        for record in gb.assignments:
            if args.assignment and record.name != args.assignment:
                continue
            for submission in record.submissions:
                if args.student and submission.student_id != args.student:
                    continue
                marker = _load(course.marker(submission.student_id, record.name))
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
    print(f"wrote {count} feedback page(s) under {course.feedback}")
    return 0


def add_commands(commands) -> None:
    """The grading subcommands of `python -m autograder` (grade, grade-one, report, feedback, export)."""
    def course_root(parser):
        parser.add_argument("--course-root", default=None, help="nbgrader course root (default: autograder/)")

    def limits(parser):
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds per cell and per test (default 60)")
        parser.add_argument("--memory-mb", type=int, default=2048, help="memory per submission (default 2048)")
        parser.add_argument("--cpu-seconds", type=int, default=600, help="CPU time per submission (default 600)")
        parser.add_argument("--isolation", choices=["root", "userns"], default=None,
                            help="force an isolation mode (default: the strongest that works)")
        parser.add_argument("--unsafe-no-sandbox", action="store_true",
                            help="grade even where student code cannot be isolated (trusted submissions only)")

    grade_ = commands.add_parser("grade", help="grade a folder, zip or nbgrader submitted/ tree of submissions")
    grade_.add_argument("submissions", help="nbgrader submitted/ folder, a folder or a .zip of notebooks from an LMS")
    grade_.add_argument("--assignment", help="grade only this assignment, e.g. 01_chain_rule")
    grade_.add_argument("--workers", type=int, default=None, help="parallel jobs (default: one per core)")
    grade_.add_argument("--processes", type=int, default=64, help="processes/threads per submission (default 64)")
    grade_.add_argument("--file-size-mb", type=int, default=64, help="largest file a submission may write")
    grade_.add_argument("--force", action="store_true", help="regrade submissions already graded")
    grade_.add_argument("--no-feedback", action="store_true", help="skip the feedback pages")
    grade_.add_argument("--csv", help="grades CSV path (default: <course root>/grades.csv)")
    grade_.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade_.add_argument("--no-test-cache", action="store_true",
                        help="run every test for every submission (default: a test that reads only plain answers "
                             "runs once per distinct answer in the batch)")
    course_root(grade_)
    limits(grade_)
    grade_.set_defaults(run=main_grade)

    one = commands.add_parser("grade-one", help="grade one notebook file as one job (cluster schedulers)")
    one.add_argument("notebook", help="the submitted .ipynb")
    one.add_argument("--student", required=True, help="student id")
    one.add_argument("--notebook-name", help="course notebook name (default: the file name)")
    one.add_argument("--out", help="write the job's result JSON here")
    one.add_argument("--commit", action="store_true", help="also write the gradebook, autograded and feedback files")
    course_root(one)
    limits(one)
    one.set_defaults(run=main_grade_one)

    report = commands.add_parser("report", help="plots: per-question score distributions, hardest questions")
    report.add_argument("--assignment", help="only this assignment")
    report.add_argument("--out", help="output folder (default: <course root>/reports)")
    course_root(report)
    report.set_defaults(run=lambda args: __import__("autograder.report", fromlist=["main_report"]).main_report(args))

    feedback_ = commands.add_parser("feedback",
                                    help="re-render feedback pages from the gradebook (after manual grading)")
    feedback_.add_argument("--assignment")
    feedback_.add_argument("--student")
    course_root(feedback_)
    feedback_.set_defaults(run=main_feedback)

    export = commands.add_parser("export", help="grades CSV from the gradebook (manual grades included)")
    export.add_argument("--assignment")
    export.add_argument("--out", help="CSV path (default: <course root>/grades.csv)")
    export.add_argument("--totals", action="store_true", help="also a one-row-per-student totals CSV for an LMS")
    course_root(export)
    export.set_defaults(run=main_export)
