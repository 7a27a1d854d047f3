"""`opsdash serve`: opsdash as a long-running service that Prometheus scrapes and that raises
alerts on its own, on the one watch loop."""

from opsdash.ops.serve.service import DEFAULT_PORT, ServeOptions, Service

__all__ = ["DEFAULT_PORT", "ServeOptions", "Service"]
