"""What a scheme signs, as the profile spells it: message templates and the delivery path.

They are checked when the profile loads, so that a typo (`{url}`, a lone `{`, a full URL for the path)
is one config error at once instead of every delivery failing later.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from string import Formatter

IKHOKHA_FIELDS = ("path", "body")  # [webhook] message_template
GENERIC_FIELDS = ("body", "timestamp", "id", "path")  # [webhook] template

Segments = tuple[tuple[str, str | None], ...]  # (literal text, field after it or None)


def _fields(names: Sequence[str]) -> str:
    return " ".join("{" + n + "}" for n in names)


@functools.lru_cache(maxsize=64)
def parse_template(text: str, fields: tuple[str, ...], what: str) -> Segments:
    """The template as (literal, field) pairs; a ValueError names what is wrong and how to write it."""
    try:
        parts = list(Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(
            f"{what} {text[:80]!r}: {str(exc).lower()}; write {{{{ or }}}} for a literal brace"
        ) from None
    segments = []
    for literal, name, spec, conversion in parts:
        if name is not None and (name not in fields or spec or conversion):
            field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"{what} {text[:80]!r}: {field} is not a field; the fields are {_fields(fields)}"
            )
        segments.append((literal, name))
    if not any(name == "body" for _, name in segments):
        raise ValueError(
            f"{what} {text[:80]!r} has no {{body}}: a signature that does not cover the body lets "
            "anyone change it"
        )
    return tuple(segments)


def validate_message_template(text: str) -> None:
    """[webhook] message_template (iKhokha): only {path} and {body}, and {body} at least once."""
    parse_template(text, IKHOKHA_FIELDS, "webhook.message_template")


def validate_template(text: str) -> None:
    """[webhook] template (generic scheme): only {body} {timestamp} {id} {path}, and {body}."""
    parse_template(text, GENERIC_FIELDS, "webhook.template")


def validate_path(text: str, what: str = "webhook.path") -> None:
    """The path deliveries are posted to, as the provider signs it: no scheme or host."""
    example = "e.g. /api/payments/ikhokha/webhook"
    if "://" in text or not text.startswith("/") or text.startswith("//"):
        raise ValueError(f"{what} {text[:80]!r} is not a path: give only the part after the host, {example}")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError(f"{what} {text[:80]!r} contains spaces or control characters")
