"""Reading comic archives (zip, rar, 7z, tar, pdf) as image pages, within size limits and a bounded page cache.

Everything here blocks; callers run it in a thread pool. A reader is not thread-safe: use each one
from one thread at a time. Readers on different threads may share a cache directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
import weakref
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import libarchive
import pypdfium2

from lrrd.library.pages import APPLE_HEAD_BYTES, is_apple_double, is_apple_junk_path, is_image_name, sort_pages

__all__ = [
    "DEFAULT_CACHE_BUDGET",
    "PDFIUM_LOCK",
    "PDF_DPI",
    "PDF_JPEG_QUALITY",
    "ArchiveError",
    "ArchiveReader",
    "ArchiveTooLarge",
    "ExtractionCache",
    "PageNotFound",
    "ReadLimits",
    "count_pages",
    "open_archive",
    "read_named_member",
]

StrPath = str | os.PathLike[str]

MiB = 1024 * 1024

# The original renders PDF pages with libvips pdfload at 200 DPI and saves JPEG quality 80.
PDF_DPI = 200
PDF_JPEG_QUALITY = 80
_PDF_SCALE = PDF_DPI / 72

# The original's page cache defaults to min(tempmaxsize=500, 4096) MB.
DEFAULT_CACHE_BUDGET = 500 * MiB

# PDFium must never be entered from two threads at once, not even for different documents.
# Anyone else in lrrd calling pypdfium2 must hold this lock too.
PDFIUM_LOCK = threading.RLock()

_BLOCK_SIZE = 256 * 1024
_MANIFEST = "manifest.json"
_SIZE_FILE = "bytes"
_STALE_SECONDS = 24 * 3600

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_LIBARCHIVE_MAGICS = (b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c")


class ArchiveError(Exception):
    """The archive cannot be read: corrupt, truncated, encrypted, not an archive, or over a limit.

    Every failure of a reader other than an unknown page name is reported as this, so callers can
    answer one "unreadable archive" error whatever library tripped.
    """


class ArchiveTooLarge(ArchiveError):
    """A member, the extraction or the member count is over the reader's :class:`ReadLimits`."""


class PageNotFound(KeyError):
    """The archive has no page of that name."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.name = name
        self.path = path

    def __str__(self) -> str:
        return f"no page {self.name!r} in {self.path!r}"


@dataclass(frozen=True)
class ReadLimits:
    """Caps that keep a hostile archive from exhausting memory or disk (sizes are uncompressed bytes)."""

    max_member_size: int = 512 * MiB
    max_total_size: int = 4096 * MiB
    max_members: int = 100_000


DEFAULT_LIMITS = ReadLimits()


@contextmanager
def _translated(path: str, action: str) -> Iterator[None]:
    """Turn whatever a decoder raises into :class:`ArchiveError`.

    zipfile, zlib, libarchive and PDFium each raise their own zoo of exceptions on hostile input
    (BadZipFile, EOFError, struct.error, RuntimeError for encryption, NotImplementedError, ...);
    callers are promised one type, so the catch here is deliberately broad.
    """
    try:
        yield
    except (ArchiveError, PageNotFound, MemoryError):
        raise
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise ArchiveError(f"cannot {action} {path!r}: {detail}") from exc


class ArchiveReader(ABC):
    """The image pages of one archive file.

    Not thread-safe: a reader must be used from one thread at a time (it may move between threads).
    Always close it, or use it as a context manager.
    """

    #: Whether pages are read in place (zip, pdf) rather than from an extraction of the whole archive.
    random_access: bool = True

    def __init__(self, path: str, limits: ReadLimits) -> None:
        self.path = path
        self.limits = limits
        #: How many times this reader streamed the archive from its start (tests and benchmarks).
        self.archive_scans = 0
        self._members: list[str] | None = None
        self._pages: list[str] | None = None
        self._first_index: dict[str, int] | None = None
        self._nfc_names: dict[str, str] | None = None
        self._closed = False

    def members(self) -> list[str]:
        """All image members in archive order, without AppleDouble junk (duplicates kept)."""
        self._check_open()
        if self._members is None:
            with _translated(self.path, "list the pages of"):
                self._members = self._list_members()
        return list(self._members)

    def pages(self) -> list[str]:
        """The members in reading order (LRR-NOTES §3.3); its length is the archive's page count."""
        if self._pages is None:
            self._pages = sort_pages(self.members())
        return list(self._pages)

    def read(self, name: str) -> bytes:
        """The bytes of the page called ``name``; :class:`PageNotFound` if there is none."""
        self._check_open()
        with _translated(self.path, f"read page {name!r} from"):
            return self._read(name)

    def close(self) -> None:
        """Release the file handles; further use raises :class:`ArchiveError`."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def _list_members(self) -> list[str]:
        """List image members in archive order, junk removed."""

    @abstractmethod
    def _read(self, name: str) -> bytes:
        """Read one page; errors are translated by :meth:`read`."""

    def _close(self) -> None:
        """Release resources; called once."""

    def _check_open(self) -> None:
        if self._closed:
            raise ArchiveError(f"reader for {self.path!r} is closed")

    def _resolve(self, name: str) -> str:
        """Map a requested name to the member it means, or raise :class:`PageNotFound`.

        Exact names win. Failing that, names are compared in NFC, because macOS writes decomposed
        (NFD) names while clients and the original look pages up composed.
        """
        if self._first_index is None:
            members = self.members()
            self._first_index = {}
            for position, member in enumerate(members):
                self._first_index.setdefault(member, position)
        if name in self._first_index:
            return name
        if self._nfc_names is None:
            self._nfc_names = {}
            for member in self._first_index:
                self._nfc_names.setdefault(unicodedata.normalize("NFC", member), member)
        try:
            return self._nfc_names[unicodedata.normalize("NFC", name)]
        except KeyError:
            raise PageNotFound(name, self.path) from None


def _decode_name(raw: bytes) -> str:
    """Decode a raw member name: UTF-8 when valid, else Latin-1.

    The original keeps raw bytes and only UTF-8-decodes them when valid, so an undecodable name
    reaches clients as its bytes read as Latin-1; doing the same keeps page names identical.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _zip_member_name(info: zipfile.ZipInfo) -> str:
    """The member name as libarchive would give it (the original reads zips with libarchive)."""
    if info.flag_bits & 0x800:
        return info.filename
    # zipfile decoded the raw name as cp437, which is lossless, and zipfile and libarchive both
    # stop at a NUL.
    raw = info.orig_filename.encode("cp437").split(b"\0", 1)[0]
    return _decode_name(raw)


class _ZipReader(ArchiveReader):
    """zip, cbz and epub through :mod:`zipfile`: random access, so nothing is cached."""

    random_access = True

    def __init__(self, path: str, limits: ReadLimits) -> None:
        super().__init__(path, limits)
        with _translated(path, "open zip archive"):
            self._zip = zipfile.ZipFile(path)
        self._infos = self._zip.infolist()
        if len(self._infos) > limits.max_members:
            self._zip.close()
            raise ArchiveTooLarge(f"{path!r} has {len(self._infos)} members, over the limit of {limits.max_members}")
        self._info_of: dict[str, zipfile.ZipInfo] = {}

    def _list_members(self) -> list[str]:
        names: list[str] = []
        for info in self._infos:
            name = _zip_member_name(info)
            if not is_image_name(name):
                continue
            if is_apple_junk_path(name) and is_apple_double(name, self._head(info)):
                continue
            names.append(name)
            self._info_of.setdefault(name, info)
        return names

    def _head(self, info: zipfile.ZipInfo) -> bytes:
        """The member's first bytes, or nothing when they cannot be read.

        An unreadable member is not provably junk, so it stays listed, as in the original.
        """
        try:
            with self._zip.open(info) as member:
                return member.read(APPLE_HEAD_BYTES)
        except Exception:
            return b""

    def _read(self, name: str) -> bytes:
        info = self._info_of[self._resolve(name)]
        cap = self.limits.max_member_size
        if info.file_size > cap:
            raise ArchiveTooLarge(
                f"page {name!r} of {self.path!r} declares {info.file_size} bytes, over the limit of {cap}"
            )
        with self._zip.open(info) as member:
            # read(n) never returns more than n bytes, so even a member whose header lies about its
            # size cannot inflate past the (capped) declared size plus one byte.
            data = member.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise ArchiveError(f"page {name!r} of {self.path!r} inflates past its declared {info.file_size} bytes")
        return data

    def _close(self) -> None:
        self._zip.close()


def _entry_name(entry: libarchive.ArchiveEntry) -> str:
    name = entry.pathname
    if name is None:
        return ""
    if isinstance(name, bytes):
        return _decode_name(name)
    return str(name)


def _entry_head(entry: libarchive.ArchiveEntry) -> bytes:
    """Read just the first bytes of the current entry; libarchive skips the rest at the next header."""
    head = b""
    for block in entry.get_blocks(APPLE_HEAD_BYTES):
        head += block
        if len(head) >= APPLE_HEAD_BYTES:
            break
    return head[:APPLE_HEAD_BYTES]


class _Extraction:
    """One archive's image members, extracted to numbered files in a cache directory.

    Member names never become paths: file ``<n>`` holds the n-th extracted member, and the manifest
    maps names to numbers, so ``..``, absolute or NUL-bearing names cannot touch the filesystem.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], touch: Callable[[Path], None]) -> None:
        self.directory = directory
        self._touch = touch
        entries: list[list[Any]] = manifest["entries"]
        self.names: list[str] = [entry[0] for entry in entries]
        self._file_of: dict[str, int | None] = {}
        for name, fileno in entries:
            self._file_of.setdefault(name, fileno)

    def read(self, name: str, path: str, limits: ReadLimits) -> bytes:
        """Read one member; ``FileNotFoundError`` means the extraction was evicted meanwhile."""
        fileno = self._file_of.get(name)
        if fileno is None:
            if name in self._file_of:
                raise ArchiveTooLarge(
                    f"page {name!r} of {path!r} is over the size limits "
                    f"({limits.max_member_size} bytes a page, {limits.max_total_size} in all)"
                )
            raise PageNotFound(name, path)
        with open(self.directory / str(fileno), "rb") as handle:
            data = handle.read()
        self._touch(self.directory)
        return data


class _KeyLock:
    """A lock that can sit in a WeakValueDictionary (plain locks cannot be weakly referenced)."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_fill_locks: weakref.WeakValueDictionary[str, _KeyLock] = weakref.WeakValueDictionary()
_fill_locks_guard = threading.Lock()
_stamp_guard = threading.Lock()
_last_stamp = 0


def _lock_for(directory: Path) -> _KeyLock:
    with _fill_locks_guard:
        key_lock = _fill_locks.get(str(directory))
        if key_lock is None:
            key_lock = _KeyLock()
            _fill_locks[str(directory)] = key_lock
        return key_lock


def _next_stamp() -> int:
    """A strictly increasing nanosecond stamp, so LRU order holds even within one clock tick."""
    global _last_stamp
    with _stamp_guard:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


class ExtractionCache:
    """Whole-archive extractions on disk, evicted least-recently-used first to stay within a byte budget.

    Solid archives (7z, rar, tar) cannot seek to one member, so the first page read extracts every
    image once and later reads are file reads. State lives on disk (manifest mtime = last use), so
    any number of instances, threads or processes can share one root: extractions appear by atomic
    rename of a finished temporary directory and disappear by rename before deletion, so nobody sees
    a half-written or half-deleted one. The newest extraction is kept even when it alone exceeds the
    budget, or a large archive would be re-extracted on every page.
    """

    def __init__(self, root: StrPath, budget: int = DEFAULT_CACHE_BUDGET) -> None:
        self.root = Path(root)
        self.budget = budget
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key_for(path: StrPath) -> str:
        """Cache key of an archive file: changes whenever the file is replaced or modified.

        Not the archive id, which only covers the first 512,000 bytes and so survives appends.
        """
        st = os.stat(path)
        ident = f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_dev}"
        return hashlib.sha1(ident.encode("utf-8", "surrogateescape")).hexdigest()

    def lookup(self, key: str) -> _Extraction | None:
        """The finished extraction for ``key``, marked as just used, or None."""
        directory = self.root / key
        try:
            manifest = json.loads((directory / _MANIFEST).read_bytes())
        except (OSError, ValueError):
            return None
        self._touch(directory)
        return _Extraction(directory, manifest, self._touch)

    def fill(self, key: str, extract: Callable[[Path], dict[str, Any]]) -> _Extraction:
        """Return the extraction for ``key``, running ``extract(tmpdir) -> manifest`` if it is missing.

        Threads of this process asking for the same key wait for one extraction instead of each
        decompressing the archive.
        """
        directory = self.root / key
        key_lock = _lock_for(directory)  # held in a local: the registry only keeps it weakly
        with key_lock.lock:
            existing = self.lookup(key)
            if existing is not None:
                return existing
            temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            try:
                manifest = extract(temporary)
                (temporary / _SIZE_FILE).write_text(str(manifest["bytes"]))
                (temporary / _MANIFEST).write_text(json.dumps(manifest))
                try:
                    os.rename(temporary, directory)
                except OSError:
                    # Another process finished the same extraction first; use theirs.
                    shutil.rmtree(temporary, ignore_errors=True)
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise
            self._touch(directory)
        self.evict(keep=key)
        extraction = self.lookup(key)
        if extraction is None:
            raise ArchiveError(f"extraction {key} vanished from {str(self.root)!r} as it was made")
        return extraction

    def usage(self) -> int:
        """Bytes held by finished extractions."""
        return sum(size for _, _, size in self._entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Delete least-recently-used extractions until usage fits the budget; return their keys."""
        entries = sorted(self._entries(), key=lambda entry: (entry[1], entry[0]))
        total = sum(size for _, _, size in entries)
        evicted: list[str] = []
        for key, _, size in entries:
            if total <= self.budget:
                break
            if key == keep:
                continue
            if self._remove(self.root / key):
                evicted.append(key)
            total -= size
        return evicted

    def clear(self) -> None:
        """Delete every extraction (``DELETE /api/tempfolder``)."""
        for key, _, _ in self._entries():
            self._remove(self.root / key)

    def _entries(self) -> list[tuple[str, int, int]]:
        """(key, last use in ns, bytes) of each finished extraction; sweeps stale leftovers."""
        entries: list[tuple[str, int, int]] = []
        now = time.time()
        try:
            children = list(os.scandir(self.root))
        except FileNotFoundError:
            return entries
        for child in children:
            if child.name.startswith("."):
                # Temporary or trash directories left by a crash; live ones are minutes old at most.
                try:
                    if now - child.stat().st_mtime > _STALE_SECONDS:
                        shutil.rmtree(child.path, ignore_errors=True)
                except OSError:
                    pass
                continue
            directory = Path(child.path)
            try:
                last_use = (directory / _MANIFEST).stat().st_mtime_ns
                size = int((directory / _SIZE_FILE).read_text())
            except (OSError, ValueError):
                continue
            entries.append((child.name, last_use, size))
        return entries

    def _remove(self, directory: Path) -> bool:
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        try:
            os.rename(directory, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True

    @staticmethod
    def _touch(directory: Path) -> None:
        stamp = _next_stamp()
        try:
            os.utime(directory / _MANIFEST, ns=(stamp, stamp))
        except OSError:
            pass


class _LibarchiveReader(ArchiveReader):
    """rar, 7z, tar (plain, gz, xz, lzma, zst) through libarchive.

    These cannot seek to a member (7z and rar are often solid), so the first :meth:`read` extracts
    every image member once into the cache and later reads are served from there.
    """

    random_access = False

    def __init__(self, path: str, limits: ReadLimits, cache: ExtractionCache | None) -> None:
        super().__init__(path, limits)
        self._private: tempfile.TemporaryDirectory[str] | None = None
        self._cache = cache
        with _translated(path, "open archive"):
            self._key = ExtractionCache.key_for(path)
        self._extraction = cache.lookup(self._key) if cache is not None else None

    def _list_members(self) -> list[str]:
        if self._extraction is not None:
            return list(self._extraction.names)
        names: list[str] = []
        with self._stream() as archive:
            for count, entry in enumerate(archive, 1):
                self._check_count(count)
                name = _entry_name(entry)
                if not is_image_name(name):
                    continue
                if is_apple_junk_path(name) and is_apple_double(name, _entry_head(entry)):
                    continue
                names.append(name)
        return names

    def _read(self, name: str) -> bytes:
        extraction = self._ensure_extraction()
        member = self._resolve(name)
        try:
            return extraction.read(member, self.path, self.limits)
        except FileNotFoundError:
            # Evicted by another reader between lookup and read: extract again, once.
            self._extraction = None
            return self._ensure_extraction().read(member, self.path, self.limits)

    def _ensure_extraction(self) -> _Extraction:
        if self._extraction is None:
            cache = self._cache
            if cache is None:
                self._private = tempfile.TemporaryDirectory(prefix="lrrd-pages-")
                cache = self._cache = ExtractionCache(self._private.name, budget=self.limits.max_total_size)
            self._extraction = cache.fill(self._key, self._extract)
        if self._members is None:
            self._members = list(self._extraction.names)
        return self._extraction

    def _extract(self, target: Path) -> dict[str, Any]:
        """Stream the archive once, writing image members to ``target/<n>``; return the manifest."""
        limits = self.limits
        entries: list[list[Any]] = []
        total = 0
        files = 0
        budget_spent = False
        with self._stream() as archive:
            for count, entry in enumerate(archive, 1):
                self._check_count(count)
                name = _entry_name(entry)
                if not is_image_name(name):
                    continue
                declared = entry.size
                if budget_spent or (declared is not None and declared > limits.max_member_size):
                    head = _entry_head(entry) if is_apple_junk_path(name) else b""
                    if not is_apple_double(name, head):
                        entries.append([name, None])
                    continue
                destination = target / str(files)
                head = b""
                written = 0
                over = False
                with open(destination, "wb") as out:
                    for block in entry.get_blocks(_BLOCK_SIZE):
                        if len(head) < APPLE_HEAD_BYTES:
                            head += block[: APPLE_HEAD_BYTES - len(head)]
                        written += len(block)
                        # Counted as it streams: declared sizes can lie.
                        if written > limits.max_member_size or total + written > limits.max_total_size:
                            over = True
                            break
                        out.write(block)
                if over or is_apple_double(name, head):
                    destination.unlink()
                    if over and not is_apple_double(name, head):
                        entries.append([name, None])
                        budget_spent = written <= limits.max_member_size
                    continue
                total += written
                entries.append([name, files])
                files += 1
        return {"version": 1, "source": self.path, "entries": entries, "bytes": total}

    @contextmanager
    def _stream(self) -> Iterator[Any]:
        self.archive_scans += 1
        with libarchive.file_reader(self.path) as archive:
            yield archive

    def _check_count(self, count: int) -> None:
        if count > self.limits.max_members:
            raise ArchiveTooLarge(f"{self.path!r} has more than {self.limits.max_members} members")

    def _close(self) -> None:
        if self._private is not None:
            self._private.cleanup()
            self._private = None


class _PdfReader(ArchiveReader):
    """PDF through PDFium: pages are named ``1.jpg`` … ``N.jpg`` and rendered on demand."""

    random_access = True

    def __init__(self, path: str, limits: ReadLimits) -> None:
        super().__init__(path, limits)
        with PDFIUM_LOCK, _translated(path, "open PDF"):
            self._document = pypdfium2.PdfDocument(path)
            self._page_count = len(self._document)
        # A reader dropped without close() must still close PDFium under the lock: left to
        # pypdfium2's own finalizer, the close could run on a GC thread mid-render elsewhere.
        self._finalizer = weakref.finalize(self, _close_pdf, self._document)
        if self._page_count > limits.max_members:
            self._close()
            raise ArchiveTooLarge(f"{path!r} has {self._page_count} pages, over the limit of {limits.max_members}")

    def _list_members(self) -> list[str]:
        return [f"{number}.jpg" for number in range(1, self._page_count + 1)]

    def _read(self, name: str) -> bytes:
        member = self._resolve(name)
        index = int(member.partition(".")[0]) - 1
        with PDFIUM_LOCK:
            page = self._document[index]
            try:
                width, height = page.get_size()
                pixels = round(width * _PDF_SCALE) * round(height * _PDF_SCALE)
                if pixels * 4 > self.limits.max_member_size:
                    raise ArchiveTooLarge(
                        f"page {name!r} of {self.path!r} would render to {pixels} pixels at {PDF_DPI} DPI"
                    )
                bitmap = page.render(scale=_PDF_SCALE)
                try:
                    # convert() copies, so the image outlives the bitmap's buffer.
                    image = bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            finally:
                page.close()
        # JPEG encoding needs no PDFium, so other threads may render meanwhile.
        out = io.BytesIO()
        image.save(out, "JPEG", quality=PDF_JPEG_QUALITY, dpi=(PDF_DPI, PDF_DPI))
        return out.getvalue()

    def _close(self) -> None:
        self._finalizer()


def _close_pdf(document: pypdfium2.PdfDocument) -> None:
    with PDFIUM_LOCK:
        document.close()


def _kind(path: str) -> str:
    """Choose the reader: magic bytes first, the extension when the magic is unknown.

    Magic wins because misnamed files are common (a RAR sold as .cbz, a zip as .cbr).
    """
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        raise ArchiveError(f"{path!r} is empty")
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(_LIBARCHIVE_MAGICS):
        return "libarchive"
    lowered = path.lower()
    if lowered.endswith(".cbw"):
        raise ArchiveError(f"{path!r} is a CBW web comic, whose pages are remote; this reader only reads local archives")
    if lowered.endswith((".zip", ".cbz", ".epub")):
        return "zip"
    if lowered.endswith(".pdf"):
        return "pdf"
    return "libarchive"


def open_archive(
    path: StrPath,
    *,
    cache_dir: StrPath | None,
    limits: ReadLimits = DEFAULT_LIMITS,
    cache_budget: int = DEFAULT_CACHE_BUDGET,
) -> ArchiveReader:
    """Open an archive for reading its pages.

    ``cache_dir`` holds extractions of solid archives (shared, LRU-bounded by ``cache_budget``
    bytes); with None a reader extracts into a private temporary directory removed on close.
    Raises :class:`ArchiveError` if the file cannot be opened; corruption deeper in the file may
    only show when pages are listed or read, also as :class:`ArchiveError`.
    """
    text_path = os.fspath(path)
    with _translated(text_path, "open"):
        kind = _kind(text_path)
    if kind == "zip":
        return _ZipReader(text_path, limits)
    if kind == "pdf":
        return _PdfReader(text_path, limits)
    cache = ExtractionCache(cache_dir, cache_budget) if cache_dir is not None else None
    return _LibarchiveReader(text_path, limits, cache)


def count_pages(path: StrPath, *, limits: ReadLimits = DEFAULT_LIMITS) -> int:
    """The archive's page count, from its listing alone (nothing is extracted)."""
    with open_archive(path, cache_dir=None, limits=limits) as reader:
        return len(reader.members())


def _name_matches(member: str, wanted: tuple[str, ...]) -> bool:
    base = member.replace("\\", "/").rsplit("/", 1)[-1]
    return any(base.endswith(name) for name in wanted)


def read_named_member(path: StrPath, *wanted: str, max_size: int = 16 * MiB) -> tuple[str, bytes] | None:
    """The first member (in archive order) whose file name ends with one of ``wanted``, and its bytes.

    Metadata plugins look for files such as ``ComicInfo.xml`` or ``info.json`` inside an archive as
    the original's ``is_file_in_archive`` does (a case-sensitive match on the end of the member's
    file name). PDFs and CBW web comics hold no such files: None. A member larger than
    ``max_size`` raises :class:`ArchiveTooLarge` rather than being read into memory.
    """
    text_path = os.fspath(path)
    if not wanted:
        return None
    with _translated(text_path, "search"):
        try:
            kind = _kind(text_path)
        except ArchiveError:
            if text_path.lower().endswith(".cbw"):
                return None
            raise
        if kind == "pdf":
            return None
        if kind == "zip":
            with zipfile.ZipFile(text_path) as archive:
                for info in archive.infolist():
                    name = _zip_member_name(info)
                    if info.is_dir() or not _name_matches(name, wanted):
                        continue
                    if info.file_size > max_size:
                        raise ArchiveTooLarge(f"{name!r} in {text_path!r} is over {max_size} bytes")
                    with archive.open(info) as member:
                        data = member.read(max_size + 1)
                    if len(data) > max_size:
                        raise ArchiveTooLarge(f"{name!r} in {text_path!r} is over {max_size} bytes")
                    return name, data
            return None
        with libarchive.file_reader(text_path) as archive:
            for count, entry in enumerate(archive, 1):
                if count > DEFAULT_LIMITS.max_members:
                    raise ArchiveTooLarge(f"{text_path!r} has more than {DEFAULT_LIMITS.max_members} members")
                name = _entry_name(entry)
                if entry.isdir or not _name_matches(name, wanted):
                    continue
                buffer = bytearray()
                for block in entry.get_blocks():
                    buffer += block
                    if len(buffer) > max_size:
                        raise ArchiveTooLarge(f"{name!r} in {text_path!r} is over {max_size} bytes")
                return name, bytes(buffer)
    return None
