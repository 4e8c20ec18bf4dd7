"""Hidden tests: a test cell split at its ``### BEGIN/END HIDDEN TESTS`` markers, the cell as students
see it, and redaction of any text that quotes a hidden line (so hidden tests never reach feedback)."""

from __future__ import annotations

BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"  # nbgrader's delimiters (matched inside a line)
HIDDEN_NOTICE = "# (hidden tests: not shown)"


def split_hidden(source: str) -> list[tuple[str, bool]]:
    """A test cell as consecutive (code, hidden) segments, split at the hidden-test markers.

    Each segment is padded with blank lines so that its line numbers are the
    cell's, and errors point at the right line.
    """
    segments, current, start, hidden = [], [], 0, False
    lines = source.splitlines()
    for number, line in enumerate(lines):
        if BEGIN_HIDDEN in line or END_HIDDEN in line:
            if any(text.strip() for text in current):
                segments.append((start, current, hidden))
            current, start, hidden = [], number + 1, BEGIN_HIDDEN in line
            continue
        current.append(line)
    if any(text.strip() for text in current):
        segments.append((start, current, hidden))
    return [("\n" * start + "\n".join(block), is_hidden) for start, block, is_hidden in segments]


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
    out, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            hidden = True
            out.append(HIDDEN_NOTICE)
        elif END_HIDDEN in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def released_source(source: str) -> str:
    """The test cell exactly as nbgrader releases it (ClearHiddenTests: the hidden region removed)."""
    out, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def hidden_lines(sources: list[str], *, min_length: int = 12) -> set[str]:
    """The distinctive lines of all hidden blocks (stripped), for redacting anything that quotes them."""
    lines = set()
    for source in sources:
        hidden = False
        for line in source.splitlines():
            marker = line.strip()
            if BEGIN_HIDDEN in line:
                hidden = True
            elif END_HIDDEN in line:
                hidden = False
            elif hidden and len(marker) >= min_length and not marker.startswith("#"):
                lines.add(marker)
    return lines


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
