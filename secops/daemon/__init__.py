"""The daemon: `secops run` under systemd (Type=notify)."""
