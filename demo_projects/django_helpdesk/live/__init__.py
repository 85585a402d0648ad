"""Live updates for the helpdesk (stages 2 and 3), the way Django teams add websockets: Channels.

- `TicketConsumer` (``consumers.py``): a Channels consumer for ``/ws/tickets/<id>/``, for
  logged-in users only (the session cookie of the untouched legacy login view);
- `connect_comment_signal` (``signals.py``): the ``post_save`` receiver that sends every new
  comment to its ticket's group with ``async_to_sync(channel_layer.group_send)``;
- `live_application` (``app.py``): `crossgate.routing.ProtocolRouter` in the place of Channels'
  ``ProtocolTypeRouter``, with the consumer behind ``AllowedHostsOriginValidator`` and
  ``AuthMiddlewareStack``.

The channel layer comes from the settings: ``channels_redis`` when ``REDIS_URL`` is set (several
worker processes), Channels' ``InMemoryChannelLayer`` otherwise.
"""
