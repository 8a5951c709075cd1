"""PostGIS storage: the models, the engine, and one query function per question."""
