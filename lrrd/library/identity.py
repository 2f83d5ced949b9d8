"""Archive identity: the LANraragi archive id, the archive filename filter and the JSON extension."""

from __future__ import annotations

import hashlib
import os
import re

__all__ = [
    "ID_PREFIX_BYTES",
    "EmptyArchiveError",
    "compute_id",
    "extension_of",
    "is_archive_filename",
]

# 512,000 bytes, not 512 KiB: ids must equal the original's for existing libraries to keep their metadata.
ID_PREFIX_BYTES = 512_000

_EMPTY_SHA1 = hashlib.sha1(b"").hexdigest()

# The original matches byte strings without Unicode rules, so only ASCII letters fold case (re.ASCII).
# `.` stops at a newline and `$` also matches before a final newline, in Perl as in Python.
_ARCHIVE_NAME = re.compile(
    r"^.+\.(?:zip|rar|7z|tar|tar\.gz|lzma|xz|cbz|cbr|cb7|cbt|cbw|pdf|epub|tar\.zst|zst)$",
    re.IGNORECASE | re.ASCII,
)

_ASCII_LOWER_STR = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class EmptyArchiveError(ValueError):
    """The file is empty, so it has no id (the original refuses "a null value" the same way)."""


def compute_id(path: str | os.PathLike[str]) -> str:
    """Return the archive id: lowercase SHA-1 hex of the file's first 512,000 bytes.

    Only the head is hashed so that ids are cheap on large files; the price, shared with the
    original, is that files with identical heads share an id.
    """
    digest = hashlib.sha1()
    remaining = ID_PREFIX_BYTES
    with open(path, "rb") as handle:
        while remaining:
            chunk = handle.read(remaining)
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    hexdigest = digest.hexdigest()
    if hexdigest == _EMPTY_SHA1:
        raise EmptyArchiveError(f"Computed ID is for a null value, invalid source file: {os.fspath(path)!r}")
    return hexdigest


def is_archive_filename(name: str) -> bool:
    """Whether a file name has one of the archive extensions LANraragi imports (case-insensitive).

    The whole name is matched, so at least one character must precede the extension: ``.zip`` alone
    is not an archive name.
    """
    return _ARCHIVE_NAME.match(name) is not None


def extension_of(path: str) -> str:
    """The archive JSON ``extension``: lowercase text after the last "." of the whole path.

    This follows the original's Perl ``split`` on "." over the full path: trailing empty fields are
    dropped (so ``"a.cbz."`` gives ``"cbz"``), a path without a dot gives the whole path, and a dot
    only in a directory name gives what follows it. Only ASCII letters are lowercased, as in the
    original's byte-string ``lc``.
    """
    fields = path.split(".")
    while fields and fields[-1] == "":
        fields.pop()
    if not fields:
        return ""
    return fields[-1].translate(_ASCII_LOWER_STR)
