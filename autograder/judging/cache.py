"""The test cache: outcomes of tests that read only plain data and made no call into the kernel,
shared by the jobs of one batch."""

from __future__ import annotations

import hashlib
import json
import types
from pathlib import Path

from ..files import write_atomic
from ..isolation import wire
from .kernel_client import Opaque, Proxy


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
        write_atomic(path, text)
