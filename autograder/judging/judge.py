"""The trusted side of grading one notebook: the kernel computes, the judge decides.

The student's cells run in the sandboxed kernel (``kernel.py``), in the
student's order, as nbgrader would run them. Test cells never run there.
The judge runs them itself, from the *source* notebook, in its own namespace
built from the source's trusted cells (imports, data), in a process the
student's code cannot reach. A name a solution cell defines (an "answer") is
fetched from the kernel when a test needs it: plain data arrives as fresh
objects of known types (``wire.py``); a function arrives as a proxy whose
calls send the judge's inputs to the kernel and bring plain data back. So
whatever the student patched in their kernel (builtins, numpy, torch,
``checks``, IPython's transformers, lying dunders) cannot touch a verdict.

The judge lends its random state to each call (so a test that seeds and then
calls the student's function sees the same numbers as in a notebook), moves
its own streams on afterwards (so two calls differ), never adopts a state
from the kernel, and writes changes to array arguments back (so "does not
modify its inputs" checks still see modifications).

A test that cannot run this way (say it needs an ``nn.Module`` the student
built, with autograd) is found once per assignment by the calibration run of
the solution (``grade.py``) and runs inside the kernel instead, like plain
nbgrader; a submission that tampers is then flagged and gets no credit for
such tests.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import importlib.util
import json
import linecache
import math
import os
import re
import signal
import symtable
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np

from . import integrity, wire
from .kernel import CappedWriter
from .preprocessors import DEMO_TAG, SKIPPED_SOURCE

MAX_NOTEBOOK_BYTES = 50 * 2**20
VERDICT_MODULES = ("judge", "integrity", "wire", "kernel", "preprocessors")


def _grader_version() -> str:
    """A hash of the code that decides a verdict: the judge, the inspection, the wire, the kernel's side,
    the grading mode, and course_lib (the checks and reference functions the tests call). Calibrations,
    test-cache entries and finished-job markers carry it, so none survives a change of that code."""
    here = Path(__file__).resolve().parent
    files = [here / f"{name}.py" for name in VERDICT_MODULES]
    spec = importlib.util.find_spec("course_lib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        files += sorted(Path(folder).glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


GRADER_VERSION = _grader_version()


class KernelDied(RuntimeError):
    """The student's kernel is gone; the message says why."""


class StudentCodeError(RuntimeError):
    """The student's code raised an exception the judge does not reproduce by type."""


class NotTransferable(TypeError):
    """The student's answer is not plain data and cannot be checked outside the kernel."""


# ---- the source notebook, seen by the judge ------------------------------------------------------

@dataclass
class SourceCell:
    index: int
    cell_type: str
    source: str
    grade_id: str | None
    kind: str  # test | solution | manual | locked | plain | demo | markdown
    points: float = 0.0
    needed: bool = True  # a trusted cell the judge runs (demo cells: only when a test needs one)
    exports: bool = True  # a test cell that binds names a later cell uses (then its outcome is never cached)


@dataclass
class SourceModel:
    """What the judge needs to know about a source notebook (solutions and hidden tests included)."""

    name: str
    cells: list[SourceCell]
    answer_names: list[str]
    sha256: str

    @classmethod
    def from_notebook(cls, name: str, nb) -> "SourceModel":
        cells = []
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            grade_id = meta.get("grade_id")
            if cell.cell_type != "code":
                kind = "manual" if meta.get("grade") else "locked" if meta.get("locked") and grade_id else "markdown"
            elif meta.get("grade") and meta.get("solution"):
                kind = "manual"
            elif meta.get("grade"):
                kind = "test"
            elif meta.get("solution"):
                kind = "solution"
            elif DEMO_TAG in cell.metadata.get("tags", []):
                kind = "demo"
            elif grade_id and meta.get("locked"):
                kind = "locked"
            else:
                kind = "plain"
            cells.append(SourceCell(index, cell.cell_type, cell.source, grade_id, kind,
                                    float(meta.get("points", 0) or 0)))
        answers = []
        for cell in cells:
            if cell.kind == "solution":
                for name in sorted(_bound_names(cell.source, imports=False)):
                    if name not in answers:
                        answers.append(name)
        later_uses: set[str] = set()
        for cell in reversed(cells):
            if cell.cell_type == "code" and cell.kind != "markdown":
                if cell.kind == "test":
                    cell.exports = bool(_bound_names(cell.source) & later_uses) or "*" in later_uses
                later_uses |= _free_names(cell.source)
        digest = hashlib.sha256(nbformat.writes(nb).encode()).hexdigest()
        model = cls(name, cells, answers, digest)
        model._mark_demos()
        return model

    def by_id(self, grade_id: str) -> SourceCell | None:
        return next((c for c in self.cells if c.grade_id == grade_id), None)

    def graded(self) -> list[SourceCell]:
        """Cells that carry points: autograded tests and manually graded answers."""
        return [c for c in self.cells if c.kind in ("test", "manual")]

    def prune(self) -> None:
        """Mark the trusted code cells no test needs (by names defined and used), so the judge skips them;
        a demo cell runs when a test or a needed cell reads a name only that demo cell defines."""
        for cell in self.cells:
            if cell.kind == "demo":
                cell.needed = False
        while True:
            needed = set()
            for cell in reversed(self.cells):
                if cell.kind == "test" or (cell.kind == "demo" and cell.needed):
                    needed |= _used_names(cell.source)
                elif cell.kind in ("plain", "locked") and cell.cell_type == "code":
                    cell.needed = bool(_bound_names(cell.source) & needed)
                    if cell.needed:
                        needed |= _used_names(cell.source)
            before = {c.index for c in self.cells if c.kind == "demo" and c.needed}
            self._mark_demos()
            if {c.index for c in self.cells if c.kind == "demo" and c.needed} == before:
                return

    def _mark_demos(self) -> None:
        """Mark the demo cells the judge must run: what its tests (and the trusted cells it runs) read
        that only a demo cell defines. Answers count as defined (they come from the kernel)."""
        kinds = ["demo" if c.kind == "demo" else "code" if c.cell_type == "code" and c.kind in (
            "plain", "locked", "test", "solution") else "" for c in self.cells]
        consumers = [c.index for c in self.cells if c.kind == "test" or (
            c.kind in ("plain", "locked") and c.cell_type == "code" and c.needed)]
        demos, _ = demo_dependencies(kinds, [c.source for c in self.cells], consumers)
        for cell in self.cells:
            if cell.kind == "demo":
                cell.needed = cell.index in demos

    def hidden_test_lines(self) -> set[str]:
        return integrity.hidden_lines([c.source for c in self.cells if c.kind == "test"])


@functools.lru_cache(maxsize=4096)
def _python(source: str) -> str:
    """The cell as Python, after IPython's transformations (magics become calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001
        return source


@functools.lru_cache(maxsize=4096)
def _parse(source: str):
    """The cell's AST, with the Python that %time, %timeit, %%time, %%capture ... run spliced in
    where the magic stands (so the names it reads and binds count like any other code's)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return None
    body = []
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        func = getattr(call, "func", None)
        if isinstance(call, ast.Call) and isinstance(func, ast.Attribute) and \
                func.attr in ("run_line_magic", "run_cell_magic") and call.args and \
                all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args) and \
                call.args[0].value in integrity.PYTHON_MAGICS:
            for argument in call.args[1:]:
                code = integrity.magic_python(argument.value)
                inner = _parse(code) if code else None
                body += inner.body if inner is not None else []
            continue
        body.append(node)
    tree.body = body
    return tree


MUTATORS = {"append", "extend", "insert", "update", "add", "pop", "popitem", "remove", "clear", "setdefault",
            "discard", "sort", "reverse", "fill", "resize", "put", "itemset", "setflags", "__setitem__"}


@functools.lru_cache(maxsize=4096)
def _bound_names(source: str, *, imports: bool = True) -> frozenset[str]:
    """Names a cell binds at its top level (def, class, assignment, for/with targets; imports with `imports`)."""
    tree = _parse(source)
    names = set()
    if tree is None:
        return names

    def targets(node):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                targets(element)
        elif isinstance(node, ast.Starred):
            targets(node.value)
        elif isinstance(node, (ast.Subscript, ast.Attribute)):
            root = node
            while isinstance(root, (ast.Subscript, ast.Attribute)):
                root = root.value
            if isinstance(root, ast.Name):
                names.add(root.id)  # x[k] = ... changes x

    def walk(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and imports:
                for alias in node.names:
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    targets(target)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets(node.target)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets(node.target)
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
                walk(node.body)
            elif isinstance(node, (ast.If, ast.While)):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                walk(node.orelse)
                walk(node.finalbody)
                for handler in node.handlers:
                    walk(handler.body)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                func = node.value.func  # x.append(...), d.update(...), w.normal_(): changes x / d / w
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and (
                        func.attr in MUTATORS or (func.attr.endswith("_") and not func.attr.startswith("_"))):
                    names.add(func.value.id)

    walk(tree.body)
    return frozenset(names)


@functools.lru_cache(maxsize=4096)
def _free_names(source: str) -> frozenset[str]:
    """Names a cell may read from earlier cells: at its top level, loaded before the cell binds them;
    inside functions, lambdas, classes and comprehensions, the globals they read (Python's own symbol
    table) that the cell does not bind."""
    tree = _parse(source)
    if tree is None:
        return frozenset({"*"})
    top = _bound_names(source)
    free: set[str] = set(_nested_globals(ast.unparse(tree)) - top)

    class Visitor(ast.NodeVisitor):
        def __init__(self):
            self.bound, self.depth = set(), 0

        def visit_Name(self, node):
            if self.depth:
                return  # nested scopes: see _nested_globals
            if isinstance(node.ctx, ast.Load):
                if node.id not in self.bound:
                    free.add(node.id)
            else:
                self.bound.add(node.id)

        def visit_Assign(self, node):
            self.visit(node.value)
            for target in node.targets:
                self.visit(target)

        def visit_AugAssign(self, node):
            if isinstance(node.target, ast.Name) and self.depth == 0 and node.target.id not in self.bound:
                free.add(node.target.id)
            self.visit(node.value)
            self.visit(node.target)

        def visit_AnnAssign(self, node):
            if node.value is not None:
                self.visit(node.value)
            self.visit(node.target)

        def _scope(self, node, body_fields):
            self.depth += 1
            for name in body_fields:
                value = getattr(node, name, None)
                for item in value if isinstance(value, list) else [value] if value is not None else []:
                    self.visit(item)
            self.depth -= 1

        def visit_FunctionDef(self, node):
            for item in node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d]:
                self.visit(item)
            if self.depth == 0:
                self.bound.add(node.name)
            self._scope(node, ["body"])

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_ClassDef(self, node):
            for item in node.decorator_list + node.bases:
                self.visit(item)
            if self.depth == 0:
                self.bound.add(node.name)
            self._scope(node, ["body"])

        def visit_Lambda(self, node):
            for item in node.args.defaults:
                self.visit(item)
            self._scope(node, ["body"])

        def _comprehension(self, node):
            self.visit(node.generators[0].iter)  # evaluated in the enclosing scope
            self._scope(node, ["generators", "elt", "key", "value"])

        visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

        def visit_ExceptHandler(self, node):
            if node.type is not None:
                self.visit(node.type)
            if node.name and self.depth == 0:
                self.bound.add(node.name)
            for item in node.body:
                self.visit(item)

        def visit_Import(self, node):
            if self.depth == 0:
                self.bound |= {a.asname or a.name.split(".")[0] for a in node.names}

        def visit_ImportFrom(self, node):
            if self.depth == 0:
                self.bound |= {a.asname or a.name for a in node.names}

    Visitor().visit(tree)
    return frozenset(free)


def demo_dependencies(kinds: list[str], sources: list[str], consumers) -> tuple[set[int], dict[str, int]]:
    """The demo cells that the `consumers` (cell indices) need, found by name as Jupyter would run them
    from the top: a name a consumer reads that no earlier cell of kind "code" binds, but an earlier
    "demo" cell does, needs the latest such demo cell, which then is a consumer too. `kinds[i]` is
    "demo", "code" (binds names where the consumers run) or "" (binds nothing there).
    Returns the needed demo cells and each name no earlier cell binds -> the first consumer reading it."""
    bound = [_bound_names(source) if kind else frozenset() for kind, source in zip(kinds, sources)]
    needed: set[int] = set()
    unresolved: dict[str, int] = {}
    work = sorted(set(consumers), reverse=True)
    while work:
        index = work.pop()
        for name in _free_names(sources[index]) - {"*"}:
            if any(kinds[j] == "code" and name in bound[j] for j in range(index)):
                continue
            demos = [j for j in range(index) if kinds[j] == "demo" and name in bound[j]]
            if demos and demos[-1] not in needed:
                needed.add(demos[-1])
                work.append(demos[-1])
            elif not demos and unresolved.get(name, index) >= index:
                unresolved[name] = index
    return needed, unresolved


def _nested_globals(python: str) -> set[str]:
    """Global names read inside the functions, lambdas, classes and comprehensions of `python`."""
    try:
        table = symtable.symtable(python, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return {"*"}
    names: set[str] = set()
    stack = list(table.get_children())
    while stack:
        scope = stack.pop()
        stack += scope.get_children()
        names |= {s.get_name() for s in scope.get_symbols() if s.is_referenced() and s.is_global()}
    return names


@functools.lru_cache(maxsize=4096)
def _used_names(source: str) -> frozenset[str]:
    tree = _parse(source)
    if tree is None:
        return frozenset()
    return frozenset(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))


# ---- aligning a submission with its source -----------------------------------------------------------

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
    deleted test cell is put back after its solution, so deleting a test
    never avoids it.
    """
    notes = []
    kernelspec = nb.metadata.get("kernelspec", {}) if isinstance(nb.metadata.get("kernelspec"), dict) else {}
    if kernelspec and (kernelspec.get("name") != "python3" or kernelspec.get("language", "python") != "python"):
        notes.append(f"kernelspec {kernelspec.get('name')!r} replaced by python3")
    last_index = {}
    for position, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if isinstance(grade_id, str) and model.by_id(grade_id):
            last_index[grade_id] = position
    counts = {}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if isinstance(grade_id, str):
            counts[grade_id] = counts.get(grade_id, 0) + 1
    for grade_id, count in counts.items():
        if count > 1 and model.by_id(grade_id):
            notes.append(f"grade cell {grade_id!r} appears {count} times: the last copy is graded, "
                         "the others are treated as ordinary cells")
    steps = []
    for position, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id") if isinstance(meta.get("grade_id"), str) else None
        source_cell = model.by_id(grade_id) if grade_id else None
        if grade_id and not source_cell:
            notes.append(f"cell {position + 1} has an unknown grade_id {grade_id!r}: treated as an ordinary cell")
        if source_cell and last_index.get(grade_id) != position:
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
        if source_cell.grade_id and source_cell.kind in ("test", "locked", "manual", "solution") \
                and source_cell.grade_id not in present:
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


def _plain_cell(cell) -> dict:
    metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",) and isinstance(v, list)}
    out = {"cell_type": cell.cell_type, "metadata": metadata, "source": cell.source}
    if cell.cell_type == "code":
        out.update(outputs=[], execution_count=None)
    if cell.get("id"):
        out["id"] = str(cell["id"])[:64]
    return out


def _restored_step(cell, source_cell: SourceCell, model: SourceModel, notes: list, position) -> Step:
    source_meta = {"grade_id": source_cell.grade_id, "grade": source_cell.kind in ("test", "manual"),
                   "solution": source_cell.kind in ("solution", "manual"),
                   "locked": source_cell.kind in ("test", "locked"), "schema_version": 3, "task": False}
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
    released = integrity.released_source(source_cell.source) if source_cell.kind == "test" else source_cell.source
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


# ---- talking to the kernel ---------------------------------------------------------------------------

class Opaque:
    """Stands for a student answer that is not plain data: any use fails with the reason."""

    def __init__(self, name: str, why: str):
        self._name, self._why = name, why

    def _fail(self, *args, **kwargs):
        raise NotTransferable(f"{self._name} is {self._why}, which the grader cannot check: "
                              "answer with numbers, arrays, strings, lists, tuples or dicts")

    __call__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __float__ = __int__ = _fail
    __len__ = __iter__ = __getitem__ = __add__ = __sub__ = __mul__ = __truediv__ = __abs__ = __neg__ = _fail
    __hash__ = None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self):
        return f"<answer {self._name}: {self._why}, not checkable>"


class Proxy:
    """A student callable, seen from the judge: calls go to the kernel, plain data comes back."""

    def __init__(self, client: "KernelClient", handle: wire.Handle):
        self._client, self._handle = client, handle
        self.__name__ = self.__qualname__ = handle.name or handle.label or "student_function"

    def __call__(self, *args, **kwargs):
        return self._client.call(self._handle, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._client.getattr(self._handle, name)

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self

    def __repr__(self):
        return f"<student function {self.__name__}>"


_BUILTIN_ERRORS = {name: obj for name, obj in vars(builtins).items()
                   if isinstance(obj, type) and issubclass(obj, Exception)}


class KernelClient:
    """The judge's end of the socket: requests with deadlines, callbacks served while waiting."""

    def __init__(self, sandbox, *, call_timeout: float):
        self.sandbox, self.call_timeout = sandbox, call_timeout
        self.dead: str | None = None
        self.tampered: str | None = None
        self.judge_objects: dict[int, object] = {}
        self.next_id = 1
        self.timeouts = 0
        self.remote_calls = 0  # calls and attribute reads sent to the kernel (a test that made none is cacheable)

    # plumbing
    def _judge_handle(self, value):
        ident = self.next_id
        self.next_id += 1
        self.judge_objects[ident] = value
        return wire.Handle("judge", ident, "", str(getattr(value, "__name__", type(value).__name__))[:100])

    def _from_kernel(self, tree):
        return wire.decode(tree, handle_to_callable=self._callable_for)

    def _callable_for(self, handle: wire.Handle):
        if handle.owner == "judge":
            if handle.id not in self.judge_objects:
                raise wire.WireError("unknown judge handle")
            return self.judge_objects[handle.id]
        return Proxy(self, handle)

    def _to_kernel(self, value):
        def to_handle(obj):
            if isinstance(obj, Proxy):
                return obj._handle
            return self._judge_handle(obj)

        return wire.encode(value, callable_to_handle=to_handle)

    def _die(self, reason: str, *, tampered: bool = False) -> KernelDied:
        if self.dead is None:
            self.dead = reason
            if tampered:
                self.tampered = reason
            self.sandbox.kill()
        return KernelDied(self.dead)

    def request(self, message: dict, *, timeout: float | None = None) -> dict:
        if self.dead:
            raise KernelDied(self.dead)
        timeout = self.call_timeout if timeout is None else timeout
        try:
            wire.send(self.sandbox.sock, message)
        except wire.NotPlainData as error:
            raise NotTransferable(f"the test's input is too large to send: {error}") from None
        except OSError:
            raise self._ended() from None
        deadline, interrupted = self.sandbox.deadline(timeout), False  # in the time the kernel had (sandbox.py)
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                if interrupted:
                    raise self._die(f"did not stop within {timeout:.0f} s, even when interrupted; it was killed")
                self.sandbox.interrupt()
                self.timeouts += 1
                interrupted, deadline = True, self.sandbox.deadline(3)
                continue
            import select

            ready, _, _ = select.select([self.sandbox.sock], [], [], remaining)
            if not ready:
                continue
            try:
                reply = wire.recv(self.sandbox.sock)
            except (wire.ChannelClosed, OSError):
                raise self._ended() from None
            except wire.WireError as error:
                raise self._die(f"sent malformed data to the grader ({error})", tampered=True) from None
            if reply["op"] == "callback":
                self._serve_callback(reply)
                continue
            if interrupted:
                reply["interrupted_after"] = timeout
            return reply

    def _ended(self) -> KernelDied:
        if self.dead is None:
            exit_ = self.sandbox.close()
            self.dead = f"the kernel {exit_.describe()}"
        return KernelDied(self.dead)

    def _serve_callback(self, message):
        try:
            target = self._from_kernel(message["target"])
            args = self._from_kernel(message["args"])
            kwargs = self._from_kernel(message["kwargs"])
            if not callable(target) or isinstance(target, Proxy) or not isinstance(args, list) \
                    or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
                raise wire.WireError("malformed callback")
        except (wire.WireError, KeyError) as error:
            raise self._die(f"sent a malformed request to the grader ({error})", tampered=True) from None
        try:
            value = target(*args, **kwargs)
            reply = {"op": "return", "value": self._to_kernel(value)}
        except KernelDied:
            raise
        except Exception as error:  # the judge's function failed on the student's input: tell the student
            reply = {"op": "raise", "type": type(error).__name__, "message": str(error)[:2000]}
        try:
            wire.send(self.sandbox.sock, reply)
        except OSError:
            raise self._ended() from None

    # requests
    def run_cell(self, source: str, *, timeout: float) -> dict:
        reply = self.request({"op": "run", "source": source}, timeout=timeout)
        if reply.get("op") != "ran":
            raise self._die("answered a cell with the wrong message", tampered=True)
        return reply

    def exec_test(self, source: str, *, timeout: float) -> dict:
        reply = self.request({"op": "exec", "source": source}, timeout=timeout)
        if reply.get("op") != "ran":
            raise self._die("answered a test with the wrong message", tampered=True)
        return reply

    def describe(self, names: list[str]) -> dict:
        reply = self.request({"op": "describe", "names": names}, timeout=min(self.call_timeout, 30))
        values = reply.get("values")
        if reply.get("op") != "described" or not isinstance(values, dict) or set(values) != set(names):
            raise self._die("answered a question about its names with the wrong message", tampered=True)
        out = {}
        for name, description in values.items():
            if not isinstance(description, list) or not description:
                raise self._die("sent a malformed description", tampered=True)
            kind = description[0]
            try:
                if kind == "missing":
                    out[name] = ("missing", None)
                elif kind == "callable":
                    handle = wire.decode(description[1])
                    if not isinstance(handle, wire.Handle) or handle.owner != "kernel" or handle.name != name:
                        raise wire.WireError("bad handle")
                    out[name] = ("value", Proxy(self, handle))
                elif kind == "data":
                    out[name] = ("value", self._from_kernel(description[1]))
                elif kind == "opaque":
                    out[name] = ("value", Opaque(name, str(description[1])[:300]))
                else:
                    raise wire.WireError(f"unknown kind {kind!r}")
            except (wire.WireError, IndexError) as error:
                raise self._die(f"sent malformed data for {name!r} ({error})", tampered=True) from None
        return out

    def call(self, handle: wire.Handle, args: tuple, kwargs: dict):
        self.remote_calls += 1
        writeback = any(_mutable(a) for a in args)
        try:
            message = {"op": "call", "target": wire.encode(handle), "args": self._to_kernel(list(args)),
                       "kwargs": self._to_kernel(dict(kwargs)), "rng": _rng_state(), "writeback": writeback}
        except wire.NotPlainData as error:
            raise NotTransferable(f"the grader cannot pass {error} to student code") from None
        reply = self.request(message)
        _advance_rng()
        _print_student_output(reply)
        if reply.get("interrupted_after"):
            raise TimeoutError(f"the student's function did not return within {reply['interrupted_after']:.0f} s")
        if reply.get("op") == "raise":
            raise _student_exception(reply)
        if reply.get("op") != "return":
            raise self._die("answered a call with the wrong message", tampered=True)
        if "opaque" in reply:
            raise NotTransferable(f"the student's function returned {str(reply['opaque'])[:200]}, which the grader "
                                  "cannot check: return numbers, arrays, strings, lists, tuples or dicts")
        try:
            value = self._from_kernel(reply["value"])
            if writeback and reply.get("args_after") is not None:
                _write_back(list(args), self._from_kernel(reply["args_after"]))
        except (wire.WireError, KeyError) as error:
            raise self._die(f"returned malformed data ({error})", tampered=True) from None
        return value

    def getattr(self, handle: wire.Handle, name: str):
        self.remote_calls += 1
        reply = self.request({"op": "getattr", "target": wire.encode(handle), "name": name})
        if reply.get("op") == "raise":
            raise _student_exception(reply)
        if "opaque" in reply:
            return Opaque(name, str(reply["opaque"])[:300])
        try:
            return self._from_kernel(reply["value"])
        except (wire.WireError, KeyError) as error:
            raise self._die(f"returned malformed data ({error})", tampered=True) from None


def _student_exception(reply) -> Exception:
    kind, message = str(reply.get("type", "Exception"))[:100], str(reply.get("message", ""))[:2000]
    if kind == "KeyboardInterrupt":
        return TimeoutError("the student's code was interrupted (time limit)")
    cls = _BUILTIN_ERRORS.get(kind)
    if cls is not None and cls not in (KernelDied,):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - exceptions with required extra arguments
            pass
    return StudentCodeError(f"{kind}: {message}")


def _print_student_output(reply) -> None:
    for stream, target in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        text = reply.get(stream)
        if isinstance(text, str) and text:
            target.write(text[:20000])


def _mutable(value) -> bool:
    """True when the student's code could change `value` in place (so it must be written back)."""
    torch = wire._torch()
    if isinstance(value, (np.ndarray, list, dict, set)) or (torch is not None and isinstance(value, torch.Tensor)):
        return True
    if isinstance(value, tuple):
        return any(_mutable(v) for v in value)
    return False


def _write_back(originals, afters) -> None:
    """Apply in-place changes the student's code made to array arguments (and lists of numbers)."""
    torch = wire._torch()
    if isinstance(originals, (list, tuple)) and isinstance(afters, (list, tuple)) and len(originals) == len(afters):
        for original, after in zip(originals, afters):
            if isinstance(original, np.ndarray) and isinstance(after, np.ndarray):
                if original.shape == after.shape and original.flags.writeable and \
                        not np.array_equal(original, after, equal_nan=True):
                    original[...] = after.astype(original.dtype, copy=False)
            elif torch is not None and isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
                if original.shape == after.shape and not torch.equal(original, after.to(original.dtype)):
                    with torch.no_grad():
                        original.copy_(after)
            elif isinstance(original, (list, tuple)):
                if isinstance(original, list) and isinstance(after, list) and not (
                        len(original) == len(after) and all(map(_same_kind, original, after))) \
                        and not any(callable(v) for v in after):
                    original[:] = after  # reordered, resized or retyped: the new contents, as in the kernel
                else:
                    _write_back(original, after)
            elif isinstance(original, dict) and isinstance(after, dict):
                for key in list(original):
                    if key not in after:
                        del original[key]
                    elif _same_kind(original[key], after[key]):
                        _write_back([original[key]], [after[key]])
                    else:
                        original[key] = after[key]
                for key in after:
                    if key not in original:
                        original[key] = after[key]
            elif isinstance(original, set) and isinstance(after, (set, frozenset)) and original != after:
                original.clear()
                original.update(after)


def _advance_rng() -> None:
    """Move the judge's own random streams on after each call (so two calls never see the same state),
    without ever taking a state from the student's side."""
    import random

    import torch

    torch.rand(1)
    np.random.random()
    random.random()


def _same_kind(original, after) -> bool:
    """True when `after` can be written into `original` in place (same shape and kind)."""
    torch = wire._torch()
    if isinstance(original, np.ndarray):
        return isinstance(after, np.ndarray) and original.shape == after.shape
    if torch is not None and isinstance(original, torch.Tensor):
        return isinstance(after, torch.Tensor) and original.shape == after.shape
    if isinstance(original, (list, tuple)):
        return (isinstance(after, (list, tuple)) and len(original) == len(after)
                and all(map(_same_kind, original, after)))
    return original == after if not callable(original) else True


def _rng_state() -> dict:
    import random

    import torch

    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": wire.encode(torch.get_rng_state().numpy()),
            "numpy": [wire.encode(np.asarray(keys)), int(pos), int(has_gauss), float(cached)],
            "python": [version, wire.encode(np.asarray(internal, dtype=np.int64)), gauss],
            "dtype": str(torch.get_default_dtype()).replace("torch.", "")}


# ---- running trusted code -------------------------------------------------------------------------------

class _Alarm(BaseException):
    """The judge's own deadline for a cell (BaseException: tests must not swallow it)."""


@dataclass
class Execution:
    ok: bool
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None
    value: object = None
    seconds: float = 0.0


def run_trusted(source: str, namespace: dict, *, filename: str, timeout: float | None = None,
                deadline=None) -> Execution:
    """Execute trusted (instructor) code in `namespace`, capturing output; the last expression's value is kept.
    With `deadline` (sandbox.Deadline), `timeout` counts the time the test had, not wall-clock time."""
    out, err = CappedWriter(), CappedWriter()
    saved = sys.stdout, sys.stderr
    start = time.perf_counter()
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        python = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001
        python = source
    linecache.cache[filename] = (len(python), None, python.splitlines(True), filename)
    value, error = None, None
    previous = signal.signal(signal.SIGALRM, _alarm_handler(deadline)) if timeout else None
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    sys.stdout, sys.stderr = out, err
    try:
        tree = ast.parse(python, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), namespace)
    except _Alarm:
        error = {"ename": "TimeoutError", "evalue": f"the test did not finish within {timeout:.0f} s",
                 "traceback": "", "alarm": True}
    except KernelDied as died:
        error = {"ename": "KernelDied", "evalue": str(died), "traceback": ""}
    except BaseException as caught:  # noqa: BLE001 - a failing test is an outcome, not a crash
        if isinstance(caught, (SystemExit, KeyboardInterrupt)) and not isinstance(caught, SystemExit):
            raise
        error = {"ename": type(caught).__name__, "evalue": str(caught)[:4000], "traceback": _format_error(caught)}
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        sys.stdout, sys.stderr = saved
        linecache.cache.pop(filename, None)
    return Execution(error is None, out.getvalue(), err.getvalue(), error, value, time.perf_counter() - start)


_OWN_FILES = str(Path(__file__).resolve().parent)


def _format_error(error: BaseException) -> str:
    """The traceback of a failed test as a student should see it: the test's frames and the library's,
    not the grader's own."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(_OWN_FILES)]
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines)[-8000:]


def _alarm_handler(deadline):
    """SIGALRM ends the test, unless `deadline` says time is left (a busy machine): then it re-arms."""
    def on_alarm(signum, frame):
        left = deadline.remaining() if deadline is not None else 0
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.05))
            return
        raise _Alarm()

    return on_alarm


# ---- grading one notebook ------------------------------------------------------------------------------

@dataclass
class CellScore:
    score: float | None
    points: float
    mode: str  # judge | kernel | manual | none
    error: str | None = None
    hidden_failed: bool = False


@dataclass
class NotebookResult:
    notebook: str
    scores: dict[str, CellScore] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    autograded: dict | None = None  # the executed notebook (instructor copy, hidden tests included)
    feedback: dict | None = None  # the same without hidden tests or their outputs
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "flagged" if self.flags else "graded"

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "status": self.status, "flags": self.flags, "notes": self.notes,
                "scores": {k: vars(v) for k, v in self.scores.items()}, "seconds": self.seconds,
                "autograded": self.autograded, "feedback": self.feedback}

    @classmethod
    def from_json(cls, data: dict) -> "NotebookResult":
        result = cls(data["notebook"], {k: CellScore(**v) for k, v in data["scores"].items()},
                     list(data["flags"]), list(data["notes"]), data.get("autograded"), data.get("feedback"),
                     data.get("seconds", 0.0))
        return result


@dataclass
class Plan:
    """Calibration decisions for one source notebook (see grade.calibrate)."""

    prune: bool = True
    kernel_tests: list[str] = field(default_factory=list)  # tests that must run inside the kernel

    def to_json(self):
        return {"prune": self.prune, "kernel_tests": list(self.kernel_tests)}


def zero_result(model: SourceModel, notebook: str, reason: str) -> NotebookResult:
    """Nothing could run (unreadable file, missing notebook): every graded cell scores 0, flagged."""
    result = NotebookResult(notebook, flags=[reason])
    for cell in model.graded():
        result.scores[cell.grade_id] = CellScore(0.0, cell.points, "none", reason)
    return result


def grade_notebook(data: bytes, model: SourceModel, plan: Plan, sandbox, *, cell_timeout: float,
                   notebook: str, cache_dir: str | None = None) -> NotebookResult:
    """Grade one submitted notebook against its source model; `sandbox` is started but unused so far."""
    start = time.perf_counter()
    try:
        nb = read_submission(data)
    except ValueError as error:
        sandbox.kill()
        result = zero_result(model, notebook, f"unreadable notebook: {error}")
        result.seconds = time.perf_counter() - start
        return result
    steps, notes = align(nb, model)
    result = NotebookResult(notebook)
    result.flags += notes  # every departure from the released notebook is for the instructor to see
    skipped, name_notes = plan_steps(steps, model, plan)
    written = [(i, s.cell["source"]) for i, s in enumerate(steps) if s.student_written and s.kind == "student"]
    findings = integrity.inspect_cells(written)
    for finding in findings[:20]:
        result.flags.append(f"suspicious code: {finding.describe()}")
    if len(findings) > 20:
        result.flags.append(f"... and {len(findings) - 20} more suspicious constructs")
    client = KernelClient(sandbox, call_timeout=cell_timeout)
    cache = TestCache(cache_dir, f"{GRADER_VERSION}:{model.sha256}:{json.dumps(plan.to_json(), sort_keys=True)}")
    judge = _Judge(model, plan, client, cell_timeout, cache)
    judge.name_notes.update(name_notes)
    for position, step in enumerate(steps):
        if step.kind == "student" and position in skipped:
            step.cell["outputs"] = [_stream("stdout", "(not run during grading: no answer or test uses it)\n")]
        elif step.kind == "student":
            judge.run_student(position, step)
        elif step.kind == "demo":
            step.cell["outputs"] = [_stream("stdout", SKIPPED_SOURCE.lstrip("# ") + "\n")]
        elif step.kind == "test":
            judge.run_test(step)
        elif step.kind == "manual":
            cell = model.by_id(step.grade_id)
            unchanged = step.cell["source"].strip() == "" or step.cell["source"] == _released_stub(cell)
            result.scores[step.grade_id] = CellScore(0.0 if unchanged else None, cell.points, "manual",
                                                     "no response" if unchanged else None)
    if client.dead is None:
        try:
            wire.send(sandbox.sock, {"op": "bye"})
        except OSError:
            pass
    exit_ = sandbox.close()
    result.scores.update(judge.scores)
    for cell in model.graded():
        if cell.grade_id not in result.scores:
            result.scores[cell.grade_id] = CellScore(0.0, cell.points, "none", "test cell not run")
    result.flags += judge.flags
    if client.dead:
        result.flags.append(f"the kernel stopped early: {client.dead}")
    elif exit_.oom:
        result.flags.append("the kernel hit the memory limit")
    if exit_.pids_exhausted:
        result.flags.append("the kernel hit the process limit")
    if client.timeouts:
        result.flags.append(f"student code ran past the {cell_timeout:.0f} s time limit {client.timeouts} time(s) "
                            "and was interrupted")
    if client.tampered:
        result.flags.append(f"tampering with the grader's channel: {client.tampered}")
    kernel_judged = [gid for gid, s in result.scores.items() if s.mode == "kernel"]
    tamper = any(f.startswith(("suspicious code", "tampering")) for f in result.flags)
    if kernel_judged and tamper:
        for gid in kernel_judged:
            score = result.scores[gid]
            if score.score:
                score.score = 0.0
                score.error = "not credited: this test ran inside the kernel, which this submission tampers with"
        result.flags.append(f"tests {kernel_judged} ran inside the kernel: no credit given until reviewed")
    cells = [step.cell for step in steps]
    autograded = nbformat.v4.new_notebook()
    autograded.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                          "name": "python3"}, "language_info": {"name": "python"}}
    autograded.cells = [nbformat.from_dict(c) for c in cells]
    for position, cell in enumerate(autograded.cells):
        cell.setdefault("id", f"cell-{position:03d}")
        if not cell.get("id") or not isinstance(cell.get("id"), str):
            cell["id"] = f"cell-{position:03d}"
    _unique_ids(autograded)
    result.autograded = autograded
    result.feedback = feedback_notebook(autograded, model.hidden_test_lines())
    result.seconds = time.perf_counter() - start
    return result


def plan_steps(steps: list[Step], model: SourceModel, plan: Plan) -> tuple[set[int], dict[str, str]]:
    """Which of the student's cells grading skips, and which demo cells it runs after all.

    Jupyter runs every cell; grading skips demo cells and unchanged cells nothing needs. A demo cell
    runs (becomes a student step) when a cell that runs, or a test run in the kernel, reads a name
    that only that demo cell defines before it; what the demo cell reads is then needed too. Returns
    the skipped positions and, for names no earlier cell defines, a sentence saying why (used when
    a NameError comes from one).
    """
    def kind(step: Step) -> str:
        if step.kind == "demo" or step.demo:
            return "demo"
        if step.kind == "student" or (step.kind == "test" and step.grade_id in plan.kernel_tests):
            return "code"
        return ""

    kinds = [kind(s) for s in steps]
    sources = [s.cell.get("source", "") if s.cell.get("cell_type") == "code" else "" for s in steps]
    demos: set[int] = set()
    while True:
        skipped = unneeded_student_cells(steps, model, also_run=demos) if plan.prune else set()
        consumers = [i for i, s in enumerate(steps) if i not in skipped and (
            s.kind == "student" or (s.kind == "test" and s.grade_id in plan.kernel_tests))]
        found, unresolved = demo_dependencies(kinds, sources, consumers)
        if found <= demos:
            break
        demos |= found
    for position in demos:
        steps[position].kind, steps[position].demo = "student", True
    notes = {}
    source_demo_names = set().union(*[_bound_names(c.source) for c in model.cells if c.kind == "demo"] or [set()])
    for name, reader in unresolved.items():
        later = next((j for j in range(reader + 1, len(steps)) if kinds[j] and name in _bound_names(sources[j])), None)
        test = next((s.grade_id for s in steps[:reader] if s.kind == "test" and s.grade_id not in plan.kernel_tests
                     and name in _bound_names(s.cell["source"])), None)
        if later is not None:
            where = "a demonstration cell" if kinds[later] == "demo" else "a cell"
            notes[name] = (f"`{name}` is only defined further down, in {where} that starts "
                           f"`{_first_line(sources[later])}`; grading runs the notebook from the top, as "
                           "Jupyter's Restart & Run All does")
        elif test is not None:
            notes[name] = (f"`{name}` is set by the check cell of {test}, which the grader runs apart from your "
                           "code: compute it in your own cell")
        elif name in source_demo_names:
            notes[name] = f"`{name}` comes from a demonstration cell that is no longer in your notebook"
    return skipped, notes


def _first_line(source: str, width: int = 50) -> str:
    line = next((text.strip() for text in source.splitlines() if text.strip()), "")
    return line if len(line) <= width else line[:width - 3] + "..."


SIDE_EFFECT_CALL = re.compile(r"(seed|^set_|^use_|rcParams|setattr|register|install|enable|disable|configure)")


def unneeded_student_cells(steps: list[Step], model: SourceModel, also_run=frozenset()) -> set[int]:
    """Positions of the student's cells that grading can skip: unchanged copies of the source's own
    (non-demo) cells whose names no code the student wrote (nor a demo cell in `also_run`) uses, and
    that change no global state.

    Grading cost then follows the questions: a cell that only builds the data
    for a plot the student reads (a "diagnose" question) costs nothing. The
    calibration run checks the solution still gets full marks this way.
    """
    source_texts = {c.source.rstrip() for c in model.cells if c.kind == "plain" and c.cell_type == "code"}
    candidates, needed = {}, set()
    for position, step in enumerate(steps):
        if step.kind != "student" and position not in also_run:
            continue
        text = step.cell["source"].rstrip()
        if step.grade_id is None and text in source_texts and not _has_side_effects(text):
            defined = _bound_names(text)
            if defined:
                candidates[position] = (defined, _used_names(text))
                continue
        needed |= _used_names(text)
    changed = True
    while changed:
        changed = False
        for position, (defined, used) in list(candidates.items()):
            if defined & needed:
                needed |= used
                del candidates[position]
                changed = True
    return set(candidates)


def _has_side_effects(source: str) -> bool:
    """True when a cell calls something that changes global state (seeds, defaults, settings)."""
    tree = _parse(source)
    if tree is None:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            private = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)  # Generator().manual_seed(1)
            if SIDE_EFFECT_CALL.search(name) and not private:
                return True
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return True
    return False


def _released_stub(cell: SourceCell) -> str:
    from nbgrader.preprocessors import ClearSolutions

    clear = ClearSolutions()
    stub = nbformat.v4.new_code_cell(cell.source) if cell.cell_type == "code" else \
        nbformat.v4.new_markdown_cell(cell.source)
    stub.metadata["nbgrader"] = {"solution": True, "grade_id": cell.grade_id}
    try:
        clear._replace_solution_region(stub, "python")
    except Exception:  # noqa: BLE001
        return cell.source
    return stub.source


def _unique_ids(nb) -> None:
    seen = set()
    for position, cell in enumerate(nb.cells):
        ident = str(cell.get("id") or f"cell-{position:03d}")[:64]
        while ident in seen:
            ident = f"{ident[:58]}-{position:03d}"
        seen.add(ident)
        cell["id"] = ident


def _stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _error_output(error: dict) -> dict:
    lines = (error.get("traceback") or "").splitlines() or [f"{error['ename']}: {error['evalue']}"]
    return {"output_type": "error", "ename": error["ename"], "evalue": error["evalue"], "traceback": lines}


class RecordingNamespace(dict):
    """The judge's globals: remembers what a test read from earlier cells (CPython looks globals up
    through __getitem__/__setitem__ when they are a dict subclass), so its outcome can be reused for
    identical inputs. Each name is fingerprinted at its first read, before the test changed it."""

    reads: dict | None = None  # name -> fingerprint at first read (None: cannot be described)
    written: set | None = None

    def __getitem__(self, key):
        if self.reads is not None and key not in self.written and key not in self.reads:
            self.reads[key] = _fingerprint(dict.__getitem__(self, key)) if dict.__contains__(self, key) \
                else ["missing"]
        return dict.__getitem__(self, key)

    def __setitem__(self, key, value):
        if self.written is not None:
            self.written.add(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        if self.written is not None:
            self.written.add(key)
        dict.__delitem__(self, key)

    def start_recording(self):
        self.reads, self.written = {}, set()

    def stop_recording(self) -> dict | None:
        reads, self.reads, self.written = self.reads, None, None
        return reads


def _fingerprint(value):
    """A JSON-able description of what a test read, or None when it cannot be described exactly."""
    import types

    if isinstance(value, (Proxy, Opaque)):
        return None
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, type):
        return ["class", value.__module__, value.__qualname__]
    if isinstance(value, types.BuiltinFunctionType):
        return ["builtin", getattr(value, "__module__", None) or "", value.__qualname__]
    if isinstance(value, types.FunctionType):
        return ["function", value.__module__, value.__qualname__, value.__code__.co_filename,
                value.__code__.co_firstlineno]
    try:
        return ["data", wire.encode(value)]
    except (wire.NotPlainData, Exception):  # noqa: BLE001
        return None


class TestCache:
    """Outcomes of tests that read only plain data and made no call into the kernel, shared by the jobs of
    one batch: the second student with the same answer does not retrain the same network."""

    def __init__(self, directory: str | None, prefix: str):
        self.directory = Path(directory) if directory else None
        self.prefix = prefix

    def _folder(self, grade_id: str) -> Path:
        return self.directory / hashlib.sha256(f"{self.prefix}:{grade_id}".encode()).hexdigest()[:24]

    def lookup(self, grade_id: str, namespace: dict) -> dict | None:
        if self.directory is None or not self._folder(grade_id).is_dir():
            return None
        for entry in sorted(self._folder(grade_id).glob("*.json")):
            try:
                data = json.loads(entry.read_text())
            except (OSError, ValueError):
                continue
            if all((_fingerprint(dict.get(namespace, n)) if dict.__contains__(namespace, n) else ["missing"]) == fp
                   for n, fp in data["reads"]):
                return data["outcome"]
        return None

    def store(self, grade_id: str, reads: list, outcome: dict) -> None:
        if self.directory is None:
            return
        folder = self._folder(grade_id)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"reads": reads, "outcome": outcome})
        path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(text)
        os.replace(temporary, path)


def _save_rng():
    import random

    import torch

    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _restore_rng(state) -> None:
    import random

    import torch

    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])
    _advance_rng()


class _Judge:
    def __init__(self, model: SourceModel, plan: Plan, client: KernelClient, cell_timeout: float,
                 cache: TestCache | None = None):
        self.model, self.plan, self.client, self.timeout = model, plan, client, cell_timeout
        self.namespace = RecordingNamespace({"__name__": "__main__", "__builtins__": builtins})
        self.cache = cache or TestCache(None, "")
        self.cached_hits = 0
        self.trusted_done = 0
        self.scores: dict[str, CellScore] = {}
        self.flags: list[str] = []
        self.name_notes: dict[str, str] = {}  # name -> why the kernel does not have it (see plan_steps)
        self.cell_errors: dict[str, str] = {}  # name a failed student cell binds -> the sentence to show

    def run_student(self, position: int, step: Step) -> None:
        cell = step.cell
        if self.client.dead:
            cell["outputs"] = [_stream("stderr", f"(not run: the kernel had stopped: {self.client.dead})\n")]
            return
        try:
            reply = self.client.run_cell(cell["source"], timeout=self.timeout)
        except KernelDied as died:
            cell["outputs"] = [_stream("stderr", f"(the kernel stopped while running this cell: {died})\n")]
            self.flags.append(f"the kernel stopped in cell {position + 1}: {died}")
            return
        outputs = []
        for name in ("stdout", "stderr"):
            text = reply.get(name)
            if isinstance(text, str) and text:
                outputs.append(_stream(name, text))
        error = reply.get("error")
        if isinstance(error, dict):
            outputs.append(_error_output({"ename": str(error.get("ename", "Error"))[:100],
                                          "evalue": str(error.get("evalue", ""))[:2000],
                                          "traceback": str(error.get("traceback", ""))[:20000]}))
            if error.get("ename") == "SystemExit":
                self.flags.append(f"cell {position + 1} tried to end the kernel (SystemExit)")
        if reply.get("interrupted_after"):
            self.flags.append(f"cell {position + 1} ran longer than {self.timeout:.0f} s and was interrupted")
        if isinstance(error, dict) or reply.get("interrupted_after"):
            self._explain_failed_cell(step, error if isinstance(error, dict) else {}, outputs,
                                      bool(reply.get("interrupted_after")))
        cell["outputs"] = outputs

    def _explain_failed_cell(self, step: Step, error: dict, outputs: list, interrupted: bool) -> None:
        """Say why a cell failed when the cause is grading's (a name only a demo cell or a later cell
        defines), and remember the cause for the names the cell should have defined."""
        ename = str(error.get("ename", "Error"))[:100]
        missing = _undefined_name(error)
        note = self.name_notes.get(missing) if missing else None
        if note:
            outputs.append(_stream("stderr", f"(grader) {note}.\n"))
        first = _first_line(step.cell["source"])
        if step.demo:
            why = "ran past the time limit" if interrupted else f"failed during grading ({ename})"
            note = note or f"it comes from the demonstration cell that starts `{first}`, which {why}"
        names = set(_bound_names(step.cell["source"]))
        source_cell = self.model.by_id(step.grade_id) if step.grade_id else None
        if source_cell is not None:
            names |= _bound_names(source_cell.source, imports=False)  # what this answer cell should define
        for name in names:
            self.cell_errors.setdefault(name, note or f"the cell that should define it stopped with {ename}")
            if step.demo:
                self.name_notes.setdefault(name, f"`{name}` comes from the demonstration cell that starts "
                                                 f"`{first}`, which failed during grading")

    def _explain_name_error(self, failure: dict) -> str | None:
        """A student-facing sentence for a test's NameError caused by a missing answer or grading's order."""
        missing = _undefined_name(failure)
        if not missing:
            return None
        if missing in self.name_notes:
            return self.name_notes[missing]
        if missing in self.model.answer_names:
            why = self.cell_errors.get(missing)
            return f"`{missing}` is not set" + (f": {why}" if why else ": no cell of the notebook defines it")
        return None

    def _catch_up(self, upto: int) -> None:
        """Run the trusted cells of the source before index `upto` that the judge has not run yet."""
        for cell in self.model.cells[self.trusted_done:upto]:
            trusted = cell.kind in ("plain", "locked") and cell.cell_type == "code" and (
                cell.needed or not self.plan.prune)
            if trusted or (cell.kind == "demo" and cell.needed):
                seconds = max(self.timeout, 120)
                run = run_trusted(cell.source, self.namespace, filename=f"<source cell {cell.index + 1}>",
                                  timeout=seconds, deadline=self.client.sandbox.deadline(seconds))
                if not run.ok:
                    self.flags.append(f"grader problem: trusted source cell {cell.index + 1} failed in the judge "
                                      f"({run.error['ename']}: {run.error['evalue'][:200]})")
        self.trusted_done = max(self.trusted_done, upto)

    def _refresh_answers(self) -> None:
        names = self.model.answer_names
        if not names:
            return
        described = self.client.describe(names)
        for name, (kind, value) in described.items():
            if kind == "missing":
                self.namespace.pop(name, None)
            else:
                self.namespace[name] = value

    def run_test(self, step: Step) -> None:
        cell_model = self.model.by_id(step.grade_id)
        points = cell_model.points
        self._catch_up(cell_model.index)
        segments = integrity.split_hidden(cell_model.source)
        in_kernel = step.grade_id in self.plan.kernel_tests
        if self.client.dead:
            error = f"not run: the kernel had stopped ({self.client.dead})"
            step.cell["outputs"] = [_stream("stderr", error + "\n")]
            self.scores[step.grade_id] = CellScore(0.0, points, "kernel" if in_kernel else "judge", error)
            step.cell["metadata"]["autograder"] = {"visible_outputs": 1, "hidden_failed": None}
            return
        ok, value, failure, hidden_failed = True, None, None, False
        visible_outputs, hidden_outputs = [], []
        if not in_kernel:
            try:
                self._refresh_answers()
            except KernelDied as died:
                ok, failure = False, {"ename": "KernelDied", "evalue": str(died), "traceback": ""}
        if ok and not in_kernel and not integrity.segments_compile(cell_model.source):
            segments = [(cell_model.source, True)]
        rng = None if in_kernel else _save_rng()  # each test starts from a state no student influenced
        cacheable = ok and not in_kernel and not cell_model.exports
        hit = self.cache.lookup(step.grade_id, self.namespace) if cacheable else None
        if hit is not None:
            self.cached_hits += 1
            _restore_rng(rng)
            ok, failure, hidden_failed = hit["ok"], hit["failure"], hit["hidden_failed"]
            visible_outputs, hidden_outputs = hit["visible"], hit["hidden"]
            value = wire.decode(hit["value"]) if hit["value"] is not None else None
            segments = []
        calls_before = self.client.remote_calls
        if cacheable and hit is None:
            self.namespace.start_recording()
        hidden_seen = False  # outputs after hidden inputs were in play are never shown
        for number, (code, hidden) in enumerate(segments if ok else []):
            hidden_seen = hidden_seen or hidden
            if in_kernel:
                try:
                    reply = self.client.exec_test(code, timeout=self.timeout)
                    run = Execution(reply.get("error") is None, str(reply.get("stdout", "")),
                                    str(reply.get("stderr", "")), reply.get("error") if isinstance(
                                        reply.get("error"), dict) else None)
                except KernelDied as died:
                    run = Execution(False, error={"ename": "KernelDied", "evalue": str(died), "traceback": ""})
            else:
                run = run_trusted(code, self.namespace, filename=f"<test {step.grade_id}>", timeout=self.timeout + 10,
                                  deadline=self.client.sandbox.deadline(self.timeout + 10))
                if run.error and run.error.pop("alarm", False):
                    self.client._die(f"a test did not finish within {self.timeout + 10:.0f} s")  # channel state unknown
            produced = []
            if run.stdout:
                produced.append(_stream("stdout", run.stdout))
            if run.stderr:
                produced.append(_stream("stderr", run.stderr))
            if run.error:
                produced.append(_error_output(run.error))
            (hidden_outputs if hidden_seen else visible_outputs).extend(produced)
            if not run.ok:
                ok, failure, hidden_failed = False, run.error, hidden_seen
                break
            if number == len(segments) - 1:
                value = run.value
        reads = self.namespace.stop_recording()
        if rng is not None and hit is None:
            _restore_rng(rng)
        if cacheable and hit is None and reads is not None and self.client.remote_calls == calls_before \
                and not self.client.dead and not (failure and failure.get("ename") in ("TimeoutError", "KernelDied")):
            fingerprints = sorted(reads.items())
            try:
                encoded_value = None if value is None else wire.encode(value)
            except wire.NotPlainData:
                fingerprints = [(None, None)]
            if all(fp is not None for _, fp in fingerprints):
                self.cache.store(step.grade_id, fingerprints, {
                    "ok": ok, "failure": failure, "hidden_failed": hidden_failed, "visible": visible_outputs,
                    "hidden": hidden_outputs, "value": encoded_value})
        score = float(points) if ok else 0.0
        if ok and value is not None and not isinstance(value, bool):
            try:
                partial = float(value) if isinstance(value, (int, float, np.integer, np.floating)) else None
            except (TypeError, ValueError):
                partial = None
            if partial is not None and math.isfinite(partial):
                score = min(max(partial, 0.0), float(points))
                visible_outputs.append({"output_type": "execute_result", "execution_count": None,
                                        "metadata": {}, "data": {"text/plain": repr(value)}})
        message = None if ok else f"{failure['ename']}: {failure['evalue']}"
        explained = None if ok or failure.get("ename") != "NameError" else self._explain_name_error(failure)
        if explained:
            message = f"NameError: {explained}"
            if not hidden_failed:
                for output in visible_outputs:
                    if output.get("output_type") == "error":
                        output.update(evalue=explained, traceback=[f"NameError: {explained}"])
        step.cell["outputs"] = visible_outputs + hidden_outputs
        hidden_summary = None
        if hidden_failed and failure:
            hidden_summary = failure_kind(failure) + (f": {explained}" if explained else "")
        step.cell["metadata"]["autograder"] = {"visible_outputs": len(visible_outputs),
                                               "hidden_failed": hidden_summary}
        self.scores[step.grade_id] = CellScore(score, points, "kernel" if in_kernel else "judge", message,
                                               hidden_failed)


_NAME_ERROR = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def _undefined_name(error: dict) -> str | None:
    if error.get("ename") not in ("NameError", "UnboundLocalError"):
        return None
    match = _NAME_ERROR.search(str(error.get("evalue", "")))
    return match.group(1) if match else None


_SAFE_ERROR_NAMES = {name for name, obj in vars(builtins).items()
                     if isinstance(obj, type) and issubclass(obj, BaseException)} | {"LinAlgError", "CheckFailed"}


def failure_kind(failure: dict) -> str:
    """What a failed hidden test may tell the student: the kind of failure, never a message or output
    produced while hidden inputs were in play (an answer can put them into its exception's message)."""
    ename = str(failure.get("ename", ""))
    if ename in ("TimeoutError", "KeyboardInterrupt") or failure.get("alarm"):
        return "took too long"
    if ename in ("AssertionError", "CheckFailed"):
        return "wrong value"
    if ename == "KernelDied":
        return "the kernel stopped"
    if ename == "NotTransferable":
        return "returned something that is not plain data (numbers, arrays, strings, lists, dicts)"
    if ename == "StudentCodeError":  # "Kind: message" from the kernel: the kind only if it names a known class
        kind = str(failure.get("evalue", "")).split(":", 1)[0].strip()
        return f"{kind} raised" if kind in _SAFE_ERROR_NAMES else "an exception of a class of your own raised"
    return f"{ename} raised" if ename.isidentifier() else "an exception raised"


def feedback_notebook(autograded, secret_lines: set[str]) -> dict:
    """The autograded notebook as the student may see it (see feedback.student_view)."""
    from .feedback import student_view

    return student_view(autograded, secret_lines)
