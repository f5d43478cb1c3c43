"""Well-known anchor ids, and UUIDs shared between records.

The system root and the guest root have fixed ids in every store. Record
decoders turn the same 16 bytes into the same UUID object (`intern_uuid`), so a
cache of 100,000 records does not hold 100,000 copies of one root id.
"""

from __future__ import annotations

from uuid import UUID

SYSTEM_ROOT_ID = UUID(int=0)
GUEST_ROOT_ID = UUID(int=1)

_UUIDS: dict[bytes, UUID] = {}


def intern_uuid(raw: bytes) -> UUID:
    """A UUID for 16 raw bytes, shared between records (UUIDs are immutable)."""
    found = _UUIDS.get(raw)
    if found is None:
        if len(_UUIDS) > 500_000:
            _UUIDS.clear()
        found = _UUIDS[raw] = UUID(bytes=raw)
    return found
