"""Channels and crossgate together, under a real uvicorn (`nesting_app.py`).

crossgate's `PathRouter` and Channels' `URLRouter` nest in each other both ways, agreeing on
``path`` and ``root_path`` (ASGI spec: ``path`` includes ``root_path``; a router that mounts an
app at a prefix extends ``root_path`` and leaves ``path`` alone); crossgate's `OriginCheck` does
the job of Channels' `AllowedHostsOriginValidator` in front of `AuthMiddlewareStack`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.demos.django_helpdesk._live import FRAME_TIMEOUT, login, run_against, ws_headers
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

NESTING_APP = "tests.demos.django_helpdesk.nesting_app:application"


@pytest.fixture(scope="module")
def nesting(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(2, "uvicorn", app=NESTING_APP)


async def echo(
    server: HelpdeskServer, path: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    async with connect(
        f"{server.ws_url}{path}",
        open_timeout=FRAME_TIMEOUT,
        additional_headers=headers or ws_headers(server, None),
    ) as socket:
        frame: dict[str, Any] = json.loads(await socket.recv(decode=True))
        return frame


def test_urlrouter_mounted_in_a_crossgate_path_router(nesting: HelpdeskServer) -> None:
    async def main() -> None:
        frame = await echo(nesting, "/channels/room/lobby/")
        assert frame == {
            "path": "/channels/room/lobby/",
            "root_path": "/channels",
            "kwargs": {"name": "lobby"},
            "user": None,
        }

    run_against(nesting, main)


def test_a_crossgate_path_router_inside_urlrouter(nesting: HelpdeskServer) -> None:
    async def main() -> None:
        frame = await echo(nesting, "/in/crossgate/deeper/")
        assert frame == {
            "path": "/in/crossgate/deeper/",
            "root_path": "/in/crossgate",
            "kwargs": {},
            "user": None,
        }

    run_against(nesting, main)


def test_origin_check_does_the_job_of_allowed_hosts_origin_validator(
    nesting: HelpdeskServer,
) -> None:
    async def main() -> None:
        async with nesting.async_client() as client:
            session = await login(client)
        own = ws_headers(nesting, session)
        frame = await echo(nesting, "/checked/room/a/", own)
        assert (frame["user"], frame["root_path"]) == ("demo", "/checked")
        with pytest.raises(InvalidStatus) as refused:
            await echo(nesting, "/checked/room/a/", {**own, "Origin": "http://evil.example"})
        assert refused.value.response.status_code == 403
        # crossgate says why (Channels' validator does not).
        assert b"evil.example" in refused.value.response.body

    run_against(nesting, main)
