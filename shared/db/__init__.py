"""The database layer: the engine and units of work, portable column types, dialect-aware statements, the
fast path on the driver, what a failure means, and the migrations."""
