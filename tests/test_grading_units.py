"""Fast checks of the autograder's parts: the plain-data wire, LMS file names, static inspection,
hidden-test handling, the isolation probe, and round two's parts (bad files listed, the student's folder
deciding, the file view, seccomp, deadlines, leftovers). The end-to-end attacks are in test_redteam.py and
test_redteam_round2.py."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder import files
from autograder.course import batch, submissions
from autograder.course.root import GradingError
from autograder.isolation import sandbox, wire
from autograder.judging import hidden, inspection
from autograder.judging.alignment import align, read_submission
from autograder.judging.names import free_names
from autograder.judging.plan import unneeded_student_cells

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
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
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
    placed, unplaced = submissions.discover(tmp_path, NOTEBOOKS)
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
    findings = inspection.inspect_cells([(0, code)])
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
    assert inspection.inspect_cells([(0, code)]) == []


# ---- hidden tests ---------------------------------------------------------------------------------------

TEST_CELL = "visible = 1\n### BEGIN HIDDEN TESTS\nsecret_check(answer, 42)\n### END HIDDEN TESTS\nafter = 2"


def test_hidden_tests_are_split_stripped_and_redacted():
    segments = hidden.split_hidden(TEST_CELL)
    assert [hidden for _, hidden in segments] == [False, True, False]
    assert segments[1][0].splitlines()[2] == "secret_check(answer, 42)"  # line numbers kept
    assert "secret_check" not in hidden.strip_hidden(TEST_CELL)
    assert hidden.released_source(TEST_CELL) == "visible = 1\nafter = 2"
    secret = hidden.hidden_lines([TEST_CELL])
    assert hidden.redact("x\nsecret_check(answer, 42)\ny\n", secret) == \
        "x\n[line removed: it quotes a hidden test]\ny\n"


# ---- aligning a submission with its source ---------------------------------------------------------------

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


def test_free_names_are_what_a_cell_reads_from_earlier_cells():
    assert free_names("x = f(x)\ntry:\n    pass\nexcept E as error:\n    print(error)") == {"f", "x", "E", "print"}


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
    monkeypatch.setattr(sandbox, "probe", lambda **kwargs: sandbox.Isolation("none", False, False, "", ["no"]))
    with pytest.raises(GradingError, match="Refusing"):
        batch.require_isolation(unsafe=False)
    messages = []
    assert batch.require_isolation(unsafe=True, log=messages.append).mode == "none"
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


# ---- round two: bad files are listed, the student's folder decides, the sandbox shows little -----------------

def _notebook_bytes() -> bytes:
    return json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def test_folder_layouts_list_links_fifos_folders_and_course_files(tmp_path):
    import os

    course, submitted = tmp_path / "course", tmp_path / "downloads"
    (course / "source").mkdir(parents=True)
    secret = course / "source" / "solution.ipynb"
    secret.write_bytes(_notebook_bytes())
    for student in ("alice", "bob", "carol", "dave", "erin"):
        (submitted / student).mkdir(parents=True)
    (submitted / "alice" / "01_chain_rule.ipynb").write_bytes(_notebook_bytes())
    (submitted / "bob" / "01_chain_rule.ipynb").symlink_to(secret)
    os.mkfifo(submitted / "carol" / "01_chain_rule.ipynb")
    (submitted / "dave" / "01_chain_rule.ipynb").mkdir()
    os.link(secret, submitted / "erin" / "01_chain_rule.ipynb")
    (submitted / "frank").symlink_to(submitted / "alice")  # a whole folder, linked
    placed, unplaced = submissions.discover(submitted, NOTEBOOKS, protected=[course])
    assert [(s.student, s.assignment) for s in placed] == [("alice", "01_chain_rule")]
    why = {u.where: u.why for u in unplaced}
    assert why == {"bob/01_chain_rule.ipynb": submissions.SYMLINK,
                   "carol/01_chain_rule.ipynb": submissions.NOT_REGULAR,
                   "dave/01_chain_rule.ipynb": submissions.A_FOLDER,
                   "erin/01_chain_rule.ipynb": submissions.COURSE_FILE, "frank": submissions.SYMLINK}


def test_an_nbgrader_tree_refuses_links_and_grades_despite_a_bad_timestamp(tmp_path):
    for student, stamp in (("alice", "9999-99-99 99:99:99"), ("bob", "2024-03-01 12:00:00 UTC"), ("carol", "")):
        folder = tmp_path / student / "01_chain_rule"
        folder.mkdir(parents=True)
        (folder / "01_chain_rule.ipynb").write_bytes(_notebook_bytes())
        (folder / "timestamp.txt").write_text(stamp)
    (tmp_path / "dave" / "01_chain_rule").mkdir(parents=True)
    (tmp_path / "dave" / "01_chain_rule" / "01_chain_rule.ipynb").symlink_to(
        tmp_path / "bob" / "01_chain_rule" / "01_chain_rule.ipynb")
    placed, unplaced = submissions.discover(tmp_path, NOTEBOOKS)
    by_student = {s.student: s for s in placed}
    assert set(by_student) == {"alice", "bob", "carol", "dave"}
    assert by_student["alice"].timestamp is None and "timestamp.txt unusable" in by_student["alice"].problems[0]
    assert by_student["bob"].timestamp == "2024-03-01 12:00:00 UTC" and not by_student["bob"].problems
    assert by_student["carol"].timestamp is None and not by_student["carol"].problems
    assert by_student["dave"].notebooks == {} and "symbolic link" in by_student["dave"].problems[0]
    assert {u.where for u in unplaced} == {"alice/01_chain_rule/timestamp.txt",
                                          "dave/01_chain_rule/01_chain_rule.ipynb"}


@pytest.mark.parametrize("text, ok", [("2024-01-01 10:00:00.123456 UTC", True), ("2024-01-01T10:00:00", True),
                                      ("9999-99-99 99:99:99", False), ("yesterday", False),
                                      ("2999-01-01 00:00:00", False), ("2024-02-30 10:00:00", False)])
def test_submission_times_are_read_as_nbgrader_reads_them(text, ok):
    value, why = submissions.submission_time(text)
    assert (value == text and why is None) if ok else (value is None and why)


def test_the_students_folder_decides_whose_a_file_is():
    names = ["alice/01_chain_rule.ipynb", "mallory/alice_01_chain_rule.ipynb",  # names another student: listed
             "mallory/02_sigmoid_saturation.ipynb", "bob/final_01_chain_rule.ipynb",  # "final" names nobody: bob's
             "Mallory M_9_assignsubmission_file_/Jane Doe_4567_assignsubmission_file_01_chain_rule.ipynb",
             "Jane Doe_4567_assignsubmission_file_/01_chain_rule (1).ipynb",
             "Carl C_8_assignsubmission_file_/carl_01_chain_rule.ipynb"]  # his own login in the name: his
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    got = {(s.student, next(iter(s.notebooks))): s.notebooks[next(iter(s.notebooks))]["path"] for s in placed}
    assert got == {("alice", "01_chain_rule"): names[0], ("mallory", "02_sigmoid_saturation"): names[2],
                   ("bob", "01_chain_rule"): names[3], ("4567", "01_chain_rule"): names[5],
                   ("8", "01_chain_rule"): names[6]}
    assert {u.where: u.why for u in unplaced} == {
        names[1]: "names student 'alice' but is in the folder of 'mallory': not graded for either",
        names[4]: "names student '4567' but is in the folder of '9': not graded for either"}
    jane = next(s for s in placed if s.student == "4567")
    assert (jane.first_name, jane.last_name, jane.lms_user_id) == ("Jane", "Doe", "4567")


def test_a_blackboard_name_with_an_impossible_time_is_graded_without_one_and_flagged():
    names = ["HW1_bb_attempt_2024-13-45-99-99-99_01_chain_rule.ipynb",
             "HW1_cc_attempt_2024-01-02-10-11-12_01_chain_rule.ipynb"]
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    by_student = {s.student: s for s in placed}
    assert by_student["bb"].timestamp is None and "submission time unusable" in by_student["bb"].problems[0]
    assert by_student["cc"].timestamp == "2024-01-02 10:11:12" and not by_student["cc"].problems
    assert [u.where for u in unplaced] == [names[0]] and "not a date" in unplaced[0].why


@pytest.mark.parametrize("names, students", [
    (["submissions/alice_01_chain_rule.ipynb", "submissions/bob_01_chain_rule.ipynb"], {"alice", "bob"}),
    (["submissions/alice/01_chain_rule.ipynb", "submissions/bob/01_chain_rule.ipynb"], {"alice", "bob"}),
    (["alice/01_chain_rule.ipynb", "alice/02_sigmoid_saturation.ipynb"], {"alice"}),  # one student's folder
    (["Ann Lee_7_assignsubmission_file_/01_chain_rule.ipynb"], {"7"}),
])
def test_a_wrapper_folder_is_not_a_student(names, students):
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    assert {s.student for s in placed} == students and not unplaced


def _zip_with_bad_members(path):
    import stat
    import struct
    import zipfile

    good = _notebook_bytes()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("alice_01_chain_rule.ipynb", good)
        archive.writestr(zipfile.ZipInfo("crc_01_chain_rule.ipynb"), good * 20)
        archive.writestr("badXX_01_chain_rule.ipynb", good)
        archive.writestr("../evil_01_chain_rule.ipynb", good)
        link = zipfile.ZipInfo("link_01_chain_rule.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("Jos\u00e9 Ruiz_31_assignsubmission_file_01_chain_rule.ipynb", good)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("crc_01_chain_rule.ipynb")
        data[info.header_offset + 30 + len(info.filename) + 50] ^= 0xFF
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # mark the placeholder's name as UTF-8, then make it invalid UTF-8
        length, extra, comment = struct.unpack("<HHH", data[at + 28:at + 34])
        if data[at + 46:at + 46 + length].startswith(b"badXX"):
            data[at + 8:at + 10] = struct.pack("<H", struct.unpack("<H", data[at + 8:at + 10])[0] | 0x800)
        at = data.find(b"PK\x01\x02", at + 46 + length + extra + comment)
    path.write_bytes(bytes(data).replace(b"badXX", b"b\xff\xfeXX"))
    return path


def test_a_zip_with_bad_members_lists_them_and_places_the_rest(tmp_path):
    path = _zip_with_bad_members(tmp_path / "download.zip")
    placed, unplaced = submissions.discover(path, NOTEBOOKS)
    assert {s.student for s in placed} == {"alice", "31"}
    why = {u.where: u.why for u in unplaced}
    assert why["crc_01_chain_rule.ipynb"].startswith("corrupt in the zip (BadZipFile")
    assert why["../evil_01_chain_rule.ipynb"].startswith("an unsafe path")
    assert why["link_01_chain_rule.ipynb"] == submissions.SYMLINK
    assert any(w.startswith("its name is not valid UTF-8") for w in why.values()) and len(why) == 4
    jose = next(s for s in placed if s.student == "31")
    assert (jose.first_name, jose.last_name) == ("Jos\u00e9", "Ruiz")
    for submission in placed:  # the good members read through the same bad archive
        assert files.read_bytes(next(iter(submission.notebooks.values()))) == _notebook_bytes()
    with pytest.raises(files.UnreadableFile, match="CRC"):
        files.read_bytes({"zip": str(path), "member": "crc_01_chain_rule.ipynb", "index": 1})


def test_reading_a_submission_never_follows_a_link_nor_waits_on_a_fifo(tmp_path):
    import os

    (tmp_path / "real.ipynb").write_bytes(b"{}")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "real.ipynb")
    os.mkfifo(tmp_path / "fifo.ipynb")
    for name in ("link.ipynb", "fifo.ipynb", "missing.ipynb"):
        with pytest.raises(files.UnreadableFile):
            files.read_bytes({"path": str(tmp_path / name)})
    submission = submissions.Submission("s", "01_chain_rule", {"01_chain_rule": {"path": str(tmp_path / "fifo.ipynb")}})
    sources = {"01_chain_rule": {"assignment": "01_chain_rule", "sha": "x"}}
    settings = batch.Batch(sandbox.probe(force_mode="none"), sandbox.Limits(), [], tmp_path)
    assert len(settings.job_key(submission, sources, {})) == 64  # a key, not an exception


def _sandbox_run(box, source: str) -> dict:
    import select

    wire.send(box.sock, {"op": "run", "source": source})
    assert select.select([box.sock], [], [], 120)[0], "no reply from the kernel"
    return wire.recv(box.sock)


def test_the_file_view_denies_by_default(tmp_path):
    isolation = sandbox.probe()
    if isolation.mode == "none":
        pytest.skip("no namespaces on this machine")
    from autograder import COURSE_ROOT

    hidden, unlisted = tmp_path / "course", tmp_path / "elsewhere"
    for folder in (hidden, unlisted):
        folder.mkdir()
        (folder / "secret.txt").write_text("the answer")
    box = sandbox.Sandbox(isolation, sandbox.Limits(memory_mb=1024), hide=[str(hidden)],
                          notebook_name="nb.ipynb", notebook_bytes=b"{}").start()
    try:
        paths = [str(hidden / "secret.txt"), str(unlisted / "secret.txt"), str(COURSE_ROOT / "source"),
                 str(COURSE_ROOT / "nbgrader_config.py"), "/etc/passwd", "/sys/fs/cgroup", "/run"]
        reply = _sandbox_run(box, f"import json, os\nprint(json.dumps([os.path.exists(p) for p in {paths!r}]))\n"
                                  "print(json.dumps(sorted(os.listdir('/'))))\n"
                                  "import numpy, torch, course_lib.checks\n"
                                  "print(os.path.isfile(course_lib.checks.__file__))\n"
                                  "print(open('/proc/self/mountinfo').read())")
        assert reply["error"] is None, reply["error"]
        exists, top = (json.loads(line) for line in reply["stdout"].splitlines()[:2])
        assert exists == [False] * len(paths)
        assert reply["stdout"].splitlines()[2] == "True"  # course_lib's files are there to read
        the_view = sandbox.view((str(hidden),))
        shown = {"dev", "proc", "tmp"} | {Path(p).parts[1] for p in the_view.binds + list(the_view.symlinks)}
        assert set(top) <= shown, top  # nothing but what is bound (and the folders leading to it)
        assert str(tmp_path) not in reply["stdout"]
        for finder in the_view.blanks:
            assert _sandbox_run(box, f"print(len(open({finder!r}, 'rb').read()))")["stdout"].strip() == "0"
    finally:
        box.kill()


def test_the_kernel_cannot_leave_its_session_and_a_forked_child_never_answers():
    isolation = sandbox.probe()
    if not isolation.seccomp:
        pytest.skip("no seccomp on this machine")
    box = sandbox.Sandbox(isolation, sandbox.Limits(memory_mb=1024), notebook_name="nb.ipynb",
                          notebook_bytes=b"{}").start()
    try:
        reply = _sandbox_run(box, "import os\nfor call in (os.setsid, lambda: os.setpgid(0, 0)):\n    try:\n"
                                  "        call()\n        print('allowed')\n    except PermissionError:\n"
                                  "        print('refused')")
        assert reply["stdout"].split() == ["refused", "refused"], reply
        reply = _sandbox_run(box, "import os\nif os.fork() == 0:\n    raise ValueError('the child')\nprint('parent')")
        assert reply["stdout"].strip() == "parent" and reply["error"] is None, reply
        assert _sandbox_run(box, "print(6 * 7)")["stdout"].strip() == "42"  # the channel is still in step
    finally:
        box.kill()


def test_a_deadline_counts_wall_time_minus_waiting_for_a_cpu(tmp_path):
    import time

    schedstat = tmp_path / "schedstat"
    schedstat.write_text("0 1000000000 1")
    deadline = sandbox.Deadline(10.0, lambda: [str(schedstat)])
    time.sleep(0.3)
    schedstat.write_text("0 1250000000 5")  # 0.25 s of the last 0.3 s spent waiting for a CPU
    assert 0.0 <= deadline.elapsed() < 0.3
    assert 9.7 < deadline.remaining() <= 10.0
    starved = sandbox.Deadline(0.05, lambda: [str(schedstat)])
    time.sleep(0.1)
    schedstat.write_text("0 99000000000 9")  # waited for longer than it ran: only the backstop ends it
    assert starved.remaining() > 0
    time.sleep(0.05 * sandbox.BACKSTOP)
    assert starved.remaining() <= 0


def _dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has ended."""
    import subprocess

    child = subprocess.Popen(["sleep", "0.2"])
    started = sandbox.start_time(child.pid)
    child.wait()
    return child.pid, started


def test_leftovers_of_dead_owners_are_removed_and_live_ones_kept(tmp_path):
    import os
    import shutil
    import tempfile

    from autograder.judging import worker

    pid, started = _dead_process()
    dead = Path(tempfile.gettempdir()) / f"vg-grade-{pid}-{started}-test"
    live = worker.scratch_dir("grade")
    old, recent = (Path(tempfile.mkdtemp(prefix="vg-grade-")) for _ in range(2))  # before owners were named
    os.utime(old, (0, 0))
    dead.mkdir()
    (tmp_path / "autograded" / "s").mkdir(parents=True)
    half = tmp_path / "autograded" / "s" / f".nb.ipynb.tmp{pid}"
    half.write_text("{")
    try:
        worker.clear_leftovers(tmp_path)
        assert not dead.exists() and live.is_dir() and not half.exists()
        assert not old.exists() and recent.is_dir()  # an untagged folder goes after a day
    finally:
        for folder in (live, dead, old, recent):
            shutil.rmtree(folder, ignore_errors=True)


def test_cgroups_of_dead_owners_are_emptied_and_removed():
    import subprocess

    flavour = sandbox.probe().cgroups
    if flavour != "v1":
        pytest.skip(f"needs writable cgroup v1 hierarchies (this machine: {flavour or 'none'})")
    pid, started = _dead_process()
    parent = Path("/sys/fs/cgroup/pids/vg-grader")
    parent.mkdir(exist_ok=True)
    dead, live = parent / f"{pid}-{started}-0", parent / f"{sandbox.owner_tag()}-999"
    dead.mkdir()
    live.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (dead / "cgroup.procs").write_text(str(sleeper.pid))
        sandbox.sweep_cgroups()  # (another grader's sweep may have been first: the outcome is the same)
        assert sleeper.wait(timeout=10) == -9 and not dead.exists() and live.exists()
    finally:
        sleeper.kill()
        for folder in (dead, live):
            if folder.exists():
                folder.rmdir()
