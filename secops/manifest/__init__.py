"""Signed manifests: what a snapshot must contain (path, size, mtime, SHA-256), signed."""
