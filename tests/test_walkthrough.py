"""The course as a student and an instructor meet it, in JupyterLab and Chromium at 1280 px.

Student: open notebooks/01 (the student version) and see no unsaved-changes
mark before anything runs; Run All (it stops at the first unanswered
question, as for every student); move the explorer's slider and see a new
figure; type a wrong answer to question 1 and read its check's message
(short, no traceback, no path), then a right one (it passes); save, end the
kernel, reload the page: the explorer shows its saved figure, not "Error
displaying widget".

Instructor: grade a small class from a Canvas download (a zip) with
`python -m autograder grade` into a scratch course root, run `report`, and
open a student's feedback page and the report: no sideways scrolling, no
raw $...$ maths, no traceback, no path of the grading machine.

Screenshots go to tests/artifacts/walkthrough/ (look at them).
"""

import json
import platform
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from jupyterlab_session import Notebook, chromium_page, lab_server

from autograder import COURSE_ROOT, REPO_ROOT
from autograder.build import LANGUAGE_INFO, read_source, solution_cells

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

NAME = "01_chain_rule"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "walkthrough"
WRONG_Q1 = '''def chain_rule_derivative(x, functions, derivatives):
    h, grad = float(x), 1.0
    for f_k, df_k in zip(functions, derivatives):
        grad *= df_k(x)
        h = f_k(h)
    return h, grad
'''

# -- page checks -------------------------------------------------------------------------------

OVERFLOW_JS = """
() => {
    const width = window.innerWidth, found = [];
    for (const el of document.querySelectorAll('body *')) {
        const style = getComputedStyle(el), box = el.getBoundingClientRect();
        if (style.display === 'none' || style.visibility === 'hidden' || box.width === 0) continue;
        const name = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
                     ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
        if (/(auto|scroll)/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
            found.push(`${name} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth} px)`);
        else if (box.right > width + 1 && !el.closest('[style*="overflow"]'))
            found.push(`${name} is cut off at ${Math.round(box.right)} px`);
    }
    return {page: document.scrollingElement.scrollWidth, viewport: width, found: found.slice(0, 10)};
}
"""


def page_problems(page, *, machine_paths: list[str]) -> list[str]:
    """What a person would see wrong on this page at its current width."""
    problems = []
    layout = page.evaluate(OVERFLOW_JS)
    if layout["page"] > layout["viewport"]:
        problems.append(f"the page is {layout['page']} px wide in a {layout['viewport']} px window")
    problems += layout["found"]
    text = page.evaluate("() => document.body.innerText")
    maths = re.findall(r"\$[^$\n]{1,80}\$", text)
    if maths:
        problems.append(f"raw maths in the text: {maths[:3]}")
    if "Traceback" in text:
        problems.append("a traceback is shown")
    for path in machine_paths:
        if path in text:
            problems.append(f"a path of the grading machine is shown: {path}")
    return problems


def visible(page, selector: str) -> list[str]:
    """innerText of the elements matching `selector` that are actually drawn."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter(el => el.checkVisibility() && el.getBoundingClientRect().height > 0)
        .map(el => el.innerText)""", selector)


# -- the instructor's class ----------------------------------------------------------------------

def canvas_zip(folder: Path) -> Path:
    """A Canvas "Download submissions" zip: lastfirst_userid_submissionid_filename, three students."""
    source, _ = read_source(NAME)
    answers = solution_cells(source)
    released = nbformat.read(REPO_ROOT / "notebooks" / f"{NAME}.ipynb", as_version=4)
    students = {"lovelaceada_1001_55501": answers,                                   # everything right
                "turingalan_1002_55502": {**answers, "q1_chain_rule_derivative": WRONG_Q1},  # one mistake
                "hoppergrace_1003_55503": {}}                                         # handed in untouched
    path = folder / "submissions.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for prefix, filled in students.items():
            nb = nbformat.from_dict(json.loads(json.dumps(released)))
            for cell in nb.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in filled and cell.metadata["nbgrader"].get("solution"):
                    cell.source = filled[grade_id]
            archive.writestr(f"{prefix}_{NAME}.ipynb", nbformat.writes(nb))
    return path


def start_grading(tmp: Path) -> tuple[subprocess.Popen, Path]:
    """`grade` then `report` for the class, in the background while the student path runs."""
    course = tmp / "course"
    (course / "source" / NAME).mkdir(parents=True)
    (course / "nbgrader_config.py").write_bytes((COURSE_ROOT / "nbgrader_config.py").read_bytes())
    nbformat.write(read_source(NAME)[0], course / "source" / NAME / f"{NAME}.ipynb")
    zipped = canvas_zip(tmp)
    grade = [sys.executable, "-m", "autograder", "grade", str(zipped), "--course-root", str(course),
             "--workers", "2", "--no-progress"]
    report = [sys.executable, "-m", "autograder", "report", "--course-root", str(course)]
    script = f"{subprocess.list2cmdline(grade)} ; {subprocess.list2cmdline(report)}"
    log = open(tmp / "grading.log", "w")  # noqa: SIM115 - closed with the process below
    process = subprocess.Popen(["bash", "-c", script], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    process.log = log
    return process, course


# -- the walkthrough -----------------------------------------------------------------------------

def cell_index(nb, grade_id: str) -> int:
    return next(i for i, cell in enumerate(nb.cells) if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def answer(book: Notebook, index: int, code: str, timeout: float = 120) -> str:
    """Type `code` into answer cell `index`, run it and the check cell below it; returns the check's output."""
    page = book.page
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")  # runs the answer, selects the check cell
    page.keyboard.press("Shift+Enter")  # runs the check
    check = page.locator(".jp-Notebook .jp-Cell").nth(index + 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prompt = check.locator(".jp-InputArea-prompt").inner_text()
        if re.search(r"\[\d+\]", prompt) and book.lab.api("kernels")[0]["execution_state"] == "idle":
            break
        time.sleep(0.3)
    else:
        raise TimeoutError("the check cell did not run")
    check.scroll_into_view_if_needed()
    return check.locator(".jp-OutputArea").inner_text()


def test_student_and_instructor_walkthrough(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    grading, course = start_grading(tmp_path)
    released = nbformat.read(REPO_ROOT / "notebooks" / f"{NAME}.ipynb", as_version=4)
    root, work = tmp_path / "student", tmp_path / "lab"
    root.mkdir(), work.mkdir()
    (root / f"{NAME}.ipynb").write_bytes((REPO_ROOT / "notebooks" / f"{NAME}.ipynb").read_bytes())
    q1 = cell_index(released, "q1_chain_rule_derivative")
    right_q1 = solution_cells(read_source(NAME)[0])["q1_chain_rule_derivative"]
    try:
        with lab_server(root, work, expose_app=True) as lab, chromium_page(width=1280, height=900) as (_, page):
            book = Notebook(lab, page, f"{NAME}.ipynb")
            book.open(workspace="walkthrough")
            page.screenshot(path=ARTIFACTS / "01-opened.png")

            # Opened, nothing run: JupyterLab changed nothing, so there is no unsaved-changes mark.
            model = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.toJSON()")
            opened = nbformat.from_dict(model)
            changed = {key for key in opened.metadata.keys() | released.metadata.keys()
                       if opened.metadata.get(key) != released.metadata.get(key)}
            assert [(c.cell_type, c.source, c.get("outputs")) for c in opened.cells] == \
                   [(c.cell_type, c.source, c.get("outputs")) for c in released.cells]
            if platform.python_version() == LANGUAGE_INFO["version"]:
                assert not changed, f"JupyterLab changed the notebook's {sorted(changed)} on open"
                assert page.locator(".jp-mod-dirty").count() == 0, "unsaved-changes mark on a notebook just opened"
            else:  # the one change JupyterLab makes: this machine's Python version
                assert changed == {"language_info"} and \
                    {k: v for k, v in opened.metadata["language_info"].items() if k != "version"} == \
                    {k: v for k, v in LANGUAGE_INFO.items() if k != "version"}, opened.metadata

            # Run All stops at question 1's check: the answer is still `raise NotImplementedError()`.
            cells = book.run_all()
            ran = [i for i, cell in enumerate(cells) if re.search(r"\[\d+\]", cell["prompt"])]
            assert ran and ran[-1] == q1 + 1, f"Run All stopped after cell {ran[-1:]}, not at question 1's check"
            tracebacks = [i for i, cell in enumerate(cells) if cell["errors"]]
            assert not tracebacks, f"cells showing an error or a traceback: {tracebacks}"
            stopped = page.locator(".jp-Notebook .jp-Cell").nth(q1 + 1).locator(".jp-OutputArea").inner_text()
            assert stopped.startswith("Question 1") and "Traceback" not in stopped, stopped
            explorers = book.explorers()
            assert len(explorers) == 1 and explorers[0]["loaded"], explorers
            assert not visible(page, ".course-explorer-static"), "the saved copy shows under the live explorer"
            book.explorer(0).scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "02-explorer.png")
            overflowing = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
                .filter(o => o.scrollWidth > o.clientWidth + 1).map(o => o.innerText.slice(0, 80))""")
            assert not overflowing, f"outputs wider than the notebook (a sideways scrollbar): {overflowing}"

            # The slider runs the network again and redraws.
            before = book.explorers()[0]
            assert book.press(0, 0, "ArrowRight")
            after = book.wait_for_change(0, before)
            assert after["src"] != before["src"] and after["loaded"] and after["verdict"] != before["verdict"]
            book.explorer(0).screenshot(path=ARTIFACTS / "03-explorer-moved.png")

            # A wrong answer: the check says what is wrong in a few lines, no traceback, no path.
            message = answer(book, q1, WRONG_Q1)
            page.screenshot(path=ARTIFACTS / "04-wrong-answer.png")
            assert message.startswith("Question 1"), message
            assert "Traceback" not in message and "Error" not in message.split("\n")[0], message
            assert not re.search(r"/(root|home|usr|tmp|work)/|site-packages|\.py\b", message), message
            assert len(message.strip().splitlines()) <= 8, f"{len(message.splitlines())} lines:\n{message}"
            assert "at the input" in message, f"the likely mistake is not named:\n{message}"
            # The right answer passes.
            message = answer(book, q1, right_q1)
            page.screenshot(path=ARTIFACTS / "05-right-answer.png")
            assert re.fullmatch(r"Question 1: passes[^\n]*\.", message.strip()), message

            # Saved, kernel gone, page reloaded: the explorer's saved figure, not "Error displaying widget".
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 30
            while page.locator(".jp-mod-dirty").count() and time.monotonic() < deadline:
                time.sleep(0.2)
            book.shutdown_kernels()
            book.open(workspace="walkthrough")
            saved = page.locator(".course-explorer-static").first
            saved.wait_for(state="visible", timeout=30_000)
            saved.scroll_into_view_if_needed()
            page.wait_for_function("() => [...document.querySelectorAll('.course-explorer-static img')]"
                                   ".every(img => img.complete && img.naturalWidth > 0)", timeout=30_000)
            page.screenshot(path=ARTIFACTS / "06-reloaded.png")
            errors = [text for text in visible(page, ".jp-OutputArea-output") if "Error displaying widget" in text]
            assert not errors, "the widget's error shows where the saved figure should be"
            assert visible(page, ".course-explorer-static img"), "no saved figure after the reload"
            assert not page.errors, page.errors
    finally:
        try:
            grading.wait(timeout=900)
        finally:
            grading.log.close()
    log = (tmp_path / "grading.log").read_text()
    assert grading.returncode == 0, log[-4000:]

    # The instructor's pages, at 1280 px, opened from disk as an instructor would.
    pages = sorted((course / "feedback").glob(f"*/{NAME}/{NAME}.html"))
    assert len(pages) == 3, log[-3000:]
    mistaken = next((p for p in pages if "turing" in p.parts[-3].lower() or "1002" in p.parts[-3]), None)
    assert mistaken, [p.parts[-3] for p in pages]
    report = course / "reports" / "index.html"
    assert report.is_file(), log[-3000:]
    machine = [str(tmp_path), str(REPO_ROOT), "/root/", "/home/"]
    problems = {}
    with chromium_page(width=1280, height=900) as (_, page):
        for label, path in (("feedback", mistaken), ("report", report)):
            page.goto(path.as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=ARTIFACTS / f"07-{label}.png", full_page=True)
            found = page_problems(page, machine_paths=machine)
            if label == "feedback":
                text = page.evaluate("() => document.body.innerText")
                if "Question 1" not in text or "at the input" not in text:
                    found.append("the feedback page does not name question 1 and its likely mistake")
            if found:
                problems[label] = found
    assert not problems, "what the instructor sees:\n" + json.dumps(problems, indent=1)
