"""`python -m autograder run` end to end: its report of a notebook's time, slowest cells and errors, its exit
code, and a clear line for a name the course does not have; every command's one line for bad input, and
`feedback` naming a student or assignment nobody graded.
(conftest.executed runs the real notebooks through the same autograder.execute.)"""

from __future__ import annotations

import nbformat
import pytest

import minicourse as mc
from autograder.__main__ import main
from autograder.build import assignment_names


def tiny(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


@pytest.fixture
def notebooks(monkeypatch):
    """`run` reads these notebooks instead of the authored sources."""
    found = {"good": tiny("x = 6 * 7", "assert x == 42"),
             "bad": tiny("x = 1", "raise ValueError('the check failed')", "y = 2")}
    monkeypatch.setattr("autograder.commands.run.read_source", lambda name: (found[name], []))
    return found


def test_run_reports_time_cells_and_success(notebooks, capsys):
    assert main(["run", "good"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("good (full run): ") and ", 0 errors" in out
    assert "cell 1: 'x = 6 * 7'" in out and "ERROR" not in out


def test_run_names_the_failing_cell_and_exits_1(notebooks, capsys):
    assert main(["run", "good", "bad", "--grading"]) == 1
    out = capsys.readouterr().out
    assert "bad (grading mode): " in out and ", 1 errors" in out
    assert "ERROR cell 2 (\"raise ValueError('the check failed')\"): ValueError: the check failed" in out


def test_an_unknown_name_is_one_line_naming_the_course_notebooks(capsys):
    assert main(["run", "01_chain_rule", "no_such_notebook"]) == 2  # nothing runs: the name is checked first
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("run: no notebook 'no_such_notebook'")
    assert all(name in captured.err for name in assignment_names()) and "Traceback" not in captured.err


@pytest.mark.parametrize("argv", [["report"], ["export"], ["feedback"], ["grade", "."]])
def test_a_missing_course_root_is_one_line_for_every_command(argv, tmp_path, capsys):
    assert main([*argv, "--course-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"{argv[0]}: no course root at {tmp_path / 'nowhere'}\n"


def test_a_path_that_cannot_be_written_or_read_is_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert main(["report", "--out", str(tmp_path / "a-file" / "reports")]) == 2
    assert capsys.readouterr().err == f"report: Not a directory: {tmp_path / 'a-file' / 'reports'}\n"
    assert main(["grade-one", "--job", str(tmp_path / "no-such-job.json")]) == 2
    assert capsys.readouterr().err == f"grade-one: No such file or directory: {tmp_path / 'no-such-job.json'}\n"


def test_feedback_for_a_student_nobody_graded_says_so(tmp_path, capsys):
    root = mc.make_course(tmp_path / "course")
    assert main(["feedback", "--student", "nobody", "--course-root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("feedback: no graded submission with a feedback page for student 'nobody' in ")
    assert main(["feedback", "--course-root", str(root)]) == 0  # no filter: nothing to do is no error
    assert capsys.readouterr().out.startswith("wrote 0 feedback page(s)")
