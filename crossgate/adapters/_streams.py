"""The stream objects of a WSGI environ: ``wsgi.input``, ``wsgi.errors``, ``wsgi.file_wrapper``."""

from __future__ import annotations

import logging
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, TypeGuard

from crossgate.sansio.response import ResponseState, file_send_event
from crossgate.types import Message, as_message

__all__ = ["FILE_BLOCK_SIZE", "ErrorStream", "FileWrapper", "LineReader", "file_event"]

# A small block (Django asks for 4 KiB) would cost a Python iteration and a queue push per block.
FILE_BLOCK_SIZE = 256 * 1024

_log = logging.getLogger("crossgate")

_FILE_EVENTS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


class LineReader(ABC):
    """``readlines`` and iteration (PEP 3333, "Input and Error Streams") on ``readline``."""

    __slots__ = ()

    @abstractmethod
    def readline(self, size: int | None = -1) -> bytes:
        """One line, or at most ``size`` bytes of it; ``b""`` at the end of the body."""

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class ErrorStream:
    """``wsgi.errors``: each line is an ERROR record of the ``crossgate`` logger, not stderr."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            _log.error("wsgi.errors: %s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            _log.error("wsgi.errors: %s", self._partial)
            self._partial = ""


class FileWrapper:
    """``wsgi.file_wrapper`` (PEP 3333, "Optional Platform-Specific File Handling")."""

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: IO[bytes] | Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = max(blksize, FILE_BLOCK_SIZE)

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.blksize):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def file_event(
    iterable: object, state: ResponseState, extensions: Mapping[str, object]
) -> Message | None:
    """The pathsend / zerocopysend event for a ``wsgi.file_wrapper`` of a regular file, or None."""
    if not isinstance(iterable, FileWrapper) or not extensions.keys() & _FILE_EVENTS:
        return None
    file = iterable.filelike
    try:
        info = os.fstat(file.fileno())
        offset = file.tell()
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    path = _file_path(file, info)
    event = file_send_event(
        state, extensions, file=file, path=path, offset=offset, size=info.st_size
    )
    return None if event is None else as_message(event)


def _file_path(file: Any, info: os.stat_result) -> str | None:
    """The ``file``'s absolute path, from its own ``name``, its ``.file``'s (Django's FieldFile)
    or ``/proc/self/fd/N``."""
    inner = getattr(file, "file", None)
    for name in (getattr(file, "name", None), getattr(inner, "name", None)):
        if _same_file(name, info):
            return os.path.abspath(name)
    try:
        name = os.readlink(f"/proc/self/fd/{file.fileno()}")
    except OSError:  # pragma: no cover - no /proc/self/fd outside Linux
        return None
    return name if _same_file(name, info) else None


def _same_file(path: object, info: os.stat_result) -> TypeGuard[str]:
    try:
        return isinstance(path, str) and os.path.samestat(os.stat(path), info)
    except OSError:
        return False
