"""Stage 2 under daphne, Channels' own server (the one the talk's team runs in production).

The same application as under uvicorn: the legacy pages through `WSGIToASGI`, the Channels
consumer for logged-in users, a comment from the legacy form pushed through
`async_to_sync(channel_layer.group_send)`. daphne offers no ASGI denial-response extension, so
a refused socket is a close before accept, which daphne answers with a 403. daphne runs no
lifespan at all; nothing here needs it.
"""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.demos.django_helpdesk._live import (
    FRAME_TIMEOUT,
    assert_comment_event,
    log_problems,
    login,
    next_event,
    open_live,
    post_form_comment,
    run_against,
    ws_headers,
)
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

TICKET = 9


@pytest.fixture(scope="module")
def daphne(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(2, "daphne")


def test_a_comment_from_the_legacy_form_reaches_the_sockets(daphne: HelpdeskServer) -> None:
    async def main() -> None:
        async with open_live(daphne, TICKET, count=2) as pages, daphne.async_client() as client:
            response = await post_form_comment(client, TICKET, "Grace", "served by daphne")
            assert response.status_code == 302, response.text
            for page in pages:
                assert_comment_event(await next_event(page), TICKET, "Grace", "served by daphne")
            landing = await client.get("/")
            assert "Stage 2" in landing.text

    run_against(daphne, main)


@pytest.mark.parametrize("refusal", ["anonymous", "foreign origin", "unknown ticket"])
def test_refused_sockets_get_a_403(daphne: HelpdeskServer, refusal: str) -> None:
    async def main() -> None:
        async with daphne.async_client() as client:
            session = await login(client)
        headers = ws_headers(daphne, None if refusal == "anonymous" else session)
        ticket = 999999 if refusal == "unknown ticket" else TICKET
        if refusal == "foreign origin":
            headers["Origin"] = "http://evil.example"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{daphne.ws_url}/ws/tickets/{ticket}/",
                open_timeout=FRAME_TIMEOUT,
                additional_headers=headers,
            ):
                pass  # pragma: no cover - the handshake is refused
        assert refused.value.response.status_code == 403

    run_against(daphne, main)


def test_the_log_is_clean(daphne: HelpdeskServer) -> None:
    daphne.stop()
    log = daphne.log()
    assert "Listening on TCP address" in log
    assert not log_problems(log), log
