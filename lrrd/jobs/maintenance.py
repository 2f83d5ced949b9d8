"""Temp-folder housekeeping: the original's ``cleantemp`` (clear it) and ``get_tempsize``.

Both block on the file system; callers run them in a thread pool.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

MiB = 1024 * 1024


def temp_folder_size(temp_dir: Path) -> float | int:
    """Size of the regular files under ``temp_dir`` in MB, cut to two decimals as the original
    does; a whole number is an int so that JSON shows ``0`` and not ``0.0``."""
    total = 0
    for folder, _dirs, files in os.walk(temp_dir):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed while we walked
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    size = int(total / MiB * 100) / 100
    return int(size) if size.is_integer() else size


def clean_temp_folder(temp_dir: Path) -> str:
    """Remove everything inside ``temp_dir`` (the folder itself stays); returns "" or the first
    problem, worded like the original's ``remove_tree`` diagnostics."""
    if not temp_dir.exists():
        temp_dir.mkdir(parents=True, exist_ok=True)
        return ""
    problems: list[str] = []

    def record(_function: object, path: str, exc_info: object) -> None:
        error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        problems.append(f"Problem unlinking {path}: {getattr(error, 'strerror', None) or error}")

    try:
        entries = list(os.scandir(temp_dir))
    except OSError as exc:
        return f"General error: {exc.strerror or exc}"
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if sys.version_info >= (3, 12):
                    shutil.rmtree(entry.path, onexc=record)
                else:
                    shutil.rmtree(entry.path, onerror=record)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"Problem unlinking {entry.path}: {exc.strerror or exc}")
    return problems[0] + "\n" if problems else ""
