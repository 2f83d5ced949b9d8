"""lrrd.store package."""
