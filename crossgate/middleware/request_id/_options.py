"""What `RequestID` and `WSGIRequestID` share: the options, the id's context, the access line."""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic

from crossgate.middleware._common import App
from crossgate.sansio.headers import header_environ_key
from crossgate.sansio.proxy_headers import TrustedPeers
from crossgate.sansio.request_id import (
    DEFAULT_MAX_ID_LENGTH,
    accept_request_id,
    access_line,
    log_safe,
    new_request_id,
)

__all__ = [
    "SCOPE_KEY",
    "RequestIDBase",
    "RequestIDFilter",
    "RequestIDOptions",
    "current_request_id",
    "request_id_var",
    "status_without_response",
]

#: The id of the request whose code is running (``None`` outside one). Set by `RequestID` for
#: the app's task (tasks it starts inherit it) and by `WSGIRequestID` around each call into the
#: app, its iterable and its ``close()``.
request_id_var: ContextVar[str | None] = ContextVar("crossgate.request_id", default=None)

SCOPE_KEY = "crossgate.request_id"

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or ``None``."""
    return request_id_var.get()


class RequestIDFilter(logging.Filter):
    """A `logging.Filter` that sets ``record.request_id`` on every record it sees.

    The value is the current request's id, or ``default`` outside a request; a record that
    already carries one (the access line) keeps it. Attach it to a handler, and use
    ``%(request_id)s`` in its format::

        handler.addFilter(RequestIDFilter())
        handler.setFormatter(logging.Formatter("%(request_id)s %(levelname)s %(message)s"))

    It never drops a record.
    """

    def __init__(self, name: str = "", *, default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or self.default
        return True


@dataclass(frozen=True, slots=True)
class RequestIDOptions:
    """The checked options of one `RequestID` or `WSGIRequestID`, and what both sides do with
    them: choose the id, write the access line.

    ``name`` is the header's lower-case ASGI name, ``environ_key`` its ``HTTP_*`` key;
    ``trusted`` is ``None`` when no incoming id is ever reused.
    """

    header: str
    name: bytes
    environ_key: str
    trusted: TrustedPeers | None
    access_log: bool
    logger: logging.Logger
    max_id_length: int

    def choose(self, peer: str | None, incoming: bytes | str | None) -> str:
        """Reuse ``incoming`` when ``peer`` is trusted and the value is safe, else a new id."""
        if self.trusted is not None and incoming is not None and self.trusted.trusts(peer):
            reused = accept_request_id(incoming, max_length=self.max_id_length)
            if reused is not None:
                return reused
        return new_request_id()

    def enabled(self) -> bool:
        """Whether an access line would be written (``access_log`` on, INFO enabled)."""
        return self.access_log and self.logger.isEnabledFor(logging.INFO)

    def log(
        self,
        *,
        request_id: str,
        client: str | None,
        method: str,
        path: str,
        query: str,
        http_version: str,
        status: int,
        sent: int,
        started: float,
        outcome: str,
    ) -> None:
        """Write the access line at INFO, with its fields also as record attributes.

        Callers check `enabled` first, so nothing is computed for a line nobody takes.
        """
        logger = self.logger
        duration_ms = (time.perf_counter() - started) * 1000
        line = _AccessLine(
            {
                "client": client,
                "method": method,
                "path": path,
                "query": query,
                "http_version": http_version,
                "status": status,
                "sent": sent,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "outcome": outcome,
            }
        )
        # The record is made directly, without Logger.info(): that would walk the stack to find
        # the caller (meaningless for an access line) and check each extra key, doubling the
        # cost. No arguments: the line is logged as is, never %-formatted (paths hold "%").
        # The message is built lazily, as logging does with %-arguments: only when a handler
        # formats the record (a JSON formatter may use the attributes alone).
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None)
        # The attributes are escaped as the message is: a formatter using %(http_path)s must
        # not write a path holding CR/LF (a server that sends no raw_path gives the decoded
        # path) as a forged second line.
        record.__dict__.update(
            request_id=request_id,
            client_addr=client if client is None else log_safe(client),
            http_method=log_safe(method),
            http_path=log_safe(path),
            http_status=status,
            response_bytes=sent,
            duration_ms=duration_ms,
            outcome=outcome or "complete",
        )
        logger.handle(record)


class _AccessLine:
    """An access line's message, built by `access_line` only when a handler formats it."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __str__(self) -> str:
        return access_line(**self._fields)


def status_without_response(error: bool, disconnected: bool) -> int:
    """The status to log when the app sent none: what the server answers, or 499."""
    if disconnected and not error:
        return 499  # nginx's "client closed request": nobody got an answer
    return 500  # the server answers 500 for an app that raised or returned without one


class RequestIDBase(Generic[App]):
    """The constructor of `RequestID` and `WSGIRequestID`: the options, in one place."""

    def __init__(
        self,
        app: App,
        *,
        header: str = "X-Request-ID",
        trust_incoming: bool | Iterable[str] = False,
        access_log: bool = True,
        logger: str | logging.Logger = "crossgate.access",
        max_id_length: int = DEFAULT_MAX_ID_LENGTH,
    ) -> None:
        if not _TOKEN.fullmatch(header):
            raise ValueError(f"header must be a valid header name, not {header!r}")
        if max_id_length < 1:
            raise ValueError(f"max_id_length must be 1 or more, not {max_id_length}")
        name = header.lower().encode("ascii")
        key = header_environ_key(name)
        if key is None:  # pragma: no cover - a token always has a key (checked just above)
            raise ValueError(f"header must be a valid header name, not {header!r}")
        trusted: TrustedPeers | None = None
        if trust_incoming is True:
            # Deprecated: "everybody" reads as "my proxy", but any client that reaches the app
            # port directly then chooses its own id. A peer list says whom; ["*"] keeps the
            # old meaning, explicitly.
            warnings.warn(
                "RequestID(trust_incoming=True) trusts every client's request id; pass the "
                "proxies to trust instead, such as trust_incoming=['127.0.0.1', '::1'] (or "
                "['*'] to keep trusting everybody)",
                DeprecationWarning,
                stacklevel=2,
            )
            trusted = TrustedPeers(["*"])
        elif trust_incoming is not False:
            trusted = TrustedPeers(trust_incoming)
        self.app = app
        self.options = RequestIDOptions(
            header,
            name,
            key,
            trusted,
            access_log,
            logging.getLogger(logger) if isinstance(logger, str) else logger,
            max_id_length,
        )
