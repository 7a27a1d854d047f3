"""Guided runbooks: the Markdown format (parser), its linter and the executor state machine."""
