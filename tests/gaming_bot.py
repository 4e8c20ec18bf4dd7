"""A student who never understands anything: plays only with the visible checks.

It sees nothing but the student notebook (`notebooks/NN.ipynb`) and what its
cells print. In a live kernel it runs the notebook from the top, and at each
practice question it searches for an answer the visible check accepts:

- every option the question's text names ("A".."F", quoted words, dicts of labels);
- every number the text and the messages show, and a bisection when a message
  says "too high/low", "more/fewer", "above/below";
- for a function: first simple guesses (the identity, zeros), then a function
  that returns, for each visible input, the value a failed check said it
  expected ("expected ...") and otherwise the last value seen.

It keeps the answer that passed the visible check (or its last try) and the
whole notebook is then graded by `python -m autograder grade`. A question
whose points such a bot earns measures trial and error, not understanding.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_TRIES = 30
ANSWER_NAME = re.compile(r"\bq\d+_\w+\b")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


@dataclass
class Attempt:
    source: str
    passed: bool
    output: str


@dataclass
class Question:
    grade_id: str
    stub: str
    text: str
    check: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def answer(self) -> str:
        """The first answer the visible check accepted, else the last one tried."""
        passed = [a for a in self.attempts if a.passed]
        if passed:
            return passed[0].source
        return self.attempts[-1].source if self.attempts else self.stub


class Kernel:
    """A Jupyter kernel the bot types into; returns (ok, everything the cell showed)."""

    def __init__(self, cwd: Path):
        from jupyter_client.manager import start_new_kernel

        env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, code: str, timeout: float = 120) -> tuple[bool, str]:
        shown, ok = [], True

        def hook(msg):
            nonlocal ok
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                shown.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                shown.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                ok = False
                shown.append(f"{content['ename']}: {content['evalue']}")

        try:
            reply = self.client.execute_interactive(code, output_hook=hook, timeout=timeout, allow_stdin=False)
        except (TimeoutError, queue.Empty):
            self.manager.interrupt_kernel()
            return False, "timeout"
        ok = ok and reply["content"]["status"] == "ok"
        text = "".join(shown)
        # A check that prints instead of raising (e.g. a missing answer) has not passed either.
        return ok and "not yet right" not in text and "first (it is still missing)" not in text, text

    def close(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def questions_of(nb) -> list[tuple[int, int, Question]]:
    """(solution cell index, check cell index, question) in notebook order."""
    out, text = [], []
    cells = nb.cells
    for index, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown":
            text.append(cell.source)
            continue
        if meta.get("solution") and not meta.get("grade"):
            check = next(j for j in range(index + 1, len(cells))
                         if cells[j].metadata.get("nbgrader", {}).get("grade"))
            out.append((index, check, Question(meta["grade_id"], cell.source, "\n".join(text[-3:]),
                                               cells[check].source)))
            text = []
    return out


def literals(text: str) -> list:
    """Python literals written in the text: quoted strings, dicts, numbers."""
    found = []
    for code in re.findall(r"`([^`]+)`", text) + re.findall(r"(\{[^{}]*\})", text):
        try:
            found.append(ast.literal_eval(code.strip()))
        except (ValueError, SyntaxError, MemoryError, TypeError, RecursionError):
            pass
    found += re.findall(r"\"([A-Za-z][\w .:-]{0,40})\"", text)
    found += re.findall(r"\*\*([A-F])\.\*\*", text)
    return found


def numbers(text: str) -> list[float]:
    out = []
    for token in NUMBER.findall(text):
        try:
            out.append(float(token))
        except ValueError:
            pass
    return out


def parse_value(text: str):
    """A value as a check printed it ("expected [1. 2.]", "expected (0.5, 1.0)", "expected 'vanishing'")."""
    text = text.strip().rstrip(".")
    for candidate in (text, re.sub(r"(?<=[\d.\]])\s+(?=[-\d\[.])", ", ", text.replace("\n", " "))):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, TypeError, RecursionError):
            continue
    return None


def expectations(output: str) -> list[tuple[str, object]]:
    """(shown input, expected value) pairs in a failed check's message."""
    pairs, shown = [], ""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        match = re.match(r"with input \((.*)\)$", stripped)
        if match:
            shown = match.group(1)
        match = re.match(r"expected\s+(.+)$", stripped)
        if match and not stripped.startswith("expected a ") and not stripped.startswith("expected shape"):
            value = match.group(1)
            follow = index + 1
            while follow < len(lines) and value.count("[") > value.count("]"):
                value += " " + lines[follow].strip()
                follow += 1
            parsed = parse_value(re.sub(r"\s*\(relative tolerance.*$", "", value))
            if parsed is not None:
                pairs.append((shown, parsed))
    return pairs


def stub_function(stub: str) -> tuple[str, list[str]] | None:
    match = re.search(r"^def (\w+)\(([^)]*)\)", stub, re.M)
    if not match:
        return None
    params = [p.split("=")[0].strip().lstrip("*") for p in match.group(2).split(",") if p.strip()]
    return match.group(1), params


def function_source(name: str, params: list[str], body: str) -> str:
    return f"def {name}({', '.join(params)}):\n" + "\n".join(f"    {line}" for line in body.splitlines()) + "\n"


def lookup_body(params: list[str], table: dict[str, object], fallback) -> str:
    """A function body that answers each visible input with the value the check said it expected."""
    args = ", ".join(params)
    return (f"import numpy as _np\nfrom course_lib.checks import _fmt\n"
            f"_table = {json.dumps({k: _plain(v) for k, v in table.items()})}\n"
            f"_key = ', '.join(_fmt(a) if not isinstance(a, list) else f'[{{len(a)}} items]' for a in ({args},))\n"
            f"_value = _table.get(_key, {json.dumps(_plain(fallback))})\n"
            f"return tuple(_value) if isinstance(_value, list) and {isinstance(fallback, tuple)} else "
            f"(_np.asarray(_value) if isinstance(_value, list) else _value)")


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def candidates(question: Question, history: list[Attempt]):
    """The next answers to try, given what the checks said so far (a generator the bot drives)."""
    function = stub_function(question.stub)
    if function:
        name, params = function
        first = params[0] if params else "None"
        for body in (f"return {first}", f"import numpy as _np\nreturn _np.zeros_like(_np.asarray({first}, float))",
                     "return 0.0", "return 'vanishing'", "return 'healthy'", "return 'exploding'"):
            yield function_source(name, params, body)
        table, last = {}, None
        for _ in range(12):
            for attempt in history:
                for shown, value in expectations(attempt.output):
                    table[shown] = value
                    last = value
            if last is None:
                return
            yield function_source(name, params, lookup_body(params, table, last))
        return
    names = sorted(set(ANSWER_NAME.findall(question.check)) - set(ANSWER_NAME.findall(question.stub)) or
                   set(ANSWER_NAME.findall(question.check)))
    if not names:
        return
    target = names[0]
    pool = literals(question.text) + literals(question.check)
    tried = set()

    def offer(value):
        source = f"{target} = {value!r}"
        if source in tried:
            return None
        tried.add(source)
        return source

    # Dicts of labels: settle one key at a time, using any "wrong: [keys]" the check prints.
    dicts = [v for v in pool if isinstance(v, dict)]
    labels = sorted({v for v in pool if isinstance(v, str) and 1 < len(v) <= 20 and " " not in v})
    for template in dicts[:1]:
        guess = dict(template)
        for key in guess:
            for label in list(labels) or sorted({str(v) for v in guess.values()}):
                guess[key] = label
                source = offer(dict(guess))
                if not source:
                    continue
                yield source
                if history[-1].passed:
                    return
                allowed = re.search(r"one of (\[[^\]]*\])", history[-1].output)
                if allowed:  # the message lists the allowed labels: use only those
                    listed = parse_value(allowed.group(1))
                    labels[:] = [v for v in labels if v in (listed or labels)]
                    continue
                named = re.findall(r"\[([^\]]*)\]", history[-1].output)
                if named and repr(key) not in " ".join(named):
                    break  # this key is no longer listed as wrong: keep its label
    for value in [v for v in pool if isinstance(v, str)]:
        source = offer(value)
        if source:
            yield source
    # Numbers: bisect while the messages give a direction, else try every number the text or any
    # message shows (newest messages first), as int and float.
    low, high = None, None
    while True:
        last = history[-1] if history else None
        value = parse_value(last.source.split("=", 1)[1]) if last and "=" in last.source else None
        fresh = None
        if last and isinstance(value, (int, float)) and not isinstance(value, bool):
            message = last.output.lower()
            if re.search(r"too (high|large|big|many)|fewer|smaller|lower|not the smallest|below the", message):
                high = value
            elif re.search(r"too (low|small|few)|need more|more layers|larger|higher|at least|still above", message):
                low = value
            if low is not None or high is not None:
                lo = low if low is not None else (high / 4 if high and high > 0 else -1e6)
                hi = high if high is not None else (low * 4 + 1 if low and low > 0 else 1e6)
                middle = (lo + hi) / 2
                fresh = offer(round(middle) if isinstance(value, int) else middle)
                if fresh is None and isinstance(value, int):
                    fresh = offer(int(lo) + 1) or offer(int(hi) - 1)
        if fresh is None:
            seen = [n for attempt in reversed(history) for n in numbers(attempt.output)] + numbers(question.text)
            for number in seen:
                for typed in ([int(number), number] if number == int(number) and abs(number) < 1e9 else [number]):
                    fresh = offer(typed)
                    if fresh:
                        break
                if fresh:
                    break
        if fresh is None:
            return
        yield fresh


def play(notebook: Path, workdir: Path) -> dict[str, Question]:
    """Run the notebook as the bot; returns grade_id -> question with its attempts."""
    nb = nbformat.read(notebook, as_version=4)
    plan = questions_of(nb)
    by_solution = {solution: (check, q) for solution, check, q in plan}
    checks = {check for _, check, _ in plan}
    kernel = Kernel(workdir)
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or index in checks or "demo" in cell.metadata.get("tags", []):
                continue  # demo cells: experiments and explorers, which no check may depend on
            if index not in by_solution:
                kernel.run(cell.source)
                continue
            check, question = by_solution[index]
            history = question.attempts
            generator = candidates(question, history)
            for _ in range(MAX_TRIES):
                try:
                    source = next(generator)
                except StopIteration:
                    break
                kernel.run(source)
                ok, output = kernel.run(nb.cells[check].source)
                history.append(Attempt(source, ok, output))
                if ok:
                    break
            kernel.run(question.answer)  # leave the kept answer defined for later cells
            kernel.run(nb.cells[check].source)
    finally:
        kernel.close()
    return {q.grade_id: q for _, _, q in plan}
