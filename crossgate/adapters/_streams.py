"""The stream objects a WSGI environ carries besides ``wsgi.input``: errors and file wrapper."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["FILE_BLOCK_SIZE", "ErrorStream", "FileWrapper"]

# Files are read in blocks of at least this size when no zero-copy path is available: a small
# block (Django asks for 4 KiB) would cost a Python iteration, and a queue push, per 4 KiB.
FILE_BLOCK_SIZE = 256 * 1024

_log = logging.getLogger("crossgate")


class ErrorStream:
    """``wsgi.errors``: a text stream whose lines go to the ``crossgate`` logger at ERROR.

    PEP 3333 ("Input and Error Streams") asks for a file-like object with ``write``,
    ``writelines`` and ``flush``. Writing to the process's stderr would bypass the logging
    configuration of the server, so each complete line becomes one log record instead.
    One instance serves one request, so partial lines from two requests never mix.
    """

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        data = self._partial + text
        *lines, self._partial = data.split("\n")
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
    """``wsgi.file_wrapper`` (PEP 3333, "Optional Platform-Specific File Handling").

    Iterating reads the file in large blocks. When the ASGI server offers
    ``http.response.pathsend`` or ``http.response.zerocopysend`` and ``filelike`` is a real file,
    the adapter hands the file to the server instead of iterating. ``close()`` closes the file.
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: IO[bytes] | Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = max(blksize, FILE_BLOCK_SIZE)

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
