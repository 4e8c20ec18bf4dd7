"""The authoring pipeline: one source per notebook, student notebooks generated and in sync, no leaks."""

import json
import re
import subprocess
import sys

import nbformat
import pytest

from autograder import REPO_ROOT, STUDENT_DIR
from autograder.build import BuildError, read_source, source_path
from autograder.commands.build import main as main_build
from conftest import NAMES


def test_the_sources_are_exactly_the_course_notebooks():
    from course_lib import NOTEBOOKS

    assert list(NAMES) == list(NOTEBOOKS), (
        f"autograder/source/ has {list(NAMES)}, course_lib.NOTEBOOKS (the teaching order) lists {list(NOTEBOOKS)}")


@pytest.mark.parametrize("name", NAMES)
def test_committed_student_notebook_is_in_sync(built_students, name):
    committed = (STUDENT_DIR / f"{name}.ipynb").read_text(encoding="utf-8")
    assert committed == built_students[name], (
        f"notebooks/{name}.ipynb differs from the build of {source_path(name)}: run `python -m autograder build`")


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_leaks_nothing(name):
    """No solution, no hidden test (markers or code), no mistake cell, no outputs."""
    text = (STUDENT_DIR / f"{name}.ipynb").read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    student_code = "\n".join(cell.source for cell in nb.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{name}: student notebook contains {marker!r}"
    source, _ = read_source(name)
    shown = "\n".join(re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "", cell.source, flags=re.S)
                      for cell in source.cells)  # what the author shows on purpose
    for cell in source.cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, flags=re.S):
            for line in block.splitlines():
                if len(line.strip()) > 25:  # long enough to be specific to the hidden test
                    assert line.strip() not in student_code, f"{name}: hidden test line leaked: {line.strip()!r}"
        for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S):
            for line in block.splitlines():
                if len(line.strip()) > 20 and line.strip() not in shown:
                    assert line.strip() not in student_code, f"{name}: solution line leaked: {line.strip()!r}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not cleared"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "autograder/source" in nb.metadata["course"]["generated"]


@pytest.mark.parametrize("name", NAMES)
def test_every_question_has_points_and_a_test(name):
    """The mutation suite per question (mistakes and right variants) is checked in test_questions.py."""
    nb, _ = read_source(name)
    meta = [cell.metadata["nbgrader"] for cell in nb.cells if "nbgrader" in cell.metadata]
    solutions = [m["grade_id"] for m in meta if m.get("solution")]
    tests = {m["grade_id"]: m["points"] for m in meta if m.get("grade")}
    assert len(solutions) >= 5, f"{name} has {len(solutions)} practice questions; the course asks for 5+"
    assert 10 <= sum(tests.values()) <= 20, f"{name} is worth {sum(tests.values())} points (10-20 expected)"
    for grade_id in solutions:
        assert f"{grade_id}_test" in tests, f"{name}: {grade_id} has no test cell {grade_id}_test"
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{name}: {cell.id} has no hidden tests"


def test_build_check_cli_passes():
    result = subprocess.run([sys.executable, "-m", "autograder", "build", "--check"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in sync" in result.stdout


def test_build_check_names_the_drifted_file(tmp_path, monkeypatch, capsys, built_students):
    name = NAMES[0]
    for other in NAMES:
        (tmp_path / f"{other}.ipynb").write_text(built_students[other], encoding="utf-8")
    nb = json.loads(built_students[name])
    nb["cells"][0]["source"] = "edited by hand"
    (tmp_path / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    (tmp_path / "99_orphan.ipynb").write_text("{}", encoding="utf-8")
    monkeypatch.setattr("autograder.build.STUDENT_DIR", tmp_path)
    monkeypatch.setattr("autograder.build.generate_student_notebooks", lambda sources, root: built_students)

    class Args:
        names, check = [], True
    assert main_build(Args()) == 1
    err = capsys.readouterr().err
    assert f"{name}.ipynb differs" in err
    assert "99_orphan.ipynb has no source" in err


def test_build_writes_deterministic_bytes(tmp_path, monkeypatch, built_students):
    """Two builds give identical bytes (the check depends on it)."""
    from autograder.build import generate_student_notebooks

    name = NAMES[0]
    again = generate_student_notebooks({name: read_source(name)[0]}, tmp_path)
    assert again[name] == built_students[name]


def test_malformed_source_gives_a_clear_error(tmp_path, monkeypatch):
    folder = tmp_path / "99_bad"
    folder.mkdir()
    (folder / "99_bad.py").write_text(
        '# %% nbgrader={"grade_id": "q1_x_test", "grade": true}\nassert True\n', encoding="utf-8")
    monkeypatch.setattr("autograder.build.SOURCE_DIR", tmp_path)
    monkeypatch.setattr("autograder.build.REPO_ROOT", tmp_path)
    with pytest.raises(BuildError, match="needs points > 0"):
        read_source("99_bad")
    (folder / "99_bad.py").write_text(
        '# %% mistake="q9" label="x"\nx = 1\n', encoding="utf-8")
    with pytest.raises(BuildError, match="no solution cell"):
        read_source("99_bad")


def test_nbgrader_never_releases_the_authored_py(tmp_path, built_students):
    """The .py holds solutions and hidden tests: generate_assignment must not copy it."""
    from autograder.build import generate_student_notebooks

    name = NAMES[0]
    (tmp_path / "source" / name).mkdir(parents=True)
    (tmp_path / "source" / name / f"{name}.py").write_text(source_path(name).read_text())
    generate_student_notebooks({name: read_source(name)[0]}, tmp_path)
    released = sorted(p.name for p in (tmp_path / "release" / name).iterdir())
    assert released == [f"{name}.ipynb"], released
