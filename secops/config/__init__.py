"""Configuration: a typed TOML schema, its loader and its renderer."""

from secops.config.loader import default_config_path, load_config
from secops.config.schema import Config, Retention, Target

__all__ = ["Config", "Retention", "Target", "default_config_path", "load_config"]
