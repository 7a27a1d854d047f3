"""iKhokha iK Pay request signing, as iKhokha's official examples do it (see PLAN §6).

IK-SIGN is the lowercase hex HMAC-SHA256, keyed with the application secret, of the URL path (no
scheme, host or query) followed by the exact body ("" for GET), after backslash-escaping `\\`, `"` and
`'` and replacing NUL with `\\0`.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

APP_ID_HEADER = "IK-APPID"
SIGN_HEADER = "IK-SIGN"


def escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\\\"'":
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\0")
        else:
            out.append(ch)
    return "".join(out)


def signing_message(url_or_path: str, body: str | bytes = "") -> str:
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?", 1)[0]
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return escape(path + text)


def sign(secret: str, url_or_path: str, body: str | bytes = "") -> str:
    message = signing_message(url_or_path, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def headers(app_id: str, secret: str, url_or_path: str, body: str | bytes = "") -> dict[str, str]:
    return {APP_ID_HEADER: app_id, SIGN_HEADER: sign(secret, url_or_path, body)}


def verify(secret: str, url_or_path: str, body: str | bytes, signature: str) -> bool:
    try:
        expected = sign(secret, url_or_path, body)
    except UnicodeDecodeError:
        return False
    return hmac.compare_digest(expected, signature.strip().lower())
