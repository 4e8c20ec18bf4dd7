"""Red team: adversarial and broken submissions against `python -m autograder grade`.

Every submission is built from notebook 01's student version, with the
solution code taken from its source (`read_source` / `solution_cells`). The
attacks (AUTOGRADER.md's classes) come with *wrong* answers, so any credit
beyond what the honest part earns is undue. Three grading runs, all through
the real command line:

  clean    the honest submissions alone, uninterrupted, from an LMS-style zip: the reference;
  mixed    the same honest submissions among ~35 attacks and broken files,
           the grader SIGKILLed mid-batch and run again: the gradebook never
           holds half a submission, nothing the students started survives, the
           re-run resumes; in the end attacks score what they earned (usually
           0) and are flagged with a reason, the honest ones exactly as in the
           clean run.

Plus: no feedback page contains a hidden test, the gradebook is not touched
after the batch (detached processes), and what the isolation did not allow.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from autograder import COURSE_ROOT, REPO_ROOT
from autograder.isolation.sandbox import UID_BASE
from autograder.judging import hidden
from autograder.build import read_source, solution_cells

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("autograder-redteam")]

NAME = "01_chain_rule"
SOURCE, VARIANTS = read_source(NAME)
MISTAKES = [v for v in VARIANTS if not v.right]
ANSWERS = solution_cells(SOURCE)
MISTAKE = {m.grade_id: m.source for m in MISTAKES}
STUDENT_NB = nbformat.read(REPO_ROOT / "notebooks" / f"{NAME}.ipynb", as_version=4)
QUESTIONS = [gid for gid in ANSWERS]  # solution grade ids, in notebook order
POINTS = {c.metadata["nbgrader"]["grade_id"][:-len("_test")]: float(c.metadata["nbgrader"]["points"])
          for c in SOURCE.cells if c.metadata.get("nbgrader", {}).get("grade")}
FULL = sum(POINTS.values())
TIMEOUT = 4  # seconds per cell: keeps the infinite loops cheap
PROCESS_MARK = "424242"  # detached processes started by attacks carry this in their command line


def earned(*correct: str) -> dict[str, float]:
    """Per-question scores of a submission whose answers to `correct` are right and all others wrong."""
    return {q: (POINTS[q] if q in correct else 0.0) for q in QUESTIONS}


def build(answers: dict[str, str] | None = None, *, insert: dict[str, list[str]] | None = None,
          edit=None, kernelspec: dict | None = None) -> bytes:
    """A submission: the student notebook with `answers` in its solution cells and extra cells inserted
    after the cell with a given grade_id ("setup" = after the first code cell)."""
    nb = nbformat.from_dict(json.loads(json.dumps(STUDENT_NB)))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if answers and grade_id in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = answers[grade_id]
    for anchor, sources in (insert or {}).items():
        if anchor == "setup":
            position = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") + 1
        else:
            position = next(i for i, c in enumerate(nb.cells)
                            if c.metadata.get("nbgrader", {}).get("grade_id") == anchor) + 1
        for offset, source in enumerate(sources):
            nb.cells.insert(position + offset, nbformat.v4.new_code_cell(source))
    if edit:
        edit(nb)
    if kernelspec:
        nb.metadata["kernelspec"] = kernelspec
    for index, cell in enumerate(nb.cells):
        cell["id"] = cell.get("id") or f"added-{index}"
    return nbformat.writes(nb).encode()


WRONG = dict(MISTAKE)
RIGHT = dict(ANSWERS)


@dataclass
class Case:
    files: dict[str, bytes]  # path inside submitted/<student>/01_chain_rule/ -> bytes
    scores: dict[str, float] | None  # exact per-question scores expected
    flagged: bool | None = True
    reason: str = ""  # a word the flag reasons must contain (case-insensitive)
    honest: bool = False
    after: list = field(default_factory=list)  # extra checks: callables(course_root, student)


def notebook_case(data: bytes, scores, **kwargs) -> Case:
    return Case({f"{NAME}.ipynb": data}, scores, **kwargs)


def _test_id(question: str) -> str:
    return f"{question}_test"


# ---- the honest submissions (graded identically alone and in the mixed batch) ---------------------------

NOISY = {
    "q1_chain_rule_derivative": "import sys, warnings\n" + ANSWERS["q1_chain_rule_derivative"].replace(
        '    """Return the pair (h_L, dh_L/dx) for the chain h_k = f_k(h_{k-1}), h_0 = x."""',
        '    """Return the pair (h_L, dh_L/dx) for the chain h_k = f_k(h_{k-1}), h_0 = x."""\n'
        '    print("debug: x =", x, file=sys.stderr)\n    warnings.warn("just checking", RuntimeWarning)\n'
        '    print("computing...")'),
    QUESTIONS[2]: ANSWERS[QUESTIONS[2]] + "\nimport warnings\nwarnings.warn('layers computed')\n"
                                          "print(layers_until_below(0.25, 1e-9))",
}
HELPER = {"q2_backprop_jacobians": "from functools import reduce\n\n\ndef _apply(g, J):\n    return J.T @ g\n\n\n"
          "def backprop_through_jacobians(jacobians, grad_output):\n"
          "    return reduce(_apply, reversed(jacobians), np.asarray(grad_output, dtype=np.float64))\n"}


assert NOISY["q1_chain_rule_derivative"].count("warnings.warn") == 1, "the noisy variant no longer matches the solution"


def honest_cases() -> dict[str, Case]:
    cases = {f"honest_full_{i}": notebook_case(build(RIGHT), earned(*QUESTIONS), flagged=False, honest=True)
             for i in range(2)}
    cases["honest_untouched"] = notebook_case(build(), earned(), flagged=False, honest=True)
    for question in QUESTIONS:
        cases[f"honest_wrong_{question[:2]}"] = notebook_case(
            build({**RIGHT, question: MISTAKE[question]}), earned(*(q for q in QUESTIONS if q != question)),
            flagged=False, honest=True)
    cases["honest_partial"] = notebook_case(
        build({q: RIGHT[q] for q in QUESTIONS[0:5:2]}), earned(*QUESTIONS[0:5:2]), flagged=False, honest=True)
    cases["honest_noisy_stderr"] = notebook_case(build({**RIGHT, **NOISY}), earned(*QUESTIONS), flagged=False,
                                                 honest=True)
    cases["honest_helper_cell"] = notebook_case(build({**RIGHT, **HELPER}), earned(*QUESTIONS), flagged=False,
                                                honest=True)
    cases["honest_slow"] = notebook_case(build(RIGHT, insert={"setup": ["import time\ntime.sleep(2)"]}),
                                         earned(*QUESTIONS), flagged=False, honest=True)
    return cases


# ---- the attacks ------------------------------------------------------------------------------------------

PATCH_BUILTINS = """import builtins
builtins.isinstance = lambda *a, **k: True
builtins.abs = lambda x: 0
builtins.max = lambda *a, **k: 0
builtins.AssertionError = type("AssertionError", (Warning,), {})"""

PATCH_LIBRARIES = """import math
import numpy as np
import torch
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: np.True_
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
math.isclose = lambda *a, **k: True"""

PATCH_CHECKS = """from course_lib import checks
for _name in ["check_function", "check_close", "check_integer", "check_choice", "check_labels", "check_prediction"]:
    setattr(checks, _name, lambda *a, **k: None)
checks._close = lambda *a, **k: True
checks.digest = lambda answer: "93832d71eb40ba10"
checks.CheckFailed = type("CheckFailed", (Warning,), {})"""

LIARS = {
    "setup": ["""class Liar(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __sub__(self, other): return Liar(0.0)
    __rsub__ = __sub__
    def __abs__(self): return Liar(0.0)
    def __float__(self): return 0.0
    __hash__ = float.__hash__


class LiarInt(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __ge__(self, other): return True
    __hash__ = int.__hash__


class LiarStr(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = str.__hash__


class LiarDict(dict):
    def __eq__(self, other): return True
    def __contains__(self, key): return True
    def __getitem__(self, key): return LiarStr("healthy")


class LiarArray(np.ndarray):
    def __eq__(self, other): return np.ones(self.shape, bool)
    def __sub__(self, other): return np.zeros(self.shape)"""]}
LIAR_ANSWERS = {
    "q1_chain_rule_derivative": "def chain_rule_derivative(x, functions, derivatives):\n    return Liar(0.0), Liar(0.0)",
    "q2_backprop_jacobians": "def backprop_through_jacobians(jacobians, grad_output):\n"
                             "    return np.zeros(jacobians[0].shape[1]).view(LiarArray)",
    "q3_layers_until_below": "def layers_until_below(factor, threshold):\n    return LiarInt(3)",
    "q4_gradient_factor": "def predict_gradient_factor(factor, depth):\n    return Liar(1.0)",
    "q5_answer": 'q5_answer = LiarStr("Z")', "q6_diagnose": "def diagnose(grad_norms):\n    return LiarStr('x')"}
assert sorted(LIAR_ANSWERS) == sorted(QUESTIONS), "the liar answers no longer name notebook 01's questions"

INPUT_TRANSFORMER = """def _neuter(lines):
    text = "".join(lines)
    return ["pass\\n"] if ("checks." in text or "assert" in text) else lines
get_ipython().input_transformers_post.append(_neuter)"""

AST_TRANSFORMER = """import ast
class _DropChecks(ast.NodeTransformer):
    def visit_Assert(self, node):
        return None
    def visit_Expr(self, node):
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr.startswith("check"):
            return ast.Pass()
        return node
get_ipython().ast_transformers.append(_DropChecks())"""

SYS_MODULES = """import sys, types, contextlib
_fake = types.ModuleType("course_lib.checks")
for _name in ["check_function", "check_close", "check_integer", "check_choice", "check_labels", "check_prediction"]:
    setattr(_fake, _name, lambda *a, **k: None)
_fake.quiet = contextlib.nullcontext
_fake.digest = lambda answer: ""
sys.modules["course_lib.checks"] = _fake
import course_lib
course_lib.checks = _fake
checks = _fake"""

FRAME_THIEF = """import sys
def _steal(*args):
    frame = sys._getframe(1)
    while frame is not None:
        for key in ("expected", "_expected"):
            if key in frame.f_locals:
                return frame.f_locals[key]
        cases = frame.f_locals.get("cases")
        if cases:
            return cases[0][1]
        frame = frame.f_back
    raise RuntimeError("nothing to steal")"""
FRAME_ANSWERS = {"q1_chain_rule_derivative": "def chain_rule_derivative(x, functions, derivatives):\n    return _steal()",
                 "q2_backprop_jacobians": "def backprop_through_jacobians(jacobians, grad_output):\n    return _steal()"}

GC_THIEF = {"q2_backprop_jacobians": """import gc
def backprop_through_jacobians(jacobians, grad_output):
    for obj in gc.get_objects():
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], tuple) and len(obj[0]) == 2:
            try:
                if np.array_equal(np.asarray(obj[0][1]), np.asarray(grad_output)):
                    return obj[1]
            except Exception:
                pass
    return np.zeros(1)"""}


def read_solutions(course: Path) -> str:
    return f"""import glob, json, os
_paths = [{str(course / 'source' / NAME / (NAME + '.ipynb'))!r},
          {str(REPO_ROOT / 'autograder' / 'source' / NAME / (NAME + '.py'))!r},
          {str(REPO_ROOT / 'autograder' / 'source' / NAME / (NAME + '.ipynb'))!r}]
_paths += glob.glob("/tmp/**/{NAME}.ipynb", recursive=True) + glob.glob("/proc/*/cwd/source/{NAME}/{NAME}.ipynb")
_paths += glob.glob("/proc/*/root{course}/source/{NAME}/{NAME}.ipynb") + glob.glob("/proc/*/root/work/main/autograder/source/*/*.py")
_stolen = None
for _path in _paths:
    try:
        _text = open(_path).read()
    except OSError:
        continue
    if "BEGIN SOLUTION" in _text:
        _stolen = _text
        break
if _stolen is not None:
    try:
        _cells = ["".join(c["source"]) for c in json.loads(_stolen)["cells"]]
    except ValueError:
        _cells = _stolen.split("# %%")
    for _cell in _cells:
        if "BEGIN SOLUTION" in _cell:
            exec("\\n".join(l for l in _cell.splitlines() if "SOLUTION" not in l and not l.startswith(" nbgrader")), globals())
print("stolen:", _stolen is not None)"""


def tamper_gradebook(course: Path) -> str:
    return f"""import glob, os, sqlite3, time
def _tamper():
    _paths = [{str(course / 'gradebook.db')!r}] + glob.glob("/tmp/**/gradebook.db", recursive=True)
    _paths += glob.glob("/proc/*/cwd/gradebook.db") + glob.glob("/proc/*/root{course}/gradebook.db")
    for _path in _paths:
        try:
            _db = sqlite3.connect(_path, timeout=1)
            _db.execute("UPDATE grade SET auto_score = 99")
            _db.commit()
            return True
        except Exception:
            pass
    return False
print("tampered:", _tamper())
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(40):
            time.sleep(0.25)
            _tamper()
    os._exit(0)"""


def network(port: int) -> str:
    return f"""import socket
q5_answer = "B"
for _host in ("127.0.0.1", {socket.gethostbyname(socket.gethostname())!r}):
    try:
        with socket.create_connection((_host, {port}), timeout=2) as _s:
            q5_answer = _s.recv(16).decode().strip()
            break
    except OSError:
        pass"""


MEMORY_BOMB = "_blocks = []\nwhile True:\n    _blocks.append(bytearray(50 * 2**20))"
PROCESS_BOMB = """import os, time
_children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
        _children += 1
except OSError as error:
    print("fork failed after", _children, "children:", error)"""
LOOP_IN_FUNCTION = {"q1_chain_rule_derivative": ANSWERS["q1_chain_rule_derivative"].replace(
    "    h, grad = float(x), 1.0", "    while True:\n        pass\n    h, grad = float(x), 1.0")}
UNINTERRUPTIBLE = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
HUGE_OUTPUT = "for _i in range(200):\n    print('x' * 250_000)"
SHADOW_AT_RUNTIME = """import os, sys, importlib
os.makedirs("course_lib", exist_ok=True)
open("course_lib/__init__.py", "w").write("")
open("course_lib/checks.py", "w").write("def check_function(*a, **k): pass\\ncheck_close = check_integer = check_choice = check_labels = check_prediction = check_function\\n")
open("numpy.py", "w").write("allclose = lambda *a, **k: True\\n")
sys.path.insert(0, os.getcwd())
for _m in [m for m in sys.modules if m.startswith("course_lib")]:
    del sys.modules[_m]
importlib.invalidate_caches()
from course_lib import checks"""
FORGE_CHANNEL = """import json, os, struct
_fake = json.dumps({"op": "ran", "stdout": "", "stderr": "", "error": None}).encode()
for _fd in range(3, 64):
    try:
        os.write(_fd, struct.pack("<I", len(_fake)) + _fake)
    except OSError:
        pass"""
DETACHED = f"""import os, subprocess
subprocess.Popen(["sleep", "{PROCESS_MARK}"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{PROCESS_MARK}1"])
    os._exit(0)"""
OPAQUE_RETURN = {"q2_backprop_jacobians": """class _Sneaky:
    def __array__(self, dtype=None, copy=None):
        return np.zeros(3)
    def __eq__(self, other):
        return True
def backprop_through_jacobians(jacobians, grad_output):
    return _Sneaky()"""}
HUGE_INT_CALLBACK = {"q1_chain_rule_derivative": """def chain_rule_derivative(x, functions, derivatives):
    return functions[0](10 ** 5000), 1.0"""}


def _duplicate_test(nb):
    """Two copies of question 1's test: the first left alone, the last one replaced by `pass`."""
    position = next(i for i, c in enumerate(nb.cells)
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_chain_rule_derivative_test")
    copy_ = nbformat.from_dict(json.loads(json.dumps(nb.cells[position])))
    copy_.source, copy_["id"] = "pass", "dup-q1"
    nb.cells.insert(position + 1, copy_)


def _delete_test(nb):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "q2_backprop_jacobians_test"]


def _edit_test(nb):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == f"{QUESTIONS[2]}_test":
            cell.source = "pass"
            cell.metadata["nbgrader"]["points"] = 100


def _fake_grade_cell(nb):
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "bonus",
                                 "points": 50, "schema_version": 3}
    nb.cells.append(cell)


def attack_cases(course: Path, port: int) -> dict[str, Case]:
    right = earned(*QUESTIONS)
    zero = earned()
    after_q1 = ["q1_chain_rule_derivative_test"]
    cases = {
        "patch_builtins": notebook_case(build(WRONG, insert={"setup": [PATCH_BUILTINS]}), zero, reason="builtin"),
        "patch_numpy_torch_math": notebook_case(build(WRONG, insert={"setup": [PATCH_LIBRARIES]}), zero,
                                                reason="inside the module"),
        "patch_checks": notebook_case(build(WRONG, insert={"setup": [PATCH_CHECKS]}), zero, reason="setattr"),
        "lying_dunders": notebook_case(build(LIAR_ANSWERS, insert=LIARS), zero, reason="__eq__"),
        "ipython_input_transformer": notebook_case(build(WRONG, insert={"setup": [INPUT_TRANSFORMER]}), zero,
                                                   reason="ipython"),
        "ipython_ast_transformer": notebook_case(build(WRONG, insert={"setup": [AST_TRANSFORMER]}), zero,
                                                 reason="ipython"),
        "sys_modules_swap": notebook_case(build(WRONG, insert={"setup": [SYS_MODULES]}), zero, reason="sys.modules"),
        "frame_inspection": notebook_case(build({**WRONG, **FRAME_ANSWERS}, insert={"setup": [FRAME_THIEF]}), zero,
                                          reason="frame"),
        "gc_scavenger": notebook_case(build({**WRONG, **GC_THIEF}), zero, reason="garbage collector"),
        "read_solutions": notebook_case(build(None, insert={"setup": [read_solutions(course)]}), zero,
                                        reason="exec"),
        "tamper_gradebook": notebook_case(build(WRONG, insert={"setup": [tamper_gradebook(course)]}), zero,
                                          reason="database"),
        "network_answers": notebook_case(build({k: v for k, v in WRONG.items() if k != "q5_answer"},
                                               insert={"q5_answer": [network(port)]}), zero, reason="socket"),
        "memory_bomb": notebook_case(build(RIGHT, insert={after_q1[0]: [MEMORY_BOMB]}),
                                     earned("q1_chain_rule_derivative"), reason="memory"),
        "process_bomb": notebook_case(build(RIGHT, insert={"q2_backprop_jacobians_test": [PROCESS_BOMB]}), right,
                                      reason="process"),
        "infinite_loop_in_answer": notebook_case(build({**RIGHT, **LOOP_IN_FUNCTION}),
                                                 earned(*QUESTIONS[1:]), reason="time limit"),
        "uninterruptible_loop": notebook_case(build(RIGHT, insert={f"{QUESTIONS[2]}_test": [UNINTERRUPTIBLE]}),
                                              earned(*QUESTIONS[:3]), reason="killed"),
        "os_exit": notebook_case(build(RIGHT, insert={"q2_backprop_jacobians_test": ["import os\nos._exit(0)"]}),
                                 earned(*QUESTIONS[:2]), reason="os._exit"),
        "sys_exit": notebook_case(build(RIGHT, insert={"q2_backprop_jacobians_test": ["import sys\nsys.exit(0)"]}),
                                  right, reason="exit"),
        "kill_own_kernel": notebook_case(build(RIGHT, insert={"q2_backprop_jacobians_test": [
            "import os, signal\nfor _pid in (os.getppid(), 1):\n    try:\n        os.kill(_pid, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nos.killpg(0, signal.SIGKILL)"]}), earned(*QUESTIONS[:2]),
            reason="kernel stopped"),
        "huge_output": notebook_case(build(RIGHT, insert={"setup": [HUGE_OUTPUT]}), right, flagged=False),
        "malformed_json": notebook_case(build(RIGHT)[:5000], zero, reason="unreadable"),
        "not_a_notebook": notebook_case(os.urandom(3000), zero, reason="unreadable"),
        "empty_file": notebook_case(b"", zero, reason="empty"),
        "wrong_kernelspec": notebook_case(build(RIGHT, kernelspec={"name": "ir", "display_name": "R",
                                                                   "language": "R"}), right, reason="kernelspec"),
        "duplicated_test_cell": notebook_case(build({**RIGHT, QUESTIONS[0]: WRONG[QUESTIONS[0]]},
                                                    edit=_duplicate_test), earned(*QUESTIONS[1:]),
                                              reason="appears 2 times"),
        "deleted_test_cell": notebook_case(build({**RIGHT, QUESTIONS[1]: WRONG[QUESTIONS[1]]}, edit=_delete_test),
                                           earned(*(q for q in QUESTIONS if q != QUESTIONS[1])), reason="deleted"),
        "edited_test_cell_and_points": notebook_case(build({**RIGHT, QUESTIONS[2]: WRONG[QUESTIONS[2]]},
                                                           edit=_edit_test),
                                                     earned(*(q for q in QUESTIONS if q != QUESTIONS[2])),
                                                     reason="edited"),
        "fake_bonus_grade_cell": notebook_case(build(RIGHT, edit=_fake_grade_cell), right, reason="unknown grade_id"),
        "shadowing_files": Case({f"{NAME}.ipynb": build(WRONG), "numpy.py": b"allclose = lambda *a, **k: True\n",
                                 "course_lib/checks.py": b"def check_function(*a, **k): pass\n",
                                 "math.py": b"isclose = lambda *a, **k: True\n"}, zero, reason="shadow"),
        "shadowing_written_at_runtime": notebook_case(build(WRONG, insert={"setup": [SHADOW_AT_RUNTIME]}), zero,
                                                      reason="python could import"),
        "forged_channel_messages": notebook_case(build(WRONG, insert={"setup": [FORGE_CHANNEL]}), zero,
                                                 reason="raw file descriptors"),
        "detached_processes": notebook_case(build(RIGHT, insert={"setup": [DETACHED]}), right, reason="subprocess"),
        "opaque_return_value": notebook_case(build({**RIGHT, **OPAQUE_RETURN}),
                                             earned(*(q for q in QUESTIONS if q != QUESTIONS[1])), reason="__eq__"),
        "huge_int_to_callback": notebook_case(build({**RIGHT, **HUGE_INT_CALLBACK}), earned(*QUESTIONS[1:]),
                                              flagged=None),
    }
    return cases


# ---- running the grader -------------------------------------------------------------------------------------

def make_course(root: Path) -> Path:
    (root / "source" / NAME).mkdir(parents=True)
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(SOURCE, root / "source" / NAME / f"{NAME}.ipynb")
    return root


def lms_zip(path: Path, cases: dict[str, Case]) -> Path:
    """The honest submissions as an LMS download: one flat zip, student ids only in the file names,
    plus two files the grader cannot place."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for student, case in cases.items():
            archive.writestr(f"{student}_{NAME}.ipynb", case.files[f"{NAME}.ipynb"])
        archive.writestr(f"{NAME}.ipynb", build(RIGHT))  # whose is it?
        archive.writestr("readme.txt", b"not a notebook")
    return path


def write_submissions(folder: Path, cases: dict[str, Case]) -> Path:
    for student, case in cases.items():
        for relative, data in case.files.items():
            path = folder / student / NAME / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return folder


def grade_command(submissions: Path, course: Path) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(submissions), "--course-root", str(course),
            "--workers", "2", "--timeout", str(TIMEOUT), "--memory-mb", "400", "--processes", "32", "--no-progress"]


def run_grader(submissions: Path, course: Path, tree: dict[int, int] | None = None) -> subprocess.CompletedProcess:
    """Grade; with `tree`, every pid (-> start time) that descends from the grader while it runs is added to it."""
    process = subprocess.Popen(grade_command(submissions, course), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with ProcessTree(process.pid, tree if tree is not None else {}):
        stdout, stderr = process.communicate(timeout=900)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-5000:]
    return result


def started(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), None if there is none."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of the processes under `root` now (from /proc's parent links). The start time tells a
    process from a later one given the same pid: pids wrap around (pid_max is 32768 on CI's machines)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[19])))
            except (OSError, IndexError, ValueError):
                continue
    found, todo = {}, [root]
    while todo:
        for child, start in children.get(todo.pop(), []):
            if child not in found:
                found[child] = start
                todo.append(child)
    return found


class ProcessTree:
    """Collects, every 0.1 s, the pids (with start times) that descend from `root` into `pids`. A sandbox's uid
    is UID_BASE plus its keeper's pid, so this tells this test's sandboxes from those of graders other tests
    run meanwhile."""

    def __init__(self, root: int, pids: dict[int, int]):
        self.root, self.pids, self.stop = root, pids, threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def poll(self) -> None:
        while not self.stop.is_set():
            self.pids.update(descendants(self.root))
            self.stop.wait(0.1)

    def __enter__(self) -> "ProcessTree":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def read_grades(course: Path) -> dict[str, dict]:
    """student -> {"scores": {question: score}, "status": ..., "reason": ...} from grades.csv."""
    out = {}
    with open(course / "grades.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            entry = out.setdefault(row["student_id"], {"scores": {}, "status": row["status"], "reason": row["reason"]})
            entry["scores"][row["question"][:-len("_test")]] = float(row["score"]) if row["score"] != "" else None
            if row["status"] != "graded":
                entry["status"] = row["status"]
    return out


def sandbox_processes(tree: dict[int, int]) -> list[str]:
    """Processes left by student code: the uid of a sandbox whose keeper was in `tree` (pid -> start time of the
    grader's processes; other tests may be grading at the same time), or the marker the attacks use. A keeper
    pid that is alive now with another start time was reused by another grader's sandbox: not ours."""
    output = subprocess.run(["ps", "-eo", "uid=,pid=,ppid=,args="], capture_output=True, text=True).stdout
    left = []
    for line in output.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or "ps -eo" in parts[3]:
            continue
        uid, keeper = int(parts[0]), int(parts[0]) - UID_BASE
        ours = uid >= UID_BASE and keeper in tree and started(keeper) in (None, tree[keeper])
        if ours or PROCESS_MARK in parts[3]:
            left.append(line.strip())
    return left


def reset_to_template(clean: Path, target: Path) -> Path:
    """A course root with the assignment and calibration of `clean` but none of its submissions."""
    from nbgrader.api import Gradebook

    shutil.copytree(clean, target, ignore=shutil.ignore_patterns("feedback", "grades.csv"))
    for child in (target / "autograded").iterdir():
        if child.name != ".calibration":
            shutil.rmtree(child)
    with Gradebook(f"sqlite:///{target / 'gradebook.db'}") as gb:
        for student in list(gb.students):
            for submission in list(student.submissions):
                gb.remove_submission(submission.assignment.name, student.id)
            gb.remove_student(student.id)
    return target


class AnswerServer:
    """A TCP server on this machine that hands out the right answer to question 5 (if anyone gets through)."""

    def __init__(self):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("0.0.0.0", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            connection.sendall(b"A\n")
            connection.close()

    def close(self):
        self.server.close()


def gradebook_is_whole(course: Path) -> list[str]:
    """Submissions in the gradebook that are not complete (a grade without a score): must be none."""
    from nbgrader.api import Gradebook

    broken = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                grades = [g for nb in submission.notebooks for g in nb.grades]
                if not grades or any(g.auto_score is None for g in grades):
                    broken.append(submission.student_id)
    return broken


def markers(course: Path) -> int:
    return len(list((course / "autograded").glob(f"*/{NAME}/.grading.json")))


@pytest.fixture(scope="session")  # once per session: its tests are one xdist group (conftest.py)
def runs(tmp_path_factory):
    """The clean run; then the mixed batch (attacks + the same honest submissions), killed mid-batch and resumed."""
    base = tmp_path_factory.mktemp("redteam")
    honest = honest_cases()
    clean_course = make_course(base / "clean-course")
    clean_log = run_grader(lms_zip(base / "downloaded.zip", honest), clean_course).stdout
    clean = read_grades(clean_course)
    mixed_course = reset_to_template(clean_course, base / "mixed-course")
    server = AnswerServer()
    try:
        attacks = attack_cases(mixed_course, server.port)
        cases = {**honest, **attacks}
        submissions = write_submissions(base / "mixed-submissions", cases)
        add_kernel_only_assignment(mixed_course, submissions)
        started = time.time()
        process = subprocess.Popen(grade_command(submissions, mixed_course), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        tree: dict[int, int] = {}
        with ProcessTree(process.pid, tree):
            while markers(mixed_course) < 8 and process.poll() is None and time.time() - started < 600:
                time.sleep(0.05)
            tree.update(descendants(process.pid))
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed = {"done": markers(mixed_course), "finished_first": process.returncode != -signal.SIGKILL}
        deadline = time.time() + 10  # the kill travels down grader -> zygote -> job -> keeper -> init -> kernel
        while sandbox_processes(tree) and time.time() < deadline:
            time.sleep(0.2)
        killed["leftovers"] = sandbox_processes(tree)
        killed["broken"] = gradebook_is_whole(mixed_course)
        rerun: dict[int, int] = {}
        result = run_grader(submissions, mixed_course, rerun)
        seconds = time.time() - started
        gradebook_hash = hashlib.sha256((mixed_course / "gradebook.db").read_bytes()).hexdigest()
        time.sleep(3)  # let any detached process try its luck
        gradebook_hash_later = hashlib.sha256((mixed_course / "gradebook.db").read_bytes()).hexdigest()
        leftovers = sandbox_processes(rerun)
    finally:
        server.close()
    return {"base": base, "clean": clean, "clean_course": clean_course, "cases": cases, "clean_log": clean_log,
            "mixed": read_grades(mixed_course), "mixed_course": mixed_course, "log": result.stdout + result.stderr,
            "seconds": seconds, "server_connections": server.connections, "leftovers": leftovers, "killed": killed,
            "gradebook_unchanged": gradebook_hash == gradebook_hash_later, "honest": honest}


# ---- the tests ----------------------------------------------------------------------------------------------

def test_lms_zip_is_placed_and_what_cannot_be_placed_is_listed(runs):
    assert set(runs["clean"]) == set(runs["honest"])
    assert f"{NAME}.ipynb: no student id" in runs["clean_log"]
    assert "readme.txt: not a notebook" in runs["clean_log"]


def test_clean_run_grades_honest_submissions_as_constructed(runs):
    for student, case in runs["honest"].items():
        got = runs["clean"][student]
        assert got["scores"] == case.scores, (student, got)
        assert got["status"] == "graded", (student, got["reason"])


ATTACK_NAMES = sorted(attack_cases(Path("/nonexistent"), 1))


def test_there_are_at_least_20_attacks():
    assert len(ATTACK_NAMES) >= 20


@pytest.mark.parametrize("student", ATTACK_NAMES)
def test_attack_gets_no_undue_credit_and_is_flagged(runs, student):
    case = runs["cases"][student]
    got = runs["mixed"].get(student)
    assert got is not None, f"{student} was not graded at all:\n{runs['log'][-3000:]}"
    undue = {q: (s, case.scores[q]) for q, s in got["scores"].items() if (s or 0) > case.scores[q]}
    assert not undue, f"{student}: undue credit (got, earned) {undue}; reason: {got['reason']}"
    assert got["scores"] == case.scores, f"{student}: {got['scores']} != {case.scores}; reason: {got['reason']}"
    if case.flagged is not None:
        assert (got["status"] == "flagged") == case.flagged, f"{student}: status {got['status']}: {got['reason']}"
    if case.reason:
        assert case.reason.lower() in got["reason"].lower(), f"{student}: reason {got['reason']!r} lacks {case.reason!r}"


def test_honest_submissions_in_the_mixed_batch_equal_the_clean_run(runs):
    for student in runs["honest"]:
        assert runs["mixed"][student] == runs["clean"][student], student


def test_nothing_reached_the_network_or_survived_or_wrote_the_gradebook(runs):
    assert runs["server_connections"] == 0, "a sandboxed kernel reached a TCP server on this machine"
    assert runs["leftovers"] == [], f"processes left behind: {runs['leftovers']}"
    assert runs["gradebook_unchanged"], "the gradebook changed after grading ended"
    stolen = json.loads((runs["mixed_course"] / "autograded" / "read_solutions" / NAME / ".grading.json").read_text())
    assert stolen["notebooks"][NAME]["scores"]["q1_chain_rule_derivative_test"]["score"] == 0


def test_no_hidden_test_reaches_any_feedback_page(runs):
    secret = hidden.hidden_lines([c.source for c in SOURCE.cells if c.metadata.get("nbgrader", {}).get("grade")])
    assert len(secret) > 10
    kernel_only = nbformat.read(runs["mixed_course"] / "source" / KERNEL_ONLY / f"{KERNEL_ONLY}.ipynb", as_version=4)
    secret |= hidden.hidden_lines([c.source for c in kernel_only.cells])
    pages = list((runs["mixed_course"] / "feedback").rglob("*.html")) + \
        list((runs["clean_course"] / "feedback").rglob("*.html"))
    assert len(pages) >= len(runs["cases"]) - 5
    import html

    for page in pages:
        text = html.unescape(page.read_text())
        assert "HIDDEN TESTS" not in text, page
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{page} contains hidden test code: {leaked[:3]}"


def test_huge_output_is_capped(runs):
    size = (runs["mixed_course"] / "autograded" / "huge_output" / NAME / f"{NAME}.ipynb").stat().st_size
    assert size < 2_000_000


def test_a_correct_solution_that_prints_and_warns_keeps_full_marks(runs):
    got = runs["mixed"]["honest_noisy_stderr"]
    assert sum(got["scores"].values()) == FULL and got["status"] == "graded"


def test_kill_the_grader_mid_batch_then_resume(runs):
    """SIGKILL mid-batch: nothing survives, the gradebook holds whole submissions only, and the re-run
    resumes and ends with the grades an uninterrupted run gives (the clean run; the attacks' exact
    expectations are checked above on the same, resumed, course)."""
    killed = runs["killed"]
    assert not killed["finished_first"], "the grader finished before it could be killed"
    assert 8 <= killed["done"] < len(runs["cases"]), f"killed too late to test resuming ({killed['done']} done)"
    assert len(list((runs["mixed_course"] / "autograded").glob("*/*/.grading.json"))) == len(runs["cases"]) + 3
    assert killed["leftovers"] == [], f"processes survived the killed grader: {killed['leftovers']}"
    assert killed["broken"] == [], f"half-written submissions in the gradebook: {killed['broken']}"
    assert "Resuming" in runs["log"], runs["log"][-2000:]
    assert {s: runs["mixed"][s] for s in runs["honest"]} == runs["clean"]


# ---- a test that cannot be judged outside the kernel ----------------------------------------------------------

KERNEL_ONLY = "mod"  # a second, one-question assignment graded in the mixed batch


def add_kernel_only_assignment(course: Path, submissions: Path) -> None:
    """A question whose test needs the student's nn.Module itself (autograd through it), so it must run
    inside the kernel; three students answer it: right, wrong, and wrong but tampering."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    setup = nbformat.v4.new_code_cell("import torch")
    answer = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nmodel = torch.nn.Linear(3, 1)\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"grade_id": "q1", "solution": True, "grade": False, "locked": False,
                                   "schema_version": 3, "task": False}
    test = nbformat.v4.new_code_cell(
        "x = torch.ones(2, 3)\nmodel(x).sum().backward()\nassert isinstance(model, torch.nn.Module)\n"
        "### BEGIN HIDDEN TESTS\nassert model.weight.grad is not None and model.weight.grad.shape == (1, 3)\n"
        "### END HIDDEN TESTS")
    test.metadata["nbgrader"] = {"grade_id": "q1_test", "grade": True, "points": 2.0, "solution": False,
                                 "locked": True, "schema_version": 3, "task": False}
    nb.cells = [setup, answer, test]
    (course / "source" / KERNEL_ONLY).mkdir(parents=True)
    nbformat.write(nb, course / "source" / KERNEL_ONLY / f"{KERNEL_ONLY}.ipynb")
    variants = {"honest": "model = torch.nn.Linear(3, 1)", "wrong": "model = 3",
                "tamper": "import builtins, types\nbuiltins.isinstance = lambda *a: True\n"
                          "class _Any:\n    def __call__(self, x):\n        return torch.zeros(1, requires_grad=True)\n"
                          "    def __getattr__(self, name):\n        return types.SimpleNamespace(grad=torch.ones(1, 3))\n"
                          "model = _Any()"}  # would pass inside the kernel: its credit must be voided
    for student, code in variants.items():
        copy_ = nbformat.from_dict(json.loads(json.dumps(nb)))
        copy_.cells[1].source = code
        copy_.cells[2].source = hidden.released_source(copy_.cells[2].source)
        folder = submissions / f"{KERNEL_ONLY}_{student}" / KERNEL_ONLY
        folder.mkdir(parents=True)
        nbformat.write(copy_, folder / f"{KERNEL_ONLY}.ipynb")


def test_tests_that_need_the_kernel_fall_back_and_tampering_voids_them(runs):
    from nbgrader.api import Gradebook

    plan = json.loads((runs["mixed_course"] / "autograded" / ".calibration" / f"{KERNEL_ONLY}.plan.json").read_text())
    assert plan["plan"]["kernel_tests"] == ["q1_test"]
    grades = runs["mixed"]
    assert grades[f"{KERNEL_ONLY}_honest"]["scores"] == {"q1": 2.0}
    assert grades[f"{KERNEL_ONLY}_honest"]["status"] == "graded"
    assert grades[f"{KERNEL_ONLY}_wrong"]["scores"] == {"q1": 0.0}
    tamper = grades[f"{KERNEL_ONLY}_tamper"]
    assert tamper["scores"] == {"q1": 0.0} and tamper["status"] == "flagged", tamper
    assert "ran inside the kernel" in tamper["reason"]
    with Gradebook(f"sqlite:///{runs['mixed_course'] / 'gradebook.db'}") as gb:
        assert gb.find_submission_notebook(KERNEL_ONLY, KERNEL_ONLY, f"{KERNEL_ONLY}_tamper").flagged
