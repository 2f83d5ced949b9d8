"""lrrd.jobs package."""
