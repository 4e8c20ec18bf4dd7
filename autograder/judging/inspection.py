"""What the grader cannot prevent, it detects: static inspection of submitted code.

The judge never trusts a verdict reached inside the student's kernel, so most
tampering simply earns nothing. Inspection is the second line: it reads the
code the student submitted (their AST, after IPython's own syntax
transformations) and names everything that has no business in an answer:
patching builtins, modules or IPython, frame and garbage-collector
introspection, ``sys.modules``, signals, subprocesses and process control,
sockets, writing Python files, classes whose comparison or arithmetic dunders
could lie. A hit flags the submission for the instructor with the line and the
reason; the grade itself is what the judge measured.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from .ipython import transform


# Modules an answer never needs, and why they are suspicious.
SUSPICIOUS_MODULES = {
    "builtins": "imports builtins (can replace functions the tests use)",
    "__builtin__": "imports builtins", "inspect": "inspects frames or source (can read the tests' variables)",
    "gc": "walks the garbage collector (can find the tests' objects)", "ctypes": "uses ctypes (raw memory)",
    "cffi": "uses cffi (raw memory)", "signal": "installs signal handlers (can ignore interrupts)",
    "subprocess": "starts subprocesses", "multiprocessing": "starts processes", "socket": "opens sockets",
    "importlib": "manipulates the import system", "imp": "manipulates the import system",
    "atexit": "registers exit hooks", "pty": "opens terminals", "resource": "changes resource limits",
    "sqlite3": "opens databases (the gradebook is one)", "shutil": "moves or deletes files",
    "pickle": "unpickles data (can run code)", "marshal": "loads code objects", "dis": "inspects bytecode",
    "code": "runs interactive interpreters", "codeop": "compiles code", "runpy": "runs modules",
    "IPython": "uses IPython internals (input/AST transformers, hooks)", "ipykernel": "uses kernel internals",
    "unittest": "imports unittest (mock can patch anything)", "urllib": "uses the network",
    "requests": "uses the network", "http": "uses the network", "asyncio": "runs an event loop",
    "threading": "starts threads that keep running", "_thread": "starts threads", "sys": None,
    "os": None,  # os and sys are common; only some of their attributes are flagged
}
SUSPICIOUS_ATTRIBUTES = {
    ("sys", "modules"): "touches sys.modules (can replace modules the tests import)",
    ("sys", "settrace"): "sets a trace function", ("sys", "setprofile"): "sets a profile function",
    ("sys", "_getframe"): "reads interpreter frames", ("sys", "meta_path"): "changes the import system",
    ("sys", "path_hooks"): "changes the import system", ("sys", "path"): "changes the import path",
    ("sys", "displayhook"): "replaces the display hook", ("sys", "excepthook"): "replaces the exception hook",
    ("sys", "addaudithook"): "adds audit hooks", ("sys", "exit"): "ends the kernel (sys.exit)",
    ("sys", "stdout"): None, ("sys", "stderr"): None,
    ("os", "_exit"): "ends the kernel (os._exit)", ("os", "kill"): "sends signals",
    ("os", "killpg"): "sends signals", ("os", "fork"): "forks processes", ("os", "forkpty"): "forks processes",
    ("os", "system"): "runs shell commands", ("os", "popen"): "runs shell commands",
    ("os", "setsid"): "detaches processes", ("os", "environ"): None, ("os", "chdir"): "changes directory",
    ("os", "remove"): "deletes files", ("os", "unlink"): "deletes files", ("os", "rename"): "renames files",
    ("os", "replace"): "replaces files", ("os", "symlink"): "creates symlinks", ("os", "open"): "opens raw files",
    ("os", "write"): "writes raw file descriptors", ("os", "dup2"): "rewires file descriptors",
    ("os", "getppid"): "looks for its parent process", ("os", "abort"): "aborts the kernel",
}
for _name in ("execv", "execve", "execl", "execle", "execlp", "execvp", "execvpe", "spawnl", "spawnv",
              "spawnve", "spawnlp", "posix_spawn", "posix_spawnp"):
    SUSPICIOUS_ATTRIBUTES[("os", _name)] = "replaces or spawns processes"
SUSPICIOUS_CALLS = {
    "exec": "runs code from a string (exec)", "eval": "evaluates code from a string (eval)",
    "compile": "compiles code from a string", "__import__": "imports by name (__import__)",
    "globals": "reads or changes the namespace through globals()", "vars": "reads namespaces through vars()",
    "locals": None, "setattr": "sets attributes by name (setattr)", "delattr": "deletes attributes (delattr)",
    "get_ipython": "uses the IPython shell object (transformers, hooks, magics)",
    "breakpoint": "starts a debugger", "exit": "ends the kernel (exit)", "quit": "ends the kernel (quit)",
    "memoryview": None,
}
DUNDER_ATTRIBUTES = {"__class__", "__dict__", "__globals__", "__code__", "__closure__", "__subclasses__",
                     "__mro__", "__bases__", "__base__", "__builtins__", "__getattribute__", "__reduce__",
                     "__reduce_ex__", "__setattr__", "__delattr__", "__func__", "__self__", "__wrapped__",
                     "__loader__", "__spec__", "__import__", "__defaults__", "__kwdefaults__",
                     "f_back", "f_locals", "f_globals", "f_builtins", "f_code", "gi_frame", "cr_frame",
                     "tb_frame", "tb_next", "ag_frame", "__traceback__"}
LYING_DUNDERS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__",
                 "__len__", "__abs__", "__sub__", "__rsub__", "__add__", "__radd__", "__mul__", "__rmul__",
                 "__truediv__", "__rtruediv__", "__pow__", "__neg__", "__float__", "__int__", "__index__",
                 "__complex__", "__round__", "__array__", "__array_ufunc__", "__array_function__",
                 "__array_interface__", "__array_priority__", "__torch_function__", "__torch_dispatch__",
                 "__instancecheck__", "__subclasscheck__", "__getattr__", "__getattribute__", "__class_getitem__",
                 "__iter__", "__getitem__", "__contains__", "__str__", "__repr__", "__format__", "__matmul__",
                 "__rmatmul__", "__init_subclass__", "__set_name__", "__del__",
                 "__enter__", "__exit__", "__call__", "__new__"}
# IPython's public display API: what `display(Markdown(...))` needs, nothing that reaches the shell.
PUBLIC_IPYTHON = ("IPython.display", "IPython.core.display", "IPython.core.display_functions", "IPython.lib.display",
                  "IPython.utils.capture", "IPython.version_info", "IPython.__version__")
# Magics that behave in the grader as in Jupyter and change nothing the tests rely on; for the first
# three the argument (and a cell magic's body) is Python that runs, and is inspected as such.
PYTHON_MAGICS = {"time", "timeit", "prun", "capture"}
HARMLESS_MAGICS = PYTHON_MAGICS | {"matplotlib", "precision", "pprint", "who", "whos", "who_ls", "pwd", "pinfo",
                                   "pinfo2", "pdoc", "pdef", "psource", "psearch", "lsmagic", "magic", "quickref",
                                   "page", "history"}
SHELL_PATTERNS = [(re.compile(r"^\s*!"), "runs a shell command (!)"),
                  (re.compile(r"^\s*%%(writefile|bash|sh|script|python|html|javascript|js)\b"),
                   "uses a cell magic that runs or writes outside Python"),
                  (re.compile(r"^\s*%(run|load|store|env|alias|sx|system|load_ext|reload_ext|autoreload|"
                              r"xmode|config|killbgscripts|pdb|debug|reset|rerun|recall|macro|edit)\b"),
                   "uses a line magic that changes the kernel")]


@dataclass(frozen=True)
class Finding:
    """One suspicious construct: where, what, why."""

    cell: int
    line: int
    code: str
    reason: str

    def describe(self) -> str:
        return f"cell {self.cell + 1}, line {self.line}: {self.reason} ({self.code})"


def magic_python(text: str) -> str | None:
    """The Python in a %time/%timeit/%prun argument (leading options dropped), if it parses."""
    words = text.split(" ")
    for start in range(len(words) + 1):
        if start and not (words[start - 1].startswith("-") or words[start - 1].lstrip("-").isdigit()):
            return None
        code = " ".join(words[start:])
        try:
            ast.parse(code)
            return code
        except SyntaxError:
            continue
    return None


class _Inspector(ast.NodeVisitor):
    def __init__(self, cell: int, lines: list[str], module_names: dict[str, str], rewritten: set[int],
                 offset: int = 0):
        self.cell, self.lines, self.findings = cell, lines, []
        self.modules = module_names  # local name -> module imported under it (shared across cells)
        self.rewritten = rewritten  # lines IPython rewrote (%magics, help, !commands): judged by the magic
        self.offset = offset  # lines before the inspected text in the cell (IPython's dropped blank lines)
        self.python_code: list[tuple[int, str]] = []  # (line, code) that magics on rewritten lines run

    def _flag(self, node, reason: str | None):
        if reason:
            line = getattr(node, "lineno", 1)
            text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
            self.findings.append(Finding(self.cell, line + self.offset, text[:120], reason))

    def _ipython_rewrite(self, node) -> bool:
        """`get_ipython()` that IPython itself wrote for a %magic, a help request or a !command."""
        return getattr(node, "lineno", 0) in self.rewritten

    def _root_module(self, node) -> str | None:
        """The module an attribute chain starts from (np.linalg.norm -> numpy), if any."""
        while isinstance(node, ast.Attribute):
            node = node.value
        if isinstance(node, ast.Name):
            return self.modules.get(node.id)
        return None

    def visit_Import(self, node):
        for alias in node.names:
            top = alias.name.split(".")[0]
            self.modules[alias.asname or top] = alias.name if alias.asname else top
            if top == "IPython":  # `import IPython` itself is harmless; what it reaches is checked
                self._flag(node, None if alias.name == "IPython" or _public_ipython(alias.name)
                           else SUSPICIOUS_MODULES[top])
                continue
            self._flag(node, SUSPICIOUS_MODULES.get(top))
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        top = (node.module or "").split(".")[0]
        if top != "IPython":
            self._flag(node, SUSPICIOUS_MODULES.get(top))
        if node.level:
            self._flag(node, "relative import (a module shipped next to the notebook)")
        for alias in node.names:
            full = f"{node.module}.{alias.name}" if node.module else alias.name
            self.modules[alias.asname or alias.name] = full
            if top in ("sys", "os"):
                self._flag(node, SUSPICIOUS_ATTRIBUTES.get((top, alias.name)))
            if top == "IPython" and not (_public_ipython(full) or _public_ipython(node.module)):
                self._flag(node, SUSPICIOUS_MODULES[top])
            if alias.name == "get_ipython":
                self._flag(node, SUSPICIOUS_CALLS["get_ipython"])
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in DUNDER_ATTRIBUTES:
            self._flag(node, f"reaches into interpreter internals ({node.attr})")
        if node.attr == "get_ipython":
            self._flag(node, SUSPICIOUS_CALLS["get_ipython"])
        root = self._root_module(node)
        if root and root.split(".")[0] == "IPython" and not getattr(node, "_chain_checked", False):
            inner, path = node, []
            while isinstance(inner, ast.Attribute):
                inner._chain_checked = True
                path.insert(0, inner.attr)
                inner = inner.value
            if not _public_ipython(".".join([root, *path])):
                self._flag(node, SUSPICIOUS_MODULES["IPython"])
        if root:
            top = root.split(".")[0]
            if isinstance(node.value, ast.Name) and top in ("sys", "os"):
                self._flag(node, SUSPICIOUS_ATTRIBUTES.get((top, node.attr)))
            if node.attr in ("input_transformers_post", "input_transformers_cleanup", "ast_transformers",
                             "input_transformer_manager", "events", "register_magic_function",
                             "set_custom_exc", "run_cell", "ex", "ev", "user_ns", "push"):
                self._flag(node, f"changes how IPython runs later cells ({node.attr})")
        if node.attr in ("input_transformers_post", "input_transformers_cleanup", "ast_transformers",
                         "set_custom_exc", "register_magic_function"):
            self._flag(node, f"changes how IPython runs later cells ({node.attr})")
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in ("__builtins__", "__import__", "__loader__", "__spec__"):
            self._flag(node, f"uses {node.id}")
        if node.id == "get_ipython" and node.id not in self.modules and not self._ipython_rewrite(node):
            self._flag(node, SUSPICIOUS_CALLS["get_ipython"])  # called, or aliased (`shell = get_ipython`)
        self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id not in self.modules and node.func.id != "get_ipython":
            self._flag(node, SUSPICIOUS_CALLS.get(node.func.id))
            if node.func.id == "open" and _writes(node):
                target = node.args[0] if node.args else None
                name = target.value if isinstance(target, ast.Constant) and isinstance(target.value, str) else ""
                if not name or name.endswith((".py", ".pth", ".pyc", ".so")) or "sitecustomize" in name:
                    self._flag(node, "writes a file that Python could import" if name else
                               "writes a file whose name is computed")
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("run_line_magic", "run_cell_magic", "system",
                                                                       "getoutput"):
            strings = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                       for a in node.args]
            magic = strings[0] if strings else ""
            if node.func.attr in ("system", "getoutput"):
                self._flag(node, "runs a shell command (!)")
            elif magic not in HARMLESS_MAGICS or None in strings:
                self._flag(node, f"uses the %{magic} magic" if magic else "runs a magic whose name is computed")
            elif magic in PYTHON_MAGICS:
                for position, text in enumerate(strings[1:], start=1):
                    code = magic_python(text)
                    if code is None:
                        self._flag(node, f"runs code through %{magic} that the grader cannot inspect")
                    elif code:  # a cell magic's body starts on the line after the magic
                        body = position == 2 and node.func.attr == "run_cell_magic"
                        self.python_code.append((node.lineno + body, code))
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("write_text", "write_bytes", "touch",
                                                                       "symlink_to", "rename", "replace"):
            self._flag(node, f"writes or moves files ({node.func.attr})")
        self.generic_visit(node)

    def _assigned(self, target, node):
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            root = self._root_module(target.value if isinstance(target, ast.Subscript) else target)
            base = target.value
            if root:
                self._flag(node, f"replaces something inside the module {root.split('.')[0]!r}")
            elif isinstance(base, ast.Name) and base.id in ("__builtins__",):
                self._flag(node, "replaces a builtin")
            if isinstance(target, ast.Attribute) and target.attr.startswith("__") and target.attr.endswith("__"):
                self._flag(node, f"assigns the dunder attribute {target.attr}")
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._assigned(element, node)
        elif isinstance(target, ast.Name) and target.id in self.modules and not isinstance(node, ast.AugAssign):
            pass  # rebinding an imported name only changes the student's own namespace

    def visit_Assign(self, node):
        for target in node.targets:
            self._assigned(target, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._assigned(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node):
        for target in node.targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and self._root_module(
                    target.value if isinstance(target, ast.Subscript) else target):
                self._flag(node, "deletes something inside a module")
        self.generic_visit(node)

    def visit_ClassDef(self, node):
        for item in node.body:
            names = []
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [item.name]
            elif isinstance(item, ast.Assign):
                names = [t.id for t in item.targets if isinstance(t, ast.Name)]
            for name in names:
                if name in LYING_DUNDERS and name not in ("__call__", "__repr__", "__str__", "__len__",
                                                          "__getitem__", "__iter__", "__enter__", "__exit__",
                                                          "__new__"):
                    self._flag(item, f"class {node.name} defines {name} (an object that can lie to comparisons)")
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self._flag(node, f"class {node.name} sets a metaclass")
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in ("float", "int", "str", "complex", "bool", "tuple",
                                                           "list", "dict", "type"):
                self._flag(node, f"class {node.name} subclasses the builtin {base.id}")
        self.generic_visit(node)


def _writes(call: ast.Call) -> bool:
    mode = None
    if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant):
        mode = call.args[1].value
    for keyword in call.keywords:
        if keyword.arg == "mode" and isinstance(keyword.value, ast.Constant):
            mode = keyword.value.value
    if len(call.args) >= 2 and not isinstance(call.args[1], ast.Constant):
        return True
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _public_ipython(path: str | None) -> bool:
    return bool(path) and any(path == p or path.startswith(p + ".") for p in PUBLIC_IPYTHON)


def _inspect_source(index: int, source: str, modules: dict, offset: int = 0, depth: int = 0) -> list[Finding]:
    findings = []
    for number, line in enumerate(source.splitlines(), start=1):
        for pattern, reason in SHELL_PATTERNS:
            if pattern.search(line):
                findings.append(Finding(index, number + offset, line.strip()[:120], reason))
    cleaned, python = transform(source)
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return findings  # a cell that does not parse cannot run either: it just fails
    # Line numbers are the cleaned cell's (IPython drops leading blank lines before it rewrites magics).
    dropped = len(source.splitlines()) - len(cleaned.splitlines())
    rewritten = {number for number, (before, after) in enumerate(
        zip(cleaned.splitlines(), python.splitlines()), start=1) if before != after}
    inspector = _Inspector(index, python.splitlines(), modules, rewritten, offset + dropped)
    inspector.visit(tree)
    findings += inspector.findings
    for line, code in inspector.python_code:  # what %time, %%timeit, %%capture run: Python like the rest
        if depth < 3:
            findings += _inspect_source(index, code, modules, offset + dropped + line - 1, depth + 1)
    return findings


def inspect_cells(cells: list[tuple[int, str]]) -> list[Finding]:
    """Findings for the student's code cells, given as (cell index, source) in notebook order."""
    findings, modules = [], {}
    for index, source in cells:
        findings += _inspect_source(index, source, modules)
    unique, seen = [], set()
    for finding in findings:
        key = (finding.cell, finding.line, finding.reason)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique
