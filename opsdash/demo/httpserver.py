"""The demo's HTTP server is the ops layer's one small server (opsdash.ops.httpserver)."""

from opsdash.ops.httpserver import MAX_BODY, Handler, HttpServer, Request, Response

__all__ = ["MAX_BODY", "Handler", "HttpServer", "Request", "Response"]
