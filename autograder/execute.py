"""Run a notebook top to bottom in a fresh kernel (authors' loop and the tests)."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .judging.demo import skip_demo_cells


@dataclass
class Run:
    """An executed notebook: the notebook with outputs, wall time, and the errors its cells raised."""

    nb: nbformat.NotebookNode
    seconds: float
    errors: list[str] = field(default_factory=list)
    cell_seconds: list[tuple[float, str]] = field(default_factory=list)


def execute(nb: nbformat.NotebookNode, *, cwd: Path, grading: bool = False, timeout: int = 600) -> Run:
    """Execute `nb` (a copy) in a python3 kernel with working directory `cwd`; errors are collected.

    With `grading`, demo cells are blanked first, as the autograder does.
    """
    nb = nbformat.from_dict(nb)
    if grading:
        skip_demo_cells(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            record_timing=True, resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    errors, timings = [], []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        timing = cell.metadata.get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            from datetime import datetime

            begin = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            timings.append(((end - begin).total_seconds(), f"cell {index + 1}: {cell.source[:60]!r}"))
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {index + 1} ({cell.source.strip()[:80]!r}): "
                              f"{output['ename']}: {output['evalue']}")
    return Run(nb, seconds, errors, sorted(timings, reverse=True))
