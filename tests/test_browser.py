"""Every explorer in every notebook renders and responds to a slider, in JupyterLab in headless Chromium.

For each notebook in notebooks/ with explorer cells (demo cells that build an
explorer from course_lib.widgets), the source solution notebook is copied to
a scratch folder, opened in JupyterLab and run with Run All Cells, as a
student would. Then, for each explorer on the page: its controls and figure
render, the moving lines are painted over the figure's PNG (the screenshot
differs from the PNG where they are), a slider moved with the keyboard
changes the painted figure and the verdict. A scratch notebook showing every
explorer factory with its defaults covers explorers no notebook uses yet;
there the painted figure must match matplotlib's PNG of the same figure (the
saved copy) pixel for pixel, give or take antialiasing, and after the sliders
moved each verdict on the page must be what a fresh explorer computes at the
values the page shows. Screenshots go to tests/artifacts/browser/.
Any error shown in a cell, in an explorer or on the page fails the test, and
so does an output that scrolls sideways or a figure scaled down until its
text is under 9 pt. No Chromium is a failure, never a skip: README command 2
installs it (scripts/setup_system.py).
"""

import base64
import io
import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import REPO
from jupyterlab_session import Notebook, chromium_page, explorer_cells, lab_server, notebook_copy

from autograder.build import read_source
from course_lib.plotting import COURSE_RC, MIN_TEXT_PX

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
ALL_EXPLORERS = "all_explorers"


# Outputs a student cannot read at JupyterLab's width: a sideways scrollbar, or a figure scaled down so far
# that the course's 11 pt text (COURSE_RC, at 100 dpi) falls under 9 pt on screen. Argument: the least
# scale at which it stays readable.
UNREADABLE_OUTPUTS_JS = """
(least) => {
    const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')], found = [];
    for (const output of document.querySelectorAll('.jp-OutputArea-output')) {
        if (!output.checkVisibility()) continue;
        const cell = cells.indexOf(output.closest('.jp-Cell'));
        if (output.scrollWidth > output.clientWidth + 1)
            found.push(`cell ${cell}: ${output.scrollWidth} px of output in ${output.clientWidth} px `
                       + '(scrolls sideways)');
        for (const img of output.querySelectorAll('.jp-RenderedImage img'))
            if (img.naturalWidth && img.width / img.naturalWidth < least)
                found.push(`cell ${cell}: a ${img.naturalWidth} px figure shown at ${img.width} px: its text is `
                           + `${Math.round(100 * img.width / img.naturalWidth)}% of its size; keep it under `
                           + `${Math.floor(img.width / least)} px (${(img.width / least / 100).toFixed(1)} in)`);
    }
    return found;
}
"""


def notebooks_with_explorers() -> list[str]:
    names = [path.stem for path in sorted((REPO / "notebooks").glob("*.ipynb"))
             if (REPO / "autograder" / "source" / path.stem / f"{path.stem}.py").is_file()]
    return [name for name in names if explorer_cells(read_source(name)[0])] + [ALL_EXPLORERS]


# Run again after the sliders moved: each explorer shown (IPython's Out, in cell order), its verdict as the
# page should show it, and the verdict of a fresh explorer built at its current control values.
CHECK_CELL = """import html, json, re
from course_lib import widgets

def as_text(verdict):
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", verdict)).split())

checked = []
for shown in [value for _, value in sorted(Out.items()) if isinstance(value, widgets.Explorer)]:
    fresh = type(shown)(**shown.values)
    checked.append({"name": type(shown).__name__, "values": shown.values, "live": as_text(shown.verdict.value),
                    "fresh": as_text(fresh.verdict.value)})
    fresh.close()
print("CHECKED " + json.dumps(checked))"""


def all_explorers_notebook() -> nbformat.NotebookNode:
    """Every factory in course_lib.widgets, displayed with its defaults, one demo cell each; then `CHECK_CELL`."""
    from course_lib import widgets

    factories = sorted(name for name in widgets.__all__ if name.endswith("_explorer"))
    cells = [nbformat.v4.new_code_cell("from course_lib import widgets")]
    cells += [nbformat.v4.new_code_cell(f"widgets.{name}()", metadata={"tags": ["demo"]}) for name in factories]
    cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}})


def notebook(name: str) -> nbformat.NotebookNode:
    return all_explorers_notebook() if name == ALL_EXPLORERS else read_source(name)[0]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root, work = tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-work")
    try:
        with lab_server(root, work) as server:
            yield server
    finally:
        if (work / "jupyterlab.log").exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "jupyterlab.log").write_bytes((work / "jupyterlab.log").read_bytes())


@pytest.fixture(scope="module")
def page():
    with chromium_page() as (_, page):
        yield page


def test_chromium_is_installed():
    from jupyterlab_session import require_chromium

    assert Path(require_chromium()).is_file()


# Keys tried on each slider until the verdict changes: one step may leave its rounded numbers as they were
# (or a gradient that underflowed to 0 stays 0), so go right twice, then left past the start.
KEYS = ["ArrowRight", "ArrowRight", "ArrowLeft", "ArrowLeft", "ArrowLeft", "ArrowLeft"]


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


FETCH_BASE64_JS = """
async (src) => {
    const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    return btoa(text);
}
"""


def image_bytes(page, src: str) -> bytes:
    """The bytes of an image the page shows: a data: URL (the saved copy) or a blob: URL (the widget's PNG)."""
    assert src and src.startswith(("data:image/png;base64,", "blob:")), (src or "")[:60]
    return base64.b64decode(src.split(",", 1)[1] if src.startswith("data:") else page.evaluate(FETCH_BASE64_JS, src))


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that differ clearly (by more than 60 of 255 in some channel) between two same-size images."""
    assert a.shape == b.shape, f"{a.shape} vs {b.shape}"
    return int((np.abs(a - b).max(axis=2) > 60).sum())


def check_painted(book: Notebook, index: int, state: dict, where: str, *, saved: bool) -> np.ndarray:
    """The figure as Chromium painted it: the PNG, and over it the curves (when the explorer has some).
    With `saved`, it must look like matplotlib's own PNG of the figure (the saved copy in the cell)."""
    figure = book.explorer(index).locator("img.course-explorer-figure")
    figure.scroll_into_view_if_needed()
    box = figure.bounding_box()  # may sit at a fractional y: clip the figure's own pixels
    painted = pixels(book.page.screenshot(clip={"x": round(box["x"]), "y": round(box["y"]),
                                                "width": round(box["width"]), "height": round(box["height"])}))
    background = pixels(image_bytes(book.page, state["image"]))
    if state["curves"]:
        drawn = differing(painted, background)
        assert drawn > 200, f"{where}: {state['curves']} curves, but only {drawn} pixels painted over the PNG"
    if saved:
        whole = pixels(image_bytes(book.page, state["saved"]))
        off = differing(painted, whole)
        assert off < 0.02 * painted.shape[0] * painted.shape[1] and np.abs(painted - whole).mean() < 3, \
            f"{where}: the painted figure differs from matplotlib's in {off} pixels"
    return painted


def move_until_the_verdict_changes(book: Notebook, index: int, sliders: int, where: str) -> bool:
    """Every key press must bring a new figure; some press on some slider must bring a new verdict."""
    seen = []
    for slider in range(sliders):
        for key in KEYS:
            before = book.explorers()[index]
            if book.press(index, slider, key) is None:
                continue
            after = book.wait_for_change(index, before)
            assert after["src"] != before["src"] and after["loaded"], \
                f"{where}: {key} on slider {slider} did not change the figure within the time limit"
            assert not after["error"], f"{where}: {after['verdict']}"
            if after["verdict"] != before["verdict"]:
                return True
            seen.append(after["verdict"])
    raise AssertionError(f"{where}: no slider changed the verdict: {seen}")


@pytest.mark.parametrize("name", notebooks_with_explorers())
def test_every_explorer_renders_and_responds_to_a_slider(lab, page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nb = notebook(name)
    expected = explorer_cells(nb)
    assert expected, f"{name}: no explorer cells found"
    book = Notebook(lab, page, notebook_copy(nb, lab.root, name))
    page.errors.clear()
    try:
        book.open(workspace=name)
        cells = book.run_all()
        errors = [f"cell {i}: {text}" for i, cell in enumerate(cells) for text in cell["errors"]]
        assert not errors, f"{name}: errors shown in cells:\n" + "\n".join(errors)
        explorers = book.explorers()
        shown = {state["cell"] for state in explorers}
        missing = [i for i in expected if i not in shown]
        assert not missing, f"{name}: explorer cells {missing} show no explorer (found in cells {sorted(shown)})"
        for index, state in enumerate(explorers):
            where = f"{name}, explorer {index} (cell {state['cell']})"
            assert state["controls"] >= 1, f"{where}: no controls rendered"
            assert state["loaded"] and state["width"] > 100, f"{where}: no figure rendered"
            assert state["verdict"].strip() and not state["error"], f"{where}: verdict {state['verdict']!r}"
            assert state["sliders"] >= 1, f"{where}: no slider to move"
            book.explorer(index).scroll_into_view_if_needed()
            book.explorer(index).screenshot(path=ARTIFACTS / f"{name}-explorer{index}-before.png")
            before = check_painted(book, index, state, where, saved=name == ALL_EXPLORERS)
            assert move_until_the_verdict_changes(book, index, state["sliders"], where)
            book.explorer(index).screenshot(path=ARTIFACTS / f"{name}-explorer{index}-after.png")
            after = check_painted(book, index, book.explorers()[index], where, saved=False)
            assert differing(before, after) > 50, f"{where}: the painted figure did not change"
        if name == ALL_EXPLORERS:  # the page shows what the kernel computes for the values it shows
            output = book.run_cell(len(nb.cells) - 1)
            checked = json.loads(output.split("CHECKED ", 1)[1])
            assert len(checked) == len(explorers), output[:500]
            for page_state, kernel in zip(book.explorers(), checked):
                assert kernel["live"] == kernel["fresh"], f"{kernel['name']} at {kernel['values']}: {kernel}"
                assert " ".join(page_state["verdict"].split()) == kernel["live"], (page_state["verdict"], kernel)
        errors = [f"cell {i}: {text}" for i, cell in enumerate(book.cells()) for text in cell["errors"]]
        assert not errors, f"{name}: errors shown after moving sliders:\n" + "\n".join(errors)
        assert not page.errors, f"{name}: errors in the page:\n" + "\n".join(page.errors)
        least = MIN_TEXT_PX / (COURSE_RC["font.size"] * COURSE_RC["figure.dpi"] / 72)
        unreadable = page.evaluate(UNREADABLE_OUTPUTS_JS, least)
        assert not unreadable, f"{name}: outputs too wide for JupyterLab at 1280 px:\n" + "\n".join(unreadable)
    finally:  # keep the evidence, free the CPU for the next notebook; never hide the real failure
        for cleanup in (lambda: page.screenshot(path=ARTIFACTS / f"{name}-page.png"), book.shutdown_kernels):
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001
                print(f"cleanup after {name}: {error!r}")
        time.sleep(0.5)
