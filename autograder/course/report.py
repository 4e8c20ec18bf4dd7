"""The grading report: which questions the class found hard, as plots (PNG) and one HTML page.

Per assignment: for every question, the share of students with full, partial
and no credit (and how many are flagged or still need manual grading), and
the distribution of total scores. Across assignments: the hardest questions,
by mean fraction of points earned. Scores come from the gradebook, so manual
grades count.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from . import late
from .gradebook import csv_rows

# Okabe-Ito colours, one meaning each: credit (full, partial, none, under review), the distribution of
# totals, and the mean score of the hardest questions.
COLORS = {"full": "#009E73", "partial": "#E69F00", "zero": "#D55E00", "review": "#999999", "totals": "#0072B2",
          "mean": "#CC79A7"}
WIDTH_INCHES, DPI = 10.5, 100  # 1050 px: fits the page (max 1100 px) in a 1280 px window


def summarize(rows: list[dict]) -> dict:
    """assignment -> {"questions": {(notebook, question): stats}, "totals": {student: (score, max)}}."""
    out = defaultdict(lambda: {"questions": {}, "totals": defaultdict(lambda: [0.0, 0.0])})
    for row in rows:
        assignment = out[row["assignment"]]
        if row["status"] == late.STATUS:  # not a question: it only lowers the student's total
            assignment["totals"][row["student_id"]][0] += float(row["score"])
            continue
        key = (row["notebook"], row["question"])
        stats = assignment["questions"].setdefault(key, {"full": 0, "partial": 0, "zero": 0, "review": 0,
                                                         "fractions": [], "max": row["max_score"]})
        score = row["score"]
        if score == "" or score is None or row["status"] != "graded":
            stats["review"] += 1
        if score != "" and score is not None:
            fraction = float(score) / float(row["max_score"]) if row["max_score"] else 0.0
            stats["fractions"].append(fraction)
            if row["status"] == "graded":
                stats["full" if fraction >= 1 else "zero" if fraction <= 0 else "partial"] += 1
        total = assignment["totals"][row["student_id"]]
        total[0] += float(score or 0.0)
        total[1] += float(row["max_score"])
    return out


def _label(notebook: str, question: str) -> str:
    return question[:-len("_test")] if question.endswith("_test") else question


def plot_assignment(name: str, data: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    questions = sorted(data["questions"])
    labels = [_label(*q) for q in questions]
    counted = [sum(data["questions"][q][k] for k in ("full", "partial", "zero", "review")) or 1 for q in questions]
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH_INCHES, 0.45 * len(questions) + 2.6),
                                      layout="constrained", gridspec_kw={"width_ratios": [3, 2]})
    start = np.zeros(len(questions))
    names = {"full": "full marks", "partial": "partial credit", "zero": "no credit",
             "review": "flagged / needs review"}
    for kind in ("full", "partial", "zero", "review"):
        share = np.array([data["questions"][q][kind] / n for q, n in zip(questions, counted)]) * 100
        left.barh(labels, share, left=start, color=COLORS[kind], label=names[kind])
        start += share
    left.invert_yaxis()
    left.set_xlim(0, 100)
    left.set_xlabel("% of students")
    left.set_title(f"{name}: score per question (% of students)")
    left.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=9)
    totals = np.array([score / possible if possible else 0 for score, possible in data["totals"].values()])
    right.hist(totals * 100, bins=np.linspace(0, 100, 21), color=COLORS["totals"], edgecolor="white")
    right.set_xlim(0, 100)
    right.set_xlabel("total score (% of points)")
    right.set_ylabel("students (count)")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole students
    right.set_title(f"Total scores: {len(totals)} students, median {np.median(totals) * 100:.0f}%")
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return [path]


def plot_hardest(summary: dict, folder: Path, *, top: int = 15) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = []
    for assignment, data in summary.items():
        for (notebook, question), stats in data["questions"].items():
            if stats["fractions"]:
                means.append((sum(stats["fractions"]) / len(stats["fractions"]),
                              f"{assignment} · {_label(notebook, question)}"))
    if not means:
        return None
    means = sorted(means)[:top]
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES * 0.8, 0.4 * len(means) + 1.5), layout="constrained")
    ax.barh([m[1] for m in means], [m[0] * 100 for m in means], color=COLORS["mean"])
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("mean score (% of the question's points)")
    ax.set_title(f"Hardest questions: the {len(means)} lowest mean scores (%)")
    for y, (mean, _) in enumerate(means):
        ax.text(mean * 100 + 1, y, f"{mean * 100:.0f}%", va="center", fontsize=9)
    path = folder / "hardest_questions.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_report(course, folder: Path, *, assignment: str | None = None) -> Path:
    rows = csv_rows(course, assignment=assignment)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    images = []
    for name, data in sorted(summary.items()):
        images += plot_assignment(name, data, folder)
    hardest = plot_hardest(summary, folder)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grading report</title>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "img{max-width:100%;height:auto}table{border-collapse:collapse;max-width:100%}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;overflow-wrap:anywhere}"
             "th:first-child,td:first-child{text-align:left}</style></head><body><h1>Grading report</h1>"]
    if hardest:
        parts.append(f"<h2>Hardest questions</h2><img src='{hardest.name}' alt='hardest questions'>")
    for name, data in sorted(summary.items()):
        parts.append(f"<h2>{html.escape(name)}</h2><img src='{name}.png' alt='{html.escape(name)} scores'>")
        parts.append("<table><tr><th>question</th><th>full</th><th>partial</th><th>none</th>"
                     "<th>flagged / review</th><th>mean</th></tr>")
        for (notebook, question), stats in sorted(data["questions"].items()):
            mean = sum(stats["fractions"]) / len(stats["fractions"]) if stats["fractions"] else 0
            parts.append(f"<tr><td>{html.escape(_label(notebook, question))}</td><td>{stats['full']}</td>"
                         f"<td>{stats['partial']}</td><td>{stats['zero']}</td><td>{stats['review']}</td>"
                         f"<td>{mean * 100:.0f}%</td></tr>")
        parts.append("</table>")
    if not summary:
        parts.append("<p>No graded submissions yet.</p>")
    parts.append("</body></html>")
    page = folder / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
