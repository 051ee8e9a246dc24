"""The smallest valid office config, for tests that add only the section they exercise."""

from __future__ import annotations

MINIMAL_TOML = """\
[office]
name = "UBND xã Tân Kỳ"
code = "tan-ky"
[paths]
state_dir = "state"
watch = ["data"]
[backup]
[[backup.targets]]
name = "local"
repository = "repo"
"""
