"""A header list that counts how many pairs a middleware reads (issue 19, item 3)."""

from __future__ import annotations

from collections.abc import Iterator


class CountingHeaders:
    """Iterable ``scope["headers"]`` stand-in: ``read`` is the number of pairs handed out.

    Asserting on it checks how much work a shell does for a header flood without timing it.
    """

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.read = 0

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        for pair in self.headers:
            self.read += 1
            yield pair

    def __len__(self) -> int:
        return len(self.headers)
