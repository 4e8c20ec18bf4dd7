"""The grading plan of a notebook: what calibration decided (Plan), and per submission which of the
student's cells grading skips and which demo cells it runs after all."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .alignment import Step
from .names import bound_names, demo_dependencies, parse_cell, used_names
from .source import SourceModel


@dataclass
class Plan:
    """Calibration decisions for one source notebook (see course/calibration.py)."""

    prune: bool = True
    kernel_tests: list[str] = field(default_factory=list)  # tests that must run inside the kernel

    def to_json(self):
        return {"prune": self.prune, "kernel_tests": list(self.kernel_tests)}


def plan_steps(steps: list[Step], model: SourceModel, plan: Plan) -> tuple[set[int], dict[str, str]]:
    """Which of the student's cells grading skips, and which demo cells it runs after all.

    Jupyter runs every cell; grading skips demo cells and unchanged cells nothing needs. A demo cell
    runs (becomes a student step) when a cell that runs, or a test run in the kernel, reads a name
    that only that demo cell defines before it; what the demo cell reads is then needed too. Returns
    the skipped positions and, for names no earlier cell defines, a sentence saying why (used when
    a NameError comes from one).
    """
    def kind(step: Step) -> str:
        if step.kind == "demo" or step.demo:
            return "demo"
        if step.kind == "student" or (step.kind == "test" and step.grade_id in plan.kernel_tests):
            return "code"
        return ""

    kinds = [kind(s) for s in steps]
    sources = [s.cell.get("source", "") if s.cell.get("cell_type") == "code" else "" for s in steps]
    demos: set[int] = set()
    while True:
        skipped = unneeded_student_cells(steps, model, also_run=demos) if plan.prune else set()
        consumers = [i for i, s in enumerate(steps) if i not in skipped and (
            s.kind == "student" or (s.kind == "test" and s.grade_id in plan.kernel_tests))]
        found, unresolved = demo_dependencies(kinds, sources, consumers)
        if found <= demos:
            break
        demos |= found
    for position in demos:
        steps[position].kind, steps[position].demo = "student", True
    notes = {}
    source_demo_names = set().union(*[bound_names(c.source) for c in model.cells if c.kind == "demo"] or [set()])
    for name, reader in unresolved.items():
        later = next((j for j in range(reader + 1, len(steps)) if kinds[j] and name in bound_names(sources[j])), None)
        test = next((s.grade_id for s in steps[:reader] if s.kind == "test" and s.grade_id not in plan.kernel_tests
                     and name in bound_names(s.cell["source"])), None)
        if later is not None:
            where = "a demonstration cell" if kinds[later] == "demo" else "a cell"
            notes[name] = (f"`{name}` is only defined further down, in {where} that starts "
                           f"`{first_line(sources[later])}`; grading runs the notebook from the top, as "
                           "Jupyter's Restart & Run All does")
        elif test is not None:
            notes[name] = (f"`{name}` is set by the check cell of {test}, which the grader runs apart from your "
                           "code: compute it in your own cell")
        elif name in source_demo_names:
            notes[name] = f"`{name}` comes from a demonstration cell that is no longer in your notebook"
    return skipped, notes


def first_line(source: str, width: int = 50) -> str:
    line = next((text.strip() for text in source.splitlines() if text.strip()), "")
    return line if len(line) <= width else line[:width - 3] + "..."


SIDE_EFFECT_CALL = re.compile(r"(seed|^set_|^use_|rcParams|setattr|register|install|enable|disable|configure)")


def unneeded_student_cells(steps: list[Step], model: SourceModel, also_run=frozenset()) -> set[int]:
    """Positions of the student's cells that grading can skip: unchanged copies of the source's own
    (non-demo) cells whose names no code the student wrote (nor a demo cell in `also_run`) uses, and
    that change no global state.

    Grading cost then follows the questions: a cell that only builds the data
    for a plot the student reads (a "diagnose" question) costs nothing. The
    calibration run checks the solution still gets full marks this way.
    """
    source_texts = {c.source.rstrip() for c in model.cells if c.kind == "plain" and c.cell_type == "code"}
    candidates, needed = {}, set()
    for position, step in enumerate(steps):
        if step.kind != "student" and position not in also_run:
            continue
        text = step.cell["source"].rstrip()
        if step.grade_id is None and text in source_texts and not _has_side_effects(text):
            defined = bound_names(text)
            if defined:
                candidates[position] = (defined, used_names(text))
                continue
        needed |= used_names(text)
    changed = True
    while changed:
        changed = False
        for position, (defined, used) in list(candidates.items()):
            if defined & needed:
                needed |= used
                del candidates[position]
                changed = True
    return set(candidates)


def _has_side_effects(source: str) -> bool:
    """True when a cell calls something that changes global state (seeds, defaults, settings)."""
    tree = parse_cell(source)
    if tree is None:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            private = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)  # Generator().manual_seed(1)
            if SIDE_EFFECT_CALL.search(name) and not private:
                return True
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return True
    return False
