"""Self-checks for practice questions: say what was expected, what came back, and why.

Each check raises `CheckFailed` (an AssertionError, so nbgrader counts it as
a failed test) with a message a student can act on, and prints one line when
the answer passes. In a notebook a failed check shows only its message, never
a traceback; an answer not yet given says which name to set. Known wrong
answers ("mistakes") are recognised and explained.

What a check may say (README, "Writing questions"): a visible check explains
the kind of mistake on its public example; it never states what the hidden
tests grade. A prediction is a function of the setting, checked with
`check_function` on a public setting. This module holds no answers: the notebook passes the
expected values in, and hidden tests live only in the autograder's sources.
"""

import contextlib
import copy
import hashlib
import re

import numpy as np


class CheckFailed(AssertionError):
    """A practice answer is wrong; the message explains how."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the message is all a student needs."""
        return [f"\x1b[31m{line}\x1b[0m" if index == 0 else line
                for index, line in enumerate(str(self).splitlines())]


ANSWER_NAME = re.compile(r"^q(\d+)_\w+$")
"""Answers are named after their question: q3_layers, q5_answer, ..."""


def missing_answer_message(name: str) -> str | None:
    """What to tell a student whose check cell names an answer they have not set yet."""
    match = ANSWER_NAME.match(name or "")
    if not match:
        return None
    return (f"Question {int(match.group(1))}: set `{name}` first (it is still missing). Write your answer in "
            "the cell marked # YOUR CODE HERE above, run that cell, then run this check again.")


def _show_missing_answers(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler: a short line for a missing answer, the usual traceback otherwise."""
    message = missing_answer_message(getattr(value, "name", None))
    if message is None:
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    print(message)
    return None


def _install_notebook_messages() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to install
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "set_custom_exc"):
        shell.set_custom_exc((NameError,), _show_missing_answers)


_install_notebook_messages()


def digest(answer, salt: str) -> str:
    """A short fingerprint of an answer, so a visible check can confirm it without printing it.

    `salt` is the question's own key (e.g. "01_q5"), so equal answers to different
    questions have different fingerprints.
    """
    text = answer.strip().upper() if isinstance(answer, str) else repr(answer)
    return hashlib.sha256(f"vanishing-gradients:{salt}:{text}".encode()).hexdigest()[:16]


def _fail(name: str, lines: list[str]) -> None:
    raise CheckFailed("\n".join([f"{name}: not yet right."] + [f"  {line}" for line in lines if line]))


_quiet = False


@contextlib.contextmanager
def quiet():
    """Silence the pass messages (hidden tests use this; failures still raise)."""
    global _quiet
    saved, _quiet = _quiet, True
    try:
        yield
    finally:
        _quiet = saved


def _passed(name: str, what: str = "the visible checks") -> None:
    if not _quiet:
        print(f"{name}: passes {what}.")


def _to_array(value):
    """A student's value as a float64 array, or None when it is not numeric."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def _fmt(value) -> str:
    array = _to_array(value)
    if array is None:
        return repr(value)
    if array.ndim == 0:
        return f"{float(array):.6g}"
    return np.array2string(array, precision=4, threshold=12, suppress_small=False)


def _close(got, expected, rtol: float, atol: float) -> bool:
    a, b = _to_array(got), _to_array(expected)
    if a is None or b is None or a.shape != b.shape:
        return False
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=False))


def _missing(name: str, got) -> None:
    if got is None or got is Ellipsis or got is NotImplemented:
        _fail(name, [f"the answer is {got!r}: replace it with your own value, then run the cell again."])


def _diagnose(got, mistakes, rtol: float, atol: float) -> str:
    for wrong, explanation in (mistakes or []):
        if _close(got, wrong, rtol, atol):
            return f"Likely mistake: {explanation}"
    return ""


def check_close(name: str, got, expected, *, rtol: float = 1e-5, atol: float = 1e-8,
                mistakes=None, hint: str = "") -> None:
    """Check that number or array `got` equals `expected` within tolerance.

    `mistakes` is a list of (wrong value, explanation) pairs; when `got`
    matches one, its explanation is shown. `hint` is shown for any other miss.
    """
    _missing(name, got)
    a, b = _to_array(got), np.asarray(expected, dtype=np.float64)
    if a is None:
        _fail(name, [f"expected a number or array, got {type(got).__name__} {got!r}.", hint])
    if a.shape != b.shape:
        _fail(name, [f"expected shape {b.shape}, got shape {a.shape}.", hint])
    if not np.isfinite(a).all():
        _fail(name, [f"the answer contains NaN or infinity: {_fmt(a)}.", hint])
    if not _close(a, b, rtol, atol):
        why = _diagnose(a, mistakes, rtol, atol)
        _fail(name, [f"expected {_fmt(b)} (relative tolerance {rtol:g}), got {_fmt(a)}.", why or hint])
    _passed(name)


def check_integer(name: str, got, expected: int | None = None, *, mistakes=None, hint: str = "") -> None:
    """Check that `got` is an int (not a float or bool) and, when given, equals `expected`."""
    _missing(name, got)
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
        _fail(name, [f"expected a whole number (an int), got {type(got).__name__} {got!r}.",
                     "Use int(...) or math.ceil(...) to turn your result into an int."])
    if expected is not None and int(got) != expected:
        why = next((f"Likely mistake: {text}" for wrong, text in (mistakes or []) if wrong == int(got)), "")
        _fail(name, [f"got {int(got)}, which is not right.", why or hint])
    _passed(name, "the visible checks" if expected is not None else "the type check")


def check_choice(name: str, got, options, *, expected=None, expected_digest: str | None = None,
                 salt: str = "", explanations=None) -> None:
    """Check a multiple-choice answer: one of `options`, and the right one.

    Give the right option as `expected`, or as `expected_digest` (`digest(option, salt)`)
    in a visible check that should not print the answer. `explanations` maps
    a wrong option to why it is wrong. A visible verdict per option can be found
    by trying each, so choice questions are formative: few points (README).
    """
    if expected_digest is not None and not salt:
        raise ValueError("check_choice: give the question's salt with expected_digest")
    _missing(name, got)
    normalized = got.strip().upper() if isinstance(got, str) else got
    if normalized not in options:
        _fail(name, [f"answer with one of {list(options)} (a string), got {got!r}."])
    right = normalized == expected if expected is not None else \
        digest(normalized, salt) == expected_digest if expected_digest is not None else True
    if not right:
        _fail(name, [f"{normalized!r} is not the best answer.", (explanations or {}).get(normalized, "")])
    _passed(name)


def _same_args(before, after) -> bool:
    """True when no array inside `after` differs from its copy in `before`."""
    for x, y in zip(before, after):
        if isinstance(x, (list, tuple)):
            if not _same_args(x, y):
                return False
        elif hasattr(x, "shape") and not np.array_equal(_to_array(x), _to_array(y), equal_nan=True):
            return False
    return True


def _call(name: str, fn, args: tuple, hint: str):
    """(the arguments as shown in a message, what the student's `fn` returns on a copy of them); a failure
    message when it raises or changes its input arrays."""
    shown = ", ".join(_fmt(a) if not isinstance(a, list) else f"[{len(a)} items]" for a in args)
    originals, call_args = copy.deepcopy(args), copy.deepcopy(args)
    try:
        got = fn(*call_args)
    except NotImplementedError:
        _fail(name, ["the function still raises NotImplementedError: write your code in its body."])
    except Exception as error:  # the student's code failed: say where
        _fail(name, [f"calling it with ({shown}) raised {type(error).__name__}: {error}", hint])
    if not _same_args(originals, call_args):
        _fail(name, [f"calling it with ({shown}) changed its input arrays; work on a copy instead."])
    return shown, got


def check_function(name: str, fn, cases, *, rtol: float = 1e-6, atol: float = 1e-9,
                   mistakes=None, hint: str = "") -> None:
    """Call the student's `fn` on each case and compare with the expected result.

    `cases` is a list of (args tuple, expected). `mistakes` is a list of
    (wrong implementation, explanation): when the student's output equals what
    the wrong implementation returns, the explanation is shown. Also checks
    that `fn` does not modify its array arguments.
    """
    if not callable(fn):
        _fail(name, [f"expected a function, got {type(fn).__name__}."])
    for args, expected in cases:
        shown, got = _call(name, fn, args, hint)
        if not _close(got, expected, rtol, atol):
            wrong_answers = []
            for wrong_fn, explanation in (mistakes or []):
                try:
                    wrong_answers.append((wrong_fn(*copy.deepcopy(args)), explanation))
                except Exception:
                    continue
            a = _to_array(got)
            shape_note = "" if a is None or a.shape == np.shape(expected) else \
                f"(shape {a.shape}, expected {np.shape(expected)}) "
            why = _diagnose(got, wrong_answers, rtol, atol)
            _fail(name, [f"with input ({shown})", f"expected {_fmt(expected)}",
                         f"got      {shape_note}{_fmt(got)}", why or hint])
    _passed(name)


def check_verdicts(name: str, fn, cases, *, allowed, mistakes=None, hint: str = "") -> None:
    """Like `check_function`, for a function that returns a label (a string from `allowed`).

    `cases` is a list of (args tuple, expected label); `mistakes` a list of
    (wrong implementation, explanation), shown when the student's label equals
    the wrong implementation's on a failing case.
    """
    if not callable(fn):
        _fail(name, [f"expected a function, got {type(fn).__name__}."])
    for args, expected in cases:
        shown, got = _call(name, fn, args, hint)
        if not isinstance(got, str) or got not in allowed:
            _fail(name, [f"with input ({shown})", f"return one of {list(allowed)}, got {got!r}."])
        if got != expected:
            why = ""
            for wrong_fn, explanation in (mistakes or []):
                try:
                    if wrong_fn(*copy.deepcopy(args)) == got:
                        why = f"Likely mistake: {explanation}"
                        break
                except Exception:
                    continue
            _fail(name, [f"with input ({shown})", f"expected {expected!r}", f"got      {got!r}", why or hint])
    _passed(name)
