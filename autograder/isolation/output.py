"""Captured output with a budget: the kernel's streams (inside the sandbox) and the judge's trusted
runs (outside) keep the first characters of a huge output and count the rest."""

from __future__ import annotations

import io

OUTPUT_LIMIT = 100_000  # characters kept per cell and stream; the rest is counted, not stored


class CappedWriter(io.TextIOBase):
    """A text stream that keeps the first `limit` characters and counts the rest (huge outputs)."""

    def __init__(self, limit: int = OUTPUT_LIMIT):
        self.limit, self.parts, self.size, self.dropped = limit, [], 0, 0

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output not kept ...]\n"
        return text
