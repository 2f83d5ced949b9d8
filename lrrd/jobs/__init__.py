"""Jobs: a Minion-compatible queue in Redis (``queue``), the workers that run it (``worker``),
tasks by name (``registry``) and the built-in ones (``tasks``, ``maintenance``)."""
