"""Importers, exporters, the demo city builder and the attribution of bundled data."""
