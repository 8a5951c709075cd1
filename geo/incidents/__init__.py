"""Incidents: validation (``schema``), intake with grid and worker assignment (``intake``,
``responsible``), the closed loop (``loop``), escalation and duplicates.

Every module here is domain code: no FastAPI, no imports from ``api`` or ``data``.
"""
