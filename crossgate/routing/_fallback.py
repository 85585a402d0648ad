"""`crossgate.routing.Fallback`'s attempts: each wraps the primary's ``receive`` and ``send``,
records what it receives while it may still fall through (never reading ahead), replays it."""

from __future__ import annotations

import asyncio
import enum
import tempfile
from typing import IO, TYPE_CHECKING, Final

from crossgate.types import ASGIReceive, ASGISend, Message

if TYPE_CHECKING:
    from crossgate.routing import Fallback

__all__ = ["AttemptPhase", "HTTPAttempt", "WebSocketAttempt"]


class AttemptPhase(enum.Enum):
    """What an attempt does with the primary's messages."""

    UNDECIDED = enum.auto()  # the primary has not answered: record what it receives
    PASS = enum.auto()  # it answered for real: forward everything, record nothing
    DROP = enum.auto()  # it fell through: drop its answer, the fallback gets the connection
    DONE = enum.auto()  # the fallback has the connection: the primary's leftovers are cut off
    OVERFLOWED = enum.auto()  # past max_replay before an answer: it can no longer fall through


UNDECIDED, PASS, DROP, DONE, OVERFLOWED = AttemptPhase

REPLAY_CHUNK: Final = 64 * 1024  # the pieces a spooled body is replayed in

_HTTP_DISCONNECT: Final[Message] = {"type": "http.disconnect"}


class HTTPAttempt:
    __slots__ = (
        "_chunks",
        "_disconnected",
        "_handoff",
        "_inflight",
        "_live_receive",
        "_live_send",
        "_more",
        "_router",
        "_seen",
        "_size",
        "_spool",
        "missed",
        "mode",
    )

    def __init__(self, receive: ASGIReceive, send: ASGISend, router: Fallback) -> None:
        self._live_receive = receive
        self._live_send = send
        self._router = router
        self.mode = UNDECIDED
        self._seen = False  # the primary read an http.request
        self._more = True
        self._disconnected = False
        self._chunks: list[bytes] = []
        self._spool: IO[bytes] | None = None
        self._size = 0
        self.missed = False  # it passed max_replay, and the primary's answer would fall through
        # The primary's receive() calls waiting; what a leftover one gets goes to the fallback.
        self._inflight = 0
        self._handoff: asyncio.Future[Message | None] | None = None

    async def receive(self) -> Message:
        if self.mode is DONE:
            return _HTTP_DISCONNECT
        self._inflight += 1
        try:
            message = await self._live_receive()
        except BaseException:
            if self.mode is DONE:
                self._hand_over(None)  # the fallback must not wait for it any longer
            raise
        finally:
            self._inflight -= 1
        if self.mode is DONE:  # the fallback took over while this leftover call waited
            self._hand_over(message)
            return _HTTP_DISCONNECT
        if self.mode is UNDECIDED or self.mode is DROP:
            # Also after a fall-through: an adapter's read-ahead takes messages the fallback needs.
            kind = message.get("type")
            if kind == "http.request":
                self._seen = True
                self._more = bool(message.get("more_body", False))
                body: bytes = message.get("body", b"")
                if body:
                    self._keep(body)
            elif kind == "http.disconnect":
                self._disconnected = True
        return message

    async def send(self, message: Message) -> None:
        mode = self.mode
        if mode is PASS:
            await self._live_send(message)
        elif mode is UNDECIDED or mode is OVERFLOWED:
            # ASGI HTTP spec: http.response.start comes first, so no byte went out yet.
            if (
                message["type"] == "http.response.start"
                and message.get("status") in self._router.statuses
            ):
                if mode is UNDECIDED:
                    self.mode = DROP
                    return
                self.missed = True
            self.mode = PASS
            self.discard()
            await self._live_send(message)
        # DROP and DONE: the primary's answer is not the one the client gets.

    def _keep(self, body: bytes) -> None:
        size = self._size + len(body)
        limit = self._router.max_replay
        # Once the request fell through, every byte is kept: the fallback needs the whole body.
        if self.mode is UNDECIDED and limit is not None and size > limit:
            self.mode = OVERFLOWED
            self.discard()
            return
        self._size = size
        spool = self._spool
        if spool is None:
            if size <= self._router.buffer_size:
                self._chunks.append(body)
                return
            spool = self._spool = tempfile.TemporaryFile()  # noqa: SIM115
            spool.writelines(self._chunks)
            self._chunks.clear()
        spool.write(body)

    def replay_receive(self) -> ASGIReceive:
        self.mode = DONE
        self._chunks.reverse()  # replayed from the end: pop() is cheap
        if self._spool is not None:
            self._spool.seek(0)
        if self._inflight:
            self._handoff = asyncio.get_running_loop().create_future()
        return self._fallback_receive

    async def _fallback_receive(self) -> Message:
        chunks = self._chunks
        spool = self._spool
        if chunks:
            chunk = chunks.pop()
            last = not chunks
        elif spool is not None:
            chunk = spool.read(REPLAY_CHUNK)
            last = spool.tell() >= self._size
        elif self._seen:
            self._seen = False  # the primary read only empty bodies: replay one, once
            return {"type": "http.request", "body": b"", "more_body": self._more}
        elif self._disconnected:
            self._disconnected = False
            return _HTTP_DISCONNECT
        else:
            # Not a second receive() on the server: a leftover one hands its message over.
            handoff = self._handoff
            message = None if handoff is None else await handoff
            self._handoff = None
            return message if message is not None else await self._live_receive()
        if last:
            self._seen = False
            self.discard()
        return {"type": "http.request", "body": chunk, "more_body": self._more or not last}

    def _hand_over(self, message: Message | None) -> None:
        handoff = self._handoff
        if handoff is not None and not handoff.done():
            handoff.set_result(message)

    def discard(self) -> None:
        """Forget the recorded body and close the temporary file, if any."""
        if self._size:
            self._chunks = []
            self._size = 0
            if self._spool is not None:
                self._spool.close()
                self._spool = None


class WebSocketAttempt:
    __slots__ = ("_live_receive", "_live_send", "_received", "mode")

    missed = False  # no body, so no replay limit to pass

    def __init__(self, receive: ASGIReceive, send: ASGISend) -> None:
        self._live_receive = receive
        self._live_send = send
        self._received: list[Message] = []
        self.mode = UNDECIDED

    async def receive(self) -> Message:
        if self.mode is DONE:
            return {"type": "websocket.disconnect", "code": 1000}
        message = await self._live_receive()
        if self.mode is not PASS:
            self._received.append(message)
        return message

    async def send(self, message: Message) -> None:
        mode = self.mode
        if mode is PASS:
            await self._live_send(message)
        elif mode is UNDECIDED:
            kind = message["type"]
            # ASGI websocket spec: a close before accept, or a denial response, refuses it.
            if kind == "websocket.close" or kind == "websocket.http.response.start":
                self.mode = DROP
                return
            self.mode = PASS
            self._received.clear()
            await self._live_send(message)

    def replay_receive(self) -> ASGIReceive:
        self.mode = DONE
        return self._replay

    async def _replay(self) -> Message:
        received = self._received
        return received.pop(0) if received else await self._live_receive()

    def discard(self) -> None:
        pass
