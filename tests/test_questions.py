"""The rules for practice questions (README, "Writing questions"), checked on every authored source.

These are static: they read the source notebook's cells. What a grader does with
the answers is proven by test_mutations.py (our grader), test_roundtrip.py
(plain nbgrader) and test_gaming.py (a student who plays only with the checks).
"""

import ast
import re
from collections import Counter

import pytest

from autograder import REPO_ROOT
from autograder.build import read_source
from conftest import NAMES

CHECKS_WITH_RTOL = {"check_close": 1e-5, "check_function": 1e-6}
"""Default rtol of each course_lib.checks function that compares numbers."""

TOLERANCE = re.compile(r"relative tolerance(?: of)?\s+\$?([0-9.]+(?:e-?[0-9]+)?)\s*(%?)", re.I)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", re.S)


def questions(name: str) -> list[dict]:
    """One entry per question: its text, solution cell, test cell, points and variants."""
    source, variants = read_source(name)
    out, text = [], ""
    for cell in source.cells:
        if cell.cell_type == "markdown":
            if re.search(r"^#+ .*Question \d+", cell.source, re.M):
                text = cell.source
            elif text:
                text += "\n" + cell.source
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            out.append({"id": meta["grade_id"], "text": text, "solution": cell.source,
                        "variants": [v for v in variants if v.grade_id == meta["grade_id"]]})
            text = ""
        elif meta.get("grade"):
            question = next(q for q in out if f"{q['id']}_test" == meta["grade_id"])
            question.update(test=cell.source, points=float(meta["points"]))
    return out


def calls(code: str):
    """(function name, call node) for every call in `code`."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call):
            func = node.func
            yield (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")), node


def stated_tolerance(text: str) -> float | None:
    found = {float(m.group(1)) / (100 if m.group(2) else 1) for m in TOLERANCE.finditer(text)}
    assert len(found) <= 1, f"the question states several tolerances: {sorted(found)}"
    return found.pop() if found else None


def used_tolerances(test: str) -> set[float]:
    used = set()
    for fname, node in calls(test):
        keywords = {k.arg: k.value for k in node.keywords}
        for key in ("rtol", "rel_tol"):
            if key in keywords:
                value = ast.literal_eval(keywords[key])
                used.add(float(value))
        if fname in CHECKS_WITH_RTOL and "rtol" not in keywords:
            used.add(CHECKS_WITH_RTOL[fname])
    return used


def is_choice(question: dict) -> bool:
    return any(fname == "check_choice" for fname, _ in calls(question["test"]))


ALL = [(name, q) for name in NAMES for q in questions(name)]


@pytest.mark.parametrize("name,question", ALL, ids=[f"{n}-{q['id']}" for n, q in ALL])
def test_each_question_has_its_mutation_suite(name, question):
    mistakes = [v for v in question["variants"] if not v.right]
    rights = [v for v in question["variants"] if v.right]
    assert len(mistakes) >= 3 and len(rights) >= 1, \
        f"{name} {question['id']}: {len(mistakes)} mistake= and {len(rights)} right= cells (3+ and 1+ needed)"
    assert len({m.label for m in mistakes}) == len(mistakes), f"{name} {question['id']}: mistakes share a label"


@pytest.mark.parametrize("name,question", ALL, ids=[f"{n}-{q['id']}" for n, q in ALL])
def test_stated_visible_and_hidden_tolerances_are_one(name, question):
    used = used_tolerances(question["test"])
    stated = stated_tolerance(question["text"])
    if not used:
        return  # nothing in this test compares numbers
    assert stated is not None, (f"{name} {question['id']}: the test compares numbers with rtol {sorted(used)}, "
                                "but the question states no 'relative tolerance ...'")
    assert all(abs(u - stated) <= 1e-12 * max(1.0, stated) for u in used), \
        f"{name} {question['id']}: the question states {stated:g}, its checks use {sorted(used)}"


@pytest.mark.parametrize("name,question", ALL, ids=[f"{n}-{q['id']}" for n, q in ALL])
def test_visible_checks_hold_no_reference_implementation(name, question):
    visible = HIDDEN.sub("", question["test"])
    defined = [node.name for node in ast.walk(ast.parse(visible))
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not defined, (f"{name} {question['id']}: the visible check defines {defined}; a function there is "
                         "an oracle a student can paste as the answer. Precompute the public case's values, "
                         "or move the reference into the hidden tests.")


@pytest.mark.parametrize("name", NAMES)
def test_points_come_from_functions(name):
    """Only answers that are functions, graded on hidden inputs, carry more than 10% of the points."""
    qs = questions(name)
    total = sum(q["points"] for q in qs)
    searchable = {q["id"]: q["points"] for q in qs
                  if is_choice(q) or not re.search(r"^def \w+\(", q["solution"], re.M)}
    assert sum(searchable.values()) <= 0.1 * total + 1e-9, \
        (f"{name}: {sum(searchable.values()):g} of {total:g} points come from answers that are not functions "
         f"or are choices ({searchable}); at most 10% may.")


def choice_options(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*[-*]\s*\*\*([A-F])\.\*\*\s*(.+)$", text, re.M))


CHOICES = [(name, q) for name, q in ALL if any(f == "check_choice" for f, _ in calls(q["test"]))]


@pytest.mark.parametrize("name,question", CHOICES, ids=[f"{n}-{q['id']}" for n, q in CHOICES])
def test_choice_options_are_balanced(name, question):
    options = choice_options(question["text"])
    assert len(options) >= 3, f"{name} {question['id']}: options not found as '- **A.** text' lines"
    lengths = sorted(len(text) for text in options.values())
    assert lengths[-1] <= 1.6 * lengths[0], \
        f"{name} {question['id']}: option lengths {lengths}: the longest stands out"


def right_option(question: dict) -> str:
    hidden = "".join(HIDDEN.findall(question["test"]))
    for fname, node in calls(hidden):
        if fname == "check_choice":
            return next(ast.literal_eval(k.value) for k in node.keywords if k.arg == "expected")
    raise AssertionError(f"{question['id']}: the hidden test gives no expected= option")


def test_right_options_are_not_a_pattern():
    """Across the course the right option is neither mostly one letter nor mostly the longest."""
    if not CHOICES:
        return
    letters = Counter(right_option(q) for _, q in CHOICES)
    longest = sum(max(choice_options(q["text"]).items(), key=lambda kv: len(kv[1]))[0] == right_option(q)
                  for _, q in CHOICES)
    assert letters.most_common(1)[0][1] <= max(2, len(CHOICES) // 2), f"right options by letter: {letters}"
    assert longest <= max(1, len(CHOICES) // 2), f"the right option is the longest in {longest} of {len(CHOICES)}"


def test_digests_are_never_shared():
    seen = Counter()
    for _, question in ALL:
        seen.update(re.findall(r"expected_digests?=.*?['\"]([0-9a-f]{16})['\"]", question["test"]))
    shared = [d for d, count in seen.items() if count > 1]
    assert not shared, f"digests used by more than one question: {shared}"


def point_shares(name: str) -> tuple[int, float, float, float]:
    """(questions, points, points graded on hidden inputs of a function, points of formative choices)."""
    qs = questions(name)
    choice = sum(q["points"] for q in qs if is_choice(q))
    functions = sum(q["points"] for q in qs if not is_choice(q) and re.search(r"^def \w+\(", q["solution"], re.M))
    return len(qs), sum(q["points"] for q in qs), functions, choice


def test_readme_states_what_each_notebook_grades():
    """The instructor guide's table ("What a score measures") matches the sources."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d\d) \| (\d+ \| \d+ \| \d+ \| \d+) \|$", readme, re.M))
    for name in NAMES:
        count, total, functions, choice = point_shares(name)
        expected = f"{count} | {total:g} | {functions:g} | {choice:g}"
        assert rows.get(name[:2]) == expected, \
            f"README 'What a score measures': row {name[:2]} should read | {name[:2]} | {expected} |"
