"""handcar's engine and CLI: how a user without root makes an OCI spec real."""

__version__ = "0.1.0"
