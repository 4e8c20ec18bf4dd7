"""A submission, read and aligned with its source: the graded cell sequence, locked and test cells
restored from the source, duplicates and strays handled as nbgrader handles them.

nbgrader's autograde runs DeduplicateIds, OverwriteCells and OverwriteKernelspec here. DeduplicateIds is
used as it is (`graded_copies`). The other two read the gradebook database (`Gradebook(db_url)`:
`find_source_cell`, `find_graded_cell`, `find_notebook().kernelspec`), which a job never opens: it runs
beside the student's sandboxes with the source notebook alone, and course/gradebook.py is the gradebook's
one writer. They also do less than the judge needs: OverwriteCells restores a locked cell's source only
when its checksum differs, keeps the student's grade/solution flags, and puts a deleted test back only
when `add_missing_cells` is set (with a notice prepended to its source). So `_restored_step` rebuilds
every cell the source knows from the source (its flags, points, type and, for locked and test cells,
its source), and judge.py writes the source's kernelspec (KERNELSPEC) into the autograded notebook.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import DeduplicateIds

from . import hidden
from ..files import MAX_NOTEBOOK_BYTES
from .demo import DEMO_TAG
from .source import SourceCell, SourceModel


GRADED_KINDS = ("test", "locked", "manual", "solution")  # the source cells nbgrader's gradebook records
_NBGRADER_LOG = logging.getLogger(__name__ + ".nbgrader")  # our notes say what its warnings would
_NBGRADER_LOG.addHandler(logging.NullHandler())
_NBGRADER_LOG.propagate = False


@dataclass
class Step:
    """One cell of the graded notebook: who runs it and with what source."""

    kind: str  # student | test | manual | demo | passive
    cell: dict  # the cell as it will appear in the autograded notebook
    grade_id: str | None = None
    student_written: bool = False
    demo: bool = False  # a demo cell that runs because an answer needs what it defines


def read_submission(data: bytes):
    """Parse submitted bytes into a v4 notebook; raises ValueError with a clear message."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is {len(data) / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit")
    if not data.strip():
        raise ValueError("the file is empty")
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not valid notebook JSON ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise ValueError("not a notebook: no list of cells")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as error:  # noqa: BLE001 - nbformat raises many kinds
        raise ValueError(f"not a readable notebook ({type(error).__name__}: {error})") from None
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw") \
                or not isinstance(cell.get("source", ""), str):
            raise ValueError("a cell has no valid type or source")
        if not isinstance(cell.get("metadata", {}), dict):
            cell["metadata"] = {}
        cell.setdefault("metadata", {})
        if not isinstance(cell.metadata.get("nbgrader", {}), dict):
            cell.metadata["nbgrader"] = {}
    return nb


def align(nb, model: SourceModel) -> tuple[list[Step], list[str]]:
    """The graded cell sequence: locked and test cells restored from the source, duplicates and strays handled.

    Follows nbgrader (DeduplicateIds keeps the last copy of a grade_id,
    OverwriteCells restores locked cells and metadata), and goes further: a
    cell is known by its grade_id, whatever flags the student left on it,
    and a deleted test cell is put back after its solution, so deleting a
    test never avoids it.
    """
    notes = []
    kernelspec = nb.metadata.get("kernelspec", {}) if isinstance(nb.metadata.get("kernelspec"), dict) else {}
    if kernelspec and (kernelspec.get("name") != "python3" or kernelspec.get("language", "python") != "python"):
        notes.append(f"kernelspec {kernelspec.get('name')!r} replaced by python3")
    graded = graded_copies(nb, model)
    counts = {}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if isinstance(grade_id, str):
            counts[grade_id] = counts.get(grade_id, 0) + 1
    for grade_id, count in counts.items():
        if count > 1 and _known(model, grade_id):
            notes.append(f"grade cell {grade_id!r} appears {count} times: the last copy is graded, "
                         "the others are treated as ordinary cells")
    steps = []
    for position, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id") if isinstance(meta.get("grade_id"), str) else None
        source_cell = _known(model, grade_id) if grade_id else None
        if grade_id and not source_cell:
            notes.append(f"cell {position + 1} has an unknown grade_id {grade_id!r}: treated as an ordinary cell")
        if source_cell and position not in graded:
            if source_cell.kind in ("test", "locked"):
                continue  # an extra copy of a locked cell: dropped (nbgrader would run the student's edit)
            source_cell = None  # an extra copy of a solution: ordinary student code
        if source_cell is None:
            plain = _plain_cell(cell)
            if plain["cell_type"] == "code":
                demo = DEMO_TAG in plain["metadata"].get("tags", [])
                steps.append(Step("demo" if demo else "student", plain, student_written=True))
            else:
                steps.append(Step("passive", plain))
            continue
        steps.append(_restored_step(cell, source_cell, model, notes, position))
    present = {s.grade_id for s in steps if s.grade_id}
    for source_cell in model.cells:
        if source_cell.grade_id and source_cell.kind in GRADED_KINDS and source_cell.grade_id not in present:
            if source_cell.kind == "solution":
                notes.append(f"solution cell {source_cell.grade_id!r} is missing from the submission")
                continue
            if source_cell.kind == "manual":
                notes.append(f"answer cell {source_cell.grade_id!r} is missing from the submission")
            else:
                notes.append(f"{'test' if source_cell.kind == 'test' else 'locked'} cell "
                             f"{source_cell.grade_id!r} was deleted: restored from the source")
            step = _restored_step(None, source_cell, model, [], None)
            steps.insert(_insertion_point(steps, source_cell, model), step)
            present.add(source_cell.grade_id)
    return steps, notes


def graded_copies(nb, model: SourceModel) -> set[int]:
    """Positions of the cells graded as the source's cells: the last copy of each grade_id, by nbgrader's
    DeduplicateIds. It is shown each cell's identity as the source defines it (the source cell's flags for
    a grade_id the source knows, none otherwise), never the student's metadata: a copy whose flags were
    removed would escape it, and be graded twice."""
    cells = []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        source_cell = _known(model, grade_id) if isinstance(grade_id, str) else None
        meta = _source_flags(source_cell) if source_cell else {}
        cells.append(NotebookNode(cell_type="raw", source="", metadata=NotebookNode(nbgrader=NotebookNode(meta))))
    deduplicated, _ = DeduplicateIds(log=_NBGRADER_LOG).preprocess(NotebookNode(cells=cells, metadata={}), {})
    return {position for position, cell in enumerate(deduplicated.cells) if cell.metadata.nbgrader}


def _known(model: SourceModel, grade_id: str) -> SourceCell | None:
    """The source cell a grade_id names, if nbgrader knows it (a grade, solution or locked cell)."""
    source_cell = model.by_id(grade_id)
    return source_cell if source_cell is not None and source_cell.kind in GRADED_KINDS else None


def _source_flags(source_cell: SourceCell) -> dict:
    return {"grade_id": source_cell.grade_id, "grade": source_cell.kind in ("test", "manual"),
            "solution": source_cell.kind in ("solution", "manual"),
            "locked": source_cell.kind in ("test", "locked"), "schema_version": 3, "task": False}


def _plain_cell(cell) -> dict:
    metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",) and isinstance(v, list)}
    out = {"cell_type": cell.cell_type, "metadata": metadata, "source": cell.source}
    if cell.cell_type == "code":
        out.update(outputs=[], execution_count=None)
    if cell.get("id"):
        out["id"] = str(cell["id"])[:64]
    return out


def _restored_step(cell, source_cell: SourceCell, model: SourceModel, notes: list, position) -> Step:
    source_meta = _source_flags(source_cell)
    if source_meta["grade"]:
        source_meta["points"] = source_cell.points
    out = {"cell_type": source_cell.cell_type, "metadata": {"nbgrader": source_meta}, "source": source_cell.source,
           "id": source_cell.grade_id}
    if source_cell.cell_type == "code":
        out.update(outputs=[], execution_count=None)
    if source_cell.kind in ("solution", "manual"):
        out["source"] = cell.source if cell is not None else ""
        if cell is not None and cell.cell_type != source_cell.cell_type:
            notes.append(f"cell {source_cell.grade_id!r} was turned into {cell.cell_type}: restored to "
                         f"{source_cell.cell_type}")
        if source_cell.kind == "manual":
            return Step("manual", out, source_cell.grade_id, student_written=True)
        return Step("student", out, source_cell.grade_id, student_written=True)
    released = hidden.released_source(source_cell.source) if source_cell.kind == "test" else source_cell.source
    if cell is not None and (cell.source.rstrip() != released.rstrip() or cell.cell_type != source_cell.cell_type):
        notes.append(f"locked cell {source_cell.grade_id!r} was edited: restored from the source")
    if source_cell.kind == "test":
        return Step("test", out, source_cell.grade_id)
    return Step("student" if source_cell.cell_type == "code" else "passive", out, source_cell.grade_id)


def _insertion_point(steps: list[Step], source_cell: SourceCell, model: SourceModel) -> int:
    """Right after the closest earlier graded cell of the source that the submission has (nbgrader's rule)."""
    earlier = [c.grade_id for c in model.cells[:source_cell.index] if c.grade_id]
    for grade_id in reversed(earlier):
        for position, step in enumerate(steps):
            if step.grade_id == grade_id:
                return position + 1
    return len(steps)
