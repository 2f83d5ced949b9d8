"""Tests for lrrd.images: thumbnail geometry and encoding, page resizing, safety caps and paths."""

from __future__ import annotations

import io
import os
import random
import stat
import struct
import zlib
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from twisted.trial.unittest import SynchronousTestCase

from lrrd import images
from lrrd.images import (
    DEFAULT_MAX_PIXELS,
    BadImage,
    ImageError,
    ImageTooLarge,
    UnsupportedFormat,
    cover_path,
    fit_thumbnail_box,
    make_thumbnail,
    page_thumb_path,
    resize_page,
    tank_cover_path,
    thumbhash,
    write_atomically,
)

ARCID = "0123456789abcdef0123456789abcdef01234567"
TANK = "TANK_1700000000"


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    if fmt == "PNG":
        options.setdefault("compress_level", 1)  # test speed; the decoder doesn't care
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def detailed(size: tuple[int, int]) -> Image.Image:
    """An RGB image with noise and gradients, so JPEG quality shows in the file size."""
    half = (max(1, size[0] // 2), max(1, size[1] // 2))
    noise = Image.frombytes("L", half, random.Random(f"{size}").randbytes(half[0] * half[1])).resize(size)
    gradient = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))


@cache
def page_jpeg() -> bytes:
    return encode(detailed((2000, 3000)), "JPEG", quality=90)


def solid_png(size: tuple[int, int], mode: str = "RGB", color: object = (10, 20, 30)) -> bytes:
    return encode(Image.new(mode, size, color), "PNG")  # type: ignore[arg-type]


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR for a 1-bit grayscale image of the given size."""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))


@cache
def png_bomb() -> bytes:
    """A valid 20000×20000 1-bit PNG of ~50 KB that would decode to 400 megapixels."""
    row = bytes(1 + 20000 // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(20000)) + compressor.flush()
    return png_header(20000, 20000) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


class FitTests(SynchronousTestCase):
    def assertThumbSize(self, source: tuple[int, int], expected: tuple[int, int]) -> None:
        self.assertEqual(decoded(make_thumbnail(solid_png(source), hq=False)).size, expected)

    def test_tall(self) -> None:
        """A tall page is limited by the 1000 px height."""
        self.assertThumbSize((1000, 5000), (200, 1000))

    def test_wide(self) -> None:
        """A wide spread is limited by the 500 px width, rounding 166.7 up to 167."""
        self.assertThumbSize((3000, 1000), (500, 167))

    def test_small_is_enlarged(self) -> None:
        """A small image is enlarged to the box, as ImageMagick's -thumbnail 500x1000 (no '>') does."""
        self.assertThumbSize((100, 150), (500, 750))

    def test_extreme_aspect(self) -> None:
        """A 1-pixel-high strip still yields at least one pixel on each side."""
        self.assertEqual(fit_thumbnail_box((100_000, 1)), (500, 1))

    def test_exif_orientation(self) -> None:
        """A sideways-stored JPEG with EXIF orientation 6 is fitted and output upright."""
        exif = Image.Exif()
        exif[0x0112] = 6
        data = encode(detailed((3000, 2000)), "JPEG", exif=exif.tobytes())
        self.assertEqual(decoded(make_thumbnail(data, hq=False)).size, (500, 750))


class ThumbnailEncodingTests(SynchronousTestCase):
    def test_hq_is_bigger(self) -> None:
        """HQ (quality 80) thumbnails of a detailed page are clearly bigger than quality 50 ones."""
        data = encode(detailed((1000, 1500)), "PNG")
        low, high = make_thumbnail(data, hq=False), make_thumbnail(data, hq=True)
        self.assertEqual(decoded(low).format, "JPEG")
        self.assertGreater(len(high), len(low) * 1.2)

    def test_big_jpeg_uses_draft(self) -> None:
        """A 2000×3000 JPEG is DCT-decoded at quarter scale, straight to the 500×750 target."""
        result = images._decode(page_jpeg(), fit=fit_thumbnail_box, max_pixels=DEFAULT_MAX_PIXELS)
        self.assertEqual(result.source_size, (2000, 3000))
        self.assertEqual(result.image.size, (500, 750))
        self.assertEqual(result.target, (500, 750))
        undrafted = images._decode(
            page_jpeg(), fit=fit_thumbnail_box, max_pixels=DEFAULT_MAX_PIXELS, use_draft=False
        )
        self.assertEqual(undrafted.image.size, (2000, 3000))
        self.assertEqual(decoded(make_thumbnail(page_jpeg(), hq=True)).size, (500, 750))

    def test_alpha_flattened_on_white(self) -> None:
        """Transparent pixels become white and half-transparent black becomes mid-gray, in RGB."""
        image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
        image.paste((0, 0, 0, 128), (50, 0, 100, 100))
        out = decoded(make_thumbnail(encode(image, "PNG"), hq=True))
        self.assertEqual(out.mode, "RGB")
        self.assertPixelNear(out.getpixel((100, 375)), (255, 255, 255))
        self.assertPixelNear(out.getpixel((400, 375)), (127, 127, 127))

    def test_gray_alpha_and_palette_transparency(self) -> None:
        """LA images and GIF-style palette transparency are flattened on white too."""
        la = decoded(make_thumbnail(solid_png((50, 50), "LA", (0, 0)), hq=True))
        self.assertEqual((la.mode, la.getpixel((10, 10))), ("L", 255))
        palette = Image.new("P", (50, 50), 3)
        gif = decoded(make_thumbnail(encode(palette, "GIF", transparency=3), hq=True))
        self.assertPixelNear(gif.getpixel((10, 10)), (255, 255, 255))

    def test_animated_gif_first_frame(self) -> None:
        """Only the first frame of an animated GIF is used."""
        red, blue = Image.new("RGB", (60, 60), (255, 0, 0)), Image.new("RGB", (60, 60), (0, 0, 255))
        data = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
        self.assertEqual(getattr(Image.open(io.BytesIO(data)), "n_frames"), 2)
        self.assertPixelNear(decoded(make_thumbnail(data, hq=True)).getpixel((250, 250)), (255, 0, 0))

    def test_16_bit_png_scaled_not_clipped(self) -> None:
        """A 16-bit gray PNG at half intensity comes out mid-gray rather than clipped to white."""
        out = decoded(make_thumbnail(solid_png((40, 40), "I;16", 0x8000), hq=True))
        self.assertEqual(out.mode, "L")
        self.assertApproximates(out.getpixel((100, 100)), 128, 2)

    def test_cmyk_jpeg(self) -> None:
        """A CMYK JPEG is converted to RGB with the right colour."""
        data = encode(Image.new("CMYK", (80, 80), (0, 255, 255, 0)), "JPEG", quality=95)
        out = decoded(make_thumbnail(data, hq=True))
        self.assertEqual(out.mode, "RGB")
        self.assertPixelNear(out.getpixel((250, 250)), (255, 0, 0), tolerance=8)

    def test_grayscale_stays_single_channel(self) -> None:
        """A grayscale page makes a one-channel JPEG, smaller than RGB and displayed the same."""
        self.assertEqual(decoded(make_thumbnail(solid_png((30, 30), "L", 90), hq=False)).mode, "L")

    def test_webp_output(self) -> None:
        """fmt="webp" yields a WebP file of the fitted size."""
        out = make_thumbnail(page_jpeg(), hq=False, fmt="webp")
        self.assertEqual((out[:4], out[8:12]), (b"RIFF", b"WEBP"))
        self.assertEqual(decoded(out).size, (500, 750))

    def test_unknown_or_unwritable_format(self) -> None:
        """An unknown format, or jxl without a JPEG XL plugin, raises UnsupportedFormat (a ValueError)."""
        self.assertRaises(UnsupportedFormat, make_thumbnail, page_jpeg(), hq=False, fmt="gif")
        self.assertTrue(issubclass(UnsupportedFormat, ValueError))
        if "JXL" not in Image.SAVE:
            self.assertRaises(UnsupportedFormat, make_thumbnail, page_jpeg(), hq=False, fmt="jxl")

    def test_thumbhash(self) -> None:
        """thumbhash is the SHA-1 hex of the raw source bytes."""
        self.assertEqual(thumbhash(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d")

    def assertPixelNear(self, pixel: object, expected: tuple[int, ...], tolerance: int = 3) -> None:
        assert isinstance(pixel, tuple)
        for got, want in zip(pixel, expected, strict=True):
            self.assertApproximates(got, want, tolerance, msg=f"{pixel} != {expected}")


class ResizePageTests(SynchronousTestCase):
    def test_wide_page_shrunk_to_1064(self) -> None:
        """A 2000×3000 page becomes a 1064×1596 JPEG."""
        out = decoded(resize_page(page_jpeg(), quality=50))
        self.assertEqual((out.format, out.size), ("JPEG", (1064, 1596)))

    def test_narrow_page_not_enlarged(self) -> None:
        """A page narrower than max_width keeps its size but is still re-encoded as JPEG."""
        out = decoded(resize_page(solid_png((800, 1200)), quality=50))
        self.assertEqual((out.format, out.size), ("JPEG", (800, 1200)))

    def test_quality_and_max_width(self) -> None:
        """Lower quality gives smaller files; max_width is honoured; bad quality is a ValueError."""
        data = encode(detailed((1200, 1800)), "PNG")
        self.assertLess(len(resize_page(data, quality=30)), len(resize_page(data, quality=90)))
        self.assertEqual(decoded(resize_page(data, quality=50, max_width=600)).size, (600, 900))
        self.assertRaises(ValueError, resize_page, data, quality=0)

    def test_too_tall_for_jpeg(self) -> None:
        """A strip taller than JPEG's 65535 px limit raises ImageTooLarge, not an encoder error."""
        data = solid_png((10, 70_000), "L", 0)
        self.assertRaises(ImageTooLarge, resize_page, data, quality=50)


class SafetyTests(SynchronousTestCase):
    def test_png_bomb(self) -> None:
        """A real 20000×20000 PNG decompression bomb raises ImageTooLarge."""
        self.assertRaises(ImageTooLarge, make_thumbnail, png_bomb(), hq=False)
        self.assertRaises(ImageTooLarge, resize_page, png_bomb(), quality=50)

    def test_size_judged_from_header_alone(self) -> None:
        """A 20000×20000 header whose pixel data is cut off gives ImageTooLarge: nothing was decoded."""
        def cut_off(width: int, height: int) -> bytes:
            return png_header(width, height) + png_chunk(b"IDAT", zlib.compress(bytes(100)))

        self.assertRaises(ImageTooLarge, make_thumbnail, cut_off(20000, 20000), hq=False)
        # Under the cap, the same truncation is found only by decoding, and reported as such.
        self.assertRaises(ImageTooLarge, make_thumbnail, cut_off(9000, 9000), hq=False, max_pixels=80_000_000)
        self.assertRaises(BadImage, make_thumbnail, cut_off(9000, 9000), hq=False)

    def test_own_cap_is_configurable(self) -> None:
        """max_pixels is lrrd's own cap, independent of Pillow's global limit."""
        data = solid_png((1000, 1000))
        self.assertRaises(ImageTooLarge, make_thumbnail, data, hq=False, max_pixels=999_999)
        self.assertEqual(decoded(make_thumbnail(data, hq=False, max_pixels=1_000_000)).size, (500, 500))

    def test_truncated_and_garbage(self) -> None:
        """Truncated JPEG/PNG, empty input and non-image bytes raise BadImage."""
        png = encode(detailed((300, 300)), "PNG")
        for data in (page_jpeg()[: len(page_jpeg()) // 2], png[: len(png) // 2], b"", b"not an image"):
            self.assertRaises(BadImage, make_thumbnail, data, hq=False)
            self.assertRaises(BadImage, resize_page, data, quality=50)

    def test_other_formats_refused(self) -> None:
        """Formats outside the page-image list (EPS, which would run Ghostscript; TIFF) are BadImage."""
        eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
        tiff = encode(Image.new("RGB", (10, 10)), "TIFF")
        for data in (eps, tiff):
            self.assertRaises(BadImage, make_thumbnail, data, hq=False)

    @settings(max_examples=150, deadline=None)
    @given(
        base=st.sampled_from(["png", "jpeg", "gif", "webp"]),
        cut=st.integers(min_value=0, max_value=4000),
        flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    )
    def test_only_image_errors_escape(self, base: str, cut: int, flips: list[tuple[int, int]]) -> None:
        """Mangled PNG/JPEG/GIF/WebP bytes give a thumbnail or an ImageError, never anything else."""
        data = bytearray(fuzz_seed(base)[: max(cut, 1)])
        for position, value in flips:
            data[position % len(data)] = value
        try:
            make_thumbnail(bytes(data), hq=False)
        except ImageError:
            pass


@cache
def fuzz_seed(fmt: str) -> bytes:
    image = detailed((64, 48))
    if fmt == "gif":
        return encode(image.convert("P"), "GIF", save_all=True, append_images=[image.convert("P")])
    return encode(image, fmt.upper())


class PathTests(SynchronousTestCase):
    def test_layout(self) -> None:
        """Covers, page thumbnails and tank covers land where the original puts them."""
        self.assertEqual(cover_path("/t", ARCID, "jpg"), Path(f"/t/01/{ARCID}.jpg"))
        self.assertEqual(page_thumb_path(Path("/t"), ARCID, 12, "jxl"), Path(f"/t/01/{ARCID}/12.jxl"))
        self.assertEqual(tank_cover_path("/t", TANK, "jpg"), Path(f"/t/TA/{TANK}.jpg"))

    def test_bad_ids_rejected(self) -> None:
        """Ids that aren't 40 lowercase hex (archives) or TANK_ plus 10 ASCII digits raise ValueError."""
        for bad in ("../" + ARCID[3:], ARCID[:-1], ARCID.upper(), ARCID + "\n", ARCID + "0", "", TANK):
            self.assertRaises(ValueError, cover_path, "/t", bad, "jpg")
            self.assertRaises(ValueError, page_thumb_path, "/t", bad, 1, "jpg")
        for bad in ("TANK_123", "tank_1700000000", TANK + "\n", "TANK_١٧٠٠٠٠٠٠٠٠", "../TA/x", ARCID):
            self.assertRaises(ValueError, tank_cover_path, "/t", bad, "jpg")

    def test_bad_pages_and_extensions_rejected(self) -> None:
        """Page numbers below 1 or not int, and unknown extensions, raise ValueError."""
        for page in (0, -1, True, "1"):
            self.assertRaises(ValueError, page_thumb_path, "/t", ARCID, page, "jpg")
        for ext in ("png", "", "jpg/../x", "JPG"):
            self.assertRaises(ValueError, cover_path, "/t", ARCID, ext)


class WriteAtomicallyTests(SynchronousTestCase):
    def test_write_and_replace(self) -> None:
        """Parents are created, content is replaced whole, and no temporary file is left behind."""
        path = Path(self.mktemp()) / "ab" / "page" / "1.jpg"
        write_atomically(path, b"first")
        write_atomically(path, b"second")
        self.assertEqual(path.read_bytes(), b"second")
        self.assertEqual(os.listdir(path.parent), ["1.jpg"])
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o644)

    def test_failed_write_leaves_old_file(self) -> None:
        """A write that fails midway keeps the previous file and removes its temporary file."""
        path = Path(self.mktemp()) / "cover.jpg"
        write_atomically(path, b"old")
        self.assertRaises(TypeError, write_atomically, path, "not bytes")
        self.assertEqual(path.read_bytes(), b"old")
        self.assertEqual(os.listdir(path.parent), ["cover.jpg"])
