"""Redis for jacscale: the kvstore driver (`kvstore.py`) and, later, the L2 cache and bus."""
