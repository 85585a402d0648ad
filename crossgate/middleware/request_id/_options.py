"""What `RequestID` and `WSGIRequestID` share: the options, the id's context, the access line."""

from __future__ import annotations

import logging
import time
import warnings
from abc import abstractmethod
from collections.abc import Iterable
from contextvars import ContextVar
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

__all__ = ["SCOPE_KEY", "AccessRecord", "RequestIDBase", "request_id_var"]

#: The id of the request whose code is running (``None`` outside one). Set by `RequestID` for
#: the app's task (tasks it starts inherit it) and by `WSGIRequestID` around each call into the
#: app, its iterable and its ``close()``.
request_id_var: ContextVar[str | None] = ContextVar("crossgate.request_id", default=None)

SCOPE_KEY = "crossgate.request_id"


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
        # None for a name that is not an RFC 9110 token ("?" stands in for non-ASCII).
        environ_key = header_environ_key(header.lower().encode("ascii", "replace"))
        if environ_key is None:
            raise ValueError(f"header must be a valid header name, not {header!r}")
        if max_id_length < 1:
            raise ValueError(f"max_id_length must be 1 or more, not {max_id_length}")
        self.trusted: TrustedPeers | None = None
        if trust_incoming is True:
            # Deprecated: "everybody" reads as "my proxy", but any client that reaches the app
            # port directly then chooses its own id. ["*"] keeps the old meaning, explicitly.
            warnings.warn(
                "RequestID(trust_incoming=True) trusts every client's request id; pass the "
                "proxies to trust instead, such as trust_incoming=['127.0.0.1', '::1'] (or "
                "['*'] to keep trusting everybody)",
                DeprecationWarning,
                stacklevel=2,
            )
            self.trusted = TrustedPeers(["*"])
        elif trust_incoming is not False:
            self.trusted = TrustedPeers(trust_incoming)
        self.app = app
        self.header = header
        self.name = header.lower().encode("ascii")
        self.environ_key = environ_key
        self.access_log = access_log
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.max_id_length = max_id_length

    def choose(self, peer: str | None, incoming: bytes | str | None) -> str:
        """Reuse ``incoming`` when ``peer`` is trusted and the value is safe, else a new id."""
        if self.trusted is not None and incoming is not None and self.trusted.trusts(peer):
            reused = accept_request_id(incoming, max_length=self.max_id_length)
            if reused is not None:
                return reused
        return new_request_id()


class _AccessLine(dict[str, Any]):
    """An access line's fields, made into the message only when a handler formats it."""

    def __str__(self) -> str:
        return access_line(**self)


class AccessRecord:
    """What one side learns about a response, and its access line (`finish`, written once)."""

    __slots__ = (
        "cancelled",
        "complete",
        "disconnected",
        "emitted",
        "error",
        "logged",
        "middleware",
        "request_id",
        "sent",
        "started",
        "status",
    )

    def __init__(self, middleware: RequestIDBase[Any], request_id: str) -> None:
        self.middleware = middleware
        self.request_id = request_id
        self.started = time.perf_counter()
        self.status: int | None = None
        self.sent = 0
        self.emitted = False  # something went out, so the server cannot answer 500 any more
        self.complete = False
        self.disconnected = False
        self.error = False
        self.cancelled = False
        self.logged = False

    @abstractmethod
    def request_line(self) -> tuple[str | None, str, str, str, str]:
        """The client, method, path, query and HTTP version of the request."""
        ...

    def finish(self) -> None:
        """Write the access line at INFO, with its fields also as record attributes."""
        if self.logged:
            return
        self.logged = True
        logger = self.middleware.logger
        if not (self.middleware.access_log and logger.isEnabledFor(logging.INFO)):
            return
        if self.complete and not (self.error or self.cancelled):
            outcome = ""
        elif self.disconnected:
            outcome = "client disconnected"
        elif self.error:
            outcome = "app error"
        elif self.cancelled:
            outcome = "cancelled"  # a server cancels the app's task when the client leaves
        else:
            outcome = "incomplete"
        status = self.status
        if status is None or (self.error and not self.emitted):
            # Nobody got an answer: 499 is nginx's "client closed request"; otherwise the
            # server answers 500 for an app that raised or returned without a response.
            status = 499 if outcome in ("client disconnected", "cancelled") else 500
        client, method, path, query, http_version = self.request_line()
        duration_ms = (time.perf_counter() - self.started) * 1000
        line = _AccessLine(
            client=client,
            method=method,
            path=path,
            query=query,
            http_version=http_version,
            status=status,
            sent=self.sent,
            duration_ms=duration_ms,
            request_id=self.request_id,
            outcome=outcome,
        )
        # Made directly: Logger.info() would walk the stack to find the caller (meaningless for
        # an access line) and check each extra key, doubling the cost. No arguments: the line
        # is never %-formatted (paths hold "%"), and built only when a handler formats it.
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None)
        # Escaped as the message is: a formatter using %(http_path)s must not write a path
        # holding CR/LF (a server that sends no raw_path gives the decoded path) as two lines.
        record.__dict__.update(
            request_id=self.request_id,
            client_addr=client if client is None else log_safe(client),
            http_method=log_safe(method),
            http_path=log_safe(path),
            http_status=status,
            response_bytes=self.sent,
            duration_ms=duration_ms,
            outcome=outcome or "complete",
        )
        logger.handle(record)
