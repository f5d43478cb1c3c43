"""PostgreSQL for jacscale: graph store, documents, change log, kvstore driver and broadcast bus."""
