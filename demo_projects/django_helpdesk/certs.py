"""A self-signed certificate for serving the demo over TLS on 127.0.0.1 (stage 1 with HTTP/2).

`ensure_certificate(data_dir)` returns the paths of a certificate and its private key for
``localhost`` and ``127.0.0.1``, made with the ``openssl`` command-line tool the first time and
reused afterwards (made again when missing or about to expire). Browsers and clients do not
trust it unless told to: ``httpx`` takes
``verify=ssl.create_default_context(cafile=certfile)``; a browser shows a warning to click
through. For the demo only: never use a self-signed certificate for a real site.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["CERT_NAME", "KEY_NAME", "CertificateError", "ensure_certificate"]

CERT_NAME: Final = "localhost-cert.pem"
KEY_NAME: Final = "localhost-key.pem"

DAYS: Final = 825
# A certificate that expires within this many seconds is made again.
MIN_VALIDITY: Final = 86400
OPENSSL_TIMEOUT: Final = 30.0

# The name and addresses the demo serves on. basicConstraints CA:TRUE lets a client use the
# certificate itself as its trust anchor (`cafile=`), as a self-signed certificate must be.
_EXTENSIONS: Final = (
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,digitalSignature,keyCertSign",
    "extendedKeyUsage=serverAuth",
)


class CertificateError(RuntimeError):
    """The ``openssl`` tool is missing or failed to make the certificate."""


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise CertificateError(
            "the openssl command-line tool is needed to make the demo's TLS certificate; "
            "install it (Debian: apt-get install openssl)"
        )
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CertificateError(f"openssl did not finish within {OPENSSL_TIMEOUT} s") from exc


def _still_valid(openssl: str, certfile: Path) -> bool:
    # `x509 -checkend N` exits 0 when the certificate is still valid N seconds from now.
    result = _run([openssl, "x509", "-in", str(certfile), "-noout", "-checkend", str(MIN_VALIDITY)])
    return result.returncode == 0


def ensure_certificate(data_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return ``(certfile, keyfile)`` in ``data_dir``, making them first if needed.

    The files are written under temporary names and renamed into place, so two processes that
    start at once never read a half-written file (the last one's pair wins, whole). The key is
    readable by its owner only.

    Raises:
        CertificateError: ``openssl`` is missing or failed.
        OSError: ``data_dir`` cannot be created or written.
    """
    directory = Path(data_dir)
    certfile, keyfile = directory / CERT_NAME, directory / KEY_NAME
    openssl = _openssl()
    if certfile.is_file() and keyfile.is_file() and _still_valid(openssl, certfile):
        return certfile, keyfile
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".certs-") as scratch:
        new_cert, new_key = Path(scratch) / CERT_NAME, Path(scratch) / KEY_NAME
        args = [
            *(openssl, "req", "-x509", "-nodes", "-days", str(DAYS)),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(new_key), "-out", str(new_cert)),
            *("-subj", "/CN=localhost/O=crossgate helpdesk demo"),
        ]
        for extension in _EXTENSIONS:
            args += ["-addext", extension]
        result = _run(args)
        if result.returncode != 0 or not new_cert.is_file() or not new_key.is_file():
            raise CertificateError(
                f"openssl could not make the certificate (exit {result.returncode}): "
                f"{result.stderr.strip()}"
            )
        new_key.chmod(0o600)
        # The key first: a process that sees the new certificate finds its key in place.
        os.replace(new_key, keyfile)
        os.replace(new_cert, certfile)
    return certfile, keyfile
