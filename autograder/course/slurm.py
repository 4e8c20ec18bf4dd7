"""Grading on a Slurm cluster: ONE `sbatch --array` whose tasks each grade one submission and commit it.

    grade --slurm (instructor's machine)                 array task i (a compute node)
      discover, prepare, calibrate: as a local run         python -m autograder grade-one --job tasks/i.json
      tasks/i.json: the JobSpec + its submission    ->      probes the node's isolation (refuses none, as locally),
      a copy of each submitted notebook                    grades the one submission (judging/worker.run_job),
      sbatch --array=0-(n-1)%max_parallel                  commits it into the gradebook (one transaction,
      poll squeue (and sacct / scontrol for ended          idempotent by the job key), writes results/i.json
        tasks); resubmit tasks that ended for reasons
        outside the submission (NODE_FAIL, PREEMPTED, TIMEOUT, BOOT_FAIL, DEADLINE)
      grades CSV as a local run

Everything lives in `<course root>/autograded/.slurm/` (a shared file system, git-ignored, hidden from
every sandbox like the rest of the course root); `state.json` there records the array jobs not yet
followed to their end, so killing `grade --slurm` and running it again follows the running array instead
of submitting a second one, and a re-run after `scancel` grades only what is missing. The gradebook is
the shared database of `c.CourseDirectory.db_url` (PostgreSQL): only committed submissions count.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import REPO_ROOT, CourseError
from ..files import read_bytes, write_atomic
from ..judging.jobs import JobResult, JobSpec
from ..judging.worker import run_job, scratch_dir
from .batch import failed_result, note_extra_files, require_isolation
from .gradebook import commit
from .root import Course
from .submissions import Submission

OUTSIDE = ("NODE_FAIL", "PREEMPTED", "TIMEOUT", "BOOT_FAIL", "DEADLINE")  # not the submission's doing
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "STAGE_OUT",
          "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED")
ATTEMPTS = 3  # a task that ended outside the submission this often is committed as a grader problem


class SlurmError(CourseError):
    """sbatch or squeue failed (message: the command and what it said)."""


@dataclass
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    max_parallel: int | None = None
    sbatch_args: list[str] = field(default_factory=list)
    unsafe: bool = False  # --unsafe-no-sandbox, passed on to every task
    isolation_mode: str | None = None
    poll_seconds: float = 2.0


def slurm_command(*args: str, timeout: float = 120) -> str:
    """Run a Slurm client command; its stdout, or SlurmError naming what it said."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmError(f"`{args[0]}` could not run: {error}") from error
    if result.returncode:
        raise SlurmError(f"`{' '.join(args[:3])} ...` exited {result.returncode}: {result.stderr.strip()[:500]}")
    return result.stdout


# ---- job states ------------------------------------------------------------------------------------

def queued(array_ids: list[str]) -> dict[tuple[str, int], str]:
    """(array job id, task index) -> state of every task squeue still lists (pending tasks one by one)."""
    if not array_ids:
        return {}
    out = slurm_command("squeue", "-h", "-r", "-j", ",".join(array_ids), "-o", "%F|%K|%T")
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[1].isdigit():
            states[(parts[0], int(parts[1]))] = parts[2]
    return states


def ended(array_id: str) -> dict[int, str]:
    """task index -> final state of the tasks of `array_id` that left the queue: from sacct where the
    cluster keeps accounting, else from `scontrol show job` (which remembers them for MinJobAge)."""
    states = {}
    try:
        out = slurm_command("sacct", "-n", "-P", "-X", "-j", array_id, "-o", "JobID,State")
        for line in out.splitlines():
            job, _, state = line.partition("|")
            match = re.fullmatch(rf"{array_id}_(\d+)", job.strip())
            if match:
                states[int(match[1])] = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
        if states:
            return states
    except SlurmError:
        pass
    try:
        out = slurm_command("scontrol", "-o", "show", "job", array_id)
    except SlurmError:
        return states
    for line in out.splitlines():
        task = re.search(r"\bArrayTaskId=(\d+)\b", line)
        state = re.search(r"\bJobState=(\S+)", line)
        if task and state:
            states[int(task[1])] = state[1]
    return states


# ---- the instructor's side -------------------------------------------------------------------------

class SlurmRunner:
    """Runs JobSpecs as the tasks of Slurm arrays; the interface of batch.Runner: `run(specs, on_result)`
    returns {job_id: JobResult} and calls `on_result(spec, result)` for each. Every result it hands back is
    already in the gradebook: the task committed it, or, for a task that ended outside its submission
    ATTEMPTS times, this runner did (all 0, flagged as a grader problem)."""

    def __init__(self, course: Course, options: SlurmOptions, *, submissions: dict[str, Submission],
                 job_timeout: float, log=print):
        self.course, self.options, self.log = course, options, log
        self.submissions = submissions  # job_id -> lms.Submission
        self.job_timeout = job_timeout
        self.root = course.autograded / ".slurm"
        self.state_path = self.root / "state.json"
        self.isolation: set[str] = set()
        self.submitted_arrays = 0  # sbatch calls this run made
        self.pending_problems: list[str] = []

    # -- state.json: the arrays not yet followed to their end
    def _state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {"arrays": []}

    def _save(self, state: dict) -> None:
        write_atomic(self.state_path, json.dumps(state, indent=1))

    def run(self, specs: list[JobSpec], on_result=None, progress=None) -> dict[str, JobResult]:
        """`progress(done, {state: count})`, if given, after every look at the queue."""
        state = self._state()
        by_key = {spec.key: spec for spec in specs}
        followed = []  # (array record, {index: spec}) of live arrays from an earlier run
        live = queued([job for array in state["arrays"] for job in array["jobs"]])
        for array in state["arrays"]:
            folder = Path(array["folder"])
            alive = {array["jobs"][job] + index for job, index in live if job in array["jobs"]}
            # a task still queued, or one that committed since: follow it; one that ended without a
            # result (scancel, a node lost while no grader watched): graded again, in the new array
            mine = {index: by_key.pop(task["spec"]["key"]) for index, task in _read_tasks(folder).items()
                    if task["spec"]["key"] in by_key
                    and (index in alive or (folder / "results" / f"{index}.json").is_file())}
            if mine:
                followed.append((array, mine))
                self.log(f"Following Slurm array job {_names(array)} (submitted earlier): "
                         f"{len(mine)} of its submission(s) still to grade.")
        state["arrays"] = [array for array, _ in followed]
        remaining = [spec for spec in specs if spec.key in by_key]
        if remaining:
            array, mine = self._submit(remaining)
            followed.append((array, mine))
            state["arrays"].append(array)
        self._save(state)
        results = {}
        try:
            for array, mine in followed:
                self._follow(array, mine, results, on_result, progress)
        except KeyboardInterrupt:
            ids = " ".join(_names(a) for a, _ in followed)
            self.log(f"\nThe Slurm array job(s) {ids} keep running and committing; run the same command again "
                     f"to follow them (or `scancel {ids}`).")
            raise
        self._save({"arrays": []})
        return results

    def _submit(self, specs: list[JobSpec]) -> tuple[dict, dict]:
        """Task files (spec, submission, a copy of each notebook) and ONE sbatch --array over them."""
        folder = self.root / f"batch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        (folder / "results").mkdir(parents=True)
        (folder / "logs").mkdir()
        mine = {}
        for index, original in enumerate(specs):
            spec = original.to_json()  # a copy: the notebooks become copies in the shared folder
            for name, location in spec["notebooks"].items():
                if location is None:
                    continue
                try:
                    data = read_bytes(location)
                except OSError:
                    continue  # run_job finds it unreadable too, and says why
                copy = folder / "tasks" / str(index) / f"{name}.ipynb"
                write_atomic(copy, data)
                spec["notebooks"][name] = {"path": str(copy)}
            spec["result_path"] = str(folder / "results" / f"{index}.json")
            spec["cache_dir"] = None  # one submission per task: nothing to share
            submission = asdict(self.submissions[original.job_id])
            write_atomic(folder / "tasks" / f"{index}.json",
                         json.dumps({"course_root": str(self.course.root), "spec": spec, "submission": submission,
                                     "unsafe": self.options.unsafe, "isolation_mode": self.options.isolation_mode}))
            mine[index] = original
        script = folder / "task.sh"
        # task i of the array whose first task is task OFFSET of the batch (arrays hold MaxArraySize tasks)
        script.write_text("#!/bin/sh\n# one array task = one submission (autograder/course/slurm.py)\n"
                          "AUTOGRADER_TASK_STARTED=$(date +%s.%N); export AUTOGRADER_TASK_STARTED\n"
                          f"cd {shlex.quote(str(REPO_ROOT))} || exit 1\n"
                          f"exec {shlex.quote(sys.executable)} -m autograder grade-one --job {shlex.quote(str(folder))}"
                          "/tasks/$((SLURM_ARRAY_TASK_ID + AUTOGRADER_TASK_OFFSET)).json\n")
        script.chmod(0o755)
        array = {"jobs": {}, "folder": str(folder), "attempts": {}}
        self._sbatch(array, sorted(mine))
        self.log(f"Submitted Slurm array job {_names(array)}: {len(mine)} task(s), one per submission.")
        return array, mine

    def _sbatch(self, array: dict, indices: list[int]) -> list[str]:
        """sbatch the tasks `indices` of `array`'s batch: one array job, or one per MaxArraySize tasks
        (Slurm's default 1001) where there are more; records each job id with its first task's index."""
        folder, size, submitted = Path(array["folder"]), max_array_size(), []
        for offset in sorted({index // size * size for index in indices}):
            span = _span([index - offset for index in indices if offset <= index < offset + size])
            if self.options.max_parallel:
                span += f"%{self.options.max_parallel}"
            minutes = int(self.job_timeout // 60) + 10  # the job's own limit: the grader's per-job timeout + slack
            command = ["sbatch", "--parsable", f"--array={span}", f"--job-name=autograder-{self.course.course_id}",
                       f"--output={folder / 'logs' / '%A_%a.out'}", "--ntasks=1", "--cpus-per-task=1",
                       f"--time={minutes}", f"--export=ALL,AUTOGRADER_TASK_OFFSET={offset}"]
            if self.options.partition:
                command.append(f"--partition={self.options.partition}")
            if self.options.account:
                command.append(f"--account={self.options.account}")
            command += [*self.options.sbatch_args, str(folder / "task.sh")]
            job_id = slurm_command(*command).strip().split(";")[0]
            if not job_id.isdigit():
                raise SlurmError(f"sbatch printed no job id: {job_id!r}")
            array["jobs"][job_id] = offset
            submitted.append(job_id)
            self.submitted_arrays += 1
        return submitted

    def _follow(self, array: dict, mine: dict[int, JobSpec], results: dict, on_result, progress) -> None:
        """Poll until every task of `array` in `mine` has a result or has ended without one."""
        waiting = dict(mine)
        while waiting:
            live = self._live(array)  # first the queue, then the results: a task gone from both has ended
            self._collect(array, waiting, results, on_result)
            if progress:
                progress(len(results), _counts(live, waiting))
            live_indices = {index for (job, index) in live}
            gone = [index for index in waiting if index not in live_indices]
            if gone:
                self._settle(array, gone, waiting, results, on_result)
            if waiting:
                time.sleep(self.options.poll_seconds)

    def _live(self, array: dict) -> dict[tuple[str, int], str]:
        """(array job id, task index in the batch) -> state of each of `array`'s tasks squeue still lists."""
        return {(job, array["jobs"][job] + index): task_state
                for (job, index), task_state in queued(list(array["jobs"])).items() if job in array["jobs"]}

    def _collect(self, array: dict, waiting: dict[int, JobSpec], results: dict, on_result) -> None:
        """The results the waiting tasks have written (each committed by its task), taken off `waiting`."""
        folder = Path(array["folder"])
        for index in list(waiting):
            data = _load(folder / "results" / f"{index}.json")
            if data is None:
                continue
            spec = waiting.pop(index)
            self.isolation.add(data.get("node_isolation", "unknown"))
            results[spec.job_id] = JobResult.from_json(data)
            if on_result:
                on_result(spec, results[spec.job_id])

    def _settle(self, array: dict, gone: list[int], waiting: dict[int, JobSpec], results: dict, on_result) -> None:
        """Tasks that left the queue without a result: resubmitted when they ended outside their submission
        (fewer than ATTEMPTS times), committed as a grader problem when that happened ATTEMPTS times, and
        listed in pending_problems otherwise (cancelled, failed: a re-run grades them)."""
        folder, final, again = Path(array["folder"]), self._final_states(array), []
        for index in gone:
            if _load(folder / "results" / f"{index}.json") is not None:
                continue  # finished between the two looks
            why = final.get(index, "UNKNOWN")
            attempts = array["attempts"].get(str(index), 1)
            if why in OUTSIDE and attempts < ATTEMPTS:
                array["attempts"][str(index)] = attempts + 1
                again.append(index)
                continue
            spec = waiting.pop(index)
            if why in OUTSIDE:
                self._commit_failure(spec, f"the Slurm task ended {why} {attempts} times", results, on_result)
            else:
                self.pending_problems.append(
                    f"{spec.job_id}: task {index} of array job {_names(array)} ended {why} without a result"
                    + ("" if why == "CANCELLED" else f" (log: {_log_tail(folder, index)})"))
        if again:
            self._resubmit(array, again, final)

    def _final_states(self, array: dict) -> dict[int, str]:
        """Task index in the batch -> how its newest run ended (sacct, scontrol)."""
        final = {}
        for job, offset in array["jobs"].items():  # in submission order: a task's newest run wins
            final.update({offset + index: why for index, why in ended(job).items()})
        return final

    def _commit_failure(self, spec: JobSpec, reason: str, results: dict, on_result) -> None:
        """A task that never got to grade its submission: committed here, every question 0, flagged."""
        result = failed_result(spec, reason)
        with self.course.gradebook() as gb:
            commit(self.course, gb, self.submissions[spec.job_id], result)
        results[spec.job_id] = result
        if on_result:
            on_result(spec, result)

    def _resubmit(self, array: dict, again: list[int], final: dict[int, str]) -> None:
        """sbatch the tasks `again` anew, recorded in state.json with the array's attempts."""
        new = self._sbatch(array, again)
        state = self._state()
        for record in state["arrays"]:
            if record["folder"] == array["folder"]:
                record.update(array)
        self._save(state)
        self.log(f"Resubmitted {len(again)} task(s) that ended outside their submission "
                 f"({', '.join(sorted({final.get(i, '?') for i in again}))}) as array job {' '.join(new)}.")

    def close(self):
        pass


def max_array_size() -> int:
    """The cluster's MaxArraySize (task indices must stay below it); Slurm's default where unreadable."""
    try:
        found = re.search(r"^MaxArraySize\s*=\s*(\d+)", slurm_command("scontrol", "show", "config"), re.MULTILINE)
    except SlurmError:
        found = None
    return int(found[1]) if found else 1001


def _counts(live: dict[tuple[str, int], str], waiting: dict[int, JobSpec]) -> dict[str, int]:
    """state -> how many of the waiting tasks squeue lists in it ("pending", "running")."""
    counts = {}
    for (job, index), task_state in live.items():
        if index in waiting:
            counts[task_state] = counts.get(task_state, 0) + 1
    return {k.lower(): v for k, v in sorted(counts.items())}


def _names(array: dict) -> str:
    return " ".join(array["jobs"])


def _span(indices: list[int]) -> str:
    """0,1,2,5 -> "0-2,5" (sbatch --array)."""
    parts, start = [], None
    for i, index in enumerate(indices):
        if start is None:
            start = index
        if i + 1 == len(indices) or indices[i + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts)


def _read_tasks(folder: Path) -> dict[int, dict]:
    tasks = {}
    for path in (folder / "tasks").glob("*.json"):
        data = _load(path)
        if data and path.stem.isdigit():
            tasks[int(path.stem)] = data
    return tasks


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _log_tail(folder: Path, index: int) -> str:
    logs = sorted((folder / "logs").glob(f"*_{index}.out"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return "no log"
    lines = [line for line in logs[-1].read_text(errors="replace").splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("grade-one:")]  # the task's own reason, if it gave one
    return f"{logs[-1]}: {(said or lines or ['empty'])[-1][:300]}"


# ---- the compute node's side -----------------------------------------------------------------------

def run_task(task_path: Path, *, log=print) -> int:
    """One array task (`grade-one --job`): grade the task file's submission on this node, commit it,
    then write the result file the instructor's side waits for."""
    task = json.loads(Path(task_path).read_text())
    course = Course(Path(task["course_root"]))
    submission = Submission(**task["submission"])
    # the node's own isolation: refuse where student code cannot be isolated, as a local run does
    isolation = require_isolation(unsafe=task["unsafe"], force_mode=task["isolation_mode"],
                                  log=lambda *a: print(*a, file=sys.stderr))
    spec = JobSpec.from_json(task["spec"])
    result_path = Path(spec.result_path)
    scratch = scratch_dir("grade-one")
    try:
        spec.isolation, spec.hide = isolation, [*spec.hide, str(scratch)]
        spec.result_path = str(scratch / "result.json")
        result = run_job(spec)
        note_extra_files(submission, result)
        with course.gradebook() as gb:
            changed = commit(course, gb, submission, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    data = result.to_json()
    for notebook in data["notebooks"].values():
        for bulky in ("autograded", "feedback", "feedback_html"):  # in the gradebook's files already
            notebook[bulky] = None
    started = os.environ.get("AUTOGRADER_TASK_STARTED", "")  # by task.sh: the task's whole life, for benchmarks
    data.update(committed=True, changed=changed, node=os.uname().nodename, node_isolation=isolation.describe(),
                task_seconds=time.time() - float(started) if started.replace(".", "").isdigit() else None)
    write_atomic(result_path, json.dumps(data))
    for name, notebook in result.notebooks.items():
        total = sum(s.score or 0 for s in notebook.scores.values())
        possible = sum(s.points for s in notebook.scores.values())
        log(f"{submission.student} {name}: {total:g}/{possible:g} {notebook.status}"
            + ("" if changed else " (already in the gradebook: unchanged)"))
    return 0
