"""The drill runbook's fixtures, shared by the executor and step-driver tests."""

from tests.runbook_drill import book_path, store

__all__ = ["book_path", "store"]
