"""Backups: the restic adapter, targets, the multi-target engine and retention."""
