"""Stages 1 and 3 over HTTP/3: hypercorn with aioquic (``--http3 --tls``: ``--quic-bind``, the
demo's self-signed certificate), fetched with a small client on aioquic's own API (`_h3.py`).

A legacy page, the 2 MB attachment and, at stage 3, a route of the new async API come back over
one QUIC connection with the bytes HTTP/1.1 gives (the attachment: the file's). The API is
Django's own `ASGIHandler`, which sends ``Content-Type`` in mixed case; HTTP/3 forbids that and
the client would abort the stream, so this also proves the routers lowercase header names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo_projects.django_helpdesk.certs import ensure_certificate
from tests.demos.django_helpdesk._h3 import H3Response, fetch
from tests.demos.django_helpdesk._live import log_problems, run_against
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

LEGACY_PAGE = "/tickets/"
ATTACHMENT = "/tickets/2/attachment/"
API_ROUTE = "/api/tickets/1/"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    certfile, keyfile = ensure_certificate(tmp_path_factory.mktemp("certs"))
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module", params=[1, 3])
def h3(
    request: pytest.FixtureRequest, start_helpdesk: StartHelpdesk, certificate: tuple[str, str]
) -> HelpdeskServer:
    stage: int = request.param
    return start_helpdesk(stage, http3=True, tls=True, certificate=certificate)


def paths(server: HelpdeskServer) -> list[str]:
    return [LEGACY_PAGE, ATTACHMENT] + ([API_ROUTE] if server.options.stage == 3 else [])


def test_pages_the_attachment_and_the_api_over_http3(
    h3: HelpdeskServer, helpdesk_data_dir: Path
) -> None:
    assert h3.certificate is not None
    cafile = h3.certificate[0]
    wanted = paths(h3)
    answers: list[H3Response] = []

    async def main() -> None:
        answers.extend(await fetch(h3.quic_port, wanted, cafile))
        # The same requests over HTTP/1.1 with TLS, on the TCP port: the same bytes.
        async with h3.async_client() as client:
            for path, answer in zip(wanted, answers, strict=True):
                over_tcp = await client.get(path)
                assert answer.status == over_tcp.status_code == 200, (path, answer.status)
                assert bytes(answer.body) == over_tcp.content, path
                # hypercorn tells HTTP/1.1 clients where HTTP/3 is.
                assert "h3" in over_tcp.headers.get("alt-svc", ""), over_tcp.headers

    run_against(h3, main)
    by_path = dict(zip(wanted, answers, strict=True))
    assert b"<h1>Tickets</h1>" in by_path[LEGACY_PAGE].body
    attachment = (helpdesk_data_dir / "media" / "attachments" / "diagnostics.bin").read_bytes()
    assert len(attachment) >= 2 * 1024 * 1024
    assert bytes(by_path[ATTACHMENT].body) == attachment
    for path, answer in by_path.items():
        # HTTP/3 (RFC 9114 section 4.2): field names are lowercase.
        assert all(name == name.lower() for name, _ in answer.headers), (path, answer.headers)
    if API_ROUTE in by_path:
        assert by_path[API_ROUTE].header(b"content-type") == b"application/json"
        assert json.loads(by_path[API_ROUTE].body)["id"] == 1


def test_the_log_is_clean(h3: HelpdeskServer) -> None:
    h3.stop()
    assert not log_problems(h3.log()), h3.describe()
