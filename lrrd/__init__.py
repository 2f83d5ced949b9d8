"""lrrd: a LANraragi-compatible comic/manga archive server built on Twisted."""

__version__ = "0.1.0"

#: What /api/info reports: the LANraragi release whose API lrrd speaks, so clients
#: that gate features on the server version see the one they were written against.
LRR_VERSION = "0.9.81"
LRR_VERSION_NAME = "Atomica"
LRR_VERSION_DESC = "I'm under Japanese influence and my honor's at stake!"
