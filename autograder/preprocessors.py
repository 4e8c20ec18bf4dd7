"""nbgrader preprocessors the course adds to plain nbgrader."""

from nbgrader.preprocessors import NbGraderPreprocessor

DEMO_TAG = "demo"
SKIPPED_SOURCE = "# (demonstration cell: not run during grading)"


def is_demo(cell) -> bool:
    """A cell that only demonstrates (tag "demo") and is neither a solution nor a test cell."""
    nbgrader = cell.metadata.get("nbgrader", {})
    return (cell.cell_type == "code" and DEMO_TAG in cell.metadata.get("tags", [])
            and not nbgrader.get("grade") and not nbgrader.get("solution"))


def skip_demo_cells(nb):
    """Blank every demo cell in place, so grading costs what the questions cost; returns `nb`."""
    for cell in nb.cells:
        if is_demo(cell):
            cell.source = SKIPPED_SOURCE
            cell.outputs = []
    return nb


class SkipDemoCells(NbGraderPreprocessor):
    """Grading mode: demonstration cells (experiments, explorers) are not executed.

    Questions never depend on demo cells (a test runs every source notebook in
    this mode and requires full marks), so skipping them changes no grade.
    Solution and test cells are never skipped, whatever their tags say.
    """

    def preprocess(self, nb, resources):
        return skip_demo_cells(nb), resources
