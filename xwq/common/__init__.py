"""Configuration loading and validation, seeding."""

from xwq.common.config import Config, ConfigError, get_configs

__all__ = ["Config", "ConfigError", "get_configs"]
