"""Grade one class locally and through a single-node Slurm into PostgreSQL: per-job overhead, throughput.

    python benchmarks/bench_cluster.py [--students 8] [--notebooks 01_chain_rule] [--node-cores 32]

Starts munged, slurmctld + slurmd (a node with this machine's cores) and a PostgreSQL server
(tests/cluster.py; `scripts/setup_system.py` installs them), simulates a class as bench_grading.py
does (full, partial and untouched notebooks, seeded), and grades it twice, each in its own course root:

- locally: `python -m autograder grade --workers <cores> --no-test-cache` into SQLite (no test cache:
  an array task grades one submission and shares nothing with the others, so both runs do the same work);
- through Slurm: `python -m autograder grade --slurm` into PostgreSQL, one array task per submission.

Both wall times include calibration and the CSV. Each array task reports how long it lived (task.sh's
clock, from the shell starting to the result written) and how long its grading took (the job itself,
judging/worker.run_job); the difference is the per-task overhead (a Python start, imports, the node's
isolation probe, the commit). Every grade is compared. Writes the "cluster" section of
benchmarks/README.md, with a paper estimate for 10,000 students x 8 notebooks on a 20-node cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import cluster as cluster_lib  # noqa: E402  (tests/cluster.py)

from autograder import REPO_ROOT, ensure_tools_on_path  # noqa: E402
from benchmarks.bench_grading import simulate, write_course  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402

STUDENTS_ON_PAPER, NOTEBOOKS_ON_PAPER, NODES_ON_PAPER = 10_000, 8, 20


def csv_grades(root: Path) -> dict:
    """(student, assignment, question) -> (score, status) from the course's grades.csv."""
    import csv

    with open(root / "grades.csv", newline="") as handle:
        return {(r["student_id"], r["assignment"], r["question"]): (r["score"], r["status"])
                for r in csv.DictReader(handle)}


def run(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command[2:5])} failed:\n{output[-4000:]}")
    return seconds, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--notebooks", nargs="*", default=["01_chain_rule"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--node-cores", type=int, default=32, help="cores per node of the cluster on paper")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/README.md")
    args = parser.parse_args()
    ensure_tools_on_path()
    cores = os.cpu_count() or 1
    sources, roster = simulate(args.students, args.seed, args.notebooks)
    base = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        with cluster_lib.running(base / "daemons", cpus=cores) as cluster:
            env = {**os.environ, **cluster.env, "OMP_NUM_THREADS": "1"}
            env.pop("AUTOGRADER_DB_URL", None)  # the local run: SQLite
            roots = {"local": base / "local", "slurm": base / "slurm"}
            for root in roots.values():
                write_course(root, sources, roster, plain=False)
            slurm_env = {**env, "AUTOGRADER_DB_URL": cluster_lib.create_database(cluster, "bench")}
            count = sum(len(notebooks) for notebooks in roster.values())
            print(f"{args.students} students x {len(sources)} notebook(s) = {count} submissions", flush=True)
            grade = [sys.executable, "-m", "autograder", "grade", "--no-progress", "--no-test-cache"]
            load = {"local": os.getloadavg()[0]}
            local_seconds, output = run(grade + [str(roots["local"] / "submitted"), "--course-root",
                                                 str(roots["local"]), "--workers", str(cores)], env)
            print(output[-600:], f"local: {local_seconds:.1f} s", flush=True)
            load["slurm"] = os.getloadavg()[0]
            slurm_seconds, output = run(grade + [str(roots["slurm"] / "submitted"), "--course-root",
                                                 str(roots["slurm"]), "--slurm"], slurm_env)
            print(output[-600:], f"slurm: {slurm_seconds:.1f} s", flush=True)
            tasks = [json.loads(p.read_text()) for p in (roots["slurm"] / "autograded" / ".slurm").glob(
                "batch-*/results/*.json")]
            ours, theirs = csv_grades(roots["slurm"]), csv_grades(roots["local"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    mismatches = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    lives = [t["task_seconds"] for t in tasks if t.get("task_seconds")]
    grading = [t["seconds"] for t in tasks]
    overhead = [t["task_seconds"] - t["seconds"] for t in tasks if t.get("task_seconds")]
    if len(tasks) != count or not lives:
        raise RuntimeError(f"{len(tasks)} task results for {count} submissions")
    task_median, grading_median, overhead_median = (statistics.median(x) for x in (lives, grading, overhead))

    # on paper: every submission one task, as many at once as the cluster has cores
    submissions = STUDENTS_ON_PAPER * NOTEBOOKS_ON_PAPER
    slots = NODES_ON_PAPER * args.node_cores
    waves = -(-submissions // slots)
    paper_seconds = waves * task_median
    starts_per_second = slots / task_median
    local_core_seconds = local_seconds * cores / count  # one machine, warm workers, calibration included
    lines = [
        "## Cluster",
        "",
        "`python benchmarks/bench_cluster.py` grades one simulated class (as bench_grading.py simulates it) twice: "
        f"locally (`grade --workers {cores} --no-test-cache`, SQLite) and through a single-node Slurm "
        "(`grade --slurm`, one array task per submission, each committing into PostgreSQL), with real munged, "
        "slurmctld, slurmd and PostgreSQL on this machine (tests/cluster.py).",
        "",
        f"- Class: {args.students} students x {', '.join(sources)} = {count} submissions (seed {args.seed}).",
        f"- Machine: {cores} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; the Slurm node has the same {cores} cores. Load average (1 min) when each "
        f"run started: local {load['local']:.1f}, Slurm {load['slurm']:.1f}.",
        "",
        "| run | wall time (calibration and CSV included) | per submission | throughput |",
        "|---|---|---|---|",
        f"| local, {cores} warm forked workers | {local_seconds:.1f} s | {local_seconds / count:.2f} s | "
        f"{60 * count / local_seconds:.0f} submissions/min |",
        f"| single-node Slurm, {cores} tasks at once | {slurm_seconds:.1f} s | {slurm_seconds / count:.2f} s | "
        f"{60 * count / slurm_seconds:.0f} submissions/min |",
        "",
        f"Per array task (median of {len(lives)}): **{task_median:.1f} s** from the task's shell starting to its "
        f"result committed, of which {grading_median:.1f} s grading (the job itself) and **{overhead_median:.1f} s "
        "overhead**: a fresh Python importing torch and nbgrader, the node's isolation probe, the gradebook "
        "connection and commit. Locally the same work costs "
        f"{local_core_seconds:.1f} core-seconds per submission, because workers are forked from one warm "
        "process: on one machine, `grade` without Slurm is the faster choice.",
        "",
        f"Grades: {len(theirs)} rows compared, "
        + ("**all identical** (score and status)." if not mismatches else f"**{len(mismatches)} differ**."),
        "",
        f"On paper, {STUDENTS_ON_PAPER:,} students x {NOTEBOOKS_ON_PAPER} notebooks = {submissions:,} array "
        f"tasks on {NODES_ON_PAPER} nodes of {args.node_cores} cores ({slots} tasks at once, 2 GB each: "
        f"{2 * args.node_cores} GB per node), at this machine's {task_median:.1f} s per task: {waves} waves, "
        f"**about {paper_seconds / 60:.0f} minutes** of grading. "
        f"The same class on one {args.node_cores}-core machine at the local figure: about "
        f"{submissions * local_core_seconds / args.node_cores / 3600:.1f} hours. What else it asks of the cluster: "
        f"Slurm starts {starts_per_second:.0f} tasks per second at full speed (arrays of at most MaxArraySize "
        f"tasks, 1001 by default: {-(-submissions // 1001)} arrays, which `grade --slurm` splits by itself); "
        f"PostgreSQL takes the same {starts_per_second:.0f} short transactions per second, each under its "
        f"student's advisory lock; the shared file system serves {slots} Python starts at once (the largest "
        "cost per task; a virtual environment on node-local disk or in a container image removes most of it). "
        "The notebooks differ (08 trains networks in its hidden tests): scale by the grading time of each.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("cluster", "\n".join(lines))
        print("wrote the cluster section of benchmarks/README.md")
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
