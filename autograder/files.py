"""The grader's file access: the one atomic write (and what a killed one leaves behind), and reading a
submitted file safely (never through a symbolic link or a FIFO, never more than a notebook may hold, zip
members whatever their names' encoding)."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import zipfile
from pathlib import Path

MAX_NOTEBOOK_BYTES = 50 * 2**20  # a bigger submitted file is refused, never read whole
HALF_WRITTEN = re.compile(r"^\..+\.tmp(\d+)$")  # write_atomic's temporary files: .<name>.tmp<writer pid>


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write through a temporary file and a rename, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(data, str):
        temporary.write_text(data, encoding="utf-8")
    else:
        temporary.write_bytes(data)
    os.replace(temporary, path)


# ---- reading what was submitted ----------------------------------------------------------------------

class UnreadableFile(OSError):
    """A submitted file that cannot be read (corrupt zip member, not a regular file, ...)."""


def read_bytes(location: dict) -> bytes:
    """A submitted file's bytes: {"path": ...} or {"zip": ..., "member": ..., "index": ...}. Never follows
    a symbolic link, never blocks on a FIFO, never reads more than a notebook may hold (a bigger file
    reads as that many bytes plus one, which the judge refuses); every failure is an UnreadableFile."""
    if "zip" in location:
        try:
            with open_zip(location["zip"]) as archive:
                members = archive.infolist()
                index = location.get("index")
                info = members[index] if index is not None else archive.getinfo(location["member"])
                if info.filename != location["member"]:
                    raise UnreadableFile(f"the zip no longer holds {location['member']!r} at this place")
                if info.file_size > MAX_NOTEBOOK_BYTES:
                    return b"\0" * (MAX_NOTEBOOK_BYTES + 1)
                with archive.open(info) as member:
                    return member.read(MAX_NOTEBOOK_BYTES + 1)
        except UnreadableFile:
            raise
        except Exception as error:  # noqa: BLE001 - BadZipFile (CRC), zlib.error, EOFError: a damaged member
            raise UnreadableFile(f"{type(error).__name__}: {error}") from None
    try:
        fd = os.open(location["path"], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise UnreadableFile(f"{error.strerror or error}") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file")
        return file.read(MAX_NOTEBOOK_BYTES + 1)


def _central_directory(file) -> tuple[int, int] | None:
    """(offset, size) of a zip's central directory, from its end record (None: not found, or zip64)."""
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - 65_557))
    tail = file.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    cd_size, cd_offset = struct.unpack("<II", tail[at + 12:at + 20])
    if cd_offset == 0xFFFFFFFF:
        return None
    return cd_offset, cd_size


def _bad_utf8_names(path) -> tuple[list[int], set[int]]:
    """(file offsets of the flag bits, indices) of the central-directory entries flagged UTF-8 whose
    name is not UTF-8 after all."""
    offsets, indices = [], set()
    with open(path, "rb") as file:
        where = _central_directory(file)
        if where is None:
            return offsets, indices
        file.seek(where[0])
        data = file.read(where[1])
    at, index = 0, 0
    while data[at:at + 4] == b"PK\x01\x02" and at + 46 <= len(data):
        flags, = struct.unpack("<H", data[at + 8:at + 10])
        name_length, extra_length, comment_length = struct.unpack("<HHH", data[at + 28:at + 34])
        if flags & 0x800:
            try:
                data[at + 46:at + 46 + name_length].decode("utf-8")
            except UnicodeDecodeError:
                offsets.append(where[0] + at + 8)
                indices.add(index)
        at += 46 + name_length + extra_length + comment_length
        index += 1
    return offsets, indices


class _Patched(io.RawIOBase):
    """A zip file read with the UTF-8 flag (bit 11 of the little-endian flag bits) cleared at `offsets`."""

    def __init__(self, path, offsets: list[int]):
        self._file = open(path, "rb")  # noqa: SIM115 - closed with this object
        self._bytes = [offset + 1 for offset in offsets]  # bit 11 is bit 3 of the second byte

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def readinto(self, buffer):
        start = self._file.tell()
        data = bytearray(self._file.read(len(buffer)))
        for byte in self._bytes:
            if start <= byte < start + len(data):
                data[byte - start] &= 0xF7
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        self._file.close()
        super().close()


def open_zip(path, undecodable: set[int] | None = None) -> zipfile.ZipFile:
    """A ZipFile whose every member name decodes, so one bad name never stops the archive: a name flagged
    UTF-8 that is not reads as cp437 (its index goes into `undecodable`); an unflagged name that is valid
    UTF-8 (macOS and Windows tools) reads as UTF-8."""
    try:
        archive = zipfile.ZipFile(path)
    except UnicodeDecodeError:
        offsets, indices = _bad_utf8_names(path)
        archive = zipfile.ZipFile(io.BufferedReader(_Patched(path, offsets)))
        if undecodable is not None:
            undecodable.update(indices)
    for info in archive.infolist():
        if not info.flag_bits & 0x800:
            try:
                info.filename = info.orig_filename.encode("cp437").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
    return archive
