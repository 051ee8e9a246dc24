"""secops: backup, integrity monitoring and incident response for commune election data."""

__version__ = "0.1.0"
