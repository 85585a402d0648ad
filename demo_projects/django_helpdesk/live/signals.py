"""From a saved comment to the websockets: the ``post_save`` receiver of stages 2 and 3.

The legacy comment view is sync code in a `WSGIToASGI` worker thread (stage 2 and 3), the new
API and the consumer save through Django's async ORM, whose query runs in asgiref's worker
thread; either way the comment is saved in a thread, and the channel layer lives on the server's
event loop. ``async_to_sync(channel_layer.group_send)`` bridges the two, as Channels' docs say.

Which ``async_to_sync``: crossgate's, by default. From a `WSGIToASGI` thread it runs
``group_send`` on the server's own loop, where the layer's Redis connections already are.
asgiref's, called from a thread it did not start, makes a new event loop in a new thread for
every call, and ``channels_redis`` a new Redis connection for that loop. Both work;
``HELPDESK_ASYNC_TO_SYNC=asgiref`` picks asgiref's (the tests run both). The receiver is
connected by the stage modules, never by the views or models, which stay as stage 0 wrote them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save

from demo_projects.django_helpdesk.live.consumers import group_name

if TYPE_CHECKING:
    from demo_projects.django_helpdesk.tickets.models import Comment

__all__ = [
    "DISPATCH_UID",
    "comment_created_message",
    "connect_comment_signal",
    "pick_async_to_sync",
]

_log = logging.getLogger("demo_projects.django_helpdesk.live")

DISPATCH_UID: Final = "demo_projects.django_helpdesk.live.comment_created"

# How long a comment view may wait for the channel layer: past it the comment is saved all the
# same and the open pages miss that one update.
SEND_TIMEOUT: Final = 5.0

Send = Callable[[str, dict[str, Any]], Awaitable[None]]


def comment_created_message(comment: Comment) -> dict[str, Any]:
    """The contract's ``comment.created`` event for ``comment``: what each open page receives
    (the ``type`` also names the consumer's handler, ``comment_created``)."""
    return {
        "type": "comment.created",
        "ticket": _ticket_id(comment),
        "comment": {
            "id": comment.pk,
            "author": comment.author,
            "body": comment.body,
            "created": comment.created.isoformat(),
        },
    }


def _ticket_id(comment: Comment) -> int:
    # The foreign key's column value: no query for the ticket itself.
    # (`serializable_value` reads ``ticket_id`` by the field's name, which type checkers know.)
    ticket_id: int = comment.serializable_value("ticket")
    return ticket_id


def pick_async_to_sync(name: str | None = None) -> Callable[[Send], Callable[..., None]]:
    """crossgate's ``async_to_sync`` (``name`` ``"crossgate"``, the default) or asgiref's.

    ``name`` defaults to ``HELPDESK_ASYNC_TO_SYNC``. crossgate's gives up after
    `SEND_TIMEOUT` (a hung Redis must not hang the comment form); asgiref's has no timeout.

    Raises:
        ValueError: another name.
    """
    name = name or os.environ.get("HELPDESK_ASYNC_TO_SYNC") or "crossgate"
    if name == "crossgate":
        from crossgate import async_to_sync

        def bounded(send: Send) -> Callable[..., None]:
            return async_to_sync(send, timeout=SEND_TIMEOUT)

        return bounded
    if name == "asgiref":
        from asgiref.sync import async_to_sync as asgiref_async_to_sync

        return asgiref_async_to_sync
    raise ValueError(f"HELPDESK_ASYNC_TO_SYNC is 'crossgate' or 'asgiref', not {name!r}")


def connect_comment_signal() -> None:
    """Send every newly created `Comment` to its ticket's group once its transaction commits.

    Connecting again replaces the earlier receiver (one ``dispatch_uid``), so a stage module
    imported twice never sends a comment twice.

    Raises:
        django.core.exceptions.AppRegistryNotReady: Django is not set up yet (import the
            stage 1 application, which sets it up, first).
        ValueError: ``HELPDESK_ASYNC_TO_SYNC`` names neither crossgate nor asgiref.
    """
    # Imported here: importing the live package must not need a configured Django.
    from demo_projects.django_helpdesk.tickets.models import Comment

    async_to_sync = pick_async_to_sync()

    def publish_comment(
        sender: type[Comment], instance: Comment, created: bool, **kwargs: Any
    ) -> None:
        if not created:
            return
        ticket_id = _ticket_id(instance)
        message = comment_created_message(instance)

        def after_commit() -> None:
            layer = get_channel_layer()
            if layer is None:
                return
            try:
                async_to_sync(layer.group_send)(group_name(ticket_id), message)
            except Exception:
                # The comment is saved and the view answers normally; only the live update
                # is lost (the pages show it on their next load).
                _log.exception("could not send comment %s of ticket %s", instance.pk, ticket_id)

        # After the commit: a page told about a comment can load it. In autocommit mode (no
        # atomic block, as in the legacy view) this runs at once.
        transaction.on_commit(after_commit, using=kwargs.get("using"))

    post_save.disconnect(sender=Comment, dispatch_uid=DISPATCH_UID)
    post_save.connect(publish_comment, sender=Comment, weak=False, dispatch_uid=DISPATCH_UID)
