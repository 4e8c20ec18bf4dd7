"""How long an explorer takes from a control change to a new figure: in the kernel and in the browser.

    python benchmarks/bench_widgets.py [--changes 21] [--no-browser]

The gradient-flow explorer (`course_lib.widgets.gradient_flow_explorer`) at
its defaults (depth 20, width 64) and at the largest setting (depth 50,
width 256), before issue 16 (`benchmarks/explorer_before.py`: batch 256, a
network rebuilt per seed, the monitor before issue 16 recording six metrics,
the whole figure sent as a PNG per change) and now (batch 128, the cached
network re-initialized or rescaled, today's monitor recording what the figure
reads, the moving lines drawn by the browser as SVG over a PNG of the rest
that is sent only when the axes change), in one run, change by change
alternately. Each control is moved one step at a time, `--changes` times,
always to a new value (no result is served from the cache); at the largest
setting the seed also jumps 5 seeds per change (MOVES), so that both a seed
drawn ahead while the page was idle and one drawn on the change are measured.

- Kernel: wall and CPU time of ``explorer.update(...)``, split into compute
  (build or reuse the network, one forward and backward pass under the
  monitor), draw (move the artists) and render (before: Agg + PNG; now: the
  SVG of the lines, plus Agg + PNG of the static part when it changed, which
  the "PNG sent" column counts); compute also with today's explorer and the
  monitor before issue 16, which splits the gain between the two. For
  comparison, the same change drawn the way the first version of the base
  class did it (clear the figure, draw from scratch, constrained layout,
  ``savefig`` at 90 dpi).
- Browser: JupyterLab in headless Chromium (tests/jupyterlab_session.py), a
  notebook showing the four explorers; the slider handle gets a key press and the
  time runs from the keydown event to the new figure painted (MutationObserver on
  the figure's PNG and SVG, ``img.decode()``, then ``requestAnimationFrame``);
  the script does not poll the page meanwhile. Also a burst: 10 key presses in a row,
  counting the figures the kernel actually sent (coalescing) and the time from the last
  key press to the final figure.

Writes the "explorers" section of benchmarks/README.md, with the load average
at the start of each part and at the end (figures from a busy machine are
inflated). Targets (issue 16): under 100 ms end to end at the largest
setting, under 60 ms at the defaults.
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

from benchmarks.explorer_before import BeforeExplorer, before_explorer  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402
from course_lib import widgets  # noqa: E402

SETTINGS = {"defaults (depth 20, width 64)": {},
            "largest (depth 50, width 256)": {"depth": 50, "width": 256}}
# A move: (slider, key pressed on its handle, change in slider steps). The largest setting's seed slider
# first jumps 5 seeds at a time (a seed not drawn ahead, as any seed typed or dragged to), then steps back
# down one seed at a time (each drawn ahead while the page was idle, see GradientFlowExplorer.work_ahead).
MOVES = {"depth": ("depth", "ArrowRight", 1), "weight_scale": ("weight_scale", "ArrowRight", 1),
         "seed": ("seed", "ArrowRight", 1), "seed_jump": ("seed", "PageUp", 5), "seed_down": ("seed", "ArrowLeft", -1)}
CONTROLS = {"defaults (depth 20, width 64)": ["depth", "weight_scale", "seed"],
            "largest (depth 50, width 256)": ["weight_scale", "seed_jump", "seed_down"]}
LABELS = {"depth": "depth", "weight_scale": "weight scale", "seed": "seed (a step)",
          "seed_jump": "seed (a jump of 5)", "seed_down": "seed (a step)"}
TARGETED = ("depth", "weight_scale", "seed", "seed_down")  # one step of a control, as issue 16 measures
DESCRIPTIONS = {"depth": "depth", "weight_scale": "weight scale", "seed": "seed"}  # the sliders' labels
JUMPS = 19  # seed 0 to 95: the slider ends at 99
VARIANTS = {"before": before_explorer, "now": widgets.gradient_flow_explorer}
LARGEST = "largest (depth 50, width 256)"
DEFAULTS = "defaults (depth 20, width 64)"


def changes(control: str, count: int) -> int:
    return min(count, JUMPS) if control == "seed_jump" else count


def steps(explorer, control: str, count: int) -> list:
    name, _, move = MOVES[control]
    slider = explorer.controls[name]
    return [type(slider.value)(round(slider.value + (k + 1) * move * slider.step, 10))
            for k in range(changes(control, count))]


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


class OldMonitorExplorer(widgets.GradientFlowExplorer):
    """Today's explorer recording with the monitor before issue 16: splits the gain between the two."""

    monitor_class = BeforeExplorer.monitor_class


def bench_kernel(count: int) -> list[dict]:
    rows = []
    for setting, config in SETTINGS.items():
        for control in CONTROLS[setting]:
            name = MOVES[control][0]
            start = {"seed": JUMPS * 5} if control == "seed_down" else {}  # where the jumps left it
            explorers = {"before": before_explorer(**config, **start),
                         "now": widgets.gradient_flow_explorer(**config, **start)}
            old_monitor = OldMonitorExplorer(**config, **start)
            for explorer in (*explorers.values(), old_monitor):
                explorer.update(**{name: explorer.controls[name].value})  # warm
            times = {(variant, part): [] for variant in explorers
                     for part in ("wall", "cpu", "compute", "draw", "render")}
            times["old_monitor", "compute"] = []
            sent = []  # now: whether the change sent a new PNG (the axes changed), not just the lines
            for value in steps(explorers["now"], control, count):  # alternating, change by change
                for variant, explorer in explorers.items():
                    png = explorer.image.value
                    if control != "seed_jump":  # what the refresh thread does while the page shows the figure
                        while explorer.work_ahead():
                            pass
                    start, start_cpu = time.perf_counter(), time.process_time()
                    explorer.update(**{name: value})
                    times[variant, "wall"].append(time.perf_counter() - start)
                    times[variant, "cpu"].append(time.process_time() - start_cpu)
                    if variant == "now":
                        sent.append(explorer.image.value != png)
                    for part in ("compute", "draw", "render"):
                        times[variant, part].append(explorer.timings[part])
                start = time.perf_counter()
                old_monitor.compute(**{**old_monitor.values, name: value})
                times["old_monitor", "compute"].append(time.perf_counter() - start)
            old = []
            for _ in range(min(count, 11)):
                start = time.perf_counter()
                old_style_render(explorers["now"])
                old.append(time.perf_counter() - start)
            for explorer in (*explorers.values(), old_monitor):
                explorer.close()
            rows.append({"setting": setting, "control": control, "old_draw_render": median_ms(old),
                         "png_sent": sum(sent), "changes": len(sent),
                         **{f"{variant}_{part}": median_ms(v) for (variant, part), v in times.items()}})
            print(rows[-1], flush=True)
    return rows


# Each explorer's figure: its PNG (img.course-explorer-figure) and the SVG curves over it, in one grid box.
# A change to either (a new PNG, new curves) counts once the PNG is decoded and the next frame starts.
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
        }).observe(img.parentElement, {attributes: true, attributeFilter: ['src'], childList: true, subtree: true,
                                        characterData: true});
    });
}
"""
EXPLORERS = [(setting, variant) for setting in SETTINGS for variant in VARIANTS]  # in page order
TIMELINE_CELL = ("import json\nprint(json.dumps({'explorers': [list(explorer.timeline) for explorer in "
                 "explorers]}))")


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by this run's kernel, Jupyter server and Chromium processes.

    Only this script's descendants (the server it started, its kernel, the Chromium Playwright
    launched): kernels and browsers of other jobs on a shared machine are not ours to count.
    """
    import psutil  # comes with IPython

    totals = {"kernel": 0.0, "server": 0.0, "chromium": 0.0}
    for process in psutil.Process().children(recursive=True):
        try:
            cmdline, name, times = " ".join(process.cmdline()), process.name(), process.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        role = ("kernel" if "ipykernel" in cmdline else
                "chromium" if "chrom" in name or "/chromium" in cmdline else
                "server" if "jupyter" in cmdline else None)
        if role:
            totals[role] += times.user + times.system
    return totals


def cpu_per_second(before: dict, after: dict, seconds: float) -> dict[str, float]:
    return {role: 1e3 * (after[role] - before[role]) / seconds for role in before}


def bench_browser(count: int) -> tuple[list[dict], list[dict]]:
    from jupyterlab_session import Notebook, chromium_page, lab_server, notebook_copy

    cells = [nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                                       "from benchmarks.explorer_before import before_explorer\n"
                                       "from course_lib.widgets import gradient_flow_explorer\nexplorers = []")]
    for setting, variant in EXPLORERS:
        arguments = ", ".join(f"{k}={v!r}" for k, v in SETTINGS[setting].items())
        factory = VARIANTS[variant].__name__
        cells.append(nbformat.v4.new_code_cell(f"explorers.append({factory}({arguments}))\nexplorers[-1]"))
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
            for _ in range(6):  # the page left alone: what the processes use between changes
                start, before = time.monotonic(), cpu_by_role()
                time.sleep(5.0)
                idle = cpu_per_second(before, cpu_by_role(), time.monotonic() - start)
                if idle["kernel"] < 50:  # a kernel still busy (a slow start on a loaded machine) is not idle
                    break

            def handle(index: int, control: str):
                label = DESCRIPTIONS[MOVES[control][0]]
                return book.explorer(index).locator(".widget-slider").filter(has_text=label).first \
                    .locator(".noUi-handle")

            for setting in SETTINGS:
                wait = 0.6 if setting == DEFAULTS else 1.2
                for control in CONTROLS[setting]:
                    runs = {variant: {"latencies": [], "events": [], "cpu": []} for variant in VARIANTS}
                    for _ in range(changes(control, count)):
                        for variant in VARIANTS:  # alternating, change by change
                            index = EXPLORERS.index((setting, variant))
                            target = handle(index, control)
                            target.scroll_into_view_if_needed()
                            target.focus()
                            time.sleep(0.3)  # scrolling and focus repainted before the key goes down
                            shown = page.evaluate("window.__bench.shown.length")
                            start, before = time.monotonic(), cpu_by_role()
                            target.press(MOVES[control][1])
                            # leave the page idle while the figure comes, as a student watching it would
                            # (polling the page on every animation frame would take CPU from the kernel)
                            time.sleep(wait)
                            page.wait_for_function(f"window.__bench.shown.length > {shown}", polling=100,
                                                   timeout=120_000)
                            seconds = time.monotonic() - start
                            busy = cpu_per_second(before, cpu_by_role(), seconds)
                            event = page.evaluate("window.__bench.shown[window.__bench.shown.length - 1]")
                            runs[variant]["latencies"].append((event["painted"] - event["key"]) / 1e3)
                            runs[variant]["events"].append(event)
                            # what each process used for this change, minus what it uses with the page alone
                            runs[variant]["cpu"].append({role: (busy[role] - idle[role]) * seconds for role in busy})
                    for variant, run in runs.items():
                        latencies = run["latencies"]
                        rows.append({"setting": setting, "control": control, "variant": variant,
                                     "median": median_ms(latencies),
                                     "p90": 1e3 * float(np.percentile(latencies, 90)), "n": len(latencies),
                                     "cpu": {role: statistics.median(c[role] for c in run["cpu"])
                                             for role in idle},
                                     "explorer": EXPLORERS.index((setting, variant)), "events": run["events"]})
                        print({k: v for k, v in rows[-1].items() if k != "events"}, flush=True)
                # a burst: 10 presses as fast as the keyboard repeats, then the final figure
                control = CONTROLS[setting][-1]
                for variant in VARIANTS:
                    index = EXPLORERS.index((setting, variant))
                    target = handle(index, control)
                    target.scroll_into_view_if_needed()
                    target.focus()
                    time.sleep(1.0)
                    shown = page.evaluate("window.__bench.shown.length")
                    for _ in range(10):
                        target.press(MOVES[control][1])
                        time.sleep(0.03)
                    last_key = page.evaluate("window.__bench.key")
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline:  # the final figure: no new one for 1.5 s
                        before = page.evaluate("window.__bench.shown.length")
                        time.sleep(1.5)
                        if page.evaluate("window.__bench.shown.length") == before:
                            break
                    events = page.evaluate(f"window.__bench.shown.slice({shown})")
                    bursts.append({"setting": setting, "control": control, "variant": variant, "presses": 10,
                                   "figures": len(events),
                                   "final_after_last_key": events[-1]["painted"] - last_key if events
                                   else float("nan")})
                    print(bursts[-1], flush=True)
            # the kernel's own account of each refresh, to split the end-to-end time
            cell = page.locator(".jp-Notebook .jp-Cell").nth(len(cells) - 1)
            cell.scroll_into_view_if_needed()
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


def pair(rows: list[dict], key: str, digits: int = 0) -> str:
    """"before / now" of one column, from the two rows of a setting and control."""
    values = {r["variant"]: r[key] for r in rows}
    return " / ".join(f"{values[v]:.{digits}f}" for v in VARIANTS)


def verdict(label: str, medians: list[float], limit: float) -> str:
    worst = max(medians)
    return f"{label}: under {limit:.0f} ms end to end: {'met' if worst < limit else 'NOT met'} " \
           f"(slowest control's median now {worst:.0f} ms)"


def report(kernel: list[dict], browser: list[dict], bursts: list[dict], count: int, loads: dict) -> str:
    load = "; ".join(f"{when} {a:.1f} / {b:.1f} / {c:.1f}" for when, (a, b, c) in loads.items())
    busy = max(one for one, _, _ in loads.values()) > 1.5
    lines = ["## Explorers", "",
             "`python benchmarks/bench_widgets.py`: the gradient-flow explorer "
             "(`course_lib.widgets.gradient_flow_explorer`), time from a control change to a new figure, "
             "**before** issue 16 (`benchmarks/explorer_before.py`: a batch of 256, a network rebuilt with "
             "`build_mlp` for every seed, the monitor before issue 16 recording six metrics, the whole figure "
             "sent to the page as a PNG per change) and **now** (a batch of 128, the cached network re-initialized "
             "in place for a new seed, today's monitor recording only what the figure reads, the moving lines "
             "drawn by the browser as SVG over a PNG of the rest, which is sent only when the axes change), "
             "measured in one run, alternating "
             f"change by change. Medians over {count} changes, each to a new value (no cached result). "
             f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}. "
             f"Load average (1/5/15 min): {load}"
             + (" -- **other jobs shared the cores: every figure is inflated; rerun on an idle machine**. "
                if busy else " (nothing else ran). ")
             + "In the browser runs the kernel, the Jupyter server and Chromium share the cores. "
             "Depth goes up one layer per change (21 to 41 layers at the defaults): each change grows the cached "
             "network by a block (before: builds a new one); weight scale rescales the cached network; a seed "
             "step re-initializes it (before: builds a new one) with the weights the idle explorer drew ahead "
             "for that seed, which are swapped in (`GradientFlowExplorer.work_ahead`, called by the refresh "
             "thread while the page shows the figure; in the kernel table, called before each change), and makes "
             "a new batch. At the largest setting the seed slider first jumps 5 seeds per change (PageUp, 0 to "
             f"{JUMPS * 5}: nothing was drawn ahead for those seeds, as for any seed typed or dragged to), then "
             "steps back down one seed per change.", "",
             "### In the kernel (`explorer.update(...)`)", "",
             "| setting | control | wall ms: before / now | CPU ms: before / now | "
             "compute ms: before / old monitor / now | draw ms: before / now | "
             "render ms: before (Agg + PNG) / now (SVG; + PNG when sent) | PNG sent now | old draw + render |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in kernel:
        lines.append(f"| {r['setting']} | {LABELS[r['control']]} | {r['before_wall']:.0f} / {r['now_wall']:.0f} | "
                     f"{r['before_cpu']:.0f} / {r['now_cpu']:.0f} | {r['before_compute']:.0f} / "
                     f"{r['old_monitor_compute']:.0f} / {r['now_compute']:.0f} | {r['before_draw']:.1f} / "
                     f"{r['now_draw']:.1f} | {r['before_render']:.1f} / {r['now_render']:.1f} | "
                     f"{r['png_sent']} of {r['changes']} | {r['old_draw_render']:.0f} |")
    lines += ["", "\"old monitor\": today's explorer recording with the monitor before issue 16 (`benchmarks/"
              "reference_monitor.py`): before -> old monitor is the explorer's share of the gain, old monitor -> "
              "now the monitor's. \"old draw + render\": the same figure drawn as the first "
              "base class did (clear, draw from scratch, constrained layout, `savefig` at 90 dpi), for comparison "
              "with draw + render before (artists moved with `set_data`, layout kept unless the y tick labels change "
              "width, static parts blitted, 80 dpi, PNG at zlib level 1) and now (the same, but only the lines' SVG "
              "paths are made per change; Agg renders the static part and a PNG is sent only when the axes change: "
              "\"PNG sent\" counts those changes)."]
    if browser:
        lines += ["", "### End to end in JupyterLab (headless Chromium)", "",
                  "From the keydown on the slider handle to the new figure painted (a new PNG decoded, or new "
                  "SVG lines drawn); \"in the kernel\" "
                  "is the explorer's own refresh time (compute + draw + render) for those same changes, the rest "
                  "is the event's way to the kernel, waking the refresh thread, the figure's way back (before: a "
                  "PNG of ~30 kB; now: a few kB of SVG, and a PNG when the axes change), decoding "
                  "and painting. One notebook shows the four explorers; the key presses alternate between "
                  "before and now.", "",
                  "| setting | control | end to end, median ms: before / now | p90 ms: before / now | "
                  "in the kernel now: wall (CPU) ms | compute / draw / render ms now | "
                  "CPU per change now: kernel / server / Chromium ms | changes |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for setting in SETTINGS:
            for control in CONTROLS[setting]:
                rows = [r for r in browser if r["setting"] == setting and r["control"] == control]
                r = next(r for r in rows if r["variant"] == "now")
                lines.append(f"| {setting} | {LABELS[control]} | {pair(rows, 'median')} | {pair(rows, 'p90')} | "
                             f"{r['kernel']:.0f} ({r['kernel_cpu']:.0f}) | {r['kernel_compute']:.0f} / "
                             f"{r['kernel_draw']:.1f} / {r['kernel_render']:.1f} | {r['cpu']['kernel']:.0f} / "
                             f"{r['cpu']['server']:.0f} / {r['cpu']['chromium']:.0f} | {r['n']} |")
        idle = browser[0]["idle"]
        lines += ["", "CPU per change: the median over the changes of what each process used from the key press "
                  "to the painted figure, minus what it uses with the page left alone (measured for 5 s before: "
                  f"kernel {idle['kernel']:.0f}, server {idle['server']:.0f}, Chromium {idle['chromium']:.0f} ms of "
                  "CPU per second). On 2 cores, Chromium repaints the moved slider and JupyterLab's busy/idle "
                  "indicators while the kernel computes, which is why compute in the browser takes longer than in "
                  "the kernel alone (first table)."]
        lines += ["", "Bursts (10 key presses 30 ms apart; the kernel computes only the newest value):", "",
                  "| setting | control | explorer | presses | figures sent | final figure after the last key, ms |",
                  "|---|---|---|---:|---:|---:|"]
        for b in bursts:
            lines.append(f"| {b['setting']} | {LABELS[b['control']]} | {b['variant']} | {b['presses']} | "
                         f"{b['figures']} | {b['final_after_last_key']:.0f} |")
        now = [r for r in browser if r["variant"] == "now"]
        jumps = [r["median"] for r in now if r["control"] == "seed_jump"]
        lines += ["", "Targets (issue 16, one step of each control): "
                  + verdict("largest setting", [r["median"] for r in now if r["setting"] == LARGEST
                                                and r["control"] in TARGETED], 100) + "; "
                  + verdict("defaults", [r["median"] for r in now if r["setting"] == DEFAULTS
                                         and r["control"] in TARGETED], 60) + "."
                  + (f" A jump of 5 seeds at the largest setting (nothing drawn ahead): {jumps[0]:.0f} ms." if jumps
                     else "")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=21, help="changes per control (>= 20)")
    parser.add_argument("--no-browser", action="store_true", help="kernel timings only")
    parser.add_argument("--no-write", action="store_true", help="print, do not update benchmarks/README.md")
    args = parser.parse_args()
    loads = {"kernel part": os.getloadavg()}
    kernel = bench_kernel(args.changes)
    browser, bursts = [], []
    if not args.no_browser:
        loads["browser part"] = os.getloadavg()
        browser, bursts = bench_browser(args.changes)
    loads["end"] = os.getloadavg()
    text = report(kernel, browser, bursts, args.changes, loads)
    print(text)
    if not args.no_write:
        write_section("explorers", text)

if __name__ == "__main__":
    main()
