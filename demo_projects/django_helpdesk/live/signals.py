"""From a saved comment to the websockets: the ``post_save`` receiver of stages 2 and 3.

The legacy comment view is sync code in a `WSGIToASGI` worker thread (stage 2), or the new API
is async code whose ORM call runs in asgiref's worker thread (stage 3); either way the comment is
saved in a thread, and the hub lives on the server's event loop. `crossgate.async_to_sync`
bridges the two: from a `WSGIToASGI` thread it runs `Hub.publish` on the server's loop (the
point of the demo: the legacy view reaches async code without being edited). The receiver is
connected by the stage modules, never by the views or models, which stay as stage 0 wrote them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from django.db import transaction
from django.db.models.signals import post_save

from crossgate.concurrency import async_to_sync
from demo_projects.django_helpdesk.live.hub import Hub

if TYPE_CHECKING:
    from demo_projects.django_helpdesk.tickets.models import Comment

__all__ = ["DISPATCH_UID", "comment_created_message", "connect_comment_signal"]

_log = logging.getLogger("demo_projects.django_helpdesk.live")

DISPATCH_UID: Final = "demo_projects.django_helpdesk.live.comment_created"

# How long a comment view may wait for the hub: past it the comment is saved all the same and
# the open pages miss that one update (a hung Redis must not hang the form).
PUBLISH_TIMEOUT: Final = 5.0


def comment_created_message(comment: Comment) -> dict[str, Any]:
    """The contract's ``comment.created`` event for ``comment``: what each open page receives."""
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


def connect_comment_signal(hub: Hub) -> None:
    """Publish every newly created `Comment` through ``hub`` once its transaction commits.

    Connecting again replaces the earlier receiver (one ``dispatch_uid``), so a stage module
    imported twice, or stage 3 reusing stage 2's wiring, never publishes a comment twice.

    Raises:
        django.core.exceptions.AppRegistryNotReady: Django is not set up yet (import the
            stage 1 application, which sets it up, first).
    """
    # Imported here: importing the live package must not need a configured Django.
    from demo_projects.django_helpdesk.tickets.models import Comment

    def publish_comment(
        sender: type[Comment], instance: Comment, created: bool, **kwargs: Any
    ) -> None:
        if not created:
            return
        ticket_id = _ticket_id(instance)
        message = comment_created_message(instance)

        def after_commit() -> None:
            try:
                async_to_sync(hub.publish, timeout=PUBLISH_TIMEOUT)(ticket_id, message)
            except Exception:
                # The comment is saved and the view answers normally; only the live update
                # is lost (the pages show it on their next load).
                _log.exception("could not publish comment %s of ticket %s", instance.pk, ticket_id)

        # After the commit: a page told about a comment can load it. In autocommit mode (no
        # atomic block, as in the legacy view) this runs at once.
        transaction.on_commit(after_commit, using=kwargs.get("using"))

    post_save.disconnect(sender=Comment, dispatch_uid=DISPATCH_UID)
    post_save.connect(publish_comment, sender=Comment, weak=False, dispatch_uid=DISPATCH_UID)
