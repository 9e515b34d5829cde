"""handcar's version, for --version and features."""

__version__ = "0.1.0"
