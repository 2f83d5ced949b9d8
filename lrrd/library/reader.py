"""Open archive readers kept per archive id, so a page request reads one member and nothing else.

Opening an archive (parsing a zip's central directory, listing a 7z) costs far more than reading
one page from it, and readers turn the pages of one archive in a row; so readers stay open in a
bounded LRU, keyed by archive id and checked against the file's size, mtime and inode on every use
(a replaced or rewritten file gets fresh readers). Everything here blocks: call it from the io
thread pool. Pages are looked up by member name in the reader's own table, never by building a
filesystem path from a name a client sent.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from lrrd.library.formats import (
    DEFAULT_CACHE_BUDGET,
    DEFAULT_LIMITS,
    ArchiveError,
    ArchiveReader,
    PageNotFound,
    ReadLimits,
    open_archive,
)

__all__ = ["ArchiveMissing", "ArchiveReaders", "BadPageName", "PageData", "file_stamp"]


class ArchiveMissing(Exception):
    """The archive's file is not on disk (deleted, or on a mount that went away)."""


class BadPageName(ValueError):
    """A page name no archive member can have (NUL, empty): refused before any lookup."""


#: (size, mtime in ns, inode, device): changes whenever the file is replaced or rewritten.
Stamp = tuple[int, int, int, int]


def file_stamp(path: str) -> Stamp:
    """Stat ``path``; :class:`ArchiveMissing` if it is gone or not a regular file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ArchiveMissing(path) from None
    except ValueError:  # an embedded NUL in a stored path
        raise ArchiveMissing(path) from None
    if not os.path.isfile(path):
        raise ArchiveMissing(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


@dataclass(frozen=True)
class PageData:
    """One page as read: its bytes (None when the client's ETag still matched), its ETag, and
    the stamp of the file it came from."""

    etag: str
    data: bytes | None
    stamp: Stamp


@dataclass
class _Entry:
    """The open readers of one archive file, at one version of that file."""

    path: str
    stamp: Stamp
    idle: list[ArchiveReader] = field(default_factory=list)
    pages: list[str] | None = None
    page_set: frozenset[str] | None = None
    retired: bool = False
    #: Readers of this entry that exist (idle or checked out), or are being opened.
    live: int = 0
    #: Serialises opening the first reader, so a burst of requests for a cold archive lists it once.
    opening: threading.Lock = field(default_factory=threading.Lock)


def validate_page_name(name: str) -> None:
    """Refuse names that cannot be members; everything else is looked up, never joined to a path."""
    if not name or "\0" in name:
        raise BadPageName(name)


class ArchiveReaders:
    """A bounded LRU of open :class:`ArchiveReader` objects per archive id; thread-safe.

    A reader is not thread-safe, so each one is checked out by one thread at a time; an archive read
    by several threads at once gets up to ``per_archive`` readers, and a thread that finds them all
    checked out waits for one to come back (the cap is counted, not left to timing: a burst on a
    cold archive under load used to open one reader per waiting thread). At most ``max_archives``
    archives stay open; the least recently used is closed first.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None,
        *,
        limits: ReadLimits = DEFAULT_LIMITS,
        cache_budget: int = DEFAULT_CACHE_BUDGET,
        max_archives: int = 64,
        per_archive: int = 4,
        opener: Callable[..., ArchiveReader] = open_archive,
    ) -> None:
        self._cache_dir = cache_dir
        self._limits = limits
        self._cache_budget = cache_budget
        self._max_archives = max(1, max_archives)
        self._per_archive = max(1, per_archive)
        self._opener = opener
        self._lock = threading.Lock()
        #: Notified whenever a reader is checked in or closed (a slot may have come free).
        self._returned = threading.Condition(self._lock)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        #: How many readers were opened (tests and benchmarks watch it).
        self.opened = 0

    # -- public, blocking ------------------------------------------------------------------------
    def pages(self, arcid: str, path: str) -> list[str]:
        """The archive's pages in reading order (LRR-NOTES §3.3)."""
        entry = self._entry(arcid, path, file_stamp(path))
        if entry.pages is None:
            reader = self._checkout(entry)
            try:
                pages = reader.pages()
            except BaseException:
                self._close(entry, reader)
                raise
            entry.pages = pages
            entry.page_set = frozenset(pages)
            self._checkin(entry, reader)
        return list(entry.pages)

    def read(self, arcid: str, path: str, name: str, if_none_match: str | None = None,
             variant: str = "") -> PageData:
        """Read page ``name``; skip the read when ``if_none_match`` is still this page's ETag.

        ``variant`` is folded into the ETag, so a resized rendering of a page never shares the
        original's. Raises :class:`ArchiveMissing`, :class:`BadPageName`, :class:`PageNotFound`
        or :class:`ArchiveError`.
        """
        validate_page_name(name)
        stamp = file_stamp(path)
        etag = page_etag(arcid, stamp, name, variant)
        entry = self._entry(arcid, path, stamp)
        if (if_none_match is not None and entry.page_set is not None and name in entry.page_set
                and etag_matches(if_none_match, etag)):
            # Only for a name known to be a page: anything else must still answer "not found".
            return PageData(etag, None, stamp)
        reader = self._checkout(entry)
        try:
            data = reader.read(name)
            if entry.page_set is None:
                # The read listed the members already: remember the names for 304s. Sorting
                # them (pages()) is left to /files, off the first page's critical path.
                try:
                    entry.page_set = frozenset(reader.members())
                except ArchiveError:
                    pass
        except PageNotFound:
            self._checkin(entry, reader)
            raise
        except BaseException:
            # A reader that failed mid-read may hold a half-consumed stream: never reuse it.
            self._close(entry, reader)
            raise
        self._checkin(entry, reader)
        return PageData(etag, data, stamp)

    def invalidate(self, arcid: str) -> None:
        """Close the readers of one archive (it was deleted or changed id)."""
        with self._lock:
            entry = self._entries.pop(arcid, None)
        if entry is not None:
            self._retire(entry)

    def clear(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            self._retire(entry)

    def __len__(self) -> int:
        return len(self._entries)

    # -- internals -------------------------------------------------------------------------------
    def _entry(self, arcid: str, path: str, stamp: Stamp) -> _Entry:
        stale: list[_Entry] = []
        with self._lock:
            entry = self._entries.get(arcid)
            if entry is not None and (entry.path != path or entry.stamp != stamp):
                stale.append(entry)
                entry = None
            if entry is None:
                entry = _Entry(path, stamp)
                self._entries[arcid] = entry
            self._entries.move_to_end(arcid)
            while len(self._entries) > self._max_archives:
                _, old = self._entries.popitem(last=False)
                stale.append(old)
        for old in stale:
            self._retire(old)
        return entry

    def _checkout(self, entry: _Entry) -> ArchiveReader:
        """An idle reader of ``entry``, or a new one while it has fewer than ``per_archive``;
        otherwise wait until one is checked in or closed. Every reader handed out must come
        back through ``_checkin`` or ``_close``."""
        with self._returned:
            while not entry.idle and entry.live >= self._per_archive:
                self._returned.wait()
            if entry.idle:
                return entry.idle.pop()
            entry.live += 1  # a slot held for the reader this thread opens
        try:
            with entry.opening:
                # Someone may have opened (and returned) one while this thread waited.
                with self._returned:
                    if entry.idle:
                        entry.live -= 1
                        self._returned.notify_all()
                        return entry.idle.pop()
                reader = self._opener(entry.path, cache_dir=self._cache_dir, limits=self._limits,
                                      cache_budget=self._cache_budget)
        except BaseException:
            with self._returned:
                entry.live -= 1
                self._returned.notify_all()
            raise
        with self._lock:
            self.opened += 1
        return reader

    def _checkin(self, entry: _Entry, reader: ArchiveReader) -> None:
        with self._returned:
            if not entry.retired and len(entry.idle) < self._per_archive:
                entry.idle.append(reader)
                self._returned.notify_all()
                return
        self._close(entry, reader)

    def _close(self, entry: _Entry, reader: ArchiveReader) -> None:
        """Close a checked-out reader for good, and free its slot."""
        self._discard(reader)
        with self._returned:
            entry.live -= 1
            self._returned.notify_all()

    def _retire(self, entry: _Entry) -> None:
        with self._returned:
            entry.retired = True
            readers, entry.idle = entry.idle, []
            entry.live -= len(readers)
            self._returned.notify_all()
        for reader in readers:
            self._discard(reader)

    @staticmethod
    def _discard(reader: ArchiveReader) -> None:
        try:
            reader.close()
        except Exception:  # noqa: BLE001 - closing a broken reader must not mask the real error
            pass


def page_etag(arcid: str, stamp: Stamp, name: str, variant: str = "") -> str:
    """A strong ETag for one page of one version of the archive file."""
    text = f"{arcid}\0{stamp}\0{name}\0{variant}"
    return '"' + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest() + '"'


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` semantics: ``*`` or any listed tag (weak or strong) equal to ours."""
    header = header.strip()
    if header == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


__all__ += ["ArchiveError", "PageNotFound", "etag_matches", "page_etag", "validate_page_name"]
