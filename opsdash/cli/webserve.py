"""The dashboard in a browser: textual-serve, locked to its own page and, when asked, to a token.

textual-serve starts one dashboard process per browser connection and does not check where the
connection comes from; a page on any site could otherwise open ws://127.0.0.1:PORT/ws and type
into the dashboard (cross-site WebSocket hijacking, DNS rebinding), and any program could connect
with no Origin at all. Only this server's own origin (and 127.0.0.1/localhost on its port) may
connect. With a token, the page and the WebSocket also need it: `?token=` on the page, which
answers with an HttpOnly cookie that the page's WebSocket then carries.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

from opsdash.core.secrets import redactor

TOKEN_ENV = "OPSDASH_WEB_TOKEN"  # noqa: S105 (the variable's name, not a token)
MIN_TOKEN_LENGTH = 16


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class _Redacting(logging.Filter):
    """aiohttp's access log writes each request line and Referer: `/?token=...` among them."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if redactor.redact(text) != text:
            record.msg, record.args = redactor.redact(text), None
        return True


class DashboardServer(Server):
    def __init__(
        self, command: str, *, host: str, port: int, public_url: str | None, token: str | None = None
    ) -> None:
        super().__init__(command, host=host, port=port, title="opsdash", public_url=public_url)
        self.allowed_origins = {
            origin(self.public_url),
            f"http://127.0.0.1:{port}",
            f"http://localhost:{port}",
            f"http://[::1]:{port}",
        }
        self.token = token
        # Cookies are per host, not per port: one name per port keeps two servers apart.
        self.cookie = f"opsdash-web-{port}"
        if token is not None:
            redactor.register(token)

    def initialize_logging(self) -> None:
        super().initialize_logging()
        for handler in logging.getLogger().handlers:
            handler.addFilter(_Redacting())

    def authorised(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        sent = request.query.get("token") or request.cookies.get(self.cookie, "")
        return hmac.compare_digest(sent.encode(), self.token.encode())

    def _refuse_without_token(self, request: web.Request) -> None:
        if not self.authorised(request):
            raise web.HTTPForbidden(
                text="this dashboard needs its token: open the address `opsdash web` printed, "
                f"or add ?token= with the value of {TOKEN_ENV}\n"
            )

    async def handle_index(self, request: web.Request) -> Any:
        self._refuse_without_token(request)
        response = await super().handle_index(request)
        if self.token is not None:
            response.set_cookie(
                self.cookie,
                self.token,
                path="/",
                httponly=True,
                samesite="Strict",
                secure=self.public_url.startswith("https:"),
            )
        return response

    async def handle_websocket(self, request: web.Request) -> Any:
        sent = request.headers.get("Origin")
        if sent is None or sent.lower() not in self.allowed_origins:
            raise web.HTTPForbidden(text="this dashboard only accepts connections from its own page\n")
        self._refuse_without_token(request)
        return await super().handle_websocket(request)

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        self._refuse_without_token(request)
        return await super().handle_download(request)
