"""The patrolgrid domain: grids, workers, incidents, patrols and their rules.

Nothing in this package imports FastAPI; the HTTP layer (``api``) and the CLI
adapt it.
"""
