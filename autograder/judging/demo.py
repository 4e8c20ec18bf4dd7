"""nbgrader preprocessors the course adds to plain nbgrader."""

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution

from .names import demo_dependencies

DEMO_TAG = "demo"
SKIPPED_SOURCE = "# (demonstration cell: not run during grading)"


def is_demo(cell) -> bool:
    """A cell that only demonstrates (tag "demo") and is neither a solution nor a test cell."""
    return (cell.cell_type == "code" and DEMO_TAG in cell.metadata.get("tags", [])
            and not is_grade(cell) and not is_solution(cell))


def skip_demo_cells(nb):
    """Blank the demo cells in place, so grading costs what the questions cost; returns `nb`.

    A demo cell that a cell which runs needs (it reads a name that only that demo cell defines
    before it, as when an answer reuses a variable a section computed) is kept, with what it
    needs in turn: the notebook computes what the student's Jupyter computed.
    """
    kinds = ["demo" if is_demo(cell) else "code" if cell.cell_type == "code" else "" for cell in nb.cells]
    sources = [cell.source if cell.cell_type == "code" else "" for cell in nb.cells]
    needed, _ = demo_dependencies(kinds, sources, [i for i, kind in enumerate(kinds) if kind == "code"])
    for index, cell in enumerate(nb.cells):
        if is_demo(cell) and index not in needed:
            cell.source = SKIPPED_SOURCE
            cell.outputs = []
    return nb


class SkipDemoCells(NbGraderPreprocessor):
    """Grading mode: demonstration cells (experiments, explorers) are not executed, unless a cell
    that runs needs one (see skip_demo_cells).

    Questions never depend on demo cells (a test runs every source notebook in
    this mode and requires full marks), so skipping them changes no grade.
    Solution and test cells are never skipped, whatever their tags say.
    """

    def preprocess(self, nb, resources):
        return skip_demo_cells(nb), resources
