"""Live updates for the helpdesk (stages 2 and 3): a comment saved anywhere reaches every open
page of its ticket over a websocket.

- `Hub` (in process) and `RedisHub` (across worker processes, when ``REDIS_URL`` is set);
- `LiveUpdates`, the ASGI websocket endpoint for ``/ws/tickets/<id>/``;
- `connect_comment_signal`, the ``post_save`` receiver that publishes new comments through
  `crossgate.async_to_sync`;
- `live_application`, the `crossgate.routing.ProtocolRouter` that puts them beside an HTTP app.
"""
