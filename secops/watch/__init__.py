"""Watching folders: the debouncer (pure) and the watchdog observers (adapter)."""
