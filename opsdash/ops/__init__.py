"""The application layer: `Ops` (base.py) and one module per capability; see docs/architecture.md."""
