"""Feedback HTML per student and notebook, built on nbgrader's feedback template, never with hidden tests.

Plain ``nbgrader generate_feedback`` renders the autograded notebook, which
holds the hidden tests and their output. Here the page is rendered from the
*feedback notebook* the judge wrote (``judge.feedback_notebook``): test cells
show their visible part and visible output; a failed hidden test says only
which kind of failure it was. The scores come from the grading result, or,
when regenerating after manual grading, from the gradebook.

What a student reads (``templates/course_feedback``): a summary naming each
question and its score; lines that wrap at any width; maths rendered to
MathML on the grading machine (``latex2mathml``: no script, no network);
failed checks as their message, never a traceback or a path of the grading
machine. Rendering is bounded: oversized cells and outputs are cut with a
note, and a page that still takes too long is replaced by a plain summary.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import html
import re
import signal
import threading
from pathlib import Path

import nbformat
from nbgrader.utils import is_grade, is_solution

from . import hidden

MAX_CELL_CHARS = 50_000  # code shown per cell
MAX_MARKDOWN_CHARS = 20_000  # text of one markdown cell (else a note; markdown costs superlinear time)
MAX_PAGE_MARKDOWN = 100_000  # markdown on one page, in total (a course notebook has under 20,000)
MAX_OUTPUT_CHARS = 20_000  # text shown per output
MAX_PAGE_CHARS = 1_000_000  # sources and outputs shown on one page, in total
RENDER_SECONDS = 30.0  # beyond this a page becomes the plain summary (_summary_page)

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def exporter():
    """nbconvert's HTMLExporter with the course's feedback template (on nbgrader's; built once, reused)."""
    import nbgrader
    from nbconvert.exporters import HTMLExporter  # noqa: F401 - registers the exporter's templates
    from traitlets.config import Config

    base = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    config = Config()
    config.HTMLExporter.template_name = "course_feedback"
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATES), str(base / "templates")]
    config.HTMLExporter.filters = {"markdown2html": markdown_html}
    config.HTMLExporter.exclude_input_prompt = config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.extra_template_paths = [  # bootstrap.min.css, and feedback/index.html.j2 to extend
        str(base / "static" / "node_modules" / "bootstrap" / "dist" / "css"), str(base / "templates")]
    html = _FeedbackExporter(config=config)
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

    html.register_preprocessor(CSSHTMLHeaderPreprocessor(config=config), enabled=True)
    return html


def _exporter_class():
    from nbconvert.exporters import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class FeedbackExporter(HTMLExporter):
        """HTMLExporter without its final BeautifulSoup pass (accessibility attributes on lab-template
        elements this classic template does not produce), which took half the rendering time."""

        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            self.register_filter("highlight_code", self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
            resources = self._init_resources(resources)
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    return FeedbackExporter


def _FeedbackExporter(**kwargs):
    return _exporter_class()(**kwargs)


def render_html(nb, *, notebook: str, scores: dict[str, tuple[float | None, float]],
                comments: dict[str, str | None] | None = None, late_penalty: float = 0.0,
                time_limit: float = RENDER_SECONDS) -> str:
    """The feedback page for one notebook; `scores` maps grade_id -> (score or None, max points)."""
    nb = nbformat.from_dict(copy.deepcopy(dict(nb)))
    page_notes = page_safe(nb)
    comments = comments or {}
    titles = question_titles(nb)
    total = max_total = 0.0
    questions = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        grade_id = meta.get("grade_id")
        meta["title"] = inline_html(titles.get(grade_id, _plain_label(grade_id)))  # HTML from here on
        if meta.get("solution"):
            meta["comment"] = comments.get(grade_id)
        if meta.get("grade"):
            score, points = scores.get(grade_id, (0.0, meta.get("points", 0.0)))
            meta["score"], meta["points"] = score or 0.0, points  # the template cannot show "not graded yet"
            status = "full" if (score or 0) >= points else "partial" if (score or 0) > 0 else "none"
            questions.append({"grade_id": grade_id, "title": meta["title"], "score": score or 0.0,
                              "points": points, "status": status})
    for score, points in scores.values():
        total += score or 0.0
        max_total += points
    resources = {"nbgrader": {"notebook": notebook, "score": total - late_penalty, "max_score": max_total,
                              "late_penalty": late_penalty, "questions": questions, "page_notes": page_notes}}
    try:
        with _time_limit(time_limit):
            body, _ = exporter().from_notebook_node(nb, resources=resources)
    except RenderTimeout:
        resources["nbgrader"]["page_notes"] = page_notes + [
            f"This page took longer than {time_limit:g} s to lay out, so it shows the notebook as plain text."]
        body = _summary_page(nb, resources["nbgrader"])
    return body


class RenderTimeout(Exception):
    """A feedback page took longer than its time limit to render."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise RenderTimeout in this (main) thread after `seconds`; elsewhere, only the size limits apply."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise RenderTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- what the page shows --------------------------------------------------------------------------------

_QUESTION = re.compile(r"^\s{0,3}#{1,6}\s*(Question\s+\d+\b.*?)\s*#*\s*$", re.M)
_POINTS = re.compile(r"\s*\(\s*\d+(?:\.\d+)?\s*points?\s*\)", re.I)


def question_titles(nb) -> dict[str, str]:
    """grade_id -> the question's title from the notebook ("Question 3: how deep ...", points dropped),
    taken from the last "Question N" heading before the cell; a second test after one heading keeps its id."""
    titles, heading, used = {}, None, False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = _QUESTION.findall(cell.source)
            if found:
                heading, used = _POINTS.sub("", found[-1]).replace("**", "").strip(), False
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if not grade_id or heading is None:
            continue
        if is_grade(cell) and not is_solution(cell):
            if not used:
                titles[grade_id], used = heading, True
        elif not used:
            titles[grade_id] = heading
    return titles


def _plain_label(grade_id: str | None) -> str:
    label = str(grade_id or "")
    return label[:-len("_test")] if label.endswith("_test") else label


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# An absolute path of the grading machine (/work/..., /tmp/..., /usr/lib/...): shown as its last part.
_PATH = re.compile(r"(?<![\w/.:~-])/(?:[^\s/'\"<>:,()\[\]]+/)+([^\s/'\"<>:,()\[\]]*)")
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:(?:[ \t]+.*|)\n)*", re.M)
_MESSAGE_ONLY = ("CheckFailed", "AssertionError")  # a failed check: its message is all a student needs


def scrub(text: str) -> str:
    """Text as a student may see it: no terminal colours, no traceback, no path of the grading machine."""
    text = _ANSI.sub("", str(text))
    text = _TRACEBACK.sub("", text)
    return _PATH.sub(lambda m: m.group(1) or "/", text)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit:,} more characters not shown ...]\n"


def error_message(output: dict) -> str:
    """A failed cell's error as one message: a failed check's own text, else "Type: message"."""
    ename, evalue = str(output.get("ename", "Error")), scrub(output.get("evalue", "")).strip()
    if ename in _MESSAGE_ONLY:
        return evalue or "a check failed"
    return f"{ename}: {evalue}" if evalue else ename


def page_safe(nb) -> list[str]:
    """Make `nb` (in place) fit for a student's page within the size limits; returns notes on what was cut.

    Errors become their message (no traceback), paths of the grading machine their last part, and
    cells and outputs beyond the limits are cut or replaced by a note, so rendering stays fast.
    """
    notes, budget, markdown = [], MAX_PAGE_CHARS, MAX_PAGE_MARKDOWN
    for cell in nb.cells:
        source = cell.get("source", "")
        if cell.cell_type == "markdown":
            if len(source) > max(0, min(MAX_MARKDOWN_CHARS, markdown, budget)):
                cell.source = f"*(A text cell of {len(source):,} characters: too long to show here.)*"
                notes.append("Some cells were too long to show in full; they are cut where marked.")
            markdown -= len(cell.source)
        elif len(source) > max(0, min(MAX_CELL_CHARS, budget)):
            cell.source = _cut(source, max(0, min(MAX_CELL_CHARS, budget)))
            notes.append("Some cells were too long to show in full; they are cut where marked.")
        budget -= len(cell.source)
        outputs = []
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                message = _cut(error_message(output), MAX_OUTPUT_CHARS)
                output.update(ename=str(output.get("ename", "Error")), evalue=message, traceback=[message])
                size = len(message)
            elif kind == "stream":
                output["text"] = _cut(scrub(output.get("text", "")), max(0, min(MAX_OUTPUT_CHARS, budget)))
                size = len(output["text"])
            else:
                data = output.get("data", {})
                for key in [k for k in data if k in ("text/html", "application/javascript")
                            or k.startswith("application/vnd")]:
                    del data[key]  # a student's markup or script never reaches the page
                if isinstance(data.get("text/plain"), str):
                    data["text/plain"] = _cut(scrub(data["text/plain"]), MAX_OUTPUT_CHARS)
                size = sum(len(v) for v in data.values() if isinstance(v, str))
                if size > budget:
                    continue
            budget -= size
            outputs.append(output)
        if cell.cell_type == "code":
            cell.outputs = outputs
    if budget < 0:
        notes.append("This page reached its size limit: later outputs are cut.")
    return sorted(set(notes))


# ---- maths, rendered here: MathML in the page, no script and no network ---------------------------------

# As Jupyter's MathJax reads maths: $$...$$, and $...$ within a paragraph (code spans and blocks excepted).
_MATH = re.compile(r"(?P<code>```.*?```|~~~.*?~~~|`[^`\n]*`)"
                   r"|(?<!\\)\$\$(?P<display>.+?)\$\$"
                   r"|(?<![\\$])\$(?P<inline>(?:[^$\\\n]|\\.|\n(?![ \t]*\n))+?)\$", re.S)


_PLACEHOLDER = re.compile(r"MATHMLPLACEHOLDER\d+X")


def _mathml(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - TeX the converter does not know: show it as code, not as raw $...$
        return f"<code>{html.escape(tex.strip())}</code>"


def markdown_html(source: str) -> str:
    """Markdown to HTML with its $...$ and $$...$$ maths as MathML (code spans and blocks left alone)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    maths = {}

    def protect(match):
        if match.group("code") is not None:
            return match.group(0)
        key = f"MATHMLPLACEHOLDER{len(maths)}X"
        display = match.group("display") is not None
        maths[key] = _mathml(match.group("display" if display else "inline"), display)
        return key

    rendered = markdown2html_mistune(_MATH.sub(protect, source))
    if maths:  # inside a tag (a heading's anchor id) a formula becomes a word; elsewhere its MathML
        rendered = re.sub(r"<[^>]*>", lambda m: _PLACEHOLDER.sub("math", m.group(0)), rendered)
        rendered = _PLACEHOLDER.sub(lambda m: maths.get(m.group(0), ""), rendered)
    return rendered


def inline_html(text: str) -> str:
    """A one-line title as HTML: escaped text, its maths as MathML."""
    out, last = [], 0
    for match in _MATH.finditer(text):
        out.append(html.escape(text[last:match.start()]))
        if match.group("code") is not None:
            out.append(f"<code>{html.escape(match.group(0).strip('`'))}</code>")
        else:
            display = match.group("display") is not None
            out.append(_mathml(match.group("display" if display else "inline"), False))
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _summary_page(nb, info: dict) -> str:
    """A plain page (no markdown, no highlighting): the scores, then each answer and check as text."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(info['notebook'])}"
             "</title><style>body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
             "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f7f7;padding:.5em}</style></head><body>",
             f"<h1>{html.escape(info['notebook'])}: {info['score']:.4g} of {info['max_score']:.4g} points</h1><ul>"]
    for question in info["questions"]:
        parts.append(f"<li>{question['title']}: {question['score']:.4g} / {question['points']:.4g}</li>")
    parts.append("</ul>")
    parts += [f"<p><em>{html.escape(note)}</em></p>" for note in info["page_notes"]]
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and not is_solution(cell):
            parts.append(f"<p style='white-space:pre-wrap'>{html.escape(_cut(cell.source, 5000))}</p>")
            continue
        if is_grade(cell) or is_solution(cell):
            label = "Your answer" if is_solution(cell) else "Check"
            parts.append(f"<h2>{label}: {meta.get('title', '')}</h2>")
        parts.append(f"<pre>{html.escape(_cut(cell.source, 5000))}</pre>")
        for output in cell.get("outputs", []):
            text = output.get("text") or (output.get("evalue") if output.get("output_type") == "error" else None) \
                or output.get("data", {}).get("text/plain", "")
            if text:
                parts.append(f"<pre>{html.escape(_cut(str(text), 5000))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def student_view(autograded, secret_lines: set[str] | None = None):
    """The autograded notebook without hidden test code or output.

    Test cells lose their hidden regions; their outputs are cut to the visible
    ones (the judge records how many in the cell's ``autograder`` metadata; a
    test cell without that record, e.g. graded by plain nbgrader, keeps no
    output at all), and a failed hidden test becomes one line saying so. Any
    text that quotes a hidden line is redacted as a last line of defence.
    """
    nb = nbformat.from_dict(copy.deepcopy(dict(autograded)))
    secret = set(secret_lines or ())
    for cell in nb.cells:
        if is_grade(cell) and not is_solution(cell) and cell.cell_type == "code":
            secret |= hidden.hidden_lines([cell.source])
    for cell in nb.cells:
        is_test = is_grade(cell) and not is_solution(cell) and cell.cell_type == "code"
        if is_test:
            record = cell.metadata.pop("autograder", None) or {}
            has_hidden = hidden.BEGIN_HIDDEN in cell.source
            cell.source = hidden.strip_hidden(cell.source)
            if "visible_outputs" in record:
                cell.outputs = cell.outputs[:int(record["visible_outputs"])]
            elif has_hidden:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                       text="(output not shown: it may quote hidden tests)\n")]
            if record.get("hidden_failed"):
                cell.outputs.append(nbformat.v4.new_output("stream", name="stderr",
                                                           text=f"Hidden tests failed: {record['hidden_failed']}\n"))
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    output["text"] = hidden.redact(output.get("text", ""), secret)
                elif output.get("output_type") == "error":
                    output["evalue"] = hidden.redact(output.get("evalue", ""), secret)
                    output["traceback"] = [hidden.redact(line, secret) for line in output.get("traceback", [])]
                elif "data" in output:
                    for key, text in list(output["data"].items()):
                        if isinstance(text, str) and key.startswith("text"):
                            output["data"][key] = hidden.redact(text, secret)
        if not is_test:
            cell.source = hidden.redact(cell.source, secret)
    return nb


def __getattr__(name):
    """`HideHiddenTests`: an nbgrader preprocessor for plain `nbgrader generate_feedback`, so that its
    pages show no hidden test either. In nbgrader_config.py:

        from autograder.judging.feedback import HideHiddenTests
        c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]

    (Built on first use: importing nbgrader's preprocessors costs a second.)
    """
    if name != "HideHiddenTests":
        raise AttributeError(name)
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTests(NbGraderPreprocessor):
        """Remove hidden tests and their output from autograded notebooks before feedback is rendered;
        errors become their message, with no traceback or path of the grading machine."""

        def preprocess(self, nb, resources):
            nb = student_view(nb)
            page_safe(nb)
            return nb, resources

    globals()["HideHiddenTests"] = HideHiddenTests
    return HideHiddenTests
