"""Sending a file from disk: HTTP Range requests, and reads done in the io pool through a producer.

``twisted.web.static.File`` reads from disk on the reactor thread; archives can sit on a slow
network mount, so lrrd reads each chunk in the io pool and writes it when the transport asks for
more (a push producer that honours pause/resume), never holding more than one chunk in memory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, BinaryIO, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import server
from twisted.web.iweb import IRequest
from zope.interface import implementer

from lrrd.pools import Pools

log = Logger()

CHUNK = 256 * 1024

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class FileInfo:
    """What a response needs to know of the file before sending it."""

    size: int
    mtime: float


class RangeNotSatisfiable(Exception):
    """The request's single byte range lies wholly outside the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single ``bytes=`` range, or None to send the whole file.

    Several ranges, or a header lrrd cannot read, are answered with the whole file (RFC 9110
    lets a server ignore Range); a range past the end raises :class:`RangeNotSatisfiable`.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:
        suffix = int(last_text)
        if suffix == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, min(last, size - 1)


@implementer(IPushProducer)
class ThreadedFileProducer:
    """Writes ``length`` bytes of an open file from ``offset``, reading chunks in the io pool."""

    def __init__(self, request: server.Request, handle: BinaryIO, offset: int, length: int,
                 pools: Pools) -> None:
        self._request = request
        self._handle = handle
        self._offset = offset
        self._remaining = length
        self._pools = pools
        self._paused = False
        self._stopped = False
        self._reading = False
        self.done: Deferred[None] = Deferred()

    def start(self) -> None:
        self._request.registerProducer(self, True)
        self._request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._next()

    def _read(self, size: int) -> bytes:
        self._handle.seek(self._offset)
        return self._handle.read(size)

    def _next(self) -> None:
        if self._paused or self._stopped or self._reading:
            return
        if self._remaining <= 0:
            self._finish()
            return
        self._reading = True
        d = self._pools.run_io(self._read, min(CHUNK, self._remaining))
        d.addCallbacks(self._got, self._failed)

    def _got(self, chunk: bytes) -> None:
        self._reading = False
        if self._stopped:
            return
        if not chunk:
            # The file shrank under us: end the response short rather than hang.
            log.warn("file ended {remaining} bytes early while sending it", remaining=self._remaining)
            self._finish()
            return
        self._offset += len(chunk)
        self._remaining -= len(chunk)
        self._request.write(chunk)
        self._next()

    def _failed(self, failure: Any) -> None:
        self._reading = False
        log.failure("reading a file to send failed", failure)
        self._stopped = True
        self._close()
        self._request.unregisterProducer()
        # The status line is long gone: cutting the connection is the only honest signal left.
        self._request.loseConnection()
        if not self.done.called:
            self.done.callback(None)

    def _finish(self) -> None:
        self._stopped = True
        self._close()
        self._request.unregisterProducer()
        if not getattr(self._request, "_disconnected", False):
            self._request.finish()
        if not self.done.called:
            self.done.callback(None)

    def _close(self) -> None:
        handle, self._handle = self._handle, None  # type: ignore[assignment]
        if handle is not None:
            self._pools.run_io(handle.close)

    # IPushProducer
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._next()

    def stopProducing(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._close()
            if not self.done.called:
                self.done.callback(None)


def _open(path: str) -> tuple[BinaryIO, FileInfo]:
    handle = open(path, "rb")  # noqa: SIM115 - closed by the producer
    try:
        st = os.fstat(handle.fileno())
    except BaseException:
        handle.close()
        raise
    return handle, FileInfo(st.st_size, st.st_mtime)


async def send_file(request: IRequest, path: str, pools: Pools, headers: dict[bytes, bytes]) -> None:
    """Answer ``request`` with the file at ``path`` (200, 206 or 416), streamed from the io pool.

    Raises ``OSError`` (FileNotFoundError...) before anything is written, so callers can still
    answer with a JSON error.
    """
    handle, info = await pools.run_io(_open, path)
    for name, value in headers.items():
        request.setHeader(name, value)
    request.setHeader(b"accept-ranges", b"bytes")
    request.setHeader(b"last-modified", formatdate(info.mtime, usegmt=True).encode("ascii"))
    header = request.getHeader(b"range")
    if_range = request.getHeader(b"if-range")
    range_text = header.decode("latin-1") if isinstance(header, bytes) else header
    if if_range is not None:
        # Only a Last-Modified validator equal to ours keeps the range; otherwise send it all.
        validator = if_range.decode("latin-1") if isinstance(if_range, bytes) else if_range
        if validator.strip() != formatdate(info.mtime, usegmt=True):
            range_text = None
    try:
        chosen = parse_range(range_text, info.size)
    except RangeNotSatisfiable:
        pools.run_io(handle.close)
        request.setResponseCode(416)
        request.setHeader(b"content-range", b"bytes */%d" % info.size)
        request.setHeader(b"content-length", b"0")
        request.finish()
        return
    if chosen is None:
        first, length = 0, info.size
        request.setResponseCode(200)
    else:
        first, last = chosen
        length = last - first + 1
        request.setResponseCode(206)
        request.setHeader(b"content-range", b"bytes %d-%d/%d" % (first, last, info.size))
    request.setHeader(b"content-length", b"%d" % length)
    if request.method == b"HEAD" or length == 0:
        pools.run_io(handle.close)
        request.finish()
        return
    # send_file is only ever given twisted.web requests, which are also consumers.
    producer = ThreadedFileProducer(cast(server.Request, request), handle, first, length, pools)
    producer.start()
    await producer.done
