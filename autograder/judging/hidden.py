"""Hidden tests: a test cell split at its ``### BEGIN/END HIDDEN TESTS`` markers, the cell as students
see it, and redaction of any text that quotes a hidden line (so hidden tests never reach feedback)."""

from __future__ import annotations

BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"  # nbgrader's delimiters (matched inside a line)
HIDDEN_NOTICE = "# (hidden tests: not shown)"


class HiddenTestsError(ValueError):
    """Markers nbgrader refuses too (ClearHiddenTests): a BEGIN inside a hidden region, or no END."""


def regions(source: str) -> list[tuple[int, list[str], bool]]:
    """The one parser of the markers: the cell's lines as consecutive (first line index, lines, hidden)
    regions, marker lines dropped. Like nbgrader, a nested or unterminated region raises HiddenTestsError
    and an END outside a region only ends nothing."""
    found, current, start, hidden = [], [], 0, False
    for number, line in enumerate(source.split("\n")):
        if BEGIN_HIDDEN in line and hidden:
            raise HiddenTestsError(f"line {number + 1}: {BEGIN_HIDDEN} inside a hidden region")
        if BEGIN_HIDDEN in line or END_HIDDEN in line:
            found.append((start, current, hidden))
            current, start, hidden = [], number + 1, BEGIN_HIDDEN in line
            continue
        current.append(line)
    if hidden:
        raise HiddenTestsError(f"{BEGIN_HIDDEN} without {END_HIDDEN}")
    found.append((start, current, hidden))
    return found


def split_hidden(source: str) -> list[tuple[str, bool]]:
    """A test cell as consecutive (code, hidden) segments, split at the hidden-test markers.

    Each segment is padded with blank lines so that its line numbers are the
    cell's, and errors point at the right line.
    """
    return [("\n" * start + "\n".join(lines), hidden) for start, lines, hidden in regions(source)
            if any(line.strip() for line in lines)]


def segments_compile(source: str) -> bool:
    """True when every segment of `source` compiles on its own (so they can run one by one)."""
    try:
        for code, _ in split_hidden(source):
            compile(code, "<test>", "exec")
    except SyntaxError:
        return False
    return True


def strip_hidden(source: str) -> str:
    """The test cell as students may see it: each hidden block replaced by one notice line."""
    out = []
    for _, lines, hidden in regions(source):
        out += [HIDDEN_NOTICE] if hidden else lines
    return "\n".join(out)


def released_source(source: str) -> str:
    """The test cell exactly as nbgrader releases it (ClearHiddenTests: the hidden region removed)."""
    return "\n".join(line for _, lines, hidden in regions(source) if not hidden for line in lines)


def hidden_lines(sources: list[str], *, min_length: int = 12) -> set[str]:
    """The distinctive lines of all hidden blocks (stripped), for redacting anything that quotes them."""
    return {line.strip() for source in sources for _, lines, hidden in regions(source) if hidden
            for line in lines if len(line.strip()) >= min_length and not line.strip().startswith("#")}


def redact(text: str, secret_lines: set[str]) -> str:
    """`text` with every line that contains a hidden-test line (or a marker) replaced."""
    if not text:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if BEGIN_HIDDEN in line or END_HIDDEN in line or (stripped and any(s in line for s in secret_lines)):
            out.append("[line removed: it quotes a hidden test]\n")
        else:
            out.append(line)
    return "".join(out)
