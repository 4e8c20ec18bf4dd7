"""Write one benchmark's section of benchmarks/README.md without touching the others."""

from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"
HEADER = ("# Benchmarks\n\nRun by hand on the course's reference machine (2 CPU cores, no GPU); each script "
          "rewrites only its own section below. Figures are medians unless noted.\n")


def write_section(key: str, markdown: str) -> None:
    """Replace the text between <!-- begin KEY --> and <!-- end KEY --> (appended if absent)."""
    text = README.read_text(encoding="utf-8") if README.exists() else HEADER
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")
