"""`import from jac_scale.lib { kvstore }`: direct MongoDB / Redis access (see docs/kvstore.md)."""

from jacscale_ext.kvstore import KVStore, KVStoreUnavailable, kvstore

__all__ = ["KVStore", "KVStoreUnavailable", "kvstore"]
