"""Errors an operator can act on. The CLI prints their message on one line and exits 3."""

from __future__ import annotations


class OpsdashError(Exception):
    """A problem with input or configuration, described in one readable sentence."""


class ConfigError(OpsdashError):
    """The opsdash configuration or target profile cannot be used."""


class InputError(OpsdashError):
    """An input file (env file, bundle, runbook ...) cannot be read."""
