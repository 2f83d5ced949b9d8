"""Archive files as LANraragi sees them: ids, page order, and reading pages (blocking code, run in threads)."""
