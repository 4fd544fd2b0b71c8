"""micforge: the server for mic, version control that records why, not only what."""

__version__ = "0.1.0"
