"""A submission read and aligned with its source: deleted and duplicated test cells, unreadable files,
the names a cell reads."""

import pytest

from autograder.judging import hidden
from autograder.judging.alignment import align, read_submission
from autograder.judging.names import free_names
from autograder.judging.plan import unneeded_student_cells

def _source_model():
    import nbformat

    from autograder.judging.source import SourceModel

    nb = nbformat.v4.new_notebook()
    cells = [("setup", "import math", None), ("data", "X = [1, 2]", None),
             ("answer", "### BEGIN SOLUTION\ny = 1\n### END SOLUTION", {"grade_id": "q1", "solution": True}),
             ("test", "assert y == 1\n### BEGIN HIDDEN TESTS\nassert y > 0\n### END HIDDEN TESTS",
              {"grade_id": "q1_test", "grade": True, "points": 2.0, "locked": True})]
    for _, source, meta in cells:
        cell = nbformat.v4.new_code_cell(source)
        if meta:
            cell.metadata["nbgrader"] = meta
        nb.cells.append(cell)
    return SourceModel.from_notebook("nb", nb), nb


def test_deleted_and_duplicated_test_cells_are_restored_once():
    import copy

    import nbformat

    model, source = _source_model()
    student = copy.deepcopy(source)
    student.cells[3].source = hidden.released_source(student.cells[3].source)
    deleted = copy.deepcopy(student)
    del deleted.cells[3]
    steps, notes = align(read_submission(nbformat.writes(deleted).encode()), model)
    assert [s.grade_id for s in steps if s.kind == "test"] == ["q1_test"] and any("deleted" in n for n in notes)
    doubled = copy.deepcopy(student)
    doubled.cells.append(copy.deepcopy(doubled.cells[3]))
    doubled.cells[-1].source = "pass"
    steps, notes = align(read_submission(nbformat.writes(doubled).encode()), model)
    tests = [s for s in steps if s.kind == "test"]
    assert len(tests) == 1 and tests[0].cell["source"] == source.cells[3].source
    assert any("appears 2 times" in n for n in notes)
    steps, notes = align(read_submission(nbformat.writes(student).encode()), model)
    assert notes == []
    assert unneeded_student_cells(steps, model) == {0, 1}  # unchanged source cells nothing the student wrote reads


def test_nbgraders_deduplicateids_keeps_the_last_copy_known_by_its_grade_id_whatever_its_flags():
    import copy

    import nbformat

    from autograder.judging.alignment import graded_copies

    model, source = _source_model()
    student = copy.deepcopy(source)
    student.cells[3].source = hidden.released_source(student.cells[3].source)
    student.cells.append(copy.deepcopy(student.cells[2]))  # a second answer cell, then a flagless test copy
    student.cells[-1].source = "y = 2"
    student.cells.append(nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade_id": "q1_test"}}))
    nb = read_submission(nbformat.writes(student).encode())
    assert graded_copies(nb, model) == {4, 5}  # the last copy of each grade_id (nbgrader would keep cell 3)
    steps, notes = align(nb, model)
    tests = [s for s in steps if s.kind == "test"]
    assert len(tests) == 1 and tests[0].cell["source"] == source.cells[3].source  # restored, run once
    answers = [(s.grade_id, s.cell["source"]) for s in steps if s.kind == "student" and "y = " in s.cell["source"]]
    assert answers == [(None, source.cells[2].source), ("q1", "y = 2")]  # the earlier copy: ordinary code
    assert sum("appears 2 times" in n for n in notes) == 2


def test_free_names_are_what_a_cell_reads_from_earlier_cells():
    assert free_names("x = f(x)\ntry:\n    pass\nexcept E as error:\n    print(error)") == {"f", "x", "E", "print"}


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"{not json", "JSON"), (b"[]", "cells"),
                                       (b'{"cells": [{"cell_type": "weird"}]}', "notebook|cell")])
def test_unreadable_submissions_are_refused_with_a_reason(data, why):
    with pytest.raises(ValueError, match=why):
        read_submission(data)
