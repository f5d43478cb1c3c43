"""MongoDB for jacscale: the graph store (`graph_store.py`), documents, change log and the kvstore driver."""
