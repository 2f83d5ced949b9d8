"""lrrd.api package."""
