"""What every command receives: where the config is, and how to load it once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.config.schema import Config


@dataclass
class AppContext:
    config_option: str | None
    log_json: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        from secops.config.loader import default_config_path

        return default_config_path(self.config_option)

    def config(self) -> Config:
        if self._config is None:
            from secops.config.loader import load_config

            self._config = load_config(self.config_path)
        return self._config

    def audit(self, kind: str, data: dict[str, Any]) -> None:
        """Record an act of this command in the audit log (the person at the keyboard)."""
        from secops.audit import record_safely

        cfg = self.config()
        record_safely(cfg.paths.state_dir, cfg.office.code, kind, data)

    def loaded(self) -> Config | None:
        return self._config
