"""Every explorer's time per slider change in the kernel, before and now, measured in one run.

    python benchmarks/bench_explorers.py [--before REV] [--changes 9] [--no-write]

For each explorer factory in `course_lib.widgets` (its defaults), each slider
is moved one step at a time, `--changes` times, always to a new value (no
result from the cache), through ``explorer.update(...)``: compute, draw and
render, the work a slider change costs the kernel (bench_widgets.py times
the gradient-flow explorer end to end in the browser). "Before" is the
course library at git revision REV (default: the commit before session 6
made the explorers redraw in place), extracted with `git archive` and timed
in its own process; "now" is this checkout. The two alternate explorer by
explorer, each in a fresh process, so that they share the machine's noise.
Also the time to build each explorer (its first figure, laid out from
scratch). CPU time of the process (`time.process_time`), median over the
changes. Writes the "explorers-all" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.sections import write_section  # noqa: E402

BEFORE = "8ba620d"  # main before session 6's explorer changes

# run in a fresh interpreter with the library to time first on sys.path
CHILD = r"""
import json, statistics, sys, time
import matplotlib
matplotlib.use("agg")
import ipywidgets as w
import course_lib.widgets as W

name, changes = sys.argv[1], int(sys.argv[2])
start = time.process_time()
explorer = getattr(W, name)()
created = time.process_time() - start
sliders = {}
for control, widget in explorer.controls.items():
    if not isinstance(widget, (w.IntSlider, w.FloatSlider)):
        continue
    times, value, direction = [], widget.value, 1
    for _ in range(changes):
        if not widget.min <= value + direction * widget.step <= widget.max:
            direction = -direction
        value = round(value + direction * widget.step, 10)
        if isinstance(widget, w.IntSlider):
            value = int(value)
        tick = time.process_time()
        explorer.update(**{control: value})
        times.append(time.process_time() - tick)
    sliders[control] = statistics.median(times)
import course_lib
print(json.dumps({"create": created, "sliders": sliders, "from": course_lib.__file__}))
"""


def factories() -> list[str]:
    import course_lib.widgets as widgets

    return sorted(name for name in widgets.__all__ if name.endswith("_explorer"))


def extract(rev: str, into: Path) -> Path:
    """The course library at `rev` (course_lib only) unpacked under `into`."""
    archive = into / "before.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "archive", rev, "course_lib"], cwd=REPO, stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before"


def measure(root: Path, name: str, changes: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(changes)], env=env, cwd=root,
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not Path(result["from"]).is_relative_to(root):  # an installed copy shadowed the one to time
        raise RuntimeError(f"timed {result['from']}, not the library under {root}")
    return result


def report(rows: list[dict], rev: str, changes: int, loads: tuple) -> str:
    lines = ["## Every explorer, per slider change (kernel)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}. "
             f"Load average (1/5/15 min) at the start {loads[0]} and at the end {loads[1]}. Command: "
             f"`python benchmarks/bench_explorers.py --before {rev} --changes {changes}`.", "",
             "| explorer | build, ms: before / now | slider | per change, ms: before / now |",
             "|---|---:|---|---:|"]
    for row in rows:
        first = True
        for slider in row["now"]["sliders"]:
            before = row["before"]["sliders"].get(slider, float("nan"))
            build = f"{1e3 * row['before']['create']:.0f} / {1e3 * row['now']['create']:.0f}" if first else ""
            lines.append(f"| {row['name'] if first else ''} | {build} | {slider} | "
                         f"{1e3 * before:.0f} / {1e3 * row['now']['sliders'][slider]:.0f} |")
            first = False
    lines += ["", f"CPU time of `explorer.update(...)` (compute, draw, render), median over {changes} changes of "
              "each slider, each to a new value (no cached result); build: the factory with its defaults, "
              "first figure included. Before: `course_lib` at git revision " + rev + " (every explorer but "
              "the gradient-flow and chain explorers drew its whole figure on each change: a constrained "
              "layout and a PNG); now: redrawn in place, the moving lines drawn by the browser over a PNG "
              "of the rest, which is sent only when the axes change. Before and now alternate explorer by "
              "explorer, each in a fresh process, one torch thread."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the library to compare with")
    parser.add_argument("--changes", type=int, default=9, help="changes per slider")
    parser.add_argument("--no-write", action="store_true", help="print, do not update benchmarks/README.md")
    args = parser.parse_args()
    loads = [" / ".join(f"{x:.1f}" for x in os.getloadavg())]
    scratch = Path(tempfile.mkdtemp(prefix="bench-explorers-"))
    try:
        old = extract(args.before, scratch)
        rows = []
        for name in factories():
            row = {"name": name, "before": measure(old, name, args.changes), "now": measure(REPO, name, args.changes)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    loads.append(" / ".join(f"{x:.1f}" for x in os.getloadavg()))
    text = report(rows, args.before, args.changes, tuple(loads))
    print(text)
    if not args.no_write:
        write_section("explorers-all", text)


if __name__ == "__main__":
    main()
