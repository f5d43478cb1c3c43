"""MongoDB for jacscale: the kvstore driver (`kvstore.py`) and, later, the graph store."""
