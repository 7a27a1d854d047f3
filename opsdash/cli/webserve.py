"""The dashboard in a browser: textual-serve, refusing WebSocket connections from other origins.

textual-serve starts one dashboard process per browser connection and does not check where the
connection comes from; a page on any site could otherwise open ws://127.0.0.1:PORT/ws and type
into the dashboard (cross-site WebSocket hijacking, DNS rebinding). Only this server's own origin
(and 127.0.0.1/localhost on its port) may connect.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class DashboardServer(Server):
    def __init__(self, command: str, *, host: str, port: int, public_url: str | None) -> None:
        super().__init__(command, host=host, port=port, title="opsdash", public_url=public_url)
        self.allowed_origins = {
            origin(self.public_url),
            f"http://127.0.0.1:{port}",
            f"http://localhost:{port}",
            f"http://[::1]:{port}",
        }

    async def handle_websocket(self, request: web.Request) -> Any:
        sent = request.headers.get("Origin")
        if sent is not None and sent.lower() not in self.allowed_origins:
            raise web.HTTPForbidden(text="this dashboard only accepts connections from its own page\n")
        return await super().handle_websocket(request)
