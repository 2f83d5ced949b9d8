"""Thread pools for blocking work, so the reactor thread never reads archives or decodes images.

Two pools, as DESIGN.md decision 6 says: one for archive I/O and hashing (page reads, imports),
and a smaller one for image work, so a batch of thumbnails never starves page reads.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class Pools:
    """Owns the pools; started with the reactor, stopped at shutdown."""

    def __init__(self, reactor: Any, io_threads: int = 8, image_threads: int = 2) -> None:
        self._reactor = reactor
        self.io = ThreadPool(minthreads=1, maxthreads=max(1, io_threads), name="lrrd-io")
        self.images = ThreadPool(minthreads=1, maxthreads=max(1, image_threads), name="lrrd-images")
        self._started = False

    def start(self) -> None:
        if not self._started:
            self.io.start()
            self.images.start()
            self._started = True
            self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.io.stop()
            self.images.stop()

    def run_io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Archive reads, hashing, file-system walks and writes."""
        self.start()
        return deferToThreadPool(self._reactor, self.io, fn, *args, **kwargs)

    def run_image(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Pillow work: thumbnails, resizing."""
        self.start()
        return deferToThreadPool(self._reactor, self.images, fn, *args, **kwargs)
