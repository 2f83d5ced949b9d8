"""Time lrrd.images on a 2000×3000 page: thumbnails from JPEG (with and without draft) and PNG, and page resizing.

Run from the repository root: ``.venv/bin/python bench/bench_images.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import PIL
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrrd import images  # noqa: E402

PAGE_SIZE = (2000, 3000)


def manga_page(seed: int = 1) -> Image.Image:
    """A page that compresses like a real scan: line art and screentone on white, one photo-like panel.

    Flat synthetic colour would make JPEG and PNG decoding unrealistically cheap.
    """
    rng = random.Random(seed)
    width, height = PAGE_SIZE
    page = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(page)
    for _ in range(400):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.line((x, y, x + rng.randint(-300, 300), y + rng.randint(-300, 300)), fill="black", width=rng.randint(1, 6))
    for _ in range(60):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randint(20, 200)
        draw.ellipse((x - r, y - r, x + r, y + r), outline="black", width=3)
    # Screentone: a dot grid over one band, the costliest pattern for both codecs.
    for y in range(1800, 2700, 8):
        for x in range(100, 1900, 8):
            draw.point((x, y), fill="black")
    panel = (900, 700)
    half = (panel[0] // 2, panel[1] // 2)
    noise = Image.frombytes("L", half, rng.randbytes(half[0] * half[1])).resize(panel)
    gradient = Image.linear_gradient("L").resize(panel)
    page.paste(Image.merge("RGB", (Image.blend(noise, gradient, 0.7), gradient, noise)), (1000, 150))
    return page


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def timings_ms(work: Callable[[], object], runs: int) -> list[float]:
    work()  # warm-up: plugin imports, first allocations
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs

    page = manga_page()
    jpeg = encoded(page, "JPEG", quality=90)
    png = encoded(page, "PNG")
    limit = images.DEFAULT_MAX_PIXELS

    cases: list[tuple[str, Callable[[], object]]] = [
        ("thumbnail, JPEG page, draft", lambda: images.make_thumbnail(jpeg, hq=False)),
        ("thumbnail, JPEG page, HQ, draft", lambda: images.make_thumbnail(jpeg, hq=True)),
        (
            "thumbnail, JPEG page, no draft",
            lambda: images._thumbnail(jpeg, hq=False, fmt="jpg", max_pixels=limit, use_draft=False),
        ),
        ("thumbnail, PNG page", lambda: images.make_thumbnail(png, hq=False)),
        ("thumbnail, JPEG page, webp out", lambda: images.make_thumbnail(jpeg, hq=False, fmt="webp")),
        ("resize_page, JPEG page, q50", lambda: images.resize_page(jpeg, quality=50)),
        ("resize_page, PNG page, q50", lambda: images.resize_page(png, quality=50)),
    ]
    print(f"{PAGE_SIZE[0]}×{PAGE_SIZE[1]} page: JPEG {len(jpeg) // 1024} KiB, PNG {len(png) // 1024} KiB; "
          f"{runs} runs, Pillow {PIL.__version__}")
    # The minimum is the figure to compare on a shared machine; the median shows the contention.
    print(f"  {'':34} {'min':>7}    {'median':>7}")
    for name, work in cases:
        timings = timings_ms(work, runs)
        print(f"  {name:34} {min(timings):7.1f} ms {statistics.median(timings):7.1f} ms")


if __name__ == "__main__":
    main()
