"""lrrd.plugins package."""
