"""Grade one simulated class twice: plain `nbgrader autograde`, then `python -m autograder grade`.

    python benchmarks/bench_grading.py [--students 30] [--workers 2] [--seed 0]

The class: every notebook in autograder/source, each student's notebook one
of full (all answers right, 40%), partial (each answer right, the authored
typical mistake, or left empty, 40%) or empty (as handed out, 20%). Both
graders get the same files in their own course root, with the assignment
already generated (nbgrader generate_assignment, not timed). "Plain nbgrader"
is nbgrader 0.9's default autograde: one kernel per notebook, every cell run
(the course's demo-skipping preprocessor removed from its config). Timed:
wall clock of the whole command, from start to the last grade in the
gradebook; ours includes its calibration run, its feedback pages and CSV.
Then every grade of every student is compared.

Ours runs twice: as instructors run it (a test that reads only plain answers
runs once per distinct answer in the batch, and a simulated class repeats
answers far more than a real one), and with --no-test-cache (every test for
every submission: the worst case, every answer distinct).

Writes the "grading" section of benchmarks/README.md. Target: >= 10x faster
on 2 cores, identical grades. `--keep DIR --reuse-plain` grades ours again
against the plain run kept in DIR (its time is in DIR/plain.json).

`--before REV [--no-plain]` also grades the class with the grader of an
earlier revision (its autograder/ package and nbgrader_config.py, today's
course_lib and notebooks), alternating with today's, and writes the
"grading-before" section: a change to the grader shown not to slow it or to
change a grade.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder import COURSE_ROOT, REPO_ROOT, ensure_tools_on_path  # noqa: E402
from autograder.build import assignment_names, read_source, solution_cells  # noqa: E402
from benchmarks.host import HOST_SPEED, probe, speed  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402

PLAIN_CONFIG = '''c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "vanishing-gradients"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.Execute.timeout = 300
'''


def simulate(students: int, seed: int, names: list[str]) -> tuple[dict, dict]:
    """(sources, class): sources[name] = (source nb, student nb); class[student][name] = (kind, answers)."""
    sources = {}
    for name in names:
        source, mistakes = read_source(name)
        student_nb = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        sources[name] = (source, student_nb, solution_cells(source),
                         {m.grade_id: m.source for m in reversed(mistakes) if not m.right})
    rng = random.Random(seed)
    roster = {}
    for index in range(students):
        student = f"student{index:03d}"
        roster[student] = {}
        for name, (_, _, answers, mistakes) in sources.items():
            kind = rng.choices(["full", "partial", "empty"], weights=[4, 4, 2])[0]
            if kind == "full":
                filled = dict(answers)
            elif kind == "empty":
                filled = {}
            else:
                filled = {}
                for grade_id, answer in answers.items():
                    pick = rng.choice(["right", "mistake", "empty"])
                    if pick == "right" or (pick == "mistake" and grade_id not in mistakes):
                        filled[grade_id] = answer
                    elif pick == "mistake":
                        filled[grade_id] = mistakes[grade_id]
            roster[student][name] = (kind, filled)
    return sources, roster


def write_course(root: Path, sources: dict, roster: dict, *, plain: bool, config: Path | None = None) -> None:
    (root / "source").mkdir(parents=True)
    if plain:
        (root / "nbgrader_config.py").write_text(PLAIN_CONFIG)
    else:
        shutil.copy(config or COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for name, (source, *_rest) in sources.items():
        (root / "source" / name).mkdir()
        nbformat.write(source, root / "source" / name / f"{name}.ipynb")
    for student, notebooks in roster.items():
        for name, (_, filled) in notebooks.items():
            nb = nbformat.from_dict(json.loads(json.dumps(sources[name][1])))
            for cell in nb.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in filled and cell.metadata["nbgrader"].get("solution"):
                    cell.source = filled[grade_id]
            folder = root / "submitted" / student / name
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{name}.ipynb")


def grader_at(rev: str, dest: Path) -> Path:
    """A tree holding the autograder/ package of `rev` beside today's course_lib and notebook sources."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "autograder"], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    shutil.rmtree(dest / "autograder" / "source")
    shutil.copytree(COURSE_ROOT / "source", dest / "autograder" / "source")
    shutil.copytree(REPO_ROOT / "course_lib", dest / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def grade_with(tree: Path, root: Path, *, workers: int, cache: bool) -> float:
    """Wall seconds of `python -m autograder grade` from the package in `tree` on the course `root`."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(root / "submitted"),
                             "--course-root", str(root), "--workers", str(workers), "--no-progress"]
                            + ([] if cache else ["--no-test-cache"]),
                            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(result.stdout[-1500:], result.stderr[-2000:] if result.returncode else "", flush=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"python -m autograder grade ({tree}) failed")
    return seconds


def differ(a: dict, b: dict) -> list:
    return sorted((key, a.get(key), b.get(key)) for key in set(a) | set(b) if a.get(key) != b.get(key))


def nbgrader(root: Path, *args: str, timeout: float = 36000, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, capture_output=True, text=True,
                            timeout=timeout, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result


def grades(root: Path) -> dict:
    """(student, notebook, grade cell) -> score, from a gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        out[(submission.student_id, notebook.name, grade.cell.name)] = grade.score
    return out


def prepared(root: Path, sources: dict, roster: dict, *, plain: bool = False, tree: Path = REPO_ROOT) -> Path:
    """A course root with the class submitted and every assignment generated (not timed: instructors do this
    once, when they release the assignment), by the nbgrader config and package of `tree`."""
    shutil.rmtree(root, ignore_errors=True)
    write_course(root, sources, roster, plain=plain, config=tree / "autograder" / "nbgrader_config.py")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for name in sources:
        nbgrader(root, "generate_assignment", name, "--force", env=env)
    return root


def plain_run(base: Path, sources: dict, roster: dict, reuse: bool) -> dict:
    """Plain nbgrader autograde over the class (or the run kept in `base`): seconds, load, date."""
    plain_root = base / "nbgrader"
    if reuse:
        plain = json.loads((base / "plain.json").read_text())
        print(f"plain nbgrader: {plain['seconds']:.0f} s (kept run)", flush=True)
        return plain
    prepared(plain_root, sources, roster, plain=True)
    load_before, speed = os.getloadavg(), probe()
    start = time.perf_counter()
    for name in sources:
        t0 = time.perf_counter()
        nbgrader(plain_root, "autograde", name, "--force")
        print(f"  plain nbgrader autograde {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    plain = {"seconds": time.perf_counter() - start, "load_before": load_before[0],
             "load_after": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M"), "speed": [speed, probe()]}
    (base / "plain.json").write_text(json.dumps(plain))
    print(f"plain nbgrader: {plain['seconds']:.0f} s", flush=True)
    return plain


def ours_vs_plain(base: Path, sources: dict, roster: dict, workers: int, plain: dict) -> dict:
    """Today's grader, with and without the test cache, against plain nbgrader's seconds and grades."""
    theirs = grades(base / "nbgrader")
    runs = {}
    for variant in ("cache", "no-cache"):
        root = prepared(base / f"autograder-{variant}", sources, roster)
        load, speed = os.getloadavg()[0], probe()
        seconds = grade_with(REPO_ROOT, root, workers=workers, cache=variant == "cache")
        mismatches = differ(theirs, grades(root))
        runs[variant] = {"seconds": seconds, "ratio": plain["seconds"] / seconds, "mismatches": mismatches,
                         "load": load, "compared": len(theirs), "speed": speed}
        print(f"python -m autograder grade ({variant}): {seconds:.0f} s, ratio {runs[variant]['ratio']:.1f}x; "
              f"{len(theirs)} grades compared, {len(mismatches)} differ", flush=True)
        for key, a, b in mismatches[:20]:
            print(f"  {key}: nbgrader {a}, autograder {b}")
    return runs


def grading_section(args, sources: dict, kinds: list, plain: dict, runs: dict) -> str:
    count = len(kinds)
    mismatches = runs["cache"]["mismatches"] + runs["no-cache"]["mismatches"]
    lines = [
        "## Grading",
        "",
        "`python benchmarks/bench_grading.py` grades one simulated class with plain `nbgrader autograde` and with "
        "`python -m autograder grade`, on the same files, one after the other.",
        "",
        f"- Class: {args.students} students x {len(sources)} notebooks ({', '.join(sources)}) = {count} notebooks: "
        f"{kinds.count('full')} full, {kinds.count('partial')} partial (each answer right, the authored typical "
        f"mistake, or empty), {kinds.count('empty')} as handed out (seed {args.seed}).",
        f"- Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}. Load average (1 min) when each grader started: plain "
        f"{plain.get('load_before', float('nan')):.1f}, ours {runs['cache']['load']:.1f} and "
        f"{runs['no-cache']['load']:.1f} (plain nbgrader itself keeps one core busy)."
        + (f" Plain nbgrader's run: {plain['date']}." if plain.get("date") else ""),
        f"- {HOST_SPEED}: "
        + (f"plain nbgrader {speed(plain['speed'][0])} at its start, {speed(plain['speed'][1])} at its end; "
           if plain.get("speed") else "")
        + f"ours {speed(runs['cache']['speed'])} and {speed(runs['no-cache']['speed'])} at their starts.",
        "",
        "| grader | wall time | per notebook | speed-up |",
        "|---|---|---|---|",
        f"| plain `nbgrader autograde` (one kernel per notebook, every cell, sequential) | {plain['seconds']:.0f} s | "
        f"{plain['seconds'] / count:.1f} s | 1x |",
        f"| `python -m autograder grade --workers {args.workers}` (sandboxed, demo cells and unneeded cells "
        f"skipped, warm forked workers, judged outside the kernel; includes calibration, feedback pages, CSV) | "
        f"{runs['cache']['seconds']:.0f} s | {runs['cache']['seconds'] / count:.2f} s | "
        f"**{runs['cache']['ratio']:.1f}x** |",
        f"| the same with `--no-test-cache` (every test run for every submission, as if no two answers were "
        f"alike) | {runs['no-cache']['seconds']:.0f} s | {runs['no-cache']['seconds'] / count:.2f} s | "
        f"**{runs['no-cache']['ratio']:.1f}x** |",
        "",
        "Target: at least 10x on 2 cores. The first figure is what this class gets: its partial answers are "
        "drawn from one right answer and one typical mistake per question, so many tests see an answer the batch "
        "has already judged; a real class repeats fewer answers, and lands between the two figures"
        + ("." if runs["cache"]["seconds"] < runs["no-cache"]["seconds"] else
           " (here the run without the cache was not slower: the cache can reuse only tests that read plain "
           "answers, and most hidden tests call the student's functions on hidden inputs, so the two runs differ "
           "by less than the host's speed moved between them; see the host speed above)."),
        "",
        f"Grades: {runs['cache']['compared']} grade cells compared per run, "
        + ("**all identical** in both runs." if not mismatches else f"**{len(mismatches)} differ**:"),
    ]
    lines += [f"- {key[0]} {key[1]} {key[2]}: nbgrader {a}, autograder {b}" for key, a, b in mismatches[:20]]
    return "\n".join(lines)


def before_and_now(base: Path, rev: str, sources: dict, roster: dict, workers: int, rounds: int) -> dict:
    """The grader of `rev` and today's on the same class, alternating (now, before, before, now, ...), each run
    on a fresh copy of its generated course root; every run's grades compared with today's first."""
    tree = grader_at(rev, base / "before-tree")
    templates = {"now": prepared(base / "template-now", sources, roster),
                 "before": prepared(base / "template-before", sources, roster, tree=tree)}
    trees = {"now": REPO_ROOT, "before": tree}
    out = {"cache": {"now": [], "before": []}, "no-cache": {"now": [], "before": []}, "mismatches": [],
           "load": os.getloadavg()[0]}
    reference = None
    for variant in ("cache", "no-cache"):
        for index in range(rounds):
            for who in (("now", "before") if index % 2 == 0 else ("before", "now")):
                root = base / "run"
                shutil.rmtree(root, ignore_errors=True)
                shutil.copytree(templates[who], root)
                seconds = grade_with(trees[who], root, workers=workers, cache=variant == "cache")
                found = grades(root)
                reference = reference or found
                wrong = differ(reference, found)
                out[variant][who].append(seconds)
                out["mismatches"] += [(who, variant, *m) for m in wrong]
                print(f"{who} ({variant}): {seconds:.1f} s, {len(found)} grades, {len(wrong)} differ from the "
                      "first run", flush=True)
    out["compared"] = len(reference or {})
    return out


def before_section(args, sources: dict, kinds: list, result: dict) -> str:
    rev = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    lines = [
        "## Grading, before and after a change to the grader",
        "",
        f"`python benchmarks/bench_grading.py --before {rev}` grades a class simulated as in the section above "
        f"({args.students} students x {len(sources)} notebooks = {len(kinds)}, seed {args.seed}) with the grader "
        f"of {rev} (its `autograder/` package and nbgrader config, today's course_lib and notebooks) and with "
        f"today's, `--workers {args.workers}`, alternating, {args.rounds} run(s) each, every run on a fresh copy of "
        f"its course root. Load average (1 min) at the start: {result['load']:.1f}.",
        "",
        f"| variant | before ({rev}), s | now, s | now / before |",
        "|---|---|---|---|",
    ]
    for variant in ("cache", "no-cache"):
        before, now = result[variant]["before"], result[variant]["now"]
        lines.append(f"| {'test cache (default)' if variant == 'cache' else '`--no-test-cache`'} | "
                     f"{', '.join(f'{s:.0f}' for s in before)} | {', '.join(f'{s:.0f}' for s in now)} | "
                     f"**{min(now) / min(before):.2f}** (fastest of each) |")
    wrong = result["mismatches"]
    lines += ["", f"Grades: {result['compared']} grade cells per run, compared with the first run: "
              + ("**all identical** in every run." if not wrong else f"**{len(wrong)} differ**:")]
    lines += [f"- {who} {variant} {key}: {a} vs {b}" for who, variant, key, a, b in wrong[:20]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the course roots (and the plain run's time) in this folder")
    parser.add_argument("--reuse-plain", action="store_true",
                        help="with --keep: take plain nbgrader's grades and time from the run kept there")
    parser.add_argument("--before", metavar="REV", help="also grade with the grader of this git revision")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: runs of each grader per variant")
    parser.add_argument("--no-plain", action="store_true",
                        help="with --before: skip plain nbgrader and the grading section (about an hour)")
    parser.add_argument("--notebooks", nargs="*", help="only these notebooks (a smoke test; the README needs all)")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/README.md")
    args = parser.parse_args()
    if args.no_plain and not args.before:
        parser.error("--no-plain only with --before")
    ensure_tools_on_path()
    os.environ.setdefault("MPLBACKEND", "Agg")
    sources, roster = simulate(args.students, args.seed, args.notebooks or assignment_names())
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-grading-"))
    base.mkdir(parents=True, exist_ok=True)
    reuse = args.reuse_plain and (base / "plain.json").is_file() and (base / "nbgrader" / "gradebook.db").is_file()
    if args.reuse_plain and not reuse:
        parser.error(f"--reuse-plain: no kept plain run in {base} (plain.json and nbgrader/gradebook.db)")
    kinds = [kind for notebooks in roster.values() for kind, _ in notebooks.values()]
    print(f"{args.students} students x {len(sources)} notebooks = {len(kinds)} notebooks to grade "
          f"({kinds.count('full')} full, {kinds.count('partial')} partial, {kinds.count('empty')} empty)", flush=True)
    failed = False
    if not args.no_plain:
        plain = plain_run(base, sources, roster, reuse)
        runs = ours_vs_plain(base, sources, roster, args.workers, plain)
        failed |= bool(runs["cache"]["mismatches"] + runs["no-cache"]["mismatches"])
        if not args.no_write:
            write_section("grading", grading_section(args, sources, kinds, plain, runs))
            print("wrote the grading section of benchmarks/README.md")
    if args.before:
        result = before_and_now(base, args.before, sources, roster, args.workers, args.rounds)
        failed |= bool(result["mismatches"])
        if not args.no_write:
            write_section("grading-before", before_section(args, sources, kinds, result))
            print("wrote the grading-before section of benchmarks/README.md")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
