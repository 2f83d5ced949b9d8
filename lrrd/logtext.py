"""Text for log lines that must not break the log writer: file names are bytes, logs are UTF-8.

A file name that is not valid UTF-8 reaches Python as text with lone surrogates
(``os.fsdecode``'s ``surrogateescape``); a log file written as UTF-8 refuses such text with
``UnicodeEncodeError``, and twistd's file observer then drops the line (and the observer). Every
log line that formats a path, or a message that may hold one, passes it through ``log_text``.
"""

from __future__ import annotations

import os
from typing import Union

__all__ = ["log_text"]

PathText = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def log_text(value: PathText) -> str:
    """``value`` as text that encodes as UTF-8: valid text unchanged, each undecodable byte
    of a file name as ``\\xNN`` (what ``ls -b`` shows), any other lone surrogate as ``\\udNNN``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(value).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that stand for no byte
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
