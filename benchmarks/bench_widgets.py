"""How long an explorer takes from a control change to a new figure: in the kernel and in the browser.

    python benchmarks/bench_widgets.py [--changes 21] [--no-browser]

The gradient-flow explorer (`course_lib.widgets.gradient_flow_explorer`) at
its defaults (depth 20, width 64, batch 256) and at the largest setting
(depth 50, width 256, batch 256). Each control is moved one step at a time,
`--changes` times, always to a new value (no result is served from the cache).

- Kernel: wall and CPU time of ``explorer.update(...)``, split into compute
  (build or reuse the network, one forward and backward pass under the
  monitor), draw (move the artists) and render (Agg + PNG). For comparison,
  the same change drawn the way the first version of the base class did it
  (clear the figure, draw from scratch, constrained layout, ``savefig`` at 90 dpi).
- Browser: JupyterLab in headless Chromium (tests/jupyterlab_session.py), a
  notebook showing both explorers; the slider handle gets a key press and the
  time runs from the keydown event to the new image decoded and painted
  (MutationObserver on the image's src, ``img.decode()``, then
  ``requestAnimationFrame``); the script does not poll the page meanwhile. Also a burst: 10 key presses in a row,
  counting the figures the kernel actually sent (coalescing) and the time from the last
  key press to the final figure.

Writes the "explorers" section of benchmarks/README.md. Target: under 100 ms
end to end at the defaults.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from benchmarks.sections import write_section  # noqa: E402
from course_lib import widgets  # noqa: E402
from course_lib.widgets import gradient_flow  # noqa: E402
from course_lib.monitoring import GradientMonitor  # noqa: E402

SETTINGS = {"defaults (depth 20, width 64)": {},
            "largest (depth 50, width 256)": {"depth": 50, "width": 256}}
CONTROLS = {"defaults (depth 20, width 64)": ["depth", "weight_scale", "seed"],
            "largest (depth 50, width 256)": ["weight_scale", "seed"]}
LABELS = {"depth": "depth", "weight_scale": "weight scale", "seed": "seed"}


def steps(explorer, control: str, count: int) -> list:
    slider = explorer.controls[control]
    return [type(slider.value)(round(slider.value + (k + 1) * slider.step, 10)) for k in range(count)]


def old_style_render(explorer) -> None:
    """What the base class did before: clear, draw from scratch, constrained layout, savefig at 90 dpi."""
    figure = explorer.figure
    dpi = figure.get_dpi()
    figure.set_layout_engine("constrained")
    figure.clear()
    explorer.draw(figure, explorer.last)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    figure.set_layout_engine("none")
    figure.set_dpi(dpi)


def median_ms(values) -> float:
    return 1e3 * statistics.median(values)


def compute_with_reference_monitor(explorer, control: str, count: int) -> dict[str, float]:
    """Median CPU ms of the explorer's compute with the monitor before issue 16 (bench_notebooks'
    ReferenceMonitor) and with GradientMonitor, alternating, each on values not computed before."""
    from benchmarks.bench_notebooks import ReferenceMonitor

    times = {"compute_before": [], "compute_after": []}
    values = steps(explorer, control, 2 * count + 2)[count:]  # past the values the timed run used
    for k, value in enumerate(values[:2 * (count // 2)]):
        which = "compute_before" if k % 2 == 0 else "compute_after"
        gradient_flow.GradientMonitor = ReferenceMonitor if which == "compute_before" else GradientMonitor
        try:
            start = time.thread_time()
            explorer.compute(**{**explorer.values, control: value})
            times[which].append(time.thread_time() - start)
        finally:
            gradient_flow.GradientMonitor = GradientMonitor
    return {which: median_ms(v) for which, v in times.items()}


def bench_kernel(count: int) -> list[dict]:
    rows = []
    for setting, config in SETTINGS.items():
        for control in CONTROLS[setting]:
            explorer = widgets.gradient_flow_explorer(**config)
            explorer.update(**{control: explorer.controls[control].value})  # warm
            wall, cpu, parts, old = [], [], {"compute": [], "draw": [], "render": []}, []
            for value in steps(explorer, control, count):
                start, start_cpu = time.perf_counter(), time.process_time()
                explorer.update(**{control: value})
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
                for part in parts:
                    parts[part].append(explorer.timings[part])
            for _ in range(min(count, 11)):
                start = time.perf_counter()
                old_style_render(explorer)
                old.append(time.perf_counter() - start)
            reference = compute_with_reference_monitor(explorer, control, count)
            explorer.close()
            rows.append({"setting": setting, "control": control, "wall": median_ms(wall), "cpu": median_ms(cpu),
                         **{part: median_ms(v) for part, v in parts.items()}, "old_draw_render": median_ms(old),
                         **reference})
            print(rows[-1], flush=True)
    return rows


BENCH_JS = """
() => {
    const now = () => performance.timeOrigin + performance.now();  // ms since the epoch, like time.time()
    window.__bench = {key: 0, shown: []};
    document.addEventListener('keydown', () => { window.__bench.key = now(); }, true);
    document.querySelectorAll('img.course-explorer-figure').forEach((img, index) => {
        new MutationObserver(() => {
            const mutated = now();
            img.decode().then(() => requestAnimationFrame(() => window.__bench.shown.push(
                {explorer: index, key: window.__bench.key, mutated, painted: now()})));
        }).observe(img, {attributes: true, attributeFilter: ['src']});
    });
}
"""
TIMELINE_CELL = ("import json\nprint(json.dumps({'explorers': [list(explorer.timeline) for explorer in "
                 "(defaults_explorer, largest_explorer)]}))")


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by the kernel, the Jupyter server and Chromium's processes."""
    import psutil  # comes with IPython

    totals = {"kernel": 0.0, "server": 0.0, "chromium": 0.0}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        cmdline, times = " ".join(process.info["cmdline"] or []), process.info["cpu_times"]
        if times is None:
            continue
        role = ("kernel" if "ipykernel" in cmdline else
                "chromium" if "chrom" in (process.info["name"] or "") or "/chromium" in cmdline else
                "server" if "jupyter" in cmdline else None)
        if role:
            totals[role] += times.user + times.system
    return totals


def cpu_per_second(before: dict, after: dict, seconds: float) -> dict[str, float]:
    return {role: 1e3 * (after[role] - before[role]) / seconds for role in before}


def bench_browser(count: int) -> tuple[list[dict], list[dict]]:
    from jupyterlab_session import Notebook, chromium_page, lab_server, notebook_copy

    cells = [nbformat.v4.new_code_cell("from course_lib.widgets import gradient_flow_explorer")]
    for (setting, config), variable in zip(SETTINGS.items(), ("defaults_explorer", "largest_explorer")):
        arguments = ", ".join(f"{k}={v!r}" for k, v in config.items())
        cells.append(nbformat.v4.new_code_cell(f"{variable} = gradient_flow_explorer({arguments})\n{variable}"))
    cells.append(nbformat.v4.new_code_cell(TIMELINE_CELL))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}})
    rows, bursts = [], []
    scratch = Path(tempfile.mkdtemp(prefix="bench-widgets-"))
    try:
        root, work = scratch / "root", scratch / "work"
        root.mkdir()
        work.mkdir()
        with lab_server(root, work) as lab, chromium_page() as (_, page):
            book = Notebook(lab, page, notebook_copy(nb, root, "bench_widgets"))
            book.open(workspace="bench")
            book.run_all()
            page.evaluate(BENCH_JS)
            time.sleep(2.0)
            start, before = time.monotonic(), cpu_by_role()
            time.sleep(5.0)  # the page left alone: what the processes use between changes
            idle = cpu_per_second(before, cpu_by_role(), time.monotonic() - start)
            for index, setting in enumerate(SETTINGS):
                explorer = book.explorer(index)
                for control in CONTROLS[setting]:
                    handle = explorer.locator(".widget-slider").filter(has_text=LABELS[control]) \
                        .first.locator(".noUi-handle")
                    handle.scroll_into_view_if_needed()
                    handle.focus()
                    latencies, events = [], []
                    start, before = time.monotonic(), cpu_by_role()
                    for _ in range(count):
                        shown = page.evaluate("window.__bench.shown.length")
                        handle.press("ArrowRight")
                        # leave the page idle while the figure comes, as a student watching it would
                        # (polling the page on every animation frame would take CPU from the kernel)
                        time.sleep(0.6 if setting.startswith("defaults") else 1.2)
                        page.wait_for_function(f"window.__bench.shown.length > {shown}", polling=100,
                                               timeout=120_000)
                        event = page.evaluate("window.__bench.shown[window.__bench.shown.length - 1]")
                        latencies.append((event["painted"] - event["key"]) / 1e3)
                        events.append(event)
                    busy = cpu_per_second(before, cpu_by_role(), time.monotonic() - start)
                    seconds = (time.monotonic() - start) / count  # per change, its idle wait included
                    cpu = {role: (busy[role] - idle[role]) * seconds for role in busy}  # minus idle work
                    rows.append({"setting": setting, "control": control, "median": median_ms(latencies),
                                 "cpu": cpu,
                                 "p90": 1e3 * float(np.percentile(latencies, 90)), "n": len(latencies),
                                 "explorer": index, "events": events})
                    print(rows[-1], flush=True)
                # a burst: 10 presses as fast as the keyboard repeats, then the final figure
                control = CONTROLS[setting][-1]
                handle = explorer.locator(".widget-slider").filter(has_text=LABELS[control]).first \
                    .locator(".noUi-handle")
                handle.focus()
                time.sleep(1.0)
                shown = page.evaluate("window.__bench.shown.length")
                for _ in range(10):
                    handle.press("ArrowRight")
                    time.sleep(0.03)
                last_key = page.evaluate("window.__bench.key")
                target = explorer.locator(".widget-slider").filter(has_text=LABELS[control]).first \
                    .locator(".widget-readout").inner_text()
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:  # the final figure: no new one for 1.5 s
                    before = page.evaluate("window.__bench.shown.length")
                    time.sleep(1.5)
                    if page.evaluate("window.__bench.shown.length") == before:
                        break
                events = page.evaluate(f"window.__bench.shown.slice({shown})")
                bursts.append({"setting": setting, "control": control, "presses": 10, "figures": len(events),
                               "final_after_last_key": events[-1]["painted"] - last_key if events else float("nan"),
                               "readout": target})
                print(bursts[-1], flush=True)
            # the kernel's own account of each refresh, to split the end-to-end time
            cell = page.locator(".jp-Notebook .jp-Cell").nth(len(cells) - 1)
            cell.click()
            page.keyboard.press("Shift+Enter")
            output = cell.locator(".jp-OutputArea-output")
            output.filter(has_text="explorers").first.wait_for(timeout=60_000)
            timelines = json.loads(output.first.inner_text())["explorers"]
            for row in rows:
                kernel, cpu, parts = [], [], {"compute": [], "draw": [], "render": []}
                for event in row.pop("events"):
                    done = [r for r in timelines[row["explorer"]]
                            if event["key"] / 1e3 <= r["at"] <= event["painted"] / 1e3]
                    if done:
                        kernel.append(sum(done[-1][part] for part in parts))
                        cpu.append(done[-1]["cpu"])
                        for part in parts:
                            parts[part].append(done[-1][part])
                row["kernel"] = median_ms(kernel) if kernel else float("nan")
                row["kernel_cpu"] = median_ms(cpu) if cpu else float("nan")
                for part, values in parts.items():
                    row[f"kernel_{part}"] = median_ms(values) if values else float("nan")
                print({k: v for k, v in row.items() if k.startswith("kernel")}, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for row in rows:
        row["idle"] = idle
    return rows, bursts


def report(kernel: list[dict], browser: list[dict], bursts: list[dict], count: int, load: tuple) -> str:
    lines = ["## Explorers", "",
             "`python benchmarks/bench_widgets.py`: the gradient-flow explorer "
             "(`course_lib.widgets.gradient_flow_explorer`), time from a control change to a new figure. "
             f"Medians over {count} changes, each to a new value (no cached result). "
             f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
             f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) when the run started "
             "(nothing else ran; in the browser runs the kernel, the Jupyter server and Chromium share the 2 cores). "
             "Depth goes up one layer per change (21 to 41 layers at the defaults), so each change builds a deeper "
             "network; weight scale rescales the cached network; seed builds a new one and a new batch.", "",
             "### In the kernel (`explorer.update(...)`)", "",
             "| setting | control | wall ms | CPU ms | compute | draw | render (Agg + PNG) | "
             "old draw + render | compute CPU ms: monitor before / after |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in kernel:
        lines.append(f"| {r['setting']} | {LABELS[r['control']]} | {r['wall']:.0f} | {r['cpu']:.0f} | "
                     f"{r['compute']:.0f} | {r['draw']:.1f} | {r['render']:.1f} | {r['old_draw_render']:.0f} | "
                     f"{r['compute_before']:.0f} / {r['compute_after']:.0f} |")
    lines += ["", "\"old draw + render\": the same figure drawn as the first base class did (clear, draw from "
              "scratch, constrained layout, `savefig` at 90 dpi), for comparison with draw + render now "
              "(artists moved with `set_data`, layout kept unless the y tick labels change width, static parts "
              "blitted, 72 dpi, PNG at zlib level 1). \"monitor before / after\": the explorer's compute with the "
              "GradientMonitor recording path before issue 16 (`ReferenceMonitor` in bench_notebooks.py) and with "
              "the library's, alternating change by change, CPU time of the thread."]
    if browser:
        lines += ["", "### End to end in JupyterLab (headless Chromium)", "",
                  "From the keydown on the slider handle to the new image decoded and painted; \"in the kernel\" "
                  "is the explorer's own refresh time (compute + draw + render) for those same changes, the rest "
                  "is the event's way to the kernel, waking the refresh thread, the PNG's way back, decoding "
                  "and painting.", "",
                  "| setting | control | end to end, median ms | p90 ms | in the kernel: wall (CPU) ms | "
                  "compute / draw / render ms | CPU per change: kernel / server / Chromium ms | changes |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in browser:
            lines.append(f"| {r['setting']} | {LABELS[r['control']]} | {r['median']:.0f} | {r['p90']:.0f} | "
                         f"{r['kernel']:.0f} ({r['kernel_cpu']:.0f}) | {r['kernel_compute']:.0f} / "
                         f"{r['kernel_draw']:.1f} / {r['kernel_render']:.1f} | {r['cpu']['kernel']:.0f} / "
                         f"{r['cpu']['server']:.0f} / {r['cpu']['chromium']:.0f} | {r['n']} |")
        idle = browser[0]["idle"]
        lines += ["", "CPU per change: what each process used during the changes, minus what it uses with the page "
                  f"left alone (measured for 5 s before: kernel {idle['kernel']:.0f}, server {idle['server']:.0f}, "
                  f"Chromium {idle['chromium']:.0f} ms of CPU per second). On 2 cores, Chromium repaints the moved "
                  "slider and JupyterLab's busy/idle indicators while the kernel computes, which is why compute "
                  "in the browser takes longer than in the kernel alone (first table)."]
        lines += ["", "Bursts (10 key presses 30 ms apart; the kernel computes only the newest value):", "",
                  "| setting | control | presses | figures sent | final figure after the last key, ms |",
                  "|---|---|---:|---:|---:|"]
        for b in bursts:
            lines.append(f"| {b['setting']} | {LABELS[b['control']]} | {b['presses']} | {b['figures']} | "
                         f"{b['final_after_last_key']:.0f} |")
    default_e2e = [r["median"] for r in browser if r["setting"].startswith("defaults")]
    if default_e2e:
        worst = max(default_e2e)
        lines += ["", f"Target: under 100 ms end to end at the defaults: "
                      f"{'met' if worst < 100 else 'NOT met'} (slowest control's median {worst:.0f} ms)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=21, help="changes per control (>= 20)")
    parser.add_argument("--no-browser", action="store_true", help="kernel timings only")
    parser.add_argument("--no-write", action="store_true", help="print, do not update benchmarks/README.md")
    args = parser.parse_args()
    load = os.getloadavg()
    kernel = bench_kernel(args.changes)
    browser, bursts = ([], []) if args.no_browser else bench_browser(args.changes)
    text = report(kernel, browser, bursts, args.changes, load)
    print(text)
    if not args.no_write:
        write_section("explorers", text)


if __name__ == "__main__":
    main()
