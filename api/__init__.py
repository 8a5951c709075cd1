"""Adapters over the ``geo`` domain: the HTTP API (FastAPI) and the ``patrolgrid`` CLI."""
