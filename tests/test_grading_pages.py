"""What grading shows and keeps: the judge grades what the student's Jupyter computes, feedback pages
reveal nothing hidden and read well, the report fits the screen, student data stays out of git.

Fast unit tests first; then one class of a tiny course (tests/minicourse.py) graded for real with
`python -m autograder grade` (slow), its pages checked as HTML and in Chromium at 1280 px, plain
nbgrader's feedback, and a grading run in a fresh clone of the repository.
"""

from __future__ import annotations

import csv
import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

import minicourse as mc
from autograder import REPO_ROOT
from autograder.judging import feedback, inspection, judge, names, source, version
from autograder.judging.kernel_client import is_mutable, write_back

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
ONE_CLASS = pytest.mark.xdist_group("grading-pages-class")  # the tests that share one graded class


# ---- the judge: arguments written back, its version, demo cells by name --------------------------------

def test_list_dict_and_set_arguments_are_written_back():
    assert is_mutable([1.0, 2.0]) and is_mutable({"a": 1}) and is_mutable({1})
    assert not is_mutable((1, 2)) and not is_mutable(3.0) and is_mutable((1, [2]))
    values, table, seen = [1.0, 2.0], {"a": 1, "gone": 2}, {1}
    write_back([values, table, seen], [[2.0, 4.0], {"a": 5, "new": [1]}, {1, 2}])
    assert values == [2.0, 4.0] and table == {"a": 5, "new": [1]} and seen == {1, 2}
    array = np.zeros(2)
    write_back([[array]], [[np.ones(2)]])
    assert array.tolist() == [1.0, 1.0]  # arrays inside lists still change in place


def test_grader_version_hashes_the_code_that_decides_a_verdict(monkeypatch):
    assert version.GRADER_VERSION == version.grader_version() and re.fullmatch(r"[0-9a-f]{16}", version.GRADER_VERSION)
    real = Path.read_bytes

    def edited(path):
        data = real(path)
        return data + b"\n# edited" if path.name in ("inspection.py", "checks.py") else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert version.grader_version() != version.GRADER_VERSION


def test_free_names_follow_python_scopes():
    assert names.free_names("def f(x, *rest):\n    h = x + y\n    return [h * k for k in rest]") == {"y"}
    assert names.free_names("[t for t in table]") == {"table"}
    assert names.free_names("\n%time total = sum(data)") >= {"data", "sum"}  # inside the magic, too
    assert "total" in names.bound_names("%%capture out\ntotal = 1")


def test_demo_cells_are_found_by_name_transitively():
    kinds = ["code", "demo", "demo", "code", "demo", "code"]
    sources = ["data = [1, 2]", "table = list(data)", "doubled = [2 * t for t in table]", "answer = sum(doubled)",
               "late = 1", "other = late + data[0]"]
    needed, unresolved = names.demo_dependencies(kinds, sources, [3, 5])
    assert needed == {1, 2, 4} and "late" not in unresolved and "table" not in unresolved
    assert names.demo_dependencies(kinds, sources, [3])[0] == {1, 2}  # what a cell does not read never runs
    kinds[0] = "demo"  # now only a demo defines `data`: needed too, through the other demos
    assert names.demo_dependencies(kinds, sources, [3])[0] == {0, 1, 2}
    assert names.demo_dependencies(["code", "code"], ["y = x", "x = 1"], [0])[1] == {"x": 0}


def test_the_judge_runs_a_demo_cell_a_test_needs():
    model = source.SourceModel.from_notebook(mc.NAME, mc.source_notebook())
    model.prune()
    assert [c.index for c in model.cells if c.kind == "demo" and c.needed] == []
    nb = mc.source_notebook()
    nb.cells[9].source = nb.cells[9].source.replace("_v = [1.0, 2.0]", "_v = [float(t) for t in doubled[:2]]")
    model = source.SourceModel.from_notebook(mc.NAME, nb)
    model.prune()
    assert [c.index for c in model.cells if c.kind == "demo" and c.needed] == [2, 3]
    assert model.cells[1].needed  # the setup cell the demo cells read


def test_a_hidden_failure_is_reported_by_kind_only():
    leak = "values=[3.0, 5.0, 7.0]"
    kinds = [judge.failure_kind({"ename": "ValueError", "evalue": leak}),
             judge.failure_kind({"ename": "CheckFailed", "evalue": leak}),
             judge.failure_kind({"ename": "TimeoutError", "evalue": leak}),
             judge.failure_kind({"ename": "StudentCodeError", "evalue": f"LinAlgError: {leak}"}),
             judge.failure_kind({"ename": "StudentCodeError", "evalue": f"Leak_3_5_7: {leak}"}),
             judge.failure_kind({"ename": "NotTransferable", "evalue": leak})]
    assert kinds[:4] == ["ValueError raised", "wrong value", "took too long", "LinAlgError raised"]
    assert all("3.0" not in kind and "Leak" not in kind for kind in kinds), kinds


# ---- inspection: flags mean something suspicious ---------------------------------------------------------

@pytest.mark.parametrize("code", [
    "from IPython.display import display, Markdown\ndisplay(Markdown('**x**'))",
    "import IPython.display as ipd\nipd.display(1)",
    "import IPython\nIPython.display.display(1)",
    "\n\n%time x = sum(range(10))\nprint(x)",
    "%timeit -n 2 -r 1 sum(range(10))",
    "%%time\ny = 2",
    "%%capture captured\nprint(1)",
    "\n%matplotlib inline\nimport matplotlib.pyplot as plt",
    "import numpy as np\nnp.mean?",
])
def test_public_ipython_and_harmless_magics_are_not_flagged(code):
    assert inspection.inspect_cells([(0, code)]) == []


@pytest.mark.parametrize("code, reason, line", [
    ("_shell = get_ipython\n_shell().run_cell('x = 1')", "shell object", 1),
    ("from IPython import get_ipython", "IPython", 1),
    ("import IPython\nIPython.get_ipython().ex('1')", "IPython", 2),
    ("from IPython.core.interactiveshell import InteractiveShell", "IPython internals", 1),
    ("\n\nget_ipython().input_transformers_post.append(f)", "later cells", 3),
    ("%time import builtins; builtins.abs = lambda x: 0", "builtins", 1),
    ("%%time\nimport builtins\nbuiltins.abs = lambda x: 0", "inside the module", 3),
    ("%%capture out\nimport gc", "garbage collector", 2),
    ('%timeit -s "import builtins" x', "cannot inspect", 1),
    ("%pip install numpy", "%pip", 1),
    ("%%writefile numpy.py\nx = 1", "outside Python", 1),
])
def test_attacks_stay_flagged_at_the_right_line(code, reason, line):
    findings = inspection.inspect_cells([(0, code)])
    hits = [f for f in findings if reason.lower() in f.reason.lower()]
    assert hits and hits[0].line == line, [f.describe() for f in findings]


# ---- feedback pages, rendered from a notebook -------------------------------------------------------------

def _feedback_notebook():
    nb = nbformat.v4.new_notebook()
    md = nbformat.v4.new_markdown_cell
    answer = nbformat.v4.new_code_cell("q1_slope = 0.2")
    answer.metadata["nbgrader"] = {"grade_id": "q1_slope", "solution": True, "grade": False}
    test = nbformat.v4.new_code_cell("checks.check_close('Question 1', q1_slope, 0.25)\n# (hidden tests: not shown)")
    test.metadata["nbgrader"] = {"grade_id": "q1_slope_test", "grade": True, "solution": False, "points": 2}
    test.outputs = [nbformat.v4.new_output("error", ename="CheckFailed", evalue="Question 1: not yet right.\n  "
                                           "Likely mistake: " + "the slope at zero is 1/4, " * 20,
                                           traceback=["Traceback (most recent call last):",
                                                      f'  File "{REPO_ROOT}/course_lib/checks.py", line 80'])]
    student = nbformat.v4.new_code_cell("open('data.csv')")
    student.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
        "Traceback (most recent call last):\n  File \"/tmp/vg-abc/work/cell.py\", line 1\n"
        "FileNotFoundError: /tmp/vg-abc/work/data.csv\n")),
        nbformat.v4.new_output("error", ename="FileNotFoundError", evalue="No such file: '/home/grader/data.csv'",
                               traceback=["long", "traceback"])]
    nb.cells = [md("# Title\n\nSlope $\\sigma'(0) = \\tfrac{1}{4}$ and $$\\prod_{k=1}^{L} J_k^\\top$$ but `$HOME` "
                   "stays code."), student, md("### Question 1 (2 points): the slope of $\\sigma$ at 0"), answer,
                test]
    return nb


def test_a_feedback_page_names_questions_renders_maths_and_shows_no_traceback_or_path():
    page = feedback.render_html(_feedback_notebook(), notebook="nb", scores={"q1_slope_test": (0.0, 2.0)})
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", page, flags=re.S)
    assert "Question 1: the slope of" in page and "0.0 / 2.0" in page and "Test cell" not in page
    assert page.count("<math") >= 4 and "$HOME" in page  # the prose's three formulas and the title's
    assert "$" not in text.replace("$HOME", "")
    assert "Traceback" not in page and "CheckFailed" not in page and "Likely mistake" in page
    for path in (str(REPO_ROOT), "/tmp/", "/home/", "/srv/", "checks.py\", line"):
        assert path not in page, path
    assert "FileNotFoundError: No such file: 'data.csv'" in html.unescape(page)
    assert "white-space: pre-wrap" in page and "cdn" not in page.lower() and "<script" not in page.lower()


def test_rendering_a_huge_page_is_bounded_and_summarised():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("*a* **b** _c_ " * 750_000)]  # 10 MB of emphasis
    start = time.perf_counter()
    page = feedback.render_html(nb, notebook="big", scores={})
    assert time.perf_counter() - start < 20 and "too long to show" in page and len(page) < 500_000
    nb.cells = [nbformat.v4.new_markdown_cell("*a* **b** " * 1800) for _ in range(30)]  # each under the cell limit
    start = time.perf_counter()
    page = feedback.render_html(nb, notebook="big", scores={}, time_limit=0.05)
    assert time.perf_counter() - start < 20 and "plain text" in page and "**b**" in page


# ---- one class of the mini course, graded for real --------------------------------------------------------

def _broken_demo(nb):
    nb.cells[2].source = "raise RuntimeError('no display here')\n" + nb.cells[2].source


A = mc.ANSWERS
CLASS = {
    "solution": (mc.submission(A), {}, False),
    "demo_chain": (mc.submission({**A, "q1_total": "q1_total = sum(doubled) // 2"}), {}, False),
    "magics": (mc.submission({
        **A, "q1_total": "\n%time q1_total = sum(data)\n%timeit -n 1 -r 1 sum(data)",
        "q2_scale": "%%capture _captured\ndef scale(values, factor):\n    for i in range(len(values)):\n"
                    "        values[i] *= factor\n    print('scaled')",
        "q3_rate": "%matplotlib inline\nfrom IPython.display import display, Markdown\n"
                   "import matplotlib.pyplot as plt\nplt.plot([1, 2])\ndisplay(Markdown('**rate**'))\nq3_rate = 0.5"},
        insert_after_setup=["%%time\n_total = sum(range(10))"]), {}, False),
    "late": (mc.submission({**A, "q3_rate": "q3_rate = late_value"}), {"q3_rate": 0.0}, False),
    "broken_demo": (mc.submission({**A, "q1_total": "q1_total = sum(table)"}, edit=_broken_demo),
                    {"q1_total": 0.0}, False),
    "leaky": (mc.submission({**A, "q2_scale": (
        "def scale(values, factor):\n    if len(values) > 2:\n        print('SECRET', values)\n"
        "        raise ValueError(f'LEAK values={values} factor={factor}')\n    for i in range(len(values)):\n"
        "        values[i] *= factor")}), {"q2_scale": 0.0}, False),
    "wrong": (mc.submission({**A, "q1_total": "q1_total = 5"}), {"q1_total": 0.0}, False),
    "untouched": (mc.submission(), {q: 0.0 for q in mc.POINTS}, False),
    "alias": (mc.submission({**A, "q1_total": "q1_total = 5"},
                            insert_after_setup=["_shell = get_ipython\n_shell().run_cell('q1_total = 6')"]),
              {"q1_total": 0.0}, True),
}


@pytest.fixture(scope="session")  # once per session: its tests are one xdist group (conftest.py)
def graded_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("pages")
    course = mc.make_course(base / "course")
    submissions = mc.write_submissions(base / "submitted", {s: data for s, (data, _, _) in CLASS.items()})
    log = mc.grade(submissions, course)
    mc.autograder("export", "--totals", "--course-root", str(course))
    mc.autograder("report", "--course-root", str(course))
    return course, log


def _grades(course: Path) -> dict:
    out = {}
    with open(course / "grades.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            entry = out.setdefault(row["student_id"], {"scores": {}, "status": row["status"], "detail": {}})
            question = row["question"][:-len("_test")]
            entry["scores"][question] = float(row["score"])
            entry["detail"][question] = row["detail"]
    return out


def _page(course: Path, student: str) -> str:
    return (course / "feedback" / student / mc.NAME / f"{mc.NAME}.html").read_text()


@pytest.mark.slow
@ONE_CLASS
def test_the_class_gets_what_jupyter_would_compute(graded_class):
    course, log = graded_class
    grades = _grades(course)
    for student, (_, lost, flagged) in CLASS.items():
        expected = {**mc.POINTS, **lost}
        assert grades[student]["scores"] == expected, (student, grades[student], log.stdout[-2000:])
        assert (grades[student]["status"] == "flagged") == flagged, (student, grades[student])
    plan = json.loads((course / "autograded" / ".calibration" / f"{mc.NAME}.plan.json").read_text())
    assert plan["plan"]["kernel_tests"] == []  # in-place changes to a list reach the judge: no fallback
    cells = nbformat.read(course / "autograded" / "demo_chain" / mc.NAME / f"{mc.NAME}.ipynb", as_version=4).cells
    assert "demo A ran" in json.dumps(cells[2].outputs)  # the demo cells the answer needs ran, in order
    assert "not run during grading" in json.dumps(cells[-1].outputs)  # and the others did not
    assert "only defined further down" in grades["late"]["detail"]["q3_rate"]
    assert "failed during grading" in grades["broken_demo"]["detail"]["q1_total"]
    assert "stopped with NotImplementedError" in grades["untouched"]["detail"]["q1_total"]


@pytest.mark.slow
@ONE_CLASS
def test_feedback_pages_show_questions_messages_and_nothing_hidden(graded_class):
    course, _ = graded_class
    for student in CLASS:
        page = _page(course, student)
        text = re.sub(r"<style.*?</style>|<[^>]+>", " ", page, flags=re.S)
        assert "Question 1: the total of" in page and "Question 3: a setting" in page, student
        assert "Test cell" not in page and "Traceback" not in page and "BEGIN HIDDEN" not in page, student
        assert mc.HIDDEN_INPUT not in page and "15.0" not in text, student
        assert "$" not in text and page.count("<math") >= 3, student
        assert str(REPO_ROOT) not in page and "/tmp/" not in page and str(course) not in page, student
    assert "2.0 / 2.0" in _page(course, "solution") and "0.0 / 3.0" in _page(course, "leaky")
    leaky = _page(course, "leaky")
    assert "Hidden tests failed: ValueError raised" in leaky and "SECRET [" not in leaky and "values=[" not in leaky
    wrong = _page(course, "wrong")
    assert mc.LIKELY in wrong and "CheckFailed: Question" not in wrong  # the check's message, no type or traceback
    assert "only defined further down" in _page(course, "late")
    assert "failed during grading" in _page(course, "broken_demo")


@pytest.mark.slow
@ONE_CLASS
def test_totals_and_report(graded_class):
    course, _ = graded_class
    with open(course / "grades_totals.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert rows["solution"]["max_points"] == "6.0" and rows["leaky"]["total"] == "3.0"
    from PIL import Image

    pngs = sorted((course / "reports").glob("*.png"))
    assert pngs and all(Image.open(p).size[0] <= 1100 for p in pngs), [Image.open(p).size for p in pngs]
    assert "max-width:100%" in (course / "reports" / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.browser
@ONE_CLASS
def test_pages_fit_1280_px_offline_in_chromium(graded_class):
    from jupyterlab_session import chromium_page

    course, _ = graded_class
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = {"feedback-wrong": _page_path(course, "wrong"), "feedback-leaky": _page_path(course, "leaky"),
             "report": course / "reports" / "index.html"}
    with chromium_page(width=1280, height=900) as (_, page):
        outside = []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (outside.append(route.request.url), route.abort()))
        for name, path in pages.items():
            page.goto(path.as_uri())
            seen = page.evaluate("""() => ({width: document.documentElement.scrollWidth,
                view: document.documentElement.clientWidth,
                maths: [...document.querySelectorAll('math')].filter(m => m.getBoundingClientRect().width > 0).length,
                scrollers: [...document.querySelectorAll('pre, div')].filter(e => e.scrollWidth > e.clientWidth + 1
                    && getComputedStyle(e).overflowX !== 'visible').length,
                images: [...document.images].map(i => i.getBoundingClientRect().right)})""")
            page.screenshot(path=str(ARTIFACTS / f"grading-{name}.png"), full_page=True)
            assert seen["width"] <= seen["view"], (name, seen)
            assert seen["scrollers"] == 0, (name, seen)
            assert all(right <= seen["view"] for right in seen["images"]), (name, seen)
            if name.startswith("feedback"):
                assert seen["maths"] >= 3, (name, seen)
        assert outside == []


def _page_path(course: Path, student: str) -> Path:
    return course / "feedback" / student / mc.NAME / f"{mc.NAME}.html"


# ---- plain nbgrader's feedback; grading inside a clone ----------------------------------------------------

@pytest.mark.slow
def test_plain_nbgrader_feedback_has_no_hidden_tests_and_runs_needed_demo_cells(tmp_path):
    from nbgrader.api import Gradebook

    course = mc.make_course(tmp_path / "course")
    mc.write_submissions(course / "submitted", {"alice": mc.submission(A), "bob": CLASS["demo_chain"][0]})
    for command in (["generate_assignment", mc.NAME, "--force"], ["autograde", mc.NAME, "--create", "--force"],
                    ["generate_feedback", mc.NAME, "--force"]):
        result = subprocess.run([sys.executable, "-m", "nbgrader", *command], cwd=course, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    autograded = (course / "autograded" / "alice" / mc.NAME / f"{mc.NAME}.ipynb").read_text()
    assert mc.HIDDEN_INPUT in autograded  # what the page would show without HideHiddenTests
    page = (course / "feedback" / "alice" / mc.NAME / f"{mc.NAME}.html").read_text()
    assert mc.HIDDEN_INPUT not in page and "BEGIN HIDDEN" not in page and "hidden tests: not shown" in page
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in ("alice", "bob"):  # bob's answer reads a name two demo cells compute
            assert gradebook.find_submission_notebook(mc.NAME, mc.NAME, student).score == sum(mc.POINTS.values())


@pytest.mark.slow
def test_grading_in_a_clone_leaves_git_status_clean(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=300)
    course = clone / "autograder"  # the course root instructors use
    (course / "source" / mc.NAME).mkdir(parents=True)
    nbformat.write(mc.source_notebook(), course / "source" / mc.NAME / f"{mc.NAME}.ipynb")
    submissions = mc.write_submissions(tmp_path / "downloads", {"alice": mc.submission(A), "bob": mc.submission()})
    mc.grade(submissions, course, cwd=clone)
    mc.autograder("export", "--totals", "--course-root", str(course), cwd=clone)
    mc.autograder("report", "--course-root", str(course), cwd=clone)
    mc.autograder("feedback", "--course-root", str(course), cwd=clone)
    written = [course / "grades.csv", course / "grades_totals.csv", course / "reports" / "index.html",
               course / "gradebook.db", course / "feedback" / "bob" / mc.NAME / f"{mc.NAME}.html"]
    assert all(path.is_file() for path in written), [p for p in written if not p.is_file()]
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status
