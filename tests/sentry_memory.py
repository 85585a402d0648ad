"""Sentry with an in-memory transport: events are collected in a list, nothing is sent.

The DSN names a port nobody listens on, and the transport never opens a connection anyway.
Default integrations are off: they patch threads, logging and http.client for the whole
process, and these tests only need the ASGI and WSGI middleware, used directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

__all__ = ["SentryEvents", "sentry_events"]

DSN = "http://public@127.0.0.1:1/1"


class SentryEvents(Transport):
    """A Sentry transport that keeps every event it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(dict(event))

    def exception_types(self) -> list[str]:
        """The type of the exception each event reports (the outermost one)."""
        return [str(e["exception"]["values"][-1]["type"]) for e in self.events]


@pytest.fixture
def sentry_events() -> Iterator[SentryEvents]:
    transport = SentryEvents()
    sentry_sdk.init(
        dsn=DSN,
        transport=transport,
        default_integrations=False,
        auto_enabling_integrations=False,
        traces_sample_rate=0,
        # no monitor thread (it outlives the test; the leak checks would see it)
        enable_backpressure_handling=False,
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
