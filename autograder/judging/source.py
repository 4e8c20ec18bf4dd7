"""The source notebook as the judge sees it (solutions and hidden tests included): each cell's kind,
points, and whether the judge runs it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nbformat
from nbgrader.utils import is_grade, is_solution

from . import hidden
from .demo import DEMO_TAG
from .names import bound_names, demo_dependencies, free_names, used_names


@dataclass
class SourceCell:
    index: int
    cell_type: str
    source: str
    grade_id: str | None
    kind: str  # test | solution | manual | locked | plain | demo | markdown
    points: float = 0.0
    needed: bool = True  # a trusted cell the judge runs (demo cells: only when a test needs one)
    exports: bool = True  # a test cell that binds names a later cell uses (then its outcome is never cached)


@dataclass
class SourceModel:
    """What the judge needs to know about a source notebook (solutions and hidden tests included)."""

    name: str
    cells: list[SourceCell]
    answer_names: list[str]
    sha256: str

    @classmethod
    def from_notebook(cls, name: str, nb) -> "SourceModel":
        cells = []
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            grade_id = meta.get("grade_id")
            if cell.cell_type != "code":
                kind = "manual" if is_grade(cell) else "locked" if meta.get("locked") and grade_id else "markdown"
            elif is_grade(cell) and is_solution(cell):
                kind = "manual"
            elif is_grade(cell):
                kind = "test"
            elif is_solution(cell):
                kind = "solution"
            elif DEMO_TAG in cell.metadata.get("tags", []):
                kind = "demo"
            elif grade_id and meta.get("locked"):
                kind = "locked"
            else:
                kind = "plain"
            cells.append(SourceCell(index, cell.cell_type, cell.source, grade_id, kind,
                                    float(meta.get("points", 0) or 0)))
        answers = []
        for cell in cells:
            if cell.kind == "solution":
                for name in sorted(bound_names(cell.source, imports=False)):
                    if name not in answers:
                        answers.append(name)
        later_uses: set[str] = set()
        for cell in reversed(cells):
            if cell.cell_type == "code" and cell.kind != "markdown":
                if cell.kind == "test":
                    cell.exports = bool(bound_names(cell.source) & later_uses) or "*" in later_uses
                later_uses |= free_names(cell.source)
        digest = hashlib.sha256(nbformat.writes(nb).encode()).hexdigest()
        model = cls(name, cells, answers, digest)
        model._mark_demos()
        return model

    def by_id(self, grade_id: str) -> SourceCell | None:
        return next((c for c in self.cells if c.grade_id == grade_id), None)

    def graded(self) -> list[SourceCell]:
        """Cells that carry points: autograded tests and manually graded answers."""
        return [c for c in self.cells if c.kind in ("test", "manual")]

    def prune(self) -> None:
        """Mark the trusted code cells no test needs (by names defined and used), so the judge skips them;
        a demo cell runs when a test or a needed cell reads a name only that demo cell defines."""
        for cell in self.cells:
            if cell.kind == "demo":
                cell.needed = False
        while True:
            needed = set()
            for cell in reversed(self.cells):
                if cell.kind == "test" or (cell.kind == "demo" and cell.needed):
                    needed |= used_names(cell.source)
                elif cell.kind in ("plain", "locked") and cell.cell_type == "code":
                    cell.needed = bool(bound_names(cell.source) & needed)
                    if cell.needed:
                        needed |= used_names(cell.source)
            before = {c.index for c in self.cells if c.kind == "demo" and c.needed}
            self._mark_demos()
            if {c.index for c in self.cells if c.kind == "demo" and c.needed} == before:
                return

    def _mark_demos(self) -> None:
        """Mark the demo cells the judge must run: what its tests (and the trusted cells it runs) read
        that only a demo cell defines. Answers count as defined (they come from the kernel)."""
        kinds = ["demo" if c.kind == "demo" else "code" if c.cell_type == "code" and c.kind in (
            "plain", "locked", "test", "solution") else "" for c in self.cells]
        consumers = [c.index for c in self.cells if c.kind == "test" or (
            c.kind in ("plain", "locked") and c.cell_type == "code" and c.needed)]
        demos, _ = demo_dependencies(kinds, [c.source for c in self.cells], consumers)
        for cell in self.cells:
            if cell.kind == "demo":
                cell.needed = cell.index in demos

    def hidden_test_lines(self) -> set[str]:
        return hidden.hidden_lines([c.source for c in self.cells if c.kind == "test"])
