"""Grading through a real Slurm into a real PostgreSQL gradebook (issue 14), against a local SQLite run.

One pytest session starts munged, a single-node slurmctld + slurmd and a PostgreSQL server once
(tests/cluster.py; scripts/setup_system.py installs them) and stops exactly those processes at the end,
also when a test fails. A daemon that cannot start fails the tests with its reason: never a skip.
"""

import concurrent.futures
import csv
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cluster as cluster_lib
import minicourse
import pytest

from autograder import REPO_ROOT

pytestmark = pytest.mark.xdist_group("cluster")

STUDENTS = {
    "alice": minicourse.ANSWERS,
    "bob": {},  # untouched
    "carol": {**minicourse.ANSWERS, "q2_scale": "def scale(values, factor):\n    return [v * factor for v in values]"},
    "dave": {**minicourse.ANSWERS, "q1_total": "q1_total = sum(data[1:])", "q3_rate": "q3_rate = 1 / 2"},
}
SECOND = "mini2"  # a second assignment (the same notebook): each student's two tasks commit at once
TASKS = 2 * len(STUDENTS)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with cluster_lib.running(tmp_path_factory.mktemp("cluster"), cpus=2) as running:
        started = [process for _, process, _ in running.processes]
        yield running
        killed = running.stop()
    assert all(process.poll() is not None for process in started), "a daemon outlived the tests"
    assert not killed, f"{killed} ignored SIGTERM"


def env_of(cluster, db_url: str) -> dict:
    """What an instructor sets (README "On a cluster"): the gradebook's URL in AUTOGRADER_DB_URL, which the
    course's nbgrader_config.py reads, its password in a pgpass file; SLURM_CONF for the Slurm clients."""
    return {**os.environ, **cluster.env, "AUTOGRADER_DB_URL": db_url, "OMP_NUM_THREADS": "1"}


def autograder(env, *args, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_a_daemon_that_cannot_start_fails_with_its_reason(tmp_path):
    broken = cluster_lib.Cluster(tmp_path)
    with pytest.raises(cluster_lib.DaemonError) as failure:
        broken.start("broken", ["sh", "-c", "echo no key for this daemon; exit 3"], tmp_path / "broken.log",
                     ready=lambda: False)
    assert "exited with status 3" in str(failure.value) and "no key for this daemon" in str(failure.value)
    assert broken.stop() == []


def test_a_class_larger_than_max_array_size_is_split_into_arrays_with_offsets(monkeypatch, tmp_path):
    """Slurm refuses array indices >= MaxArraySize (1001 by default): task i of the batch runs as index
    i - offset of the array that starts at offset; resubmitted tasks keep their own array's offset."""
    from autograder.course import slurm

    calls = []

    def fake(*command, timeout=120):
        if command[:3] == ("scontrol", "show", "config"):
            return "MaxArraySize            = 4\n"
        calls.append(command)
        return f"{100 + len(calls)}\n"

    monkeypatch.setattr(slurm, "slurm_command", fake)
    course = type("C", (), {"course_id": "c", "autograded": tmp_path})()
    runner = slurm.SlurmRunner(course, slurm.SlurmOptions(max_parallel=2, sbatch_args=["--mem=1G"]), submissions={},
                               job_timeout=600)
    array = {"jobs": {}, "folder": str(tmp_path)}
    assert runner._sbatch(array, list(range(10))) == ["101", "102", "103"]
    assert array["jobs"] == {"101": 0, "102": 4, "103": 8}
    spans = [next(a for a in c if a.startswith("--array=")) for c in calls]
    assert spans == ["--array=0-3%2", "--array=0-3%2", "--array=0-1%2"]
    assert [next(a for a in c if a.startswith("--export=")) for c in calls][1].endswith("AUTOGRADER_TASK_OFFSET=4")
    assert all(c[-2] == "--mem=1G" and "--time=20" in c for c in calls), "the instructor's sbatch args come last"
    runner._sbatch(array, [5, 9])
    assert [next(a for a in c if a.startswith("--array=")) for c in calls[3:]] == ["--array=1%2", "--array=1%2"]
    assert slurm._span([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


def test_tasks_lost_outside_their_submission_are_resubmitted_and_cancelled_ones_listed(monkeypatch, tmp_path):
    """The poll loop on a scripted queue: task 1 ends NODE_FAIL (resubmitted, then graded), task 2 is
    cancelled (listed, left for a re-run), task 0 has committed."""
    from types import SimpleNamespace

    from autograder.course import slurm
    from autograder.judging.jobs import JobResult

    folder = tmp_path / "batch"
    (folder / "results").mkdir(parents=True)

    def result(index):
        data = JobResult(f"s{index}/mini", f"s{index}", "mini", f"key{index}", {}).to_json()
        (folder / "results" / f"{index}.json").write_text(json.dumps({**data, "node_isolation": "namespaces"}))

    result(0)
    polls = []

    def queued(jobs):
        polls.append(list(jobs))
        if len(polls) == 3:
            result(1)  # the resubmitted task commits
        return {("102", 1): "RUNNING"} if len(polls) == 2 else {}

    monkeypatch.setattr(slurm, "queued", queued)
    monkeypatch.setattr(slurm, "ended", lambda job: {"101": {1: "NODE_FAIL", 2: "CANCELLED"}, "102": {}}[job])
    course = SimpleNamespace(course_id="c", autograded=tmp_path)
    runner = slurm.SlurmRunner(course, slurm.SlurmOptions(poll_seconds=0), submissions={}, job_timeout=60,
                               log=lambda *a: None)
    resubmitted = []

    def sbatch(array, indices):
        resubmitted.append(indices)
        array["jobs"]["102"] = 0
        return ["102"]

    monkeypatch.setattr(runner, "_sbatch", sbatch)
    array = {"jobs": {"101": 0}, "folder": str(folder), "attempts": {}}
    specs = {i: SimpleNamespace(job_id=f"s{i}/mini") for i in range(3)}
    seen, results = [], {}
    runner._follow(array, specs, results, lambda spec, res: seen.append(spec.job_id), None)
    assert resubmitted == [[1]] and array["attempts"] == {"1": 2}
    assert sorted(results) == sorted(seen) == ["s0/mini", "s1/mini"]
    assert polls[-1] == ["101", "102"], "the resubmitted array is watched too"
    assert len(runner.pending_problems) == 1 and runner.pending_problems[0].startswith("s2/mini: task 2")
    assert "CANCELLED" in runner.pending_problems[0] and runner.isolation == {"namespaces"}


# ---- many graders committing at once ----------------------------------------------------------------

def _fake_result(student: str, key: str, fraction: float):
    from autograder.judging.jobs import CellScore, JobResult, NotebookResult

    scores = {f"{q}_test": CellScore(fraction * p, p, "judge") for q, p in minicourse.POINTS.items()}
    name = minicourse.NAME
    return JobResult(f"{student}/{name}", student, name, key, {name: NotebookResult(name, scores)})


def _commit_many(course_root: str, jobs: list[tuple[str, str, float]]) -> list[bool]:
    """In a process of its own: commit (student, key, fraction) results one after another."""
    from autograder.course.gradebook import commit
    from autograder.course.root import Course
    from autograder.course.submissions import Submission

    course, changed = Course(Path(course_root)), []
    with course.gradebook() as gb:
        for student, key, fraction in jobs:
            result = _fake_result(student, key, fraction)
            changed.append(commit(course, gb, Submission(student, minicourse.NAME, {}), result))
    return changed


def test_many_tasks_committing_at_once_lose_nothing_and_write_whole_submissions(cluster, tmp_path, monkeypatch):
    from autograder.course.gradebook import csv_rows, ensure_in_gradebook
    from autograder.course.root import Course

    for name, value in env_of(cluster, cluster_lib.create_database(cluster, "concurrent")).items():
        monkeypatch.setenv(name, value)  # read by the course's nbgrader_config.py; inherited by the processes
    course = Course(minicourse.make_course(tmp_path / "course"))
    assert course.db_url == os.environ["AUTOGRADER_DB_URL"]
    ensure_in_gradebook(course, minicourse.NAME, {minicourse.NAME: course.source_path(minicourse.NAME,
                                                                                      minicourse.NAME)})
    # 6 processes at once; every student is committed by two of them (as a task run twice, or a
    # resubmitted file), each time with all questions right (1.0) or all wrong (0.0)
    students = [f"s{i:02d}" for i in range(12)]
    plans = [[] for _ in range(6)]
    for i, student in enumerate(students):
        plans[i % 6].append((student, f"key-{student}-a", 1.0))
        plans[(i + 1) % 6].append((student, f"key-{student}-a", 1.0) if i % 2 else (student, f"key-{student}-b", 0.0))
    with concurrent.futures.ProcessPoolExecutor(6, mp_context=multiprocessing.get_context("fork")) as pool:
        changed = list(pool.map(_commit_many, [str(course.root)] * 6, plans))
    rows = csv_rows(course)
    by_student = {}
    for row in rows:
        by_student.setdefault(row["student_id"], []).append(row["score"] / row["max_score"])
    assert sorted(by_student) == students, "a committed submission is missing"
    for student, fractions in by_student.items():
        assert len(fractions) == len(minicourse.POINTS) and len(set(fractions)) == 1, \
            f"{student}: half of one submission and half of another: {fractions}"
    skipped = sum(not flag for per_process in changed for flag in per_process)
    assert skipped == len(students) // 2, "a commit of a key already committed must change nothing"
    # committing the same submission (same key) again changes nothing
    before = csv_rows(course)
    assert _commit_many(str(course.root), [("s01", "key-s01-a", 1.0)]) == [False]
    assert csv_rows(course) == before


# ---- the class, through Slurm into PostgreSQL -------------------------------------------------------

def _array_tasks(cluster, job_id: str) -> dict[int, str]:
    out = cluster.run("squeue", "-h", "-r", "-j", job_id, "-o", "%K|%T", check=False).stdout
    return {int(k): state for k, state in (line.split("|") for line in out.split()) if k.isdigit()}


def two_assignment_course(root: Path) -> Path:
    course = minicourse.make_course(root)
    (course / "source" / SECOND).mkdir()
    shutil.copy(course / "source" / minicourse.NAME / f"{minicourse.NAME}.ipynb",
                course / "source" / SECOND / f"{SECOND}.ipynb")
    return course


def grade_rows(course: Path) -> list[tuple]:
    """(student, assignment, question, score, status) of every row of the course's grades.csv."""
    with open(course / "grades.csv", newline="") as handle:
        return sorted((r["student_id"], r["assignment"], r["question"], r["score"], r["status"])
                      for r in csv.DictReader(handle))


def test_a_class_graded_through_slurm_into_postgresql_equals_a_local_run_and_resumes(cluster, tmp_path):
    submitted = minicourse.write_submissions(tmp_path / "submitted", {
        student: minicourse.submission(answers) for student, answers in STUDENTS.items()})
    for student, other in zip(STUDENTS, reversed(list(STUDENTS))):  # mini2: the roster's answers reversed
        path = submitted / student / SECOND / f"{SECOND}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_bytes(minicourse.submission(STUDENTS[other]))
    local = two_assignment_course(tmp_path / "local")
    start = time.perf_counter()
    minicourse.grade(submitted, local)
    local_seconds = time.perf_counter() - start

    course = two_assignment_course(tmp_path / "pg")
    env = env_of(cluster, cluster_lib.create_database(cluster, "classroom"))
    # the local run's calibration (keyed by grader version and source) spares this course one calibration job
    shutil.copytree(local / "autograded" / ".calibration", course / "autograded" / ".calibration")
    command = [sys.executable, "-m", "autograder", "grade", str(submitted), "--course-root", str(course), "--slurm",
               "--max-parallel", "2", "--partition", cluster.partition, "--timeout", "20", "--memory-mb", "1000",
               "--no-progress"]
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        # wait for the first committed task, then kill the grader: the array keeps running
        batches = course / "autograded" / ".slurm"
        deadline = time.monotonic() + 300
        while not list(batches.glob("batch-*/results/*.json")):
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "no task finished within 300 s\n" + cluster.logs()
            time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=60)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, output
    job_id = re.search(rf"Submitted Slurm array job (\d+): {TASKS} task\(s\)", output)[1]
    assert f"array job(s) {job_id} keep running" in output, output
    # cancel tasks mid-run: one grading right now (killed in the middle), one waiting for its turn
    (folder,) = batches.glob("batch-*")
    tasks = _array_tasks(cluster, job_id)
    running = [i for i, s in tasks.items() if s == "RUNNING" and not (folder / "results" / f"{i}.json").exists()]
    pending = [i for i, s in tasks.items() if s == "PENDING"]
    assert pending, f"--max-parallel 2 leaves tasks waiting: {tasks}"
    victims = running[:1] + pending[-1:]
    cluster.run("scancel", *(f"{job_id}_{i}" for i in victims))
    while any(i in _array_tasks(cluster, job_id) for i in victims):
        time.sleep(0.2)
    missing = [i for i in victims if not (folder / "results" / f"{i}.json").exists()]
    assert pending[-1] in missing

    start = time.perf_counter()
    second = autograder(env, *command[3:], timeout=600)
    resume_seconds = time.perf_counter() - start
    log = second.stdout + second.stderr
    assert second.returncode == 0, log
    if _array_tasks(cluster, job_id) or len(missing) + 1 < len(tasks):
        assert f"Following Slurm array job {job_id}" in log, log
    arrays = re.findall(r"Submitted Slurm array job \d+: (\d+) task", log)
    assert arrays == [str(len(missing))], f"only the cancelled tasks {missing} are graded again, in one array\n{log}"
    assert "Isolation on the nodes: mount+pid+net+ipc+uts namespaces" in log, log

    expected = grade_rows(local)
    assert grade_rows(course) == expected and len(expected) == TASKS * len(minicourse.POINTS)
    totals = {}
    for student, assignment, _, score, _ in expected:
        totals[(student, assignment)] = totals.get((student, assignment), 0.0) + float(score)
    full = sum(minicourse.POINTS.values())
    assert totals[("alice", minicourse.NAME)] == totals[("dave", SECOND)] == full  # dave's mini2: alice's answers
    assert totals[("bob", minicourse.NAME)] == totals[("carol", SECOND)] == 0.0  # carol's mini2: untouched
    for student in STUDENTS:
        for name in (minicourse.NAME, SECOND):
            page = course / "feedback" / student / name / f"{name}.html"
            assert page.is_file() and minicourse.HIDDEN_INPUT not in page.read_text()

    # every other command works against the PostgreSQL gradebook, plain nbgrader too; grade-one --commit of
    # a file the gradebook already holds (same key) changes nothing
    alice = submitted / "alice" / minicourse.NAME / f"{minicourse.NAME}.ipynb"
    again = autograder(env, "grade-one", str(alice), "--student", "alice", "--commit", "--course-root", str(course),
                       "--timeout", "20", "--memory-mb", "1000")
    assert again.returncode == 0 and "alice mini: 6/6 graded (already in the gradebook: unchanged)" in again.stdout, \
        again.stdout + again.stderr
    assert "wrote" in autograder(env, "export", "--totals", "--course-root", str(course)).stdout
    assert grade_rows(course) == expected, "export reads back what the tasks committed"
    assert (course / "grades_totals.csv").read_text().count("\n") == len(STUDENTS) + 1
    assert f"wrote {TASKS} feedback page(s)" in autograder(env, "feedback", "--course-root", str(course)).stdout
    assert autograder(env, "report", "--course-root", str(course)).returncode == 0
    assert (course / "reports" / "index.html").is_file()
    nbgrader = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export", "--to",
                               str(tmp_path / "nbgrader.csv")], cwd=course, env=env,
                              capture_output=True, text=True, timeout=300)
    assert nbgrader.returncode == 0, nbgrader.stderr[-2000:]
    assert (tmp_path / "nbgrader.csv").read_text().count("\n") == TASKS + 1
    print(f"local run {local_seconds:.1f} s, resumed Slurm run {resume_seconds:.1f} s")
