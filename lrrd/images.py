"""Blocking image work: thumbnails, reader page resizing, thumbhash and thumbnail paths.

Everything here blocks; callers run it in the dedicated image thread pool, never on the reactor.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PAGE_MAX_WIDTH",
    "THUMBNAIL_BOX",
    "THUMB_EXTENSIONS",
    "BadImage",
    "ImageError",
    "ImageTooLarge",
    "UnsupportedFormat",
    "cover_path",
    "fit_thumbnail_box",
    "make_thumbnail",
    "page_thumb_path",
    "resize_page",
    "tank_cover_path",
    "thumbhash",
    "write_atomically",
]

#: The original's ``-thumbnail 500x1000``: fit inside this box, aspect ratio kept.
THUMBNAIL_BOX = (500, 1000)
THUMBNAIL_QUALITY = 50
THUMBNAIL_HQ_QUALITY = 80
#: Reader pages wider than this are shrunk when server-side resizing is on.
PAGE_MAX_WIDTH = 1064
#: Our own decompression-bomb cap, checked against the header before any pixel is decoded.
DEFAULT_MAX_PIXELS = 100_000_000
#: Thumbnail file extensions the path helpers accept; jpg and jxl are the original's, webp is lrrd's.
THUMB_EXTENSIONS = frozenset({"jpg", "jxl", "webp"})

# Only the formats the original treats as page images (Utils/Generic.pm) are ever opened, so hostile
# bytes can't reach Pillow's rarer decoders (EPS would even run Ghostscript). Missing plugins are skipped.
_PAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "AVIF", "HEIF", "JXL")
# Formats whose decoder can scale by 1/2, 1/4 or 1/8 while decoding (libjpeg DCT scaling).
_DRAFTABLE = frozenset({"JPEG", "MPO"})
# Image.resize first box-reduces by an integer factor while the image is over this multiple of the
# target, then finishes with Lanczos. 2.0 is Image.thumbnail()'s default: on a 2000×3000 PNG page it
# takes the resize from ~100 ms to ~40 ms with no visible loss at thumbnail size.
_REDUCING_GAP = 2.0
_OUTPUT_LIMITS = {"JPEG": 65_535, "WEBP": 16_383}
_WHITE: dict[str, int | tuple[int, int, int]] = {"L": 255, "RGB": (255, 255, 255)}

# EXIF orientation → the transpose that shows the pixels the way a browser shows the page.
_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112

_ARCHIVE_ID = re.compile(r"[0-9a-f]{40}")
# [0-9], not \d: \d would accept Arabic-Indic and other Unicode digits.
_TANK_ID = re.compile(r"TANK_[0-9]{10}")


class ImageError(Exception):
    """Base of every error the image functions raise for bad input data."""


class BadImage(ImageError):
    """The bytes are not a decodable image: corrupt, truncated, or not an image at all."""


class ImageTooLarge(ImageError):
    """The image's declared size is over the pixel cap (or the output format's limit)."""


class UnsupportedFormat(ImageError, ValueError):
    """The requested output format can't be written by this Pillow build."""


def thumbhash(data: bytes) -> str:
    """Return the original's "thumbhash": SHA-1 hex of the raw source image bytes.

    It is not the ThumbHash placeholder algorithm; duplicate detection and E-H reverse search
    depend on it being exactly the SHA-1 of the cover's source bytes.
    """
    return hashlib.sha1(data).hexdigest()


def make_thumbnail(
    data: bytes, *, hq: bool, fmt: str = "jpg", max_pixels: int = DEFAULT_MAX_PIXELS
) -> bytes:
    """Encode a thumbnail of the image in ``data`` fitted to 500×1000, as the original does.

    ImageMagick's ``-thumbnail 500x1000`` has no ``>`` flag, so it enlarges small images too, and
    so do we. Only the first frame of an animation is used. ``fmt`` is ``"jpg"`` (quality 50, or 80
    when ``hq``), ``"webp"`` (same qualities, an lrrd option) or ``"jxl"`` (only if a Pillow JPEG XL
    plugin is installed). Transparency is flattened on white, grayscale sources give a grayscale
    JPEG, the EXIF orientation is applied and an RGB/gray ICC profile is kept.

    ``max_pixels`` is checked against the header before decoding; Pillow's own limit (~179 MP)
    still applies above it. Raises BadImage, ImageTooLarge or UnsupportedFormat (a ValueError).
    """
    return _thumbnail(data, hq=hq, fmt=fmt, max_pixels=max_pixels)


def resize_page(
    data: bytes, *, quality: int, max_width: int = PAGE_MAX_WIDTH, max_pixels: int = DEFAULT_MAX_PIXELS
) -> bytes:
    """Re-encode a reader page as JPEG at ``quality``, shrunk to ``max_width`` if it is wider.

    Narrower pages are never enlarged but are still re-encoded, because the original always
    serves a resized page as JPEG. Raises BadImage, or ImageTooLarge for a page over
    ``max_pixels`` or one still taller than JPEG's 65535 px after resizing.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1-100, not {quality!r}")
    if max_width < 1:
        raise ValueError(f"max_width must be positive, not {max_width!r}")

    def fit(size: tuple[int, int]) -> tuple[int, int]:
        width, height = size
        if width <= max_width:
            return size
        return max_width, max(1, _round_half_up(height * max_width / width))

    return _convert(data, fit=fit, fmt="jpg", quality=quality, max_pixels=max_pixels)


def fit_thumbnail_box(size: tuple[int, int]) -> tuple[int, int]:
    """Scale ``size`` to fit THUMBNAIL_BOX, up or down, rounding like ImageMagick's geometry code."""
    width, height = size
    box_width, box_height = THUMBNAIL_BOX
    scale = min(box_width / width, box_height / height)
    return (
        max(1, min(box_width, _round_half_up(width * scale))),
        max(1, min(box_height, _round_half_up(height * scale))),
    )


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _thumbnail(
    data: bytes, *, hq: bool, fmt: str, max_pixels: int, use_draft: bool = True
) -> bytes:
    """make_thumbnail, with a switch to turn draft() off so bench_images.py can measure its worth."""
    quality = THUMBNAIL_HQ_QUALITY if hq else THUMBNAIL_QUALITY
    return _convert(
        data, fit=fit_thumbnail_box, fmt=fmt, quality=quality, max_pixels=max_pixels, use_draft=use_draft
    )


def _convert(
    data: bytes,
    *,
    fit: Callable[[tuple[int, int]], tuple[int, int]],
    fmt: str,
    quality: int,
    max_pixels: int,
    use_draft: bool = True,
) -> bytes:
    pillow_format = _output_format(fmt)
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, not {max_pixels!r}")
    with _image_errors():
        decoded = _decode(data, fit=fit, max_pixels=max_pixels, use_draft=use_draft)
        image, icc_profile = _finish(decoded)
        return _encode(image, pillow_format, quality, icc_profile)


def _output_format(fmt: str) -> str:
    """Map an lrrd format name to Pillow's, refusing what this Pillow can't write."""
    pillow_format = {"jpg": "JPEG", "webp": "WEBP", "jxl": "JXL"}.get(fmt)
    if pillow_format is None:
        raise UnsupportedFormat(f"unknown thumbnail format {fmt!r}; expected jpg, webp or jxl")
    if pillow_format not in _writable_formats():
        raise UnsupportedFormat(f"this Pillow build cannot write {fmt!r} images")
    return pillow_format


@cache
def _writable_formats() -> frozenset[str]:
    Image.init()
    return frozenset(Image.SAVE)


@cache
def _readable_formats() -> tuple[str, ...]:
    # Image.open raises KeyError for a format that has no registered plugin, so filter first.
    Image.init()
    return tuple(name for name in _PAGE_FORMATS if name in Image.OPEN)


@contextmanager
def _image_errors() -> Iterator[None]:
    """Turn whatever Pillow raises into our exception types.

    Pillow's decoders answer hostile input with a zoo of types (OSError, SyntaxError, ValueError,
    EOFError, struct.error, IndexError, ...), and callers must be able to rely on ImageError alone.
    """
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as e:
        # Pillow's own cap (2 × MAX_IMAGE_PIXELS, ~179 MP) fires inside Image.open before ours can,
        # so a max_pixels above it still ends here; the warning only arrives as an error under -W error.
        raise ImageTooLarge(f"image too large: {e}") from e
    except Exception as e:
        raise BadImage(f"cannot decode image: {type(e).__name__}: {e}") from e


@dataclass(frozen=True)
class _Decoded:
    """A loaded source image, before mode conversion and the final resize."""

    #: Pixels as stored in the file, possibly already shrunk by a JPEG DCT-scaled decode.
    image: Image.Image
    #: The full size declared by the header, in display orientation.
    source_size: tuple[int, int]
    #: The output size in display orientation.
    target: tuple[int, int]
    orientation: int


def _decode(
    data: bytes,
    *,
    fit: Callable[[tuple[int, int]], tuple[int, int]],
    max_pixels: int,
    use_draft: bool = True,
) -> _Decoded:
    """Open ``data``, refuse it from the header alone if too big, then decode the first frame.

    JPEGs are decoded through draft() at the smallest 1/2, 1/4 or 1/8 scale that still covers the
    target. libjpeg's scaled IDCT drops the high frequencies, so it is itself a fair low-pass
    downscale: a 2000×3000 page decodes straight to 500×750 and skips the resize pass entirely.
    """
    image = Image.open(io.BytesIO(data), formats=_readable_formats())
    width, height = image.size
    if width < 1 or height < 1:
        raise BadImage(f"image has an empty size {width}×{height}")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}×{height}, over the {max_pixels}-pixel cap")

    if use_draft and image.format in _DRAFTABLE:
        # A JPEG's EXIF is parsed with its header, so reading the orientation here decodes nothing.
        orientation = _orientation(image)
        target = fit(_displayed(image.size, orientation))
        stored_target = _displayed(target, orientation)
        if stored_target[0] < width and stored_target[1] < height:
            image.draft(None, stored_target)

    # Loads the first frame only; animated GIF/WebP/PNG are never seeked further.
    image.load()
    # Read again after load: PNG and WebP may keep their EXIF after the pixel data.
    orientation = _orientation(image)
    source_size = _displayed((width, height), orientation)
    return _Decoded(image=image, source_size=source_size, target=fit(source_size), orientation=orientation)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, or 1 when it is absent or unreadable.

    Broken EXIF must not sink an image a browser would happily show, so every error means "upright".
    """
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSES else 1


def _displayed(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """Swap width and height for the orientations that turn the image a quarter turn."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _finish(decoded: _Decoded) -> tuple[Image.Image, bytes | None]:
    """Flatten to L or RGB, resize to the target and apply the EXIF orientation.

    The transpose runs last because it is cheapest on the small image. The output carries no EXIF,
    so without it a phone-camera page would show sideways next to the original.
    """
    source_mode = decoded.image.mode
    image = _flatten(decoded.image)
    stored_target = _displayed(decoded.target, decoded.orientation)
    if image.size != stored_target:
        shrinking = stored_target[0] <= image.size[0] and stored_target[1] <= image.size[1]
        # Lanczos to shrink; bicubic to enlarge, close to ImageMagick's Mitchell filter.
        resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
        image = image.resize(stored_target, resample, reducing_gap=_REDUCING_GAP if shrinking else None)
    transpose = _TRANSPOSES.get(decoded.orientation)
    if transpose is not None:
        image = image.transpose(transpose)
    return image, _kept_icc_profile(decoded.image, source_mode, image.mode)


def _flatten(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit L or RGB, compositing transparency onto white.

    Grayscale stays L: most manga pages are grayscale and a one-channel JPEG is smaller and
    faster. 16-bit gray is scaled down, since a plain convert("L") would clip it to white.
    """
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" not in image.info:
        return image
    if mode.startswith("I"):  # I, I;16, I;16B, ...: 16-bit samples as PNG stores them
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode in ("1", "F"):
        return image.convert("L")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")  # P, CMYK, YCbCr, RGBX, ...
    base = "L" if mode in ("L", "LA", "La") else "RGB"
    with_alpha = image.convert(base + "A")
    flat = Image.new(base, with_alpha.size, _WHITE[base])
    flat.paste(with_alpha.convert(base), mask=with_alpha.getchannel("A"))
    return flat


def _kept_icc_profile(source: Image.Image, source_mode: str, output_mode: str) -> bytes | None:
    """Keep the source's ICC profile when its colour space survives, as ``-thumbnail`` does.

    A CMYK profile would be wrong on the RGB output, so it is dropped.
    """
    profile = source.info.get("icc_profile")
    if not isinstance(profile, bytes) or not profile:
        return None
    rgb_sources = ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA")
    gray_sources = ("1", "L", "LA", "La")
    if (output_mode == "RGB" and source_mode in rgb_sources) or (
        output_mode == "L" and source_mode in gray_sources
    ):
        return profile
    return None


def _encode(image: Image.Image, pillow_format: str, quality: int, icc_profile: bytes | None) -> bytes:
    limit = _OUTPUT_LIMITS.get(pillow_format)
    if limit is not None and max(image.size) > limit:
        raise ImageTooLarge(f"{image.size[0]}×{image.size[1]} is beyond what {pillow_format} can hold")
    options: dict[str, object] = {"quality": quality}
    if pillow_format == "JPEG":
        options["optimize"] = True  # optimal Huffman tables: a few % smaller, as ImageMagick does
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    out = io.BytesIO()
    image.save(out, pillow_format, **options)
    return out.getvalue()


def cover_path(thumbdir: str | os.PathLike[str], arcid: str, ext: str) -> Path:
    """``<thumbdir>/<id[0:2]>/<id>.<ext>``, the original's cover thumbnail location."""
    _check_archive_id(arcid)
    return Path(thumbdir) / arcid[:2] / f"{arcid}.{_checked_ext(ext)}"


def page_thumb_path(thumbdir: str | os.PathLike[str], arcid: str, page: int, ext: str) -> Path:
    """``<thumbdir>/<id[0:2]>/<id>/<page>.<ext>``; pages are 1-based (page 0 means the cover)."""
    _check_archive_id(arcid)
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page thumbnails are numbered from 1, not {page!r}")
    return Path(thumbdir) / arcid[:2] / arcid / f"{page}.{_checked_ext(ext)}"


def tank_cover_path(thumbdir: str | os.PathLike[str], tank_id: str, ext: str) -> Path:
    """``<thumbdir>/TA/<TANK_id>.<ext>``, the original's tankoubon cover location."""
    if not isinstance(tank_id, str) or not _TANK_ID.fullmatch(tank_id):
        raise ValueError(f"not a tankoubon id: {tank_id!r}")
    return Path(thumbdir) / "TA" / f"{tank_id}.{_checked_ext(ext)}"


def _check_archive_id(arcid: str) -> None:
    # fullmatch, not match with $: "$" would also accept a trailing newline.
    if not isinstance(arcid, str) or not _ARCHIVE_ID.fullmatch(arcid):
        raise ValueError(f"not an archive id: {arcid!r}")


def _checked_ext(ext: str) -> str:
    if ext not in THUMB_EXTENSIONS:
        raise ValueError(f"not a thumbnail extension: {ext!r}")
    return ext


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never half.

    The temporary file lives in the target folder (rename is only atomic within a filesystem) and
    is hidden and suffixed ``.tmp`` so existence checks for ``<page>.jpg`` never match it. The
    folder is not fsynced: after a crash the worst case is a missing thumbnail, which is rebuilt.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
            # mkstemp makes 0600; thumbnails are public files, readable like any other.
            os.fchmod(temp.fileno(), 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise

