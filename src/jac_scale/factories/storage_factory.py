"""`StorageFactory`, as jac-scale programs import it (see docs/storage.md).

`StorageFactory.create(type, config)` asks the `jacscale_storage_backend` hook
for that backend; `StorageFactory.get_default()` is the `store()` builtin.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from jacscale_ext.local_storage import DEFAULT_BASE_PATH, create_storage, store


class StorageType(StrEnum):
    """The storage types jacscale ships (plugins may add more by name)."""

    LOCAL = "local"


class StorageFactory:
    """Build storage backends by type, or from jac.toml / environment / defaults."""

    @staticmethod
    def create(storage_type: str, config: Mapping[str, Any] | None = None) -> Any:
        """The backend for `storage_type` ("local", ...) built from `config`."""
        return create_storage(storage_type, config)

    @staticmethod
    def get_default(base_path: str = DEFAULT_BASE_PATH, create_dirs: bool = True) -> Any:
        """The configured backend: jac.toml [storage] > JAC_STORAGE_* > arguments > defaults."""
        return store(base_path=base_path, create_dirs=create_dirs)


__all__ = ["StorageFactory", "StorageType"]
