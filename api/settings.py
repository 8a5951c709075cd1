"""The API reads the domain settings; see ``geo.settings.Settings``."""

from geo.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
