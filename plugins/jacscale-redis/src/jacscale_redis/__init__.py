"""Redis for jacscale: the L2 cache (`cache_tier.py`), the broadcast bus and the kvstore driver."""
