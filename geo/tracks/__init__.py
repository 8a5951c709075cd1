"""GPS tracks of patrol workers: input checks (:mod:`geo.tracks.points`) and cleaning
(:mod:`geo.tracks.clean`). Storage and queries are in :mod:`geo.store.tracks`."""
