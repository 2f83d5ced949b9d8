"""lrrd.search package."""
