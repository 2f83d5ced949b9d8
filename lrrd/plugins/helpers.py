"""Small parsing helpers the built-in plugins share (and third-party plugins may use).

They exist so each plugin module reads like its format's rules, and so every malformed input ends
in a ``PluginError`` with a message a user can act on rather than a traceback.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from lrrd.library.identity import is_archive_filename
from lrrd.plugins.context import ArchiveFile
from lrrd.plugins.model import PluginError
from lrrd.store.archives import trim_url

__all__ = [
    "is_archive_filename",
    "join_tags",
    "looks_like_number",
    "parse_json",
    "prefixed",
    "split_tags",
    "trim_url",
    "values_of",
]


def parse_json(found: ArchiveFile) -> Any:
    """The JSON document in ``found``; malformed JSON is a plugin error naming the file."""
    try:
        return json.loads(found.text())
    except (ValueError, RecursionError) as exc:  # nested past the decoder's depth, too
        raise PluginError(f"{found.name} is not valid JSON: {exc}") from None


def split_tags(text: str | None) -> list[str]:
    """A comma-separated string as trimmed, non-empty items (the original's ``split(',')`` + trim)."""
    if not text:
        return []
    return [item.strip() for item in str(text).split(",") if item.strip()]


def values_of(value: Any) -> list[str]:
    """A field that may hold one value or a list of them, as a list of non-empty strings.

    Downloaders write either shape for the same field (one artist, or several), and nested junk
    (objects, nulls) is skipped rather than turned into ``ARRAY(0x...)`` tags.
    """
    if value is None or isinstance(value, (dict, bool)):
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            text = str(item).strip()
            if text:
                out.append(text)
    return out


def prefixed(namespace: str, values: Iterable[str]) -> list[str]:
    """``namespace:value`` for each value (no namespace when it is empty)."""
    return [f"{namespace}:{value}" if namespace else value for value in values]


def join_tags(tags: Iterable[str]) -> str:
    """Tags as plugins return them: joined with ``", "``."""
    return ", ".join(tags)


_NUMBER = re.compile(
    r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|inf(?:inity)?|nan)\s*$",
    re.IGNORECASE)


def looks_like_number(text: str) -> bool:
    """Perl's ``Scalar::Util::looks_like_number`` for the strings file names produce."""
    return bool(text) and _NUMBER.match(text) is not None and not text.lower().startswith(("0x", "+0x", "-0x"))
