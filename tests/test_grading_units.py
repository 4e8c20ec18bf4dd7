"""Fast checks of the autograder's parts: the plain-data wire, LMS file names, static inspection,
hidden-test handling and the isolation probe. The end-to-end attacks are in test_redteam.py."""

import json
import math

import numpy as np
import pytest
import torch

from autograder import integrity, lms, sandbox, wire
from autograder.judge import _free_names, align, read_submission, unneeded_student_cells

NOTEBOOKS = {"01_chain_rule": "01_chain_rule", "02_sigmoid_saturation": "02_sigmoid_saturation"}


# ---- wire: only plain data crosses, rebuilt as fresh objects of known types -----------------------------

@pytest.mark.parametrize("value", [None, True, 3, -2**80, 1.5, float("inf"), 2 - 1j, "text", b"\x00\xff",
                                   [1, (2, 3)], {"a": {1, 2}}, frozenset([1]), range(3), slice(1, None),
                                   np.float32(2.5), np.int64(-3), np.arange(6.0).reshape(2, 3),
                                   np.array([True, False]), torch.tensor([1.0, 2.0], dtype=torch.float64),
                                   torch.Size([3, 4]), torch.float16, np.dtype("int32")])
def test_plain_data_round_trips(value):
    back = wire.decode(json.loads(json.dumps(wire.encode(value))))
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and np.array_equal(back, value)
    elif isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back, value)
    elif isinstance(value, float) and math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value


def test_generators_cross_as_their_state():
    generator = torch.Generator().manual_seed(7)
    copy = wire.decode(wire.encode(generator))
    assert torch.equal(torch.randn(3, generator=copy), torch.randn(3, generator=torch.Generator().manual_seed(7)))


def test_lying_subclasses_are_refused_or_flattened():
    class Liar(float):
        def __eq__(self, other):
            return True

    with pytest.raises(wire.NotPlainData):
        wire.encode(Liar(1.0))
    flattened = wire.decode(wire.encode(Liar(1.0), lenient=True))
    assert type(flattened) is float and flattened != 2.0
    with pytest.raises(wire.NotPlainData):
        wire.encode(np.array([object()], dtype=object))


@pytest.mark.parametrize("tree", [["x"], ["f", "1" * 50], ["i", "1" * 5000],
                                  ["nd", "object", [1], ""], ["nd", "float64", [2], "AAAA"], ["l", "notalist"],
                                  ["h", "root", 1, "", ""], ["d", [[["s", "k"]]]], "plain", []])
def test_malformed_or_unsafe_trees_are_rejected(tree):
    with pytest.raises(wire.WireError):
        wire.decode(tree)


# ---- LMS file names -------------------------------------------------------------------------------------

def test_lms_names_are_placed_and_the_rest_listed():
    names = ["smithjohn_12345_67890_01_chain_rule.ipynb", "jones_LATE_12346_67891_01_chain_rule-1.ipynb",
             "John Smith_123456_assignsubmission_file_/01_chain_rule.ipynb",
             "HW1_jdoe_attempt_2024-01-02-10-11-12_01_chain_rule.ipynb", "alice_01_chain_rule (2).ipynb",
             "01_chain_rule_bob.ipynb", "carol/02_sigmoid_saturation.ipynb", "honest_full_0_01_chain_rule.ipynb",
             "random.ipynb", "01_chain_rule.ipynb", "x_01_chain_rule_02_sigmoid_saturation.ipynb", "notes.txt",
             "a_01_chain_rule_b.ipynb", "dup_01_chain_rule.ipynb", "dup/01_chain_rule.ipynb"]
    placed, unplaced = lms._place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    got = {(s.student, s.assignment) for s in placed}
    assert got == {("12345", "01_chain_rule"), ("12346", "01_chain_rule"), ("123456", "01_chain_rule"),
                   ("jdoe", "01_chain_rule"), ("alice", "01_chain_rule"), ("bob", "01_chain_rule"),
                   ("carol", "02_sigmoid_saturation"), ("honest_full_0", "01_chain_rule")}
    assert {u.where for u in unplaced} == {"random.ipynb", "01_chain_rule.ipynb", "notes.txt",
                                          "x_01_chain_rule_02_sigmoid_saturation.ipynb", "a_01_chain_rule_b.ipynb",
                                          "dup_01_chain_rule.ipynb", "dup/01_chain_rule.ipynb"}
    moodle = next(s for s in placed if s.student == "123456")
    assert moodle.name == "John Smith" and moodle.lms_user_id == "123456"


def test_nbgrader_tree_keeps_extra_files_out_of_the_notebooks(tmp_path):
    folder = tmp_path / "alice" / "01_chain_rule"
    folder.mkdir(parents=True)
    (folder / "01_chain_rule.ipynb").write_text("{}")
    (folder / "numpy.py").write_text("")
    (folder / "timestamp.txt").write_text("2024-01-01 10:00:00 UTC")
    placed, unplaced = lms.discover(tmp_path, NOTEBOOKS)
    assert not unplaced and len(placed) == 1
    assert placed[0].extra_files == ["numpy.py"] and placed[0].timestamp.startswith("2024-01-01")


# ---- static inspection ---------------------------------------------------------------------------------

@pytest.mark.parametrize("code, reason", [
    ("import builtins\nbuiltins.abs = lambda x: 0", "builtins"),
    ("import numpy as np\nnp.allclose = lambda *a, **k: True", "inside the module"),
    ("get_ipython().input_transformers_post.append(f)", "IPython"),
    ("import sys\nsys.modules['x'] = None", "sys.modules"),
    ("import inspect\nf = inspect.currentframe().f_back", "frame"),
    ("class A(float):\n    def __eq__(self, o):\n        return True", "__eq__"),
    ("open('numpy.py', 'w').write('')", "Python could import"),
    ("!pip install x", "shell"),
    ("import os\nos._exit(0)", "os._exit"),
    ("exec('x = 1')", "exec"),
    ("setattr(checks, 'check_close', None)", "setattr"),
    ("x = (1).__class__.__subclasses__()", "internals"),
])
def test_inspection_flags_tampering(code, reason):
    findings = integrity.inspect_cells([(0, code)])
    assert any(reason.lower() in f.reason.lower() for f in findings), [f.reason for f in findings]


@pytest.mark.parametrize("code", [
    "import math\nimport numpy as np\nimport torch\nfrom functools import reduce",
    "def f(x):\n    h, grad = float(x), 1.0\n    for g in [math.sin]:\n        grad *= g(h)\n    return h, grad",
    "import sys, warnings\nprint('x', file=sys.stderr)\nwarnings.warn('w')",
    "class Block(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n    def forward(self, x):\n"
    "        return x",
    "layer.weight.data = torch.zeros(3)\nq = {'A': 'healthy'}\nresult = getattr(torch, 'tanh')(x)",
    "%matplotlib inline\nplt.plot([1, 2])",
])
def test_inspection_leaves_honest_code_alone(code):
    assert integrity.inspect_cells([(0, code)]) == []


# ---- hidden tests ---------------------------------------------------------------------------------------

TEST_CELL = "visible = 1\n### BEGIN HIDDEN TESTS\nsecret_check(answer, 42)\n### END HIDDEN TESTS\nafter = 2"


def test_hidden_tests_are_split_stripped_and_redacted():
    segments = integrity.split_hidden(TEST_CELL)
    assert [hidden for _, hidden in segments] == [False, True, False]
    assert segments[1][0].splitlines()[2] == "secret_check(answer, 42)"  # line numbers kept
    assert "secret_check" not in integrity.strip_hidden(TEST_CELL)
    assert integrity.released_source(TEST_CELL) == "visible = 1\nafter = 2"
    secret = integrity.hidden_lines([TEST_CELL])
    assert integrity.redact("x\nsecret_check(answer, 42)\ny\n", secret) == \
        "x\n[line removed: it quotes a hidden test]\ny\n"


# ---- aligning a submission with its source ---------------------------------------------------------------

def _source_model():
    import nbformat

    from autograder.judge import SourceModel

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
    student.cells[3].source = integrity.released_source(student.cells[3].source)
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


def test_free_names_are_what_a_cell_reads_from_earlier_cells():
    assert _free_names("x = f(x)\ntry:\n    pass\nexcept E as error:\n    print(error)") == {"f", "x", "E", "print"}


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"{not json", "JSON"), (b"[]", "cells"),
                                       (b'{"cells": [{"cell_type": "weird"}]}', "notebook|cell")])
def test_unreadable_submissions_are_refused_with_a_reason(data, why):
    with pytest.raises(ValueError, match=why):
        read_submission(data)


def test_the_isolation_probe_describes_what_it_found():
    isolation = sandbox.probe()
    assert isolation.mode in ("root", "userns", "none")
    assert isolation.describe()


def test_without_namespaces_grading_is_refused_unless_asked_for(monkeypatch):
    from autograder import grade

    monkeypatch.setattr(sandbox, "probe", lambda **kwargs: sandbox.Isolation("none", False, False, "", ["no"]))
    with pytest.raises(grade.GradingError, match="Refusing"):
        grade.require_isolation(unsafe=False)
    messages = []
    assert grade.require_isolation(unsafe=True, log=messages.append).mode == "none"
    assert "WITHOUT isolation" in messages[0]


@pytest.mark.parametrize("mode", ["default", "none"])
def test_a_sandbox_runs_cells_and_ends_everything_it_started(mode):
    import select

    isolation = sandbox.probe() if mode == "default" else sandbox.probe(force_mode="none")
    if isolation.mode == "none" and mode == "default":
        pytest.skip("no namespaces on this machine")
    box = sandbox.Sandbox(isolation, sandbox.Limits(memory_mb=512), notebook_name="nb.ipynb",
                          notebook_bytes=b"{}").start()

    def run(source):
        wire.send(box.sock, {"op": "run", "source": source})
        assert select.select([box.sock], [], [], 60)[0]
        return wire.recv(box.sock)

    reply = run("import os, subprocess\nchild = subprocess.Popen(['sleep', '77777'])\nprint(sorted(os.listdir('.')))")
    assert reply["error"] is None and "nb.ipynb" in reply["stdout"]
    pid = int(run("print(child.pid)")["stdout"]) if isolation.mode == "none" else None
    box.kill()
    import subprocess

    left = subprocess.run(["pgrep", "-f", "sleep 77777"], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left: {left} (pid {pid})"
