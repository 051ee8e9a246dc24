"""Integrity of the server's own logs: sealed log files and the systemd journal."""
