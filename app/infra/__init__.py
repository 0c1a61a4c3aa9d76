"""Infrastructure: configuration, database engine, storage, keys, clock, spool, logs, network."""
