"""The new API alone: `new_routes_application()` behind a router that answers lifespan.

Served by the API tests (`uvicorn tests.demos.django_helpdesk.api_app:application`): Django's
`ASGIHandler` raises for a lifespan scope, so the `ProtocolRouter` takes lifespan, as stage 3's
routers do, and hands HTTP to Django untouched.
"""

from __future__ import annotations

from crossgate.routing import ProtocolRouter
from demo_projects.django_helpdesk.tickets.api_handler import new_routes_application

application = ProtocolRouter({"http": new_routes_application()})
