"""``crossgate.sansio.gzip_codec``: the flushing compressor, brotli and the padded gzip header."""

from __future__ import annotations

import gzip
import importlib

import pytest

from crossgate.sansio import gzip_codec
from crossgate.sansio.gzip_codec import (
    Compressor,
    brotli_available,
    compress_whole,
    padded_gzip_header,
)
from tests.middleware._e_codecs import Decoder, decode


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_each_chunk_decodes_on_its_own(coding: str) -> None:
    # The flush after every chunk: what the client received so far decodes to everything sent
    # so far, without waiting for the end of the stream.
    compressor = Compressor(coding)
    decoder = Decoder(coding)
    for index in range(5):
        chunk = f"event {index}\n".encode() * 3
        assert decoder.feed(compressor.chunk(chunk)) == chunk
    assert compressor.chunk(b"") == b""
    assert decoder.feed(compressor.last()) == b""


def test_gzip_output_is_a_gzip_file() -> None:
    compressor = Compressor("gzip", level=9)
    data = compressor.chunk(b"a" * 1000) + compressor.chunk(b"b" * 1000) + compressor.last(b"c")
    assert gzip.decompress(data) == b"a" * 1000 + b"b" * 1000 + b"c"


def test_brotli_output_is_brotli() -> None:
    compressor = Compressor("br", brotli_quality=11)
    data = compressor.chunk(b"a" * 1000) + compressor.last(b"b" * 10)
    assert decode("br", data) == b"a" * 1000 + b"b" * 10


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_compress_whole(coding: str) -> None:
    data = compress_whole(coding, [b"x" * 600, b"y" * 600], level=6, brotli_quality=4)
    assert decode(coding, data) == b"x" * 600 + b"y" * 600


@pytest.mark.parametrize(
    ("coding", "options", "message"),
    [
        ("deflate", {}, "unknown content coding"),
        ("gzip", {"level": 10}, "compresslevel"),
        ("gzip", {"level": -1}, "compresslevel"),
        ("br", {"brotli_quality": 12}, "brotli_quality"),
    ],
)
def test_compressor_rejects_bad_options(coding: str, options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Compressor(coding, **options)


def test_without_brotli(monkeypatch: pytest.MonkeyPatch) -> None:
    assert brotli_available()
    monkeypatch.setattr(gzip_codec, "_brotli", None)
    assert not brotli_available()
    with pytest.raises(ValueError, match="pip install brotli"):
        Compressor("br")


def test_brotli_import_failure_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    assert gzip_codec._load_brotli() is None


# --- issue 19, item 6: the padded gzip header ----------------------------------------------


@pytest.mark.parametrize("padding", [0, 1, 57, 100])
@pytest.mark.parametrize("chunks", [[], [b""], [b"x" * 3000], [b"ab", b"", b"cd" * 900]])
def test_padded_gzip_decodes_and_carries_the_padding(padding: int, chunks: list[bytes]) -> None:
    import gzip as gzip_module

    compressor = Compressor("gzip", padding=padding)
    out = b"".join(compressor.chunk(c) for c in chunks) + compressor.last(b"!")
    assert gzip_module.decompress(out) == b"".join(chunks) + b"!"
    assert out.startswith(padded_gzip_header(padding))
    whole = compress_whole("gzip", chunks, level=6, brotli_quality=4, padding=padding)
    assert gzip_module.decompress(whole) == b"".join(chunks)
    assert (
        len(whole)
        == len(compress_whole("gzip", chunks, level=6, brotli_quality=4, padding=0)) + padding
    )


def test_padding_errors() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        Compressor("gzip", padding=-1)
    with pytest.raises(ValueError, match="gzip only"):
        Compressor("br", padding=3)
