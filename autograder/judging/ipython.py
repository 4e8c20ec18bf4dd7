"""IPython's own reading of a cell, the one wrapper of it: the cell after IPython's cleanup (leading
blank lines dropped, prompts stripped), and as Python (magics, help and shell escapes turned into calls,
line for line), or the raw text twice when IPython cannot transform it."""

from __future__ import annotations

import functools


@functools.cache
def _manager():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


@functools.lru_cache(maxsize=4096)
def transform(source: str) -> tuple[str, str]:
    """(the cell after IPython's cleanup transforms, the cell as Python)."""
    try:
        manager = _manager()
        lines = source.splitlines(keepends=True)
        for step in manager.cleanup_transforms:
            lines = step(lines)
        return "".join(lines), manager.transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot transform is read as is
        return source, source


def to_python(source: str) -> str:
    """The cell as Python, after IPython's transformations (magics become calls)."""
    return transform(source)[1]
