"""ASGI entry point: HTTP through Django (behind a request body limit), websockets through Channels.

Websockets authenticate with the session cookie (AuthMiddlewareStack) or an
``Authorization: Token <key>`` header (TokenAuthMiddleware, for scripts).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()  # before importing consumers: it sets Django up

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from webapp.accounts.middleware import BrowserOriginValidator, TokenAuthMiddleware  # noqa: E402
from webapp.request_limits import RequestBodyLimit  # noqa: E402
from webapp.runs.consumers import RunConsumer  # noqa: E402

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        # Oversize bodies get 413 before Django spools them to disk (webapp/request_limits.py).
        "http": RequestBodyLimit(django_asgi_app),
        # Browsers send an Origin (checked against ALLOWED_HOSTS: no cross-site hijacking);
        # scripts send none and authenticate with a token.
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
