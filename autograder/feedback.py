"""Feedback HTML per student and notebook, with nbgrader's own feedback template, never with hidden tests.

Plain ``nbgrader generate_feedback`` renders the autograded notebook, which
holds the hidden tests and their output. Here the page is rendered from the
*feedback notebook* the judge wrote (``judge.feedback_notebook``): test cells
show their visible part and visible output; a failed hidden test says only
that it failed. The scores come from the grading result, or, when
regenerating after manual grading, from the gradebook.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat

_EXPORTER = []


def exporter():
    """nbconvert's HTMLExporter set up as nbgrader's GenerateFeedback sets it up (built once, reused)."""
    if not _EXPORTER:
        import nbgrader
        from nbconvert.exporters import HTMLExporter
        from traitlets.config import Config

        base = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
        config = Config()
        config.HTMLExporter.template_name = "feedback"
        config.HTMLExporter.extra_template_basedirs = [str(base / "templates")]
        config.HTMLExporter.extra_template_paths = [str(base / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
        html = _FeedbackExporter(config=config)
        from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

        html.register_preprocessor(CSSHTMLHeaderPreprocessor(config=config), enabled=True)
        _EXPORTER.append(html)
    return _EXPORTER[0]


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
                comments: dict[str, str | None] | None = None, late_penalty: float = 0.0) -> str:
    """The feedback page for one notebook; `scores` maps grade_id -> (score or None, max points)."""
    nb = nbformat.from_dict(copy.deepcopy(dict(nb)))
    comments = comments or {}
    total = max_total = 0.0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        grade_id = meta.get("grade_id")
        if meta.get("solution"):
            meta["comment"] = comments.get(grade_id)
        if meta.get("grade"):
            score, points = scores.get(grade_id, (0.0, meta.get("points", 0.0)))
            meta["score"], meta["points"] = score or 0.0, points  # the template cannot show "not graded yet"
    for score, points in scores.values():
        total += score or 0.0
        max_total += points
    resources = {"nbgrader": {"notebook": notebook, "score": total - late_penalty, "max_score": max_total,
                              "late_penalty": late_penalty}}
    body, _ = exporter().from_notebook_node(nb, resources=resources)
    return body


def student_view(autograded, secret_lines: set[str] | None = None):
    """The autograded notebook without hidden test code or output.

    Test cells lose their hidden regions; their outputs are cut to the visible
    ones (the judge records how many in the cell's ``autograder`` metadata; a
    test cell without that record, e.g. graded by plain nbgrader, keeps no
    output at all), and a failed hidden test becomes one line saying so. Any
    text that quotes a hidden line is redacted as a last line of defence.
    """
    from . import integrity

    nb = nbformat.from_dict(copy.deepcopy(dict(autograded)))
    secret = set(secret_lines or ())
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            secret |= integrity.hidden_lines([cell.source])
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        is_test = meta.get("grade") and not meta.get("solution") and cell.cell_type == "code"
        if is_test:
            record = cell.metadata.pop("autograder", None) or {}
            has_hidden = integrity.BEGIN_HIDDEN in cell.source
            cell.source = integrity.strip_hidden(cell.source)
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
                    output["text"] = integrity.redact(output.get("text", ""), secret)
                elif output.get("output_type") == "error":
                    output["evalue"] = integrity.redact(output.get("evalue", ""), secret)
                    output["traceback"] = [integrity.redact(line, secret) for line in output.get("traceback", [])]
                elif "data" in output:
                    for key, text in list(output["data"].items()):
                        if isinstance(text, str) and key.startswith("text"):
                            output["data"][key] = integrity.redact(text, secret)
        if not is_test:
            cell.source = integrity.redact(cell.source, secret)
    return nb


def __getattr__(name):
    """`HideHiddenTests`: an nbgrader preprocessor for plain `nbgrader generate_feedback`, so that its
    pages show no hidden test either. In nbgrader_config.py:

        from autograder.feedback import HideHiddenTests
        c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]

    (Built on first use: importing nbgrader's preprocessors costs a second.)
    """
    if name != "HideHiddenTests":
        raise AttributeError(name)
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTests(NbGraderPreprocessor):
        """Remove hidden tests and their output from autograded notebooks before feedback is rendered."""

        def preprocess(self, nb, resources):
            return student_view(nb), resources

    globals()["HideHiddenTests"] = HideHiddenTests
    return HideHiddenTests


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write through a temporary file and a rename, so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(data, str):
        temporary.write_text(data, encoding="utf-8")
    else:
        temporary.write_bytes(data)
    os.replace(temporary, path)
