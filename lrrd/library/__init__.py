"""lrrd.library package."""
