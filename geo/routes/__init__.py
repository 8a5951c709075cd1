"""Patrol routes: validation, street networks, hotspots and loop planning.

``network`` (edges between junctions, the in-memory graph), ``hotspots`` (top H3
cells by incident count), ``loop`` (the planning heuristic, pure), ``validate``
(route features) and ``plan`` (planning against the database).
"""
