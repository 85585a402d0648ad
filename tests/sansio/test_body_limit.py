"""``crossgate.sansio.body_limit``: the declared length and the meter both shells feed."""

from __future__ import annotations

import pytest

from crossgate.exceptions import PeerProtocolError, RequestTooLarge
from crossgate.sansio.body_limit import BodyMeter, announces_body, declared_length, has_no_body


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (b"", None), ("", None), (" ", None), (b"0", 0), ("42", 42), (b" 7 ", 7)],
)
def test_declared_length(value: bytes | str | None, expected: int | None) -> None:
    assert declared_length(value) == expected


@pytest.mark.parametrize("value", [b"-1", b"1.5", b"0x10", b"1e3", b"12 34", "\u0663", b"5, 5"])
def test_invalid_declared_length_is_a_400(value: bytes | str) -> None:
    with pytest.raises(PeerProtocolError) as info:
        declared_length(value)
    assert info.value.status_code == 400
    assert not isinstance(info.value, RequestTooLarge)


def test_declared_length_over_the_limit_is_refused_up_front() -> None:
    with pytest.raises(RequestTooLarge, match="larger than 10 bytes") as info:
        BodyMeter(10, 11)
    assert info.value.status_code == 413
    BodyMeter(10, 10)  # at the limit is fine


def test_negative_limit() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        BodyMeter(-1, None)


def test_counting_past_the_limit_raises_and_stays_raised() -> None:
    meter = BodyMeter(10, None)
    meter.count(6)
    meter.count(4)  # exactly the limit
    with pytest.raises(RequestTooLarge) as info:
        meter.count(1)
    assert meter.error is info.value
    # Every later call raises the same error: nobody reads on past it.
    for call in (lambda: meter.count(0), meter.finish, meter.check, lambda: meter.allowance(1)):
        with pytest.raises(RequestTooLarge) as again:
            call()
        assert again.value is info.value


def test_over_the_limit_wins_over_past_the_declared_length() -> None:
    meter = BodyMeter(10, 5)
    with pytest.raises(RequestTooLarge):
        meter.count(11)


def test_past_the_declared_length_is_a_400() -> None:
    meter = BodyMeter(100, 5)
    meter.count(5)
    with pytest.raises(PeerProtocolError, match="longer than its Content-Length of 5") as info:
        meter.count(1)
    assert info.value.status_code == 400


def test_ending_short_of_the_declared_length_is_a_400() -> None:
    meter = BodyMeter(100, 10)
    meter.count(4)
    with pytest.raises(PeerProtocolError, match="after 4 of the 10 bytes") as info:
        meter.finish()
    assert info.value.status_code == 400
    assert meter.error is info.value


def test_finish_at_the_declared_length_or_without_one() -> None:
    meter = BodyMeter(100, 3)
    meter.count(3)
    meter.finish()
    BodyMeter(100, None).finish()
    assert meter.error is None


@pytest.mark.parametrize(
    ("limit", "declared", "received", "size", "expected"),
    [
        # With a Content-Length a read never asks past it.
        (100, 10, 0, -1, 10),
        (100, 10, 0, None, 10),
        (100, 10, 4, 3, 3),
        (100, 10, 4, 50, 6),
        (100, 10, 10, 50, 0),  # end of body
        (100, 0, 0, -1, 0),
        # Without one, at most one byte past the limit: enough to see it broken.
        (100, None, 0, -1, 101),
        (100, None, 60, -1, 41),
        (100, None, 0, 8, 8),
        (100, None, 100, 8, 1),
        (0, None, 0, -1, 1),
    ],
)
def test_allowance(
    limit: int, declared: int | None, received: int, size: int | None, expected: int
) -> None:
    meter = BodyMeter(limit, declared)
    meter.count(received)
    assert meter.allowance(size) == expected


def test_declared_length_too_long_for_int_is_a_400() -> None:
    # Found by the stack fuzz (issue 19): int() raised ValueError past 4300 digits.
    with pytest.raises(PeerProtocolError) as info:
        declared_length(b"9" * 5000)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("content_length", "transfer_encoding", "expected"),
    [
        (None, None, False),
        ("", None, False),
        ("0", None, False),
        ("1", None, True),
        ("abc", None, True),  # malformed: still a body, refused where it is parsed
        (None, "chunked", True),
        ("0", "chunked", True),
    ],
)
def test_announces_body(
    content_length: str | None, transfer_encoding: str | None, expected: bool
) -> None:
    assert announces_body(content_length, transfer_encoding) is expected


@pytest.mark.parametrize(
    ("content_length", "transfer_encoding", "version", "expected"),
    [
        (None, None, "1.1", True),  # RFC 9112 section 6.3: no framing, no body
        ("0", None, "1.0", True),
        ("5", None, "1.1", False),
        (None, "chunked", "1.1", False),
        (None, None, "2", False),  # HTTP/2 ends a body with the stream, not a header
        (None, None, "3", False),
    ],
)
def test_has_no_body(
    content_length: str | None, transfer_encoding: str | None, version: str, expected: bool
) -> None:
    assert has_no_body(content_length, transfer_encoding, version) is expected
