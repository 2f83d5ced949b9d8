"""Time lrrd.library.formats: first page of a never-opened cbz, and page reads/s from a cached 7z.

Run from the repository root: ``.venv/bin/python bench/bench_formats.py [--runs N]``. Archives are
built in a temporary directory and sit in the OS page cache, so disk latency is not measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrrd.library.formats import open_archive  # noqa: E402
from tests.fixtures.archives import make_7z, make_cbz, make_pdf  # noqa: E402

PAGE_BYTES = 300_000  # a typical scanned JPEG page; random bytes because JPEG data does not compress


def scan_pages(count: int, size: int = PAGE_BYTES) -> list[tuple[str, bytes]]:
    """``count`` incompressible pages named like a real release (``Book/p0001.jpg`` …).

    Each page is fresh random bytes: slices of one buffer would let 7z's solid LZMA dedupe them.
    """
    return [(f"Book/p{n:04d}.jpg", os.urandom(size)) for n in range(count)]


def timed(action: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds per run."""
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        results.append((time.perf_counter() - start) * 1000)
    return results


def report(label: str, millis: list[float]) -> None:
    print(f"{label:<58} median {statistics.median(millis):8.2f} ms   min {min(millis):8.2f} ms")


def first_page(path: Path, cache: Path) -> Callable[[], object]:
    """Open a fresh reader, list and order its pages, read page 1, close: one ``/page`` cold start."""

    def action() -> bytes:
        with open_archive(path, cache_dir=cache) as reader:
            return reader.read(reader.pages()[0])

    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    runs = options.runs

    with tempfile.TemporaryDirectory(prefix="lrrd-bench-") as scratch:
        root = Path(scratch)
        cache = root / "cache"

        cases = [(200, PAGE_BYTES, zipfile.ZIP_STORED), (200, PAGE_BYTES, zipfile.ZIP_DEFLATED), (2000, 30_000, zipfile.ZIP_STORED)]
        for count, size, compression in cases:
            kind = "stored" if compression == zipfile.ZIP_STORED else "deflated"
            path = make_cbz(root / f"book-{count}-{kind}.cbz", scan_pages(count, size), compression=compression)
            label = f"cbz first page, {count} x {size // 1000} KB pages, {kind}"
            report(label, timed(first_page(path, cache), runs))

        seven = make_7z(root / "book.7z", scan_pages(100))
        size_mb = seven.stat().st_size / 1e6

        def extract_fresh() -> None:
            for child in cache.glob("*"):
                if child.is_dir():
                    for file in child.iterdir():
                        file.unlink()
                    child.rmdir()
            with open_archive(seven, cache_dir=cache) as reader:
                reader.read(reader.pages()[0])

        label = f"7z first page, 100 pages ({size_mb:.0f} MB): full extraction"
        report(label, timed(extract_fresh, 3))

        with open_archive(seven, cache_dir=cache) as reader:
            pages = reader.pages()
            reader.read(pages[0])
            start = time.perf_counter()
            rounds = max(5, runs)
            for _ in range(rounds):
                for name in pages:
                    reader.read(name)
            elapsed = time.perf_counter() - start
        per_second = rounds * len(pages) / elapsed
        print(f"{'7z cached page reads, one open reader':<58} {per_second:8.0f} pages/s ({PAGE_BYTES // 1000} KB each)")

        start = time.perf_counter()
        for name in pages:
            with open_archive(seven, cache_dir=cache) as reader:
                reader.read(name)
        per_second = len(pages) / (time.perf_counter() - start)
        print(f"{'7z cached page reads, a new reader per page':<58} {per_second:8.0f} pages/s")

        pdf = make_pdf(root / "doc.pdf", 3, size=(595, 842))

        def render() -> bytes:
            with open_archive(pdf, cache_dir=None) as reader:
                return reader.read("2.jpg")

        report("pdf A4 page rendered at 200 DPI to JPEG q80", timed(render, max(3, runs // 4)))


if __name__ == "__main__":
    main()
