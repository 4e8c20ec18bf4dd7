"""Name analysis of a cell: the names it binds, reads from earlier cells and uses, after IPython's
own transformations (magics become calls; %time and %%capture bodies count as code); and which demo
cells a set of cells needs, found by name as Jupyter would run them from the top."""

from __future__ import annotations

import ast
import functools
import symtable

from . import inspection
from .ipython import to_python


@functools.lru_cache(maxsize=4096)
def parse_cell(source: str):
    """The cell's AST, with the Python that %time, %timeit, %%time, %%capture ... run spliced in
    where the magic stands (so the names it reads and binds count like any other code's)."""
    try:
        tree = ast.parse(to_python(source))
    except SyntaxError:
        return None
    body = []
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        func = getattr(call, "func", None)
        if isinstance(call, ast.Call) and isinstance(func, ast.Attribute) and \
                func.attr in ("run_line_magic", "run_cell_magic") and call.args and \
                all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args) and \
                call.args[0].value in inspection.PYTHON_MAGICS:
            for argument in call.args[1:]:
                code = inspection.magic_python(argument.value)
                inner = parse_cell(code) if code else None
                body += inner.body if inner is not None else []
            continue
        body.append(node)
    tree.body = body
    return tree


MUTATORS = {"append", "extend", "insert", "update", "add", "pop", "popitem", "remove", "clear", "setdefault",
            "discard", "sort", "reverse", "fill", "resize", "put", "itemset", "setflags", "__setitem__"}


@functools.lru_cache(maxsize=4096)
def bound_names(source: str, *, imports: bool = True) -> frozenset[str]:
    """Names a cell binds at its top level (def, class, assignment, for/with targets; imports with `imports`)."""
    tree = parse_cell(source)
    if tree is None:
        return frozenset()
    bindings = _TopLevelBindings(imports)
    bindings.statements(tree.body)
    return frozenset(bindings.names)


class _TopLevelBindings(ast.NodeVisitor):
    """The names top-level statements bind, in the bodies of if/for/while/with/try too (never inside a
    function or class); a name whose item, attribute or contents a statement changes counts as bound."""

    def __init__(self, imports: bool):
        self.imports, self.names = imports, set()

    def statements(self, body: list) -> None:
        for node in body:
            self.visit(node)

    def generic_visit(self, node) -> None:
        pass  # any other statement binds nothing; expressions are never walked

    def visit_FunctionDef(self, node) -> None:
        self.names.add(node.name)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Import(self, node) -> None:
        if self.imports:
            self.names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}

    visit_ImportFrom = visit_Import

    def visit_Assign(self, node) -> None:
        for target in node.targets:
            self.target(target)

    def visit_AugAssign(self, node) -> None:
        self.target(node.target)

    visit_AnnAssign = visit_AugAssign

    def visit_For(self, node) -> None:
        self.target(node.target)
        self.statements(node.body)
        self.statements(node.orelse)

    visit_AsyncFor = visit_For

    def visit_With(self, node) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self.target(item.optional_vars)
        self.statements(node.body)

    visit_AsyncWith = visit_With

    def visit_If(self, node) -> None:
        self.statements(node.body)
        self.statements(node.orelse)

    visit_While = visit_If

    def visit_Try(self, node) -> None:
        self.statements(node.body)
        self.statements(node.orelse)
        self.statements(node.finalbody)
        for handler in node.handlers:
            self.statements(handler.body)

    def visit_Expr(self, node) -> None:
        func = node.value.func if isinstance(node.value, ast.Call) else None
        # x.append(...), d.update(...), w.normal_(): changes x / d / w
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and (
                func.attr in MUTATORS or (func.attr.endswith("_") and not func.attr.startswith("_"))):
            self.names.add(func.value.id)

    def target(self, node) -> None:
        """The names an assignment target binds or changes (x[k] = ... and x.a = ... change x)."""
        if isinstance(node, ast.Name):
            self.names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        elif isinstance(node, (ast.Subscript, ast.Attribute)):
            root = node
            while isinstance(root, (ast.Subscript, ast.Attribute)):
                root = root.value
            if isinstance(root, ast.Name):
                self.names.add(root.id)


@functools.lru_cache(maxsize=4096)
def free_names(source: str) -> frozenset[str]:
    """Names a cell may read from earlier cells: at its top level, loaded before the cell binds them;
    inside functions, lambdas, classes and comprehensions, the globals they read (Python's own symbol
    table) that the cell does not bind."""
    tree = parse_cell(source)
    if tree is None:
        return frozenset({"*"})
    reads = _TopLevelReads()
    reads.visit(tree)
    return frozenset(reads.free | (_nested_globals(ast.unparse(tree)) - bound_names(source)))


class _TopLevelReads(ast.NodeVisitor):
    """The names the top level of a cell loads before binding them (`free`); nested scopes are only walked
    for what the enclosing scope evaluates (decorators, defaults, bases, a comprehension's first iterable)."""

    def __init__(self):
        self.free: set[str] = set()
        self.bound, self.depth = set(), 0

    def visit_Name(self, node):
        if self.depth:
            return  # nested scopes: see _nested_globals
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.bound:
                self.free.add(node.id)
        else:
            self.bound.add(node.id)

    def visit_Assign(self, node):
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node):
        if isinstance(node.target, ast.Name) and self.depth == 0 and node.target.id not in self.bound:
            self.free.add(node.target.id)
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


def demo_dependencies(kinds: list[str], sources: list[str], consumers) -> tuple[set[int], dict[str, int]]:
    """The demo cells that the `consumers` (cell indices) need, found by name as Jupyter would run them
    from the top: a name a consumer reads that no earlier cell of kind "code" binds, but an earlier
    "demo" cell does, needs the latest such demo cell, which then is a consumer too. `kinds[i]` is
    "demo", "code" (binds names where the consumers run) or "" (binds nothing there).
    Returns the needed demo cells and each name no earlier cell binds -> the first consumer reading it."""
    bound = [bound_names(source) if kind else frozenset() for kind, source in zip(kinds, sources)]
    needed: set[int] = set()
    unresolved: dict[str, int] = {}
    work = sorted(set(consumers), reverse=True)
    while work:
        index = work.pop()
        for name in free_names(sources[index]) - {"*"}:
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
def used_names(source: str) -> frozenset[str]:
    tree = parse_cell(source)
    if tree is None:
        return frozenset()
    return frozenset(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))
