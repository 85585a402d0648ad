"""What the seed command loads, apart from Django so that tests can import it.

Ticket 1 carries the small text file, ticket 2 the binary one (the tests rely on both).
"""

from __future__ import annotations

import random

TICKET_COUNT = 25
TEXT_ATTACHMENT = "attachments/welcome.txt"
BINARY_ATTACHMENT = "attachments/diagnostics.bin"
BINARY_SIZE = 2 * 1024 * 1024 + 321  # about 2 MiB, and not a multiple of any buffer size

USERS = (("demo", "demo", False), ("admin", "admin", True))

SUBJECTS = (
    "Printer on floor 3 prints blank pages",
    "VPN drops every 10 minutes",
    "Cannot reset my password",
    "Projector in room B has no signal",
    "Mailbox full",
    "New laptop for the design team",
    "Spreadsheet macro stopped working",
    "Wi-Fi slow in the kitchen",
)
AUTHORS = ("Ada", "Grace", "Linus", "Guido", "Barbara", "Ken")
REMARKS = (
    "Same here since Monday.",
    "Restarted it, no change.",
    "Looking into it now.",
    "Can you send a screenshot?",
    "Fixed on our side, please check.",
    "Still happening for me.",
)


def text_attachment() -> bytes:
    """The content of ticket 1's attachment."""
    return b"Welcome to the helpdesk demo.\nThis small text file is ticket 1's attachment.\n"


def binary_attachment() -> bytes:
    """The content of ticket 2's attachment: ~2 MiB of reproducible pseudo-random bytes."""
    return random.Random(7).randbytes(BINARY_SIZE)
