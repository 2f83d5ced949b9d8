"""The API's JSON encoding: keys sorted like Mojolicious's encoder, compact, always valid UTF-8.

Text read from Redis that was not valid UTF-8 (names and titles an older writer stored as raw
bytes) reaches Python with lone surrogates, which UTF-8 cannot encode. The original decodes such
a value as Latin-1 (Perl keeps the bytes as characters), so lrrd does the same rather than fail
the whole response.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["encode_json", "latin1_fallback"]


def encode_json(obj: Any) -> bytes:
    """``obj`` as compact, key-sorted UTF-8 JSON; undecodable text comes out as Latin-1."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(_clean(obj), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")


def latin1_fallback(text: str) -> str:
    """Text that cannot be encoded as UTF-8 (it carries the raw bytes of an undecodable value)
    re-read as Latin-1, as Perl shows such bytes; valid text is returned unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _clean(obj: Any) -> Any:
    if isinstance(obj, str):
        return latin1_fallback(obj)
    if isinstance(obj, dict):
        return {latin1_fallback(k) if isinstance(k, str) else k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
