"""Stage 1 under hypercorn with HTTP/2: the legacy app gets multiplexing without a code change.

24 requests to `/slow/?seconds=3` (a sync view that sleeps) go over ONE HTTP/2 connection, in
cleartext (h2c with prior knowledge) and over TLS (ALPN h2, the demo's self-signed certificate).
They all finish, and they ran at once: the view reports how many `/slow/` requests its process
was serving when each woke up (`in_flight`), and the first to wake saw all 24. Serially they
would take 72 s; the test gives them 30 s in all, a bound only concurrency can meet, but what
proves the overlap is the server's own count, not a clock.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path

import httpx
import pytest

from demo_projects.django_helpdesk.certs import ensure_certificate
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

STREAMS = 24
SLEEP = 3
# Far below the 72 s a serial run needs, far above what 24 overlapping 3 s sleeps need even on
# a loaded machine; it bounds the test, the overlap itself is proven by `in_flight`.
ALL_DONE_WITHIN = 30.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    certfile, keyfile = ensure_certificate(tmp_path_factory.mktemp("certs"))
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module")
def h2c(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(1, "hypercorn", http2=True)


@pytest.fixture(scope="module")
def h2_tls(start_helpdesk: StartHelpdesk, certificate: tuple[str, str]) -> HelpdeskServer:
    return start_helpdesk(1, "hypercorn", http2=True, tls=True, certificate=certificate)


async def slow_burst(server: HelpdeskServer) -> tuple[list[httpx.Response], set[object]]:
    """Send the burst on one HTTP/2-only client (httpx then multiplexes on one connection).

    Returns the responses and the client-side addresses of the connections that carried them
    (read while those connections are still open).
    """
    async with server.async_client(http2=True) as client:
        requests = [
            client.get("/slow/", params={"seconds": str(SLEEP)}, timeout=ALL_DONE_WITHIN)
            for _ in range(STREAMS)
        ]
        responses = await asyncio.wait_for(asyncio.gather(*requests), ALL_DONE_WITHIN)
        addresses = {
            response.extensions["network_stream"].get_extra_info("client_addr")
            for response in responses
        }
        return responses, addresses


def check_burst(
    server: HelpdeskServer, responses: list[httpx.Response], addresses: set[object]
) -> None:
    assert len(responses) == STREAMS
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.http_version == "HTTP/2"
        assert response.json()["slept"] == SLEEP
    # One connection: every response came over the same client socket, on its own stream.
    assert len(addresses) == 1, addresses
    assert len({response.extensions["stream_id"] for response in responses}) == STREAMS
    # They overlapped: when the first one woke up, all 24 were inside the view.
    assert max(response.json()["in_flight"] for response in responses) == STREAMS
    assert responses[-1].json()["peak"] >= STREAMS
    # The server saw them as HTTP/2 requests from that one client port too (hypercorn's access
    # log: `127.0.0.1:PORT - - [date] "GET /slow/ 2" 200 ...`, "2" being the HTTP version).
    clients = re.findall(r'(127\.0\.0\.1:\d+) - - \[[^]]+\] "GET /slow/ 2" 200', server.log())
    assert len(clients) == STREAMS, server.log()
    assert len(set(clients)) == 1, server.log()


def test_24_slow_requests_share_one_h2c_connection(h2c: HelpdeskServer) -> None:
    check_burst(h2c, *asyncio.run(slow_burst(h2c)))


def test_24_slow_requests_share_one_tls_h2_connection(h2_tls: HelpdeskServer) -> None:
    assert h2_tls.base_url.startswith("https://")
    check_burst(h2_tls, *asyncio.run(slow_burst(h2_tls)))


def test_the_legacy_pages_work_over_http2(h2_tls: HelpdeskServer) -> None:
    async def main() -> None:
        async with h2_tls.async_client(http2=True) as client:
            listing = await client.get("/tickets/")
            assert listing.http_version == "HTTP/2"
            assert listing.status_code == 200
            assert 'href="/tickets/1/"' in listing.text
            attachment = await client.get("/tickets/1/attachment/")
            assert attachment.status_code == 200
            assert attachment.content

    asyncio.run(main())


def test_the_certificate_is_verified_not_skipped(h2_tls: HelpdeskServer) -> None:
    """A client that does not trust the demo's certificate is refused: TLS is real."""
    with (
        httpx.Client(base_url=h2_tls.base_url, verify=ssl.create_default_context()) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get("/")


def test_ensure_certificate_reuses_a_valid_pair(tmp_path: Path) -> None:
    certfile, keyfile = ensure_certificate(tmp_path)
    before = (certfile.read_bytes(), keyfile.read_bytes())
    assert ensure_certificate(tmp_path) == (certfile, keyfile)
    assert (certfile.read_bytes(), keyfile.read_bytes()) == before
    assert keyfile.stat().st_mode & 0o077 == 0  # the key is private
    # Missing half of the pair: both are made again.
    keyfile.unlink()
    ensure_certificate(tmp_path)
    assert certfile.read_bytes() != before[0]
    # No scratch directory is left behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([certfile.name, keyfile.name])
