"""Makes ``twistd lrrd`` find lrrd's service maker (loaded lazily, so ``twistd --help`` stays fast)."""

from twisted.application.service import ServiceMaker

lrrd = ServiceMaker(
    "lrrd",
    "lrrd.tap",
    "A LANraragi-compatible comic/manga archive server",
    "lrrd",
)
