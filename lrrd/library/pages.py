"""Which archive members are pages, and the order LANraragi reads them in (LRR-NOTES §3.2–§3.3)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "APPLE_MAGICS",
    "APPLE_HEAD_BYTES",
    "is_apple_double",
    "is_apple_junk_path",
    "is_image_name",
    "page_sort_key",
    "sort_pages",
]

# The original matches names as byte strings, so only ASCII letters fold case (re.ASCII). The empty
# alternative is the original's: a name ending in "." counts as an image.
_IMAGE_NAME = re.compile(
    r"^.+\.(?:png|jpg|gif|bmp|jpeg|jfif|webp|avif|heif|heic|jxl|)$",
    re.IGNORECASE | re.ASCII,
)

_MACOSX_SEGMENT = re.compile(r"(?:^|/)__MACOSX/")

# AppleSingle and AppleDouble magic numbers (big-endian).
APPLE_MAGICS = (b"\x00\x05\x16\x00", b"\x00\x05\x16\x07")
# The original only trusts the magic when at least 8 bytes could be read.
APPLE_HEAD_BYTES = 8

_DIGIT_RUN = re.compile(rb"[0-9]+")

_COVER = re.compile(r"(?!.*(?:back|end|rear|recover|discover)).*cover", re.IGNORECASE | re.ASCII)
_CREDIT = re.compile(
    r"^end_card_save_file|notes\.[^.]*$|note\.[^.]*$|^artist_info|credit|^999",
    re.IGNORECASE | re.ASCII,
)


def _perl_lc_table() -> bytes:
    """Build the byte map of Perl's ``lc`` on a byte string under ``use v5.36``.

    With the ``unicode_strings`` feature, ``lc`` treats each byte as a Latin-1 character, so the
    Latin-1 capitals (0xC0–0xDE except 0xD7) are lowered too, even when they are UTF-8 lead bytes.
    """
    table = bytearray(range(256))
    for upper in list(range(0x41, 0x5B)) + [b for b in range(0xC0, 0xDF) if b != 0xD7]:
        table[upper] = upper + 0x20
    return bytes(table)


_PERL_LC = _perl_lc_table()

_UV_MAX = 2**64 - 1
_IV_MAX = 2**63 - 1


def _pad_number(match: re.Match[bytes]) -> bytes:
    """Format a digit run as Perl's ``sprintf "%04d"`` does on a 64-bit build.

    Perl reads the run as an unsigned 64-bit number and ``%d`` reinterprets it as signed, so runs
    from 2**63 wrap negative and runs beyond 2**64-1 become -1 (``"-001"``). Checked against perl 5.36.
    """
    digits = match.group()
    if len(digits) <= 4:
        return digits.rjust(4, b"0")
    digits = digits.lstrip(b"0")
    if len(digits) <= 18:  # below 2**63: no wrap, and no int() needed on this hot path
        return digits.rjust(4, b"0")
    if len(digits) > 20:  # certainly > UV_MAX; also keeps int() within Python's digit limit
        return b"-001"
    number = int(digits or b"0")
    if number > _UV_MAX:
        number = -1
    elif number > _IV_MAX:
        number -= 2**64
    return b"%04d" % number


def page_sort_key(name: str) -> bytes:
    """The original's sort key for a member path: digit runs padded to 4, then ``lc``, compared bytewise.

    The original sorts raw UTF-8 bytes, so the key is bytes. For names with no character in
    U+0080–U+07BF this is codepoint order of the ASCII-lowercased name; in that range the lead byte
    may be "lowercased" as Latin-1 (``É``, ``é`` and Cyrillic then sort after ``あ``), as in the original.
    """
    raw = name.encode("utf-8", "surrogatepass")
    return _DIGIT_RUN.sub(_pad_number, raw).translate(_PERL_LC)


def is_image_name(name: str) -> bool:
    """Whether a member path names an image page (by extension, case-insensitive, like the original)."""
    return _IMAGE_NAME.match(name) is not None


def is_apple_junk_path(name: str) -> bool:
    """Whether a member path looks like macOS resource-fork junk (``__MACOSX/`` or a ``._`` basename).

    The path alone is not enough to skip a member; callers read its head and ask
    :func:`is_apple_double`. Cheap to call first so that only suspicious members are read.
    """
    if _MACOSX_SEGMENT.search(name):
        return True
    return name.rpartition("/")[2].startswith("._")


def is_apple_double(name: str, head: bytes) -> bool:
    """Whether a member is AppleSingle/AppleDouble junk to leave out of the page list.

    Both must hold, as in the original: the path looks like junk and the member's first bytes
    (``head``, at least :data:`APPLE_HEAD_BYTES` of them) carry the Apple magic. So a real image that
    happens to sit under ``__MACOSX/`` stays a page.
    """
    if len(head) < APPLE_HEAD_BYTES or head[:4] not in APPLE_MAGICS:
        return False
    return is_apple_junk_path(name)


def sort_pages(names: Iterable[str]) -> list[str]:
    """Order member paths as LANraragi's reader shows them: covers, then the rest, then credits.

    Each group keeps the stable sort by :func:`page_sort_key`. Unlike the original, a path that is
    both a cover and a credit page (``cover_credits.jpg``) is listed once, among the covers, so the
    result is always a permutation of the input; the original lists such a page twice.
    """
    ordered = sorted(names, key=page_sort_key)
    covers: list[str] = []
    others: list[str] = []
    credits: list[str] = []
    for name in ordered:
        if _COVER.match(name):
            covers.append(name)
        elif _CREDIT.search(name):
            credits.append(name)
        else:
            others.append(name)
    return covers + others + credits
