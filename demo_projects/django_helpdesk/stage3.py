"""Stage 3, "move routes one at a time": new async views first, the legacy app behind them.

`uvicorn demo_projects.django_helpdesk.stage3:application`. HTTP goes to a
`crossgate.routing.Fallback`: Django's own ASGI handler serves the new JSON API (async views,
async ORM) and answers 404 for every other path, and that 404 hands the request, body included,
to the legacy application in `WSGIToASGI`. Websockets go to the Channels consumer as in stage
2, so a comment posted through the API reaches the open pages too. Django's handler refuses the
lifespan protocol; the routers answer it themselves.

Not `Fallback(get_asgi_application(), get_wsgi_application())` of one project: a view that does
its work and then answers 404 would run twice (see the Channels recipe in the docs). The
primary here knows only the new routes, so everything it does not know it answers with a 404
before any view runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("HELPDESK_STAGE", "3")

# Imported after the stage is set: stage1.py and wsgi.py would otherwise claim theirs.
from crossgate.routing import Fallback
from demo_projects.django_helpdesk.live.app import live_application
from demo_projects.django_helpdesk.stage1 import application as legacy
from demo_projects.django_helpdesk.tickets.api_handler import new_routes_application

application = live_application(Fallback(new_routes_application(), legacy))
